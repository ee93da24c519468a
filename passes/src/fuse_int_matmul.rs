//! `fuse-int-matmul`: the two ways exporters write an integer matrix product with a float
//! result become one `MatMulIntegerToFloat`, which a backend runs as an integer GEMM whose
//! epilogue scales (and biases) each tile, with no i32 or dequantized-f32 tensor between.
//!
//! ```text
//! dynamic (onnxruntime's quantize_dynamic):
//! %acc = MatMulInteger %xq, %wq, %xz, %wz : i32[s,n]
//! %f   = Cast(to:f32) %acc                              →  %y = MatMulIntegerToFloat
//! %s   = Binary(Mul) %xs, %ws : f32[n]                        %xq, %wq, %xs, %ws, %xz, %wz, %bias
//! %m   = Binary(Mul) %f, %s : f32[s,n]
//! %y   = Binary(Add) %m, %bias : f32[s,n]               (the Add only with a 1-D bias;
//!                                                          then a Relu/GELU/SiLU reader)
//!
//! QDQ (quantize_static, and every QDQ exporter):
//! %x = DequantizeLinear %xq, %xs, %xz                   →  %y = MatMulIntegerToFloat
//! %w = DequantizeLinear %wq, %ws, %wz (per tensor or per column)   %xq, %wq, %xs, %ws, %xz, %wz
//! %y = MatMul %x, %w
//! ```
//!
//! A `MatMulIntegerToFloat` (from onnxruntime's own fusions, or this pass's first run)
//! takes in a bias and activation that follow it; `Pipeline::exact()` runs the pass again
//! after `canonicalize`, which makes a decomposed GELU one op.
//!
//! Conditions: byte operands, a per-tensor A scale and zero point, a B scale (and zero
//! point) per tensor or per column of B, one float type, and each intermediate of the
//! dynamic chain read only by the next step. When the scale is not `Mul(a_scale, b_scale)`, a_scale is the constant 1.
//!
//! Exactness: the dynamic form is E0 (MatMulIntegerToFloat is defined as that chain, step
//! by step; a fused activation is E1, a backend's activation kernel rounding as its own). The QDQ form is E1: `Σ (xs(xq − xz))(ws(wq − wz)) = xs·ws·Σ (xq − xz)(wq − wz)`
//! in real arithmetic; the integer sum is exact, where the float MatMul rounds each term.
//! Source: onnxruntime's `MatMulIntegerToFloatFusion` and its QDQ `DQ → MatMul` selector.

use crate::fuse_matmul::activation_after;
use crate::rewrite::{
    new_const, new_node, other_operand, remove_dead_from, replace_value, single_consumer, Namer,
};
use crate::{Changed, PassContext};
use whittle_ir::{Activation, BinaryOp, DType, Graph, IrError, NodeId, Op, Tensor, Value};

/// The ports of the fused op: `a, b, a_scale, b_scale, a_zp?, b_zp?, bias?`, and the value
/// it replaces.
struct Match {
    ins: [Option<Value>; 7],
    activation: Activation,
    /// When `a_scale` is the constant 1 (the scale is one tensor, not `Mul(sa, sb)`).
    unit_a_scale: Option<DType>,
    root: Value,
}

fn numel(g: &Graph, v: Value) -> Option<usize> {
    Some(g.value_type(v).concrete_shape()?.iter().product())
}

fn is_byte(g: &Graph, v: Value) -> bool {
    matches!(g.value_type(v).dtype, DType::U8 | DType::I8)
}

/// The product's output columns, if its type is known that far.
fn columns(g: &Graph, v: Value) -> Option<usize> {
    g.value_type(v).shape.as_ref()?.last()?.known()
}

/// Whether `v` is a per-tensor value (one element) or a 1-D tensor of `n` (when known).
fn per_column(g: &Graph, v: Value, n: Option<usize>) -> bool {
    match g.value_type(v).concrete_shape() {
        Some(s) => s.iter().product::<usize>() == 1 || n.is_some_and(|n| s == [n]),
        None => false,
    }
}

