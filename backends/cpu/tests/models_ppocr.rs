//! PP-OCR's text-direction classifier (a small MobileNetV3 CNN: grouped and depthwise
//! convolutions, pooling, HardSigmoid/HardSwish) on the cpu backend against its expected
//! output, when the model files are present (skipped with a note otherwise).

use whittle_cpu::CpuBackend;
use whittle_ir::Tensor;

fn rel_l2(got: &Tensor, want: &Tensor) -> f64 {
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    assert_eq!(g.len(), w.len());
    let num: f64 = g.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = w.iter().map(|b| b * b).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn ppocr_cls_matches_expected_when_present() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/cache/ppocr-cls");
    let model = dir.join("ppocr-cls.onnx");
    if !model.exists() {
        eprintln!("note: {} is absent; skipping", model.display());
        return;
    }
    let m = whittle_frontend::load_model(&model).expect("load");
    let read = |p: std::path::PathBuf| whittle_runtime::npy::read_npy(&p).expect("npy");
    let x = read(dir.join("inputs/x.npy"));
    let want = read(dir.join("expected/softmax_0.tmp_0.npy"));
    for threads in [1, 3] {
        let exe = whittle_runtime::Backend::compile(&CpuBackend::with_threads(threads), &m.graph)
            .expect("compile");
        let got = exe.run(&[("x", x.clone())]).expect("run");
        let err = rel_l2(&got[0].1, &want);
        eprintln!("PP-OCR cls, {threads} threads: rel L2 {err:e}");
        assert!(err < 1e-4, "PP-OCR rel L2 {err} at {threads} threads");
    }
}
