//! Resize: nearest, linear and cubic interpolation with every coordinate transformation mode.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn resize(attrs: &ResizeAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
