//! whittle-frontend: decodes ONNX models into the IR and writes the IR back as ONNX.
//!
//! - [`load_model`] / [`load_model_bytes`]: ONNX → [`Model`] (IR graph + metadata).
//! - [`registry`]: the one table from ONNX (domain, op type, opset) to IR ops.
//! - [`export_model`] / [`save_model`]: IR → ONNX (newest op forms, optional external data).
//! - [`tensor_from_proto`], [`tensor_to_proto`], [`read_tensor_pb`]: tensors alone.

mod error;
mod export;
mod external;
mod load;
mod ops;
pub mod proto;
pub mod registry;
mod stream;
mod tensor;
mod types;

pub use error::FrontendError;
pub use export::{export_model, save_model, ExportOptions};
pub use load::{load_model, load_model_bytes, model_from_proto, Model};
pub use registry::{unsupported_ops, unsupported_ops_in, UnsupportedNode, MAX_OPSET, MIN_OPSET};
pub use tensor::{
    dtype_from_onnx, dtype_to_onnx, read_tensor_pb, tensor_from_proto, tensor_to_proto,
};