/// A 1-D bias added to `y` by its only reader: `(bias, the sum)`.
fn bias_after(g: &Graph, y: Value, n: Option<usize>) -> Option<(Value, Value)> {
    let (id, _) = single_consumer(g, y)?;
    let bias = other_operand(g, id, BinaryOp::Add, y)?;
    let sum = Value::new(id, 0);
    let ok = g.value_type(bias).dtype == g.value_type(y).dtype
        && per_column(g, bias, n)
        && g.value_type(bias).rank() == Some(1)
        && g.value_type(sum) == g.value_type(y);
    ok.then_some((bias, sum))
}

/// The activation (Relu, GELU, SiLU, as `fuse-matmul` recognises them) that is the only
/// reader of an f32 `y`, and its output; else `Linear` and `y`.
fn activation_of(g: &Graph, y: Value) -> (Activation, Value) {
    if g.value_type(y).dtype != DType::F32 {
        return (Activation::Linear, y);
    }
    match activation_after(g, y) {
        Some((act, out)) if g.value_type(out) == g.value_type(y) => (act, out),
        _ => (Activation::Linear, y),
    }
}

/// `MatMulInteger → Cast(float) → Mul(scale) [→ Add(bias)] [→ activation]`.
fn match_dynamic(g: &Graph, id: NodeId) -> Option<Match> {
    let (a, b) = (g.input(id, 0)?, g.input(id, 1)?);
    let (za, zb) = (g.input(id, 2), g.input(id, 3));
    let acc = Value::new(id, 0);
    let n = columns(g, acc);
    if !is_byte(g, a) || !is_byte(g, b) || za.is_some_and(|z| numel(g, z) != Some(1)) {
        return None;
    }
    if zb.is_some_and(|z| !per_column(g, z, n)) {
        return None;
    }
    let (cast, _) = single_consumer(g, acc)?;
    let Op::Cast { to } = g.node(cast).op else {
        return None;
    };
    if !to.is_float() {
        return None;
    }
    let f = Value::new(cast, 0);
    let (mul, _) = single_consumer(g, f)?;
    let s = other_operand(g, mul, BinaryOp::Mul, f)?;
    let scaled = Value::new(mul, 0);
    if g.value_type(s).dtype != to
        || !per_column(g, s, n)
        || g.value_type(scaled) != g.value_type(f)
    {
        return None;
    }
    // The scale as a_scale · b_scale where it is that product, else 1 · scale.
    let split = match g.node(s.node).op {
        Op::Binary(BinaryOp::Mul) => {
            let (x, y) = (g.input(s.node, 0)?, g.input(s.node, 1)?);
            let fits = |sa: Value, sb: Value| {
                numel(g, sa) == Some(1)
                    && g.value_type(sa).dtype == to
                    && g.value_type(sb).dtype == to
                    && per_column(g, sb, n)
            };
            if fits(x, y) {
                Some((x, y))
            } else if fits(y, x) {
                Some((y, x))
            } else {
                None
            }
        }
        _ => None,
    };
    let (sa, sb, unit) = match split {
        Some((sa, sb)) => (Some(sa), sb, None),
        None => (None, s, Some(to)),
    };
    let (bias, root) = match bias_after(g, scaled, n) {
        Some((bias, sum)) => (Some(bias), sum),
        None => (None, scaled),
    };
    let (activation, root) = activation_of(g, root);
    Some(Match {
        ins: [Some(a), Some(b), sa, Some(sb), za, zb, bias],
        activation,
        unit_a_scale: unit,
        root,
    })
}

/// `(q, scale, zero point?)` of a DequantizeLinear per tensor, or per column of a matrix
/// `q` with `n` columns (when `n` is known). Other readers may share it: it stays until the
/// last of them is fused.
fn dequantized(g: &Graph, v: Value, n: Option<usize>) -> Option<[Option<Value>; 3]> {
    let Op::DequantizeLinear { axis, block_size } = g.node(v.node).op else {
        return None;
    };
    let (q, s, z) = (g.input(v.node, 0)?, g.input(v.node, 1)?, g.input(v.node, 2));
    if block_size != 0 || !is_byte(g, q) {
        return None;
    }
    let along_columns = g.value_type(q).rank() == Some(2) && (axis == 1 || axis == -1);
    // per_column(·, None) is per tensor only.
    let fits = |p: Value| per_column(g, p, if along_columns { n } else { None });
    (fits(s) && z.map_or(true, fits)).then_some([Some(q), Some(s), z])
}

