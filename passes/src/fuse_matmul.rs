//! `fuse-matmul`: a MatMul and the elementwise ops that follow it become one
//! `FusedMatMul`, whose epilogue (bias, activation, residual add) a backend applies to
//! each output tile while it is still in cache.
//!
//! ```text
//! %mm = MatMul %x, %w : f32[b,s,1536]
//! %z  = Binary(Add) %bias, %mm : f32[b,s,1536]     →   %y = FusedMatMul(activation:Gelu(r#None))
//! %y  = Gelu(approximate:r#None) %z : f32[b,s,1536]          %x, %w, %bias : f32[b,s,1536]
//! ```
//!
//! Matched, in this order, each step only if the value so far has a single reader:
//! 1. `Add` of a constant 1-D bias of the output's last dimension (either operand order);
//! 2. an activation: `Relu`, `Gelu` (erf or tanh, kept as it is: erf-GELU is never replaced
//!    by tanh-GELU, PASSES.md §6 test 2), or SiLU `Mul(z, Sigmoid(z))`;
//! 3. `Add` of a residual of exactly the output's type (no broadcasting).
//!
//! A MatMul with nothing to fuse is left alone. Exactness E1 (the same ops in the same
//! order; the reference evaluator computes the fused op as the unfused chain). Sources
//! (PASSES.md §6): ByteTransformer `gemm_bias_gelu`; DeepSpeed `bias_gelu`,
//! `fused_gemm_gelu`; ONNX Runtime `FusedMatMul`/`BiasGelu`/`FastGelu`.

use crate::rewrite::{
    new_node, other_operand, remove_dead_from, replace_value, single_consumer, Namer,
};
use crate::{Changed, PassContext};
use whittle_ir::{Activation, BinaryOp, Graph, IrError, NodeId, Op, UnaryOp, Value};

/// One matched chain: `y = activation(a·b + bias) + residual`, replacing `root`.
struct Match {
    a: Value,
    b: Value,
    bias: Option<Value>,
    activation: Activation,
    residual: Option<Value>,
    root: Value,
}

/// `(other operand)` if node `id` is `Add(v, other)` or `Add(other, v)`.
fn add_other(g: &Graph, id: NodeId, v: Value) -> Option<Value> {
    other_operand(g, id, BinaryOp::Add, v)
}

/// The activation applied to `z` by its readers, and the value it produces.
pub(crate) fn activation_after(g: &Graph, z: Value) -> Option<(Activation, Value)> {
    if let Some((id, _)) = single_consumer(g, z) {
        let act = match g.node(id).op {
            Op::Unary(UnaryOp::Relu) => Activation::Relu,
            Op::Gelu { approximate } => Activation::Gelu(approximate),
            _ => return None,
        };
        return Some((act, Value::new(id, 0)));
    }
    // SiLU: exactly two readers, Sigmoid(z) and Mul(z, that sigmoid).
    if g.is_output(z) {
        return None;
    }
    let readers = g.consumers(z);
    let [(r0, _), (r1, _)] = readers.as_slice() else {
        return None;
    };
    let (sig, mul) = match (&g.node(*r0).op, &g.node(*r1).op) {
        (Op::Unary(UnaryOp::Sigmoid), Op::Binary(BinaryOp::Mul)) => (*r0, *r1),
        (Op::Binary(BinaryOp::Mul), Op::Unary(UnaryOp::Sigmoid)) => (*r1, *r0),
        _ => return None,
    };
    let s = Value::new(sig, 0);
    let (x, y) = (g.input(mul, 0)?, g.input(mul, 1)?);
    let ok = ((x == z && y == s) || (x == s && y == z))
        && !g.is_output(s)
        && g.consumers(s).iter().all(|(n, _)| *n == mul);
    ok.then_some((Activation::Silu, Value::new(mul, 0)))
}

fn match_at(g: &Graph, id: NodeId) -> Option<Match> {
    if g.node(id).op != Op::MatMul {
        return None;
    }
    let (a, b) = (g.input(id, 0)?, g.input(id, 1)?);
    let mm = Value::new(id, 0);
    let ty = g.value_type(mm).clone();
    if !ty.dtype.is_float() {
        return None;
    }
    let last = ty.shape.as_ref()?.last()?.known()?;
    let mut cur = mm;
    // 1. Bias.
    let mut bias = None;
    if let Some((next, _)) = single_consumer(g, cur) {
        if let Some(c) = add_other(g, next, cur) {
            let is_bias = g
                .const_tensor(c)
                .is_some_and(|t| t.shape() == [last] && t.dtype() == ty.dtype);
            if is_bias && *g.value_type(Value::new(next, 0)) == ty {
                bias = Some(c);
                cur = Value::new(next, 0);
            }
        }
    }
    // 2. Activation.
    let mut activation = Activation::Linear;
    if let Some((act, out)) = activation_after(g, cur) {
        if *g.value_type(out) == ty {
            activation = act;
            cur = out;
        }
    }
    // 3. Residual.
    let mut residual = None;
    if let Some((next, _)) = single_consumer(g, cur) {
        if let Some(r) = add_other(g, next, cur) {
            if *g.value_type(r) == ty && *g.value_type(Value::new(next, 0)) == ty {
                residual = Some(r);
                cur = Value::new(next, 0);
            }
        }
    }
    (cur != mm).then_some(Match {
        a,
        b,
        bias,
        activation,
        residual,
        root: cur,
    })
}

pub fn fuse_matmul(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) || g.node(id).op != Op::MatMul {
            continue;
        }
        let Some(m) = match_at(g, id) else {
            cx.explain(
                "fuse-matmul",
                format!(
                    "MatMul '{}': no bias, activation or residual to fuse",
                    g.node(id).name
                ),
            );
            continue;
        };
        let ty = g.value_type(m.root).clone();
        let base = g.node(id).name.clone();
        let op = Op::FusedMatMul {
            activation: m.activation,
        };
        let new = new_node(
            g,
            &mut namer,
            &base,
            op,
            &[Some(m.a), Some(m.b), m.bias, m.residual],
            ty,
        );
        replace_value(g, &mut namer, m.root, new);
        remove_dead_from(g, &[m.root.node]);
        cx.explain(
            "fuse-matmul",
            format!(
                "MatMul '{base}' → FusedMatMul (bias: {}, activation: {:?}, residual: {})",
                m.bias.is_some(),
                m.activation,
                m.residual.is_some()
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
