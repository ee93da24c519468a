//! The frontend's error type (`FrontendError`): every variant names the file, node,
//! attribute, tensor or value at fault.

use std::path::PathBuf;
use thiserror::Error;
use whittle_ir::IrError;

#[derive(Debug, Error)]
pub enum FrontendError {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed ONNX protobuf: {0}")]
    Decode(String),
    #[error("unsupported op: node '{node}' is {domain_shown}::{op_type} at opset {opset}", domain_shown = if domain.is_empty() { "ai.onnx" } else { domain.as_str() })]
    UnsupportedOp {
        node: String,
        op_type: String,
        domain: String,
        opset: i64,
    },
    #[error("node '{node}': attribute '{attribute}': {why}")]
    BadAttribute {
        node: String,
        attribute: String,
        why: String,
    },
    #[error("node '{node}' ({op_type}): {why}")]
    BadNode {
        node: String,
        op_type: String,
        why: String,
    },
    #[error("unsupported dtype {dtype} in '{name}'")]
    UnsupportedDType { name: String, dtype: String },
    #[error(
        "node '{node}' reads value '{value}', which no node, initializer or graph input produces"
    )]
    DanglingValue { node: String, value: String },
    #[error("graph output '{0}' is not produced by any node, initializer or graph input")]
    DanglingOutput(String),
    #[error("tensor '{name}': {why}")]
    BadTensor { name: String, why: String },
    #[error("tensor '{name}': external data: {why}")]
    ExternalData { name: String, why: String },
    #[error("bad model: {0}")]
    BadModel(String),
    #[error("export: {0}")]
    Export(String),
    #[error(transparent)]
    Ir(#[from] IrError),
}

impl FrontendError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> FrontendError {
        FrontendError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tensor(name: &str, why: impl Into<String>) -> FrontendError {
        FrontendError::BadTensor {
            name: name.to_string(),
            why: why.into(),
        }
    }
}
