//! Reductions along axes: Reduce*, ArgMax/ArgMin, TopK, CumSum.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn reduce(op: ReduceOp, keepdims: bool, noop_with_empty_axes: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn arg_extreme(max: bool, axis: i64, keepdims: bool, select_last_index: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn top_k(axis: i64, largest: bool, sorted: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn cum_sum(exclusive: bool, reverse: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
