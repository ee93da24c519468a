//! whittle-ir: the graph IR every other crate shares — dtypes, shapes, tensors, the closed
//! `Op` set, the graph, its text format and verifier, shape inference and the reference
//! evaluator. It knows nothing of ONNX protobufs, Cranelift or LLVM, and holds no
//! execution state.

pub mod control;
mod dtype;
mod error;
pub mod eval;
mod graph;
pub mod infer;
pub mod limits;
mod op;
mod op_contrib;
mod op_info;
mod op_seq;
mod op_signal;
mod shape;
mod tensor;
pub mod text;
mod verify;

pub use control::{Body, ScanAttrs};
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Edge, Graph, GraphOutput, Node, NodeId, Value, ValueInfo};
pub use half;
pub use op::*;
pub use op_contrib::*;
pub use op_seq::*;
pub use op_signal::*;
pub use shape::{Dim, TensorType};
pub use tensor::{Element, Tensor, TensorData};
