//! Whole models on the cpu backend: the per-shape plan cache on a graph with symbolic dims,
//! a small BERT-style (Post-LN) encoder from `whittle_passes::testing` against `ir::eval`
//! at 1 and 3 threads, and MiniLM-L6 against its expected output when the model files are
//! present (skipped with a note otherwise: they are not part of a fresh clone).

mod common;

use common::*;
use whittle_cpu::{CpuBackend, CpuExecutable};
use whittle_ir::{DType, Dim, Op, Tensor, TensorType};
use whittle_passes::testing::{gpt, Builder, GptConfig, NormPlacement};
use whittle_runtime::Executable;

fn compare(got: &[(String, Tensor)], want: &[(String, Tensor)]) -> f64 {
    let (g, w) = (got[0].1.to_f64_vec(), want[0].1.to_f64_vec());
    assert_eq!(g.len(), w.len());
    let num: f64 = g.iter().zip(&w).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = w.iter().map(|b| b * b).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn one_plan_per_input_shape_signature() {
    let mut b = Builder::new("sym", DType::F32, 3);
    let ty = TensorType::new(DType::F32, vec![Dim::Sym("batch".into()), Dim::Known(6)]);
    let x = b.g.add_input("x", ty);
    let w = b.randn("w", &[6, 5], 0.0, 1.0);
    let m = b.node(Op::MatMul, "mm", &[x, w]);
    let sm = Op::Softmax {
        axis: -1,
        coerce_2d: false,
    };
    let y = b.node(sm, "sm", &[m]);
    b.g.add_output(y, "y");
    let exe = CpuExecutable::compile_with(&b.g, 2).expect("compile");
    assert_eq!(exe.compilations(), 0, "symbolic graphs compile lazily");
    let mut r = rng(9);
    for (batch, expect) in [(3usize, 1usize), (7, 2), (3, 2), (7, 2), (1, 3)] {
        let xs = rand_tensor(&mut r, &[batch, 6], -1.0, 1.0);
        let got = exe.run(&[("x", xs.clone())]).expect("run");
        let want = whittle_ir::eval::run(&b.g, &[("x", xs)]).expect("eval");
        assert_eq!(got[0].1.shape(), &[batch, 5]);
        assert!(compare(&got, &want) < 1e-5);
        assert_eq!(exe.compilations(), expect, "after batch {batch}");
    }
    // More signatures than the cache holds: the least recently used plans are evicted
    // (batch 3, used all along, stays; batch 7 goes), runs stay right, and an evicted
    // shape compiles again.
    let cached = whittle_cpu::MAX_PLANS;
    let run_one = |batch: usize, r: &mut _| {
        let xs = rand_tensor(r, &[batch, 6], -1.0, 1.0);
        let got = exe.run(&[("x", xs.clone())]).expect("run");
        let want = whittle_ir::eval::run(&b.g, &[("x", xs)]).expect("eval");
        assert!(compare(&got, &want) < 1e-5, "batch {batch}");
    };
    for batch in 10..10 + cached + 6 {
        run_one(batch, &mut r);
        run_one(3, &mut r);
    }
    assert_eq!(exe.compilations(), 3 + cached + 6);
    assert_eq!(exe.cached_plans(), cached);
    run_one(3, &mut r);
    assert_eq!(
        exe.compilations(),
        3 + cached + 6,
        "the hot plan was evicted"
    );
    run_one(7, &mut r);
    assert_eq!(exe.compilations(), 3 + cached + 7, "the cold plan was kept");
    // A wrong dtype or a shape that contradicts a known dim is an error, not a new plan.
    assert!(exe
        .run(&[("x", Tensor::from_vec(vec![2, 5], vec![0f32; 10]))])
        .is_err());
    assert!(exe
        .run(&[("x", Tensor::from_vec(vec![2, 6], vec![0i64; 12]))])
        .is_err());
}

#[test]
fn small_bert_matches_the_reference_at_1_and_3_threads() {
    let cfg = GptConfig {
        dtype: DType::F32,
        layers: 2,
        width: 24,
        heads: 3,
        vocab: 31,
        seq: 9,
        causal: false,
        placement: NormPlacement::PostLn,
        ..GptConfig::default()
    };
    let g = gpt(&cfg);
    let inputs = whittle_passes::testing::random_inputs(&g, cfg.vocab, 4);
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let want = whittle_ir::eval::run(&g, &named).expect("eval");
    for threads in [1, 3] {
        let exe = CpuExecutable::compile_with(&g, threads).expect("compile");
        let got = exe.run(&named).expect("run");
        let err = compare(&got, &want);
        assert!(err < 1e-5, "threads {threads}: rel L2 {err}");
        let stats = exe.stats().expect("plan");
        assert!(stats.gemm_calls > 0 && stats.host_calls > 0, "{stats:?}");
    }
}

#[test]
fn minilm_matches_onnxruntime_when_present() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/cache/minilm-l6");
    let model = dir.join("minilm-l6.onnx");
    if !model.exists() {
        eprintln!(
            "note: {} is absent; skipping the MiniLM check",
            model.display()
        );
        return;
    }
    let m = whittle_frontend::load_model(&model).expect("load");
    let read = |p: std::path::PathBuf| whittle_runtime::npy::read_npy(&p).expect("npy");
    let names = ["input_ids", "attention_mask", "token_type_ids"];
    let inputs: Vec<(&str, Tensor)> = names
        .iter()
        .map(|n| (*n, read(dir.join(format!("inputs/{n}.npy")))))
        .collect();
    let want = read(dir.join("expected/last_hidden_state.npy"));
    let exe =
        whittle_runtime::Backend::compile(&CpuBackend::with_threads(2), &m.graph).expect("compile");
    let got = exe.run(&inputs).expect("run");
    let err = compare(&got, &[("y".into(), want)]);
    assert!(err < 1e-4, "MiniLM rel L2 {err}");
}