/// `MatMul(DequantizeLinear(xq), DequantizeLinear(wq)) [→ Add(bias)] [→ activation]`.
fn match_qdq(g: &Graph, id: NodeId) -> Option<Match> {
    let (x, w) = (g.input(id, 0)?, g.input(id, 1)?);
    let y = Value::new(id, 0);
    let n = columns(g, y);
    let dt = g.value_type(y).dtype;
    let [xq, xs, xz] = dequantized(g, x, None)?;
    let [wq, ws, wz] = dequantized(g, w, n)?;
    let (xs, ws) = (xs?, ws?);
    if g.value_type(xs).dtype != dt || g.value_type(ws).dtype != dt {
        return None;
    }
    let (bias, root) = match bias_after(g, y, n) {
        Some((bias, sum)) => (Some(bias), sum),
        None => (None, y),
    };
    let (activation, root) = activation_of(g, root);
    Some(Match {
        ins: [xq, wq, Some(xs), Some(ws), xz, wz, bias],
        activation,
        unit_a_scale: None,
        root,
    })
}

/// A `MatMulIntegerToFloat` without an activation that a later bias or activation now
/// follows (the pipeline runs this pass again after `canonicalize` has made GELU one op).
fn match_existing(g: &Graph, id: NodeId) -> Option<Match> {
    if g.node(id).op
        != (Op::MatMulIntegerToFloat {
            activation: Activation::Linear,
        })
    {
        return None;
    }
    let mut ins: [Option<Value>; 7] = [None; 7];
    for (p, slot) in ins.iter_mut().enumerate() {
        *slot = g.input(id, p);
    }
    let y = Value::new(id, 0);
    let mut root = y;
    if ins[6].is_none() {
        if let Some((bias, sum)) = bias_after(g, y, columns(g, y)) {
            ins[6] = Some(bias);
            root = sum;
        }
    }
    let (activation, root) = activation_of(g, root);
    (root != y).then_some(Match {
        ins,
        activation,
        unit_a_scale: None,
        root,
    })
}

pub fn fuse_int_matmul(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) {
            continue;
        }
        let (m, form) = match g.node(id).op {
            Op::MatMulInteger => (match_dynamic(g, id), "MatMulInteger → Cast → Mul"),
            Op::MatMul => (match_qdq(g, id), "MatMul of DequantizeLinear operands"),
            Op::MatMulIntegerToFloat { .. } => (match_existing(g, id), "MatMulIntegerToFloat"),
            _ => continue,
        };
        let base = g.node(id).name.clone();
        let Some(mut m) = m else {
            if matches!(g.node(id).op, Op::MatMulInteger) {
                cx.explain(
                    "fuse-int-matmul",
                    format!("MatMulInteger '{base}': not read by Cast → Mul of a per-column scale"),
                );
            }
            continue;
        };
        if let Some(dt) = m.unit_a_scale {
            let one = Tensor::from_f64(dt, vec![], &[1.0]);
            m.ins[2] = Some(new_const(g, &mut namer, &format!("{base}_unit_scale"), one));
        }
        let ty = g.value_type(m.root).clone();
        let op = Op::MatMulIntegerToFloat {
            activation: m.activation,
        };
        let new = new_node(g, &mut namer, &base, op, &m.ins, ty);
        replace_value(g, &mut namer, m.root, new);
        remove_dead_from(g, &[m.root.node]);
        cx.explain(
            "fuse-int-matmul",
            format!(
                "{form} '{base}' → MatMulIntegerToFloat (bias: {}, activation: {:?})",
                m.ins[6].is_some(),
                m.activation
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
