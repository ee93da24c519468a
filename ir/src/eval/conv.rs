//! Convolution and transposed convolution (N-d, grouped, dilated, padded) by direct loops.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn conv(window: &Window, group: usize, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn conv_transpose(window: &Window, group: usize, output_padding: &[usize], output_shape: &[usize], ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
