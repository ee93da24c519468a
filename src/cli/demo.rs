//! `whittle demo`: the main job on the embedded encoder — export to ONNX, load it back,
//! optimize, run, check every variant against the original, and report.

use super::CliResult;
use std::time::Instant;
use whittle::demo::{build_demo_graph, demo_inputs};
use whittle::ir::{Graph, Tensor};
use whittle::passes::{PassContext, Pipeline};
use whittle::runtime::{Backend, ReferenceBackend};

fn run_graph(g: &Graph, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>, String> {
    run_on(&ReferenceBackend, g, inputs)
}

fn run_on(
    backend: &dyn Backend,
    g: &Graph,
    inputs: &[(String, Tensor)],
) -> Result<Vec<(String, Tensor)>, String> {
    let exe = backend.compile(g).map_err(|e| e.to_string())?;
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    exe.run(&named).map_err(|e| e.to_string())
}

/// Relative L2 distance ‖a − b‖ / ‖b‖.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

pub fn run() -> CliResult {
    let t0 = Instant::now();
    let g = build_demo_graph();
    g.verify().map_err(|e| e.to_string())?;
    let inputs = demo_inputs();
    println!(
        "demo model: BERT-style Post-LN encoder ({} layers, width {}, {} heads), {} graph nodes",
        whittle::demo::LAYERS,
        whittle::demo::HIDDEN,
        whittle::demo::HEADS,
        g.node_count()
    );
    super::inspect::summarize(&g);

    // 1. Write it as ONNX and load it back through the frontend, as a user's model would.
    let dir = std::env::temp_dir().join(format!("whittle-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("demo.onnx");
    whittle::frontend::save_model(
        &whittle::frontend::Model::from_graph(g.clone()),
        &path,
        &Default::default(),
    )
    .map_err(|e| e.to_string())?;
    let loaded = whittle::frontend::load_model(&path)
        .map_err(|e| e.to_string())?
        .graph;
    println!(
        "\nwrote {} ({} bytes) and loaded it back: {} nodes",
        path.display(),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        loaded.node_count()
    );

    // 2. The exact pass pipeline.
    let mut optimized = loaded.clone();
    let mut cx = PassContext {
        verify: true,
        ..Default::default()
    };
    let changed = Pipeline::exact()
        .run(&mut optimized, &mut cx)
        .map_err(|e| e.to_string())?;
    println!(
        "\nexact pipeline ({}): {} -> {} nodes",
        changed.join(", "),
        loaded.node_count(),
        optimized.node_count()
    );
    for s in cx.stats.iter().filter(|s| s.changed) {
        println!("  {s}");
    }
    for line in &cx.explanations {
        println!("  {line}");
    }

    // 3. Run all three and compare.
    let t = Instant::now();
    let reference = run_graph(&g, &inputs)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let round_trip = run_graph(&loaded, &inputs)?;
    let opt = run_graph(&optimized, &inputs)?;
    let out = &reference[0].1;
    let e_rt = rel_l2(&round_trip[0].1, out);
    let e_opt = rel_l2(&opt[0].1, out);
    println!(
        "\nreference evaluator: {} {}{:?} in {ms:.1} ms",
        reference[0].0,
        out.dtype(),
        out.shape()
    );
    println!("ONNX round trip vs original: rel L2 {e_rt:.2e}");
    println!("exact pipeline vs original:  rel L2 {e_opt:.2e}");

    // The Cranelift cpu backend on the optimized graph, and padding-free execution (the
    // demo input has 12 tokens and 4 padding positions): valid rows against the reference.
    let cpu = whittle::cpu::CpuBackend::default();
    let t = Instant::now();
    let on_cpu = run_on(&cpu, &optimized, &inputs)?;
    let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let e_cpu = rel_l2(&on_cpu[0].1, out);
    println!(
        "cpu backend (JIT, first run incl. compile {cpu_ms:.1} ms) vs original: rel L2 {e_cpu:.2e}"
    );
    let mut packed = optimized.clone();
    Pipeline::parse("remove-padding")
        .and_then(|p| p.run(&mut packed, &mut PassContext::default()))
        .map_err(|e| e.to_string())?;
    let padfree = run_on(&cpu, &packed, &inputs)?;
    let mask = inputs
        .iter()
        .find(|(n, _)| n == "attention_mask")
        .map(|(_, t)| t.to_f64_vec())
        .unwrap_or_default();
    let (p, o) = (padfree[0].1.to_f64_vec(), out.to_f64_vec());
    let width = *out.shape().last().unwrap_or(&1);
    let (mut num, mut den, mut pad_max) = (0.0f64, 0.0f64, 0.0f64);
    for (row, &m) in mask.iter().enumerate() {
        for j in row * width..(row + 1) * width {
            if m != 0.0 {
                num += (p[j] - o[j]) * (p[j] - o[j]);
                den += o[j] * o[j];
            } else {
                pad_max = pad_max.max(p[j].abs());
            }
        }
    }
    let e_pad = (num / den.max(f64::MIN_POSITIVE)).sqrt();
    println!(
        "cpu backend, padding-free ({} of {} tokens): valid rows rel L2 {e_pad:.2e}, pad rows max |y| {pad_max:.1e}",
        mask.iter().filter(|&&m| m != 0.0).count(),
        mask.len()
    );

    // 4. An independent check of the math: the final LayerNorm (γ=1, β=0) leaves every
    // token with mean 0 and variance 1.
    let v = out.to_f64_vec();
    let width = *out.shape().last().unwrap_or(&1);
    let worst = v
        .chunks(width)
        .map(|row| {
            let mean = row.iter().sum::<f64>() / width as f64;
            let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / width as f64;
            mean.abs().max((var - 1.0).abs())
        })
        .fold(0.0, f64::max);
    println!("final LayerNorm rows: max |mean| / |var - 1| = {worst:.2e}");
    let _ = std::fs::remove_dir_all(&dir);
    let ok = e_rt == 0.0
        && e_opt <= 1e-6
        && e_cpu <= 1e-5
        && e_pad <= 1e-5
        && pad_max == 0.0
        && worst <= 1e-4;
    println!(
        "\ndemo {} in {:.2} s",
        if ok { "PASSED" } else { "FAILED" },
        t0.elapsed().as_secs_f64()
    );
    if ok {
        Ok(())
    } else {
        Err("the demo's checks failed (see above)".into())
    }
}
