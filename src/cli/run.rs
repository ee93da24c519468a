//! `whittle run`: load a model, optionally run passes, execute it on a backend, write .npy files.

use super::files::{check_distinct, Staging};
use super::{check_threads, output_file_names, pipeline, printable, read_inputs, CliResult};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use whittle::passes::PassContext;
use whittle::runtime::npy;

pub fn run(
    model: &Path,
    input_args: &[String],
    out_dir: &Path,
    backend: &str,
    passes: &str,
    threads: usize,
) -> CliResult {
    check_threads(threads)?;
    let backend = whittle::backend_by_name(backend, threads)?;
    let pipeline = pipeline(passes)?;
    let inputs = read_inputs(input_args)?;
    let exe = {
        let mut m = super::load_model(model)?;
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
    std::fs::create_dir_all(out_dir).map_err(|e| {
        format!(
            "cannot create '{}': {e}",
            printable(&out_dir.display().to_string())
        )
    })?;
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    let files = output_file_names(&names);
    let dests: Vec<PathBuf> = files.iter().map(|f| out_dir.join(f)).collect();
    // The files named on the command line are inputs: no output replaces one of them.
    let input_files: Vec<(String, &Path)> = input_args
        .iter()
        .map(|a| {
            let file = a.split_once('=').map_or(a.as_str(), |(_, f)| f);
            (
                format!("input file for --input '{}'", printable(a)),
                Path::new(file),
            )
        })
        .collect();
    let mut protected: Vec<(&str, &Path)> = vec![("input model", model)];
    protected.extend(input_files.iter().map(|(w, p)| (w.as_str(), *p)));
    let what: Vec<String> = names
        .iter()
        .map(|n| format!("the file for output '{}'", printable(n)))
        .collect();
    let written: Vec<(&str, &Path)> = what
        .iter()
        .zip(&dests)
        .map(|(w, p)| (w.as_str(), p.as_path()))
        .collect();
    check_distinct(&protected, &written)?;
    // Every output is written into a staging directory first, then renamed into place: a
    // symlink already at `NAME.npy` is replaced, never written through.
    let staging = Staging::new(out_dir)?;
    for ((_, t), file) in outputs.iter().zip(&files) {
        npy::write_npy(&staging.path(OsStr::new(file)), t).map_err(|e| e.to_string())?;
    }
    for (((name, t), file), dest) in outputs.iter().zip(&files).zip(&dests) {
        staging.commit(OsStr::new(file), dest)?;
        println!(
            "{}: {}{:?} -> {}",
            printable(name),
            t.dtype(),
            t.shape(),
            printable(&dest.display().to_string())
        );
    }
    Ok(())
}
