//! Quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked), DynamicQuantizeLinear.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn quantize_linear(axis: i64, block_size: usize, output_dtype: Option<DType>, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn dequantize_linear(axis: i64, block_size: usize, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn dynamic_quantize_linear(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
