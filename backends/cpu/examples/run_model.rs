//! Times a model on the cpu backend: loads an ONNX model and `.npy` inputs, compiles once,
//! runs warm-up and timed iterations, prints the median latency, and optionally compares
//! the first output with an expected `.npy` (relative L2 error).
//!
//! ```text
//! cargo run --release -p whittle-cpu --example run_model -- MODEL.onnx INPUT_DIR \
//!     [--threads N] [--iters N] [--expected FILE.npy] [--out FILE.npy]
//! ```
//! Every `NAME.npy` in INPUT_DIR binds the model input NAME.

use std::path::PathBuf;
use std::time::Instant;
use whittle_cpu::CpuBackend;
use whittle_runtime::{npy, Backend};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut threads, mut iters) = (0usize, 50usize);
    let (mut expected, mut out) = (None, None);
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().ok_or("flag needs a value");
        match args[i].as_str() {
            "--threads" => threads = val()?.parse()?,
            "--iters" => iters = val()?.parse()?,
            "--expected" => expected = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            a => {
                pos.push(a.to_string());
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let [model, dir] = pos.as_slice() else {
        return Err("usage: run_model MODEL.onnx INPUT_DIR [--threads N] [--iters N] [--expected F] [--out F]".into());
    };
    let m = whittle_frontend::load_model(model.as_ref())?;
    let mut inputs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            inputs.push((name, npy::read_npy(&p)?));
        }
    }
    let named: Vec<(&str, whittle_ir::Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let t0 = Instant::now();
    let exe = CpuBackend::with_threads(threads).compile(&m.graph)?;
    let first = exe.run(&named)?;
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    for _ in 0..3 {
        exe.run(&named)?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let r = exe.run(&named)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "threads={} iters={iters} compile+first_ms={compile_ms:.1} median_ms={median:.3} min_ms={:.3}",
        if threads == 0 { "all".to_string() } else { threads.to_string() },
        times.first().copied().unwrap_or(f64::NAN)
    );
    if let Some(p) = out {
        npy::write_npy(&p, &first[0].1)?;
    }
    if let Some(p) = expected {
        let want = npy::read_npy(&p)?.to_f64_vec();
        let got = first[0].1.to_f64_vec();
        let num: f64 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f64 = want.iter().map(|b| b * b).sum();
        println!(
            "rel_l2={:.3e} (len {} vs {})",
            (num / den).sqrt(),
            got.len(),
            want.len()
        );
    }
    Ok(())
}
