//! Recognises decomposed normalizations over the last axis (part of `canonicalize`):
//!
//! - LayerNorm: `d = x − ReduceMean(x)`, `d / Sqrt(ReduceMean(d²) + ε)`, then optional
//!   `·γ` and `+β` → `LayerNormalization(axis=-1, ε)`;
//! - RMSNorm: `x / Sqrt(ReduceMean(x²) + ε)`, then optional `·γ` → `RmsNormalization`.
//!
//! `d²` may be `Pow(d, 2)` or `Mul(d, d)`; the division may be `Mul(d, Reciprocal(·))`;
//! operands of `Add`/`Mul` may come in either order.
//!
//! ```text
//! %m = Reduce(op:Mean,..) %x, %axes           
//! %d = Binary(Sub) %x, %m
//! %p = Binary(Pow) %d, %two
//! %v = Reduce(op:Mean,..) %p, %axes            →   %y = LayerNormalization(axis:-1,epsilon:1e-5)
//! %e = Binary(Add) %v, %eps                              %x, %gamma, %beta
//! %s = Unary(Sqrt) %e
//! %n = Binary(Div) %d, %s
//! %g = Binary(Mul) %n, %gamma
//! %y = Binary(Add) %g, %beta
//! ```
//! Ba et al., "Layer Normalization" (2016); Zhang & Sennrich, "Root Mean Square Layer
//! Normalization" (2019); PASSES.md §1 precondition 5 (canonicalise first). Exactness E1.

use crate::rewrite::{
    const_i64, consumed_only_by, new_const, new_node, producer_op, remove_dead_from, replace_value,
    scalar_const, single_consumer, two_inputs, Namer,
};
use whittle_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Tensor, UnaryOp, Value};

/// A recognised normalization: replace `root` by the op on `x`.
pub struct NormMatch {
    pub x: Value,
    pub root: Value,
    pub layer_norm: bool,
    pub epsilon: f32,
    pub gamma: Option<Value>,
    pub beta: Option<Value>,
    /// Size of the normalized (last) axis.
    pub width: usize,
}

/// `ReduceMean(v, last axis, keepdims)` → `v`.
fn mean_last(g: &Graph, r: Value) -> Option<Value> {
    let Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        ..
    } = producer_op(g, r)
    else {
        return None;
    };
    let v = g.input(r.node, 0)?;
    let rank = g.value_type(v).rank()? as i64;
    let axes = const_i64(g, g.input(r.node, 1)?)?;
    (axes == [-1] || axes == [rank - 1]).then_some(v)
}

/// `Pow(d, 2)` or `Mul(d, d)` → `d`.
fn square_of(g: &Graph, sq: Value) -> Option<Value> {
    let (a, b) = two_inputs(g, sq.node)?;
    match producer_op(g, sq) {
        Op::Binary(BinaryOp::Pow) if scalar_const(g, b) == Some(2.0) => Some(a),
        Op::Binary(BinaryOp::Mul) if a == b => Some(a),
        _ => None,
    }
}

/// The normalized value `d / sqrt(mean(d²) + ε)` at `n` → `(d, ε, interior nodes)`.
fn normalized(g: &Graph, n: Value) -> Option<(Value, f64, Vec<NodeId>)> {
    let (a, b) = two_inputs(g, n.node)?;
    let mut inside = vec![n.node];
    let (d, s) = match producer_op(g, n) {
        Op::Binary(BinaryOp::Div) => (a, b),
        Op::Binary(BinaryOp::Mul) => {
            let recip = |v: Value| matches!(producer_op(g, v), Op::Unary(UnaryOp::Reciprocal));
            let (d, r) = if recip(b) {
                (a, b)
            } else if recip(a) {
                (b, a)
            } else {
                return None;
            };
            inside.push(r.node);
            (d, g.input(r.node, 0)?)
        }
        _ => return None,
    };
    if !matches!(producer_op(g, s), Op::Unary(UnaryOp::Sqrt)) {
        return None;
    }
    let e = g.input(s.node, 0)?;
    if !matches!(producer_op(g, e), Op::Binary(BinaryOp::Add)) {
        return None;
    }
    let (ea, eb) = two_inputs(g, e.node)?;
    let (eps, v) = match (scalar_const(g, ea), scalar_const(g, eb)) {
        (_, Some(c)) => (c, ea),
        (Some(c), None) => (c, eb),
        _ => return None,
    };
    let sq = mean_last(g, v)?;
    if square_of(g, sq)? != d {
        return None;
    }
    inside.extend([s.node, e.node, v.node, sq.node]);
    Some((d, eps, inside))
}

