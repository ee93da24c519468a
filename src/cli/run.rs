//! `whittle run`: load a model, optionally run passes, execute it on a backend, write .npy files.

use super::{output_file_name, pipeline, read_inputs, CliResult};
use std::path::Path;
use whittle::passes::PassContext;
use whittle::runtime::npy;

pub fn run(
    model: &Path,
    inputs: &[String],
    out_dir: &Path,
    backend: &str,
    passes: &str,
    threads: usize,
) -> CliResult {
    let backend = whittle::backend_by_name(backend, threads)?;
    let pipeline = pipeline(passes)?;
    let inputs = read_inputs(inputs)?;
    let exe = {
        let mut m = whittle::frontend::load_model(model).map_err(|e| e.to_string())?;
        pipeline
            .run(&mut m.graph, &mut PassContext::default())
            .map_err(|e| e.to_string())?;
        if backend.name() == "cpu" {
            // One run: fix the input shapes now, so that the cpu backend compiles its one
            // plan at `compile` and keeps only what the plan needs (packed weights).
            let shapes: Vec<(&str, Vec<usize>)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t.shape().to_vec()))
                .collect();
            let mut g = m.graph.clone();
            if whittle::ir::infer::specialize(&mut g, &shapes).is_ok() {
                m.graph = g;
            }
        }
        backend.compile(&m.graph).map_err(|e| e.to_string())?
        // `m` (the graph and its unpacked weights) is dropped here, before the run.
    };
    let named: Vec<(&str, whittle::ir::Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let outputs = exe.run(&named).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create '{}': {e}", out_dir.display()))?;
    for (name, t) in &outputs {
        let path = out_dir.join(output_file_name(name));
        npy::write_npy(&path, t).map_err(|e| e.to_string())?;
        println!("{name}: {}{:?} -> {}", t.dtype(), t.shape(), path.display());
    }
    Ok(())
}
