//! Shape and data-movement ops: Reshape, Transpose, Concat, Split, Slice, Gather*, Expand, Tile, Pad, Shape, Range, Trilu, ...
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn reshape(allowzero: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn transpose(perm: Option<&[usize]>, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn flatten(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn squeeze(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn unsqueeze(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn concat(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn split(axis: i64, num_outputs: usize, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn slice(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn gather(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn gather_elements(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn gather_nd(batch_dims: usize, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn expand(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn tile(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn pad(mode: PadMode, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn shape(start: i64, end: Option<i64>, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn constant_of_shape(value: &Tensor, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn range(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn trilu(upper: bool, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn non_zero(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn one_hot(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
