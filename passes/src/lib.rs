//! whittle-passes: graph-to-graph rewrites and the pass manager that runs them.
//!
//! A pass is one file with a plain entry function and a `Pass` impl. Passes never call a
//! backend; they see only the IR and their `PassContext`.

mod dce;
mod manager;
mod remove_identity;

pub use dce::dead_code_elimination;
pub use manager::{pass_by_name, Changed, Pass, PassContext, PassError, Pipeline, PASS_NAMES};
pub use remove_identity::remove_identity;
