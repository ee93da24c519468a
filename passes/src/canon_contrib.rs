//! The canonical form of `BiasGelu` (onnxruntime's `BiasGelu`, and `FastGelu` with a
//! bias): the `Add` and `Gelu` it stands for, so that `fuse-matmul` folds a preceding
//! MatMul, the bias and the activation into one `FusedMatMul` and the backends' elementwise
//! kernels see the plain ops.
//!
//! ```text
//! %y = BiasGelu(None) %x, %b : f32[n,k]   →   %s = Binary(Add) %x, %b : f32[n,k]
//!                                              %y = Gelu(None) %s : f32[n,k]
//! ```
//! Exact: `BiasGelu` is defined (ir::eval) as these two ops.

use crate::rewrite::{new_node, remove_dead_from, replace_value, Namer};
use whittle_ir::{BinaryOp, Graph, NodeId, Op, Value};

/// Splits the `BiasGelu` at `id`, if it is one; returns the new Gelu's name.
pub fn split_bias_gelu(g: &mut Graph, namer: &mut Namer, id: NodeId) -> Option<String> {
    let Op::BiasGelu { approximate } = g.node(id).op else {
        return None;
    };
    let ins = g.node_inputs(id);
    let (x, bias) = (
        ins.first().copied().flatten()?,
        ins.get(1).copied().flatten()?,
    );
    let out = Value::new(id, 0);
    let ty = g.value_type(out).clone();
    let base = g.node(id).name.clone();
    let sum = new_node(
        g,
        namer,
        &format!("{base}_bias"),
        Op::Binary(BinaryOp::Add),
        &[Some(x), Some(bias)],
        ty.clone(),
    );
    let gelu = new_node(g, namer, &base, Op::Gelu { approximate }, &[Some(sum)], ty);
    replace_value(g, namer, out, gelu);
    remove_dead_from(g, &[id]);
    Some(g.node(gelu.node).name.clone())
}
