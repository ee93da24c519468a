//! The error type of the IR crate (`IrError`); every variant names where the problem is.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    #[error("bad tensor: {0}")]
    Tensor(String),
    #[error("bad graph: {0}")]
    Graph(String),
    #[error("verifier: node '{node}' ({op}): {msg}")]
    Verify {
        node: String,
        op: String,
        msg: String,
    },
    #[error("line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("shape inference: node '{node}' ({op}): {msg}")]
    Infer {
        node: String,
        op: String,
        msg: String,
    },
    #[error("evaluation: node '{node}' ({op}): {msg}")]
    Eval {
        node: String,
        op: String,
        msg: String,
    },
    #[error("input '{name}': {msg}")]
    Input { name: String, msg: String },
}
