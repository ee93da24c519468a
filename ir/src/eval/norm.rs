//! Normalizations: BatchNormalization (inference), LayerNormalization, RMSNormalization, Softmax, LogSoftmax.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn batch_norm(epsilon: f32, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn layer_norm(axis: i64, epsilon: f32, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn rms_norm(axis: i64, epsilon: f32, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn softmax(axis: i64, coerce_2d: bool, log: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
