//! The ONNX protobuf messages (prost types generated from `frontend/proto/onnx.proto`).

#[rustfmt::skip]
mod onnx;

pub use onnx::*;
