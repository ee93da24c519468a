//! `fuse-add-norm`: a residual add (with an optional bias add before it) feeding a
//! LayerNorm or RMSNorm over the last axis becomes one `AddNorm`, which a backend runs as
//! one pass over each row: add, then normalise while the row is in cache. When the sum is
//! also read elsewhere (the residual stream of a Pre-LN block) `AddNorm` emits it as its
//! second output.
//!
//! ```text
//! %p = Binary(Add) %h, %c : f32[b,s,384]            (c: constant bias [384], optional)
//! %s = Binary(Add) %p, %x : f32[b,s,384]
//! %y = LayerNormalization(axis:-1,epsilon:1e-12) %s, %gamma, %beta : f32[b,s,384]
//!   →   %y = AddNorm(rms:false,epsilon:1e-12) %h, %x, %gamma, %beta, %c : f32[b,s,384]
//! ```
//!
//! Matched per norm node: f32; axis the last one; the Mean/InvStdDev outputs unused; γ
//! (and β) 1-D of the last dimension; the normalised value made by an `Add` of two
//! operands of exactly its type (no broadcasting). The bias add is taken when one operand
//! is `Add(h, c)` with `c` a 1-D constant of the last dimension, read only there. Exactness
//! E1: the same additions in the same order, `(h + c) + x`, then the same normalisation.
//! Sources (PASSES.md §6 "bias + residual + LN"): FasterTransformer
//! `invokeAddBiasResidualLayerNorm` / `invokeGeneralAddBiasResidualPreLayerNorm`,
//! ByteTransformer `add_bias_input_layernorm`, DeepSpeed `residual_add_bias`, ONNX Runtime
//! `SkipLayerNormalization` / `SkipSimplifiedLayerNormalization`.

use crate::rewrite::{remove_dead_from, replace_value, single_consumer, Namer};
use crate::{Changed, PassContext};
use whittle_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, Value, ValueInfo};

struct Match {
    x: Value,
    residual: Value,
    bias: Option<Value>,
    gamma: Value,
    beta: Option<Value>,
    /// The sum `s`, and whether something besides the norm reads it.
    sum: Value,
    sum_needed: bool,
    rms: bool,
    epsilon: f32,
}

/// The two operands of `v`'s producer if it is an `Add` (port 0).
fn add_operands(g: &Graph, v: Value) -> Option<(Value, Value)> {
    (v.port == 0 && g.node(v.node).op == Op::Binary(BinaryOp::Add))
        .then(|| Some((g.input(v.node, 0)?, g.input(v.node, 1)?)))
        .flatten()
}

/// Whether `v` is a constant 1-D tensor of `n` elements of `dtype`.
fn vector_of(g: &Graph, v: Value, n: usize, dtype: DType) -> bool {
    let t = g.value_type(v);
    t.dtype == dtype
        && t.shape
            .as_ref()
            .is_some_and(|s| s.len() == 1 && s[0].known() == Some(n))
}

fn match_at(g: &Graph, id: NodeId) -> Result<Match, String> {
    let node = g.node(id);
    let (rms, axis, epsilon) = match node.op {
        Op::LayerNormalization { axis, epsilon } => (false, axis, epsilon),
        Op::RmsNormalization { axis, epsilon } => (true, axis, epsilon),
        _ => return Err("not a norm".into()),
    };
    let s = g.input(id, 0).ok_or("no input")?;
    let ty = g.value_type(s).clone();
    if ty.dtype != DType::F32 {
        return Err(format!("dtype {} (only f32 is fused)", ty.dtype));
    }
    let dims = ty.shape.as_ref().ok_or("unknown rank")?;
    let rank = dims.len() as i64;
    if rank == 0 || (axis != -1 && axis != rank - 1) {
        return Err(format!(
            "normalises from axis {axis}, not the last axis only"
        ));
    }
    let n = dims[dims.len() - 1]
        .known()
        .ok_or("the last dimension is not known")?;
    for p in 1..node.outputs.len() {
        let v = Value::new(id, p);
        if g.is_output(v) || !g.consumers(v).is_empty() {
            return Err("its Mean/InvStdDev outputs are read".into());
        }
    }
    let gamma = g.input(id, 1).ok_or("no scale")?;
    let beta = if rms { None } else { g.input(id, 2) };
    if !vector_of(g, gamma, n, ty.dtype) || beta.is_some_and(|b| !vector_of(g, b, n, ty.dtype)) {
        return Err(format!("scale or bias is not 1-D [{n}]"));
    }
    let (a, b) = add_operands(g, s).ok_or("its input is not made by an Add")?;
    if *g.value_type(a) != ty || *g.value_type(b) != ty {
        return Err("the Add broadcasts".into());
    }
    // A bias add on either operand: `(h + c) + other`.
    let biased = |p: Value| -> Option<(Value, Value)> {
        let (h, c) = add_operands(g, p)?;
        let only_here = !g.is_output(p) && single_consumer(g, p).is_some_and(|(n, _)| n == s.node);
        let is_bias = |c: Value| g.const_tensor(c).is_some() && vector_of(g, c, n, ty.dtype);
        if !only_here {
            return None;
        }
        if is_bias(c) && *g.value_type(h) == ty {
            Some((h, c))
        } else if is_bias(h) && *g.value_type(c) == ty {
            Some((c, h))
        } else {
            None
        }
    };
    let (x, residual, bias) = match (biased(a), biased(b)) {
        (Some((h, c)), _) => (h, b, Some(c)),
        (None, Some((h, c))) => (h, a, Some(c)),
        (None, None) => (a, b, None),
    };
    let sum_needed = g.is_output(s) || g.consumers(s).iter().any(|&(r, _)| r != id);
    Ok(Match {
        x,
        residual,
        bias,
        gamma,
        beta,
        sum: s,
        sum_needed,
        rms,
        epsilon,
    })
}

/// Runs the pass; see the module docs.
pub fn fuse_add_norm(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id)
            || !matches!(
                g.node(id).op,
                Op::LayerNormalization { .. } | Op::RmsNormalization { .. }
            )
        {
            continue;
        }
        let name = g.node(id).name.clone();
        let m = match match_at(g, id) {
            Ok(m) => m,
            Err(why) => {
                cx.explain("fuse-add-norm", format!("norm '{name}': {why}"));
                continue;
            }
        };
        let y = Value::new(id, 0);
        let ty = g.value_type(y).clone();
        let mut outputs = vec![ValueInfo {
            name: namer.fresh(&format!("{name}_fused")),
            ty: ty.clone(),
        }];
        if m.sum_needed {
            outputs.push(ValueInfo {
                name: namer.fresh(&format!("{name}_sum")),
                ty: g.value_type(m.sum).clone(),
            });
        }
        let op = Op::AddNorm {
            rms: m.rms,
            epsilon: m.epsilon,
        };
        let ins = [Some(m.x), Some(m.residual), Some(m.gamma), m.beta, m.bias];
        let fused = g.add_node(op, namer.fresh(&format!("{name}_addnorm")), &ins, outputs);
        replace_value(g, &mut namer, y, Value::new(fused, 0));
        if m.sum_needed {
            replace_value(g, &mut namer, m.sum, Value::new(fused, 1));
        }
        remove_dead_from(g, &[id, m.sum.node]);
        cx.explain(
            "fuse-add-norm",
            format!(
                "norm '{name}' → AddNorm (bias: {}, sum also read: {})",
                m.bias.is_some(),
                m.sum_needed
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
