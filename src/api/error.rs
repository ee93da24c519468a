//! The one error type of the embedding API (`whittle::Error`): wraps loader, pass and
//! backend errors and names the input at fault for the run-time checks.

use whittle_frontend::FrontendError;
use whittle_ir::{DType, IrError};
use whittle_passes::PassError;
use whittle_runtime::RuntimeError;

/// Everything that can go wrong between loading a model and reading its outputs.
///
/// Every message names what is at fault (the file, node, pass or input), so printing the
/// error with `{}` is enough for a user-facing report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model could not be read or decoded (missing file, malformed protobuf,
    /// unsupported op, ...).
    #[error("cannot load the model: {0}")]
    Load(#[from] FrontendError),
    /// A graph built in code (or produced by a pass) is not valid.
    #[error("invalid graph: {0}")]
    Graph(#[source] IrError),
    /// An optimization pass failed.
    #[error("optimization failed: {0}")]
    Pass(#[from] PassError),
    /// The backend could not compile the graph (e.g. an op it does not support).
    #[error("compiling for the {target} target failed: {source}")]
    Compile {
        /// The target's name (`reference` or `cpu`).
        target: &'static str,
        /// The backend's error.
        #[source]
        source: RuntimeError,
    },
    /// An input name the model does not have.
    #[error("unknown input '{name}' (the model's inputs are: {known})")]
    UnknownInput {
        /// The name that was given.
        name: String,
        /// The model's input names, comma separated.
        known: String,
    },
    /// A model input that was not given, or given twice.
    #[error("input '{name}': {why}")]
    BadInputSet {
        /// The input's name.
        name: String,
        /// `missing` or `given more than once`.
        why: &'static str,
    },
    /// An input tensor of the wrong element type.
    #[error("input '{name}': expected dtype {expected}, got {got}")]
    DTypeMismatch {
        /// The input's name.
        name: String,
        /// The dtype the model declares.
        expected: DType,
        /// The dtype that was given.
        got: DType,
    },
    /// An input tensor of the wrong shape (rank, a fixed dim, a symbolic dim bound to two
    /// different sizes, or data whose length does not match the shape).
    #[error("input '{name}': {why}")]
    ShapeMismatch {
        /// The input's name.
        name: String,
        /// What does not match, with both shapes.
        why: String,
    },
    /// The compiled model failed while running.
    #[error("run failed: {0}")]
    Run(#[source] RuntimeError),
    /// A bad argument to an API call (e.g. zero threads).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
