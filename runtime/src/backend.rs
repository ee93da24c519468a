//! The backend abstraction: a backend compiles a graph into an `Executable` that runs it.

use thiserror::Error;
use whittle_ir::{Graph, IrError, Tensor};

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error("backend '{backend}' cannot compile node '{node}' ({op}): {msg}")]
    Unsupported {
        backend: String,
        node: String,
        op: String,
        msg: String,
    },
    #[error("{0}")]
    Io(String),
    /// A failure while running (an index out of range, a plan that does not fit the
    /// inputs, ...), or an internal error of the backend.
    #[error("backend '{backend}': {msg}")]
    Run { backend: String, msg: String },
}

/// A compiled graph, ready to run on named inputs. Outputs come back in graph order.
pub trait Executable: Send + Sync {
    fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError>;
}

/// A code generator (or interpreter) that turns a graph into an [`Executable`].
pub trait Backend: Send + Sync {
    /// The name used on the command line (`--backend NAME`).
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RuntimeError>;
}

/// Runs graphs with the reference evaluator: slow, simple, and the definition of correct.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

struct ReferenceExecutable {
    graph: Graph,
}

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RuntimeError> {
        graph.topo_order()?;
        Ok(Box::new(ReferenceExecutable {
            graph: graph.clone(),
        }))
    }
}

impl Executable for ReferenceExecutable {
    fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        Ok(whittle_ir::eval::run(&self.graph, inputs)?)
    }
}
