//! whittle: the facade library behind the CLI — re-exports of the pipeline crates and the
//! one place where frontend, passes and backends are assembled.

pub use whittle_cpu as cpu;
pub use whittle_frontend as frontend;
pub use whittle_ir as ir;
pub use whittle_passes as passes;
pub use whittle_runtime as runtime;

pub mod api;
pub mod demo;

pub use api::{
    CompiledModel, DType, Dim, Error, Model, Pipeline, Result, Target, Tensor, TensorInfo,
    TensorSlice, TensorView, ViewElement,
};

/// The process-wide memory budget: the most bytes one allocation sized by a model or an
/// input may take (0 restores the default, the machine's physical memory). Over it, load,
/// compile and run return an error naming the node and the bytes instead of aborting.
pub use whittle_ir::limits::{max_memory, set_max_memory};

use whittle_runtime::{Backend, ReferenceBackend};

/// The names accepted by `--backend`.
pub const BACKENDS: &[&str] = &["reference", "cpu"];

/// Looks a backend up by its command-line name. `threads` = 0 means one per core (backends
/// without threads ignore it).
pub fn backend_by_name(
    name: &str,
    threads: usize,
) -> std::result::Result<Box<dyn Backend>, String> {
    match name {
        "reference" => Ok(Box::new(ReferenceBackend)),
        "cpu" => Ok(Box::new(whittle_cpu::CpuBackend::with_threads(threads))),
        other => Err(format!(
            "unknown backend '{other}' (available: {})",
            BACKENDS.join(", ")
        )),
    }
}