/// A constant `t` that broadcasts along the last axis only (`[D]`, `[1,..,1,D]`) of
/// width `width` → the other operand of the two-input node `id`.
fn affine_operand(g: &Graph, id: NodeId, prev: Value, width: usize) -> Option<Value> {
    let (a, b) = two_inputs(g, id)?;
    let c = if a == prev {
        b
    } else if b == prev {
        a
    } else {
        return None;
    };
    let t = g.const_tensor(c)?;
    let shape = t.shape();
    let ok = shape.last() == Some(&width) && shape.iter().rev().skip(1).all(|&n| n == 1);
    ok.then_some(c)
}

/// Tries to read a normalization whose division is node `id`.
pub fn match_norm(g: &Graph, id: NodeId) -> Option<NormMatch> {
    let n = Value::new(id, 0);
    let (d, eps, mut inside) = normalized(g, n)?;
    let width = g.value_type(d).shape.as_ref()?.last()?.known()?;
    // LayerNorm when d = x − mean(x); otherwise RMSNorm of d.
    let centred = (|| {
        if !matches!(producer_op(g, d), Op::Binary(BinaryOp::Sub)) {
            return None;
        }
        let (x, m) = two_inputs(g, d.node)?;
        (mean_last(g, m)? == x).then_some((x, m))
    })();
    let x = match centred {
        Some((x, m)) => {
            inside.extend([d.node, m.node]);
            x
        }
        None => d,
    };
    let layer_norm = centred.is_some();
    // Every interior value but n is read only inside (d is read by the square and n).
    let closed = inside
        .iter()
        .filter(|&&k| k != id)
        .all(|&k| consumed_only_by(g, Value::new(k, 0), &inside));
    if !closed || !g.value_type(x).dtype.is_float() {
        return None;
    }
    let mut root = n;
    let mut gamma = None;
    let mut beta = None;
    if let Some((m, _)) = single_consumer(g, root) {
        if matches!(g.node(m).op, Op::Binary(BinaryOp::Mul)) {
            if let Some(c) = affine_operand(g, m, root, width) {
                gamma = Some(c);
                root = Value::new(m, 0);
            }
        }
    }
    if layer_norm {
        if let Some((a, _)) = single_consumer(g, root) {
            if matches!(g.node(a).op, Op::Binary(BinaryOp::Add)) {
                if let Some(c) = affine_operand(g, a, root, width) {
                    beta = Some(c);
                    root = Value::new(a, 0);
                }
            }
        }
    }
    if g.value_type(root) != g.value_type(x) {
        return None;
    }
    Some(NormMatch {
        x,
        root,
        layer_norm,
        epsilon: eps as f32,
        gamma,
        beta,
        width,
    })
}

/// A `[width]` copy of an affine constant (or ones), in `dtype`.
fn vector(
    g: &mut Graph,
    namer: &mut Namer,
    v: Option<Value>,
    width: usize,
    dtype: DType,
    base: &str,
) -> Value {
    let data = match v.and_then(|v| g.const_tensor(v)) {
        Some(t) => t.to_f64_vec(),
        None => vec![1.0; width],
    };
    new_const(g, namer, base, Tensor::from_f64(dtype, vec![width], &data))
}

/// Replaces a match by its single op; returns the new node's name.
pub fn apply(g: &mut Graph, namer: &mut Namer, m: NormMatch) -> String {
    let ty = g.value_type(m.root).clone();
    let base = g.node(m.root.node).name.clone();
    let dtype = ty.dtype;
    let gamma = vector(g, namer, m.gamma, m.width, dtype, &format!("{base}_scale"));
    let (op, inputs) = if m.layer_norm {
        let beta = m
            .beta
            .map(|b| vector(g, namer, Some(b), m.width, dtype, &format!("{base}_bias")));
        (
            Op::LayerNormalization {
                axis: -1,
                epsilon: m.epsilon,
            },
            vec![Some(m.x), Some(gamma), beta],
        )
    } else {
        (
            Op::RmsNormalization {
                axis: -1,
                epsilon: m.epsilon,
            },
            vec![Some(m.x), Some(gamma)],
        )
    };
    let new = new_node(g, namer, &base, op, &inputs, ty);
    replace_value(g, namer, m.root, new);
    remove_dead_from(g, &[m.root.node]);
    g.node(new.node).name.clone()
}
