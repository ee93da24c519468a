//! Pooling: MaxPool (with indices), AveragePool, GlobalAveragePool, GlobalMaxPool.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn max_pool(window: &Window, ceil_mode: bool, storage_order: u8, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn average_pool(window: &Window, ceil_mode: bool, count_include_pad: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn global_pool(max: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
