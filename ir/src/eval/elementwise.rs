//! Elementwise ops with numpy broadcasting: unary math, binary arithmetic and comparison, activations, Where, Clip, Dropout.
#![allow(unused_variables, unused_imports)]
use super::{opt, req, OpResult};
use crate::*;

pub fn dropout(ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn unary(op: UnaryOp, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn binary(op: BinaryOp, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn variadic(op: VariadicOp, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn leaky_relu(alpha: f32, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn elu(alpha: f32, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn hard_sigmoid(alpha: f32, beta: f32, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn gelu(approximate: GeluApprox, ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn clip(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}

pub fn where_(ins: &[Option<&Tensor>]) -> OpResult {
    Err("not implemented yet in the reference evaluator".into())
}
