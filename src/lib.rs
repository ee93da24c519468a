//! whittle: the facade library behind the CLI — re-exports of the pipeline crates and the
//! one place where frontend, passes and backends are assembled.

pub use whittle_frontend as frontend;
pub use whittle_ir as ir;
pub use whittle_passes as passes;
pub use whittle_runtime as runtime;

pub mod demo;

use whittle_runtime::{Backend, ReferenceBackend};

/// The names accepted by `--backend`.
pub const BACKENDS: &[&str] = &["reference"];

/// Looks a backend up by its command-line name.
pub fn backend_by_name(name: &str) -> Result<Box<dyn Backend>, String> {
    match name {
        "reference" => Ok(Box::new(ReferenceBackend)),
        other => Err(format!(
            "unknown backend '{other}' (available: {})",
            BACKENDS.join(", ")
        )),
    }
}
