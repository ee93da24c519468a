//! `remove-padding`: padding-free execution of an encoder whose attention masks padded
//! keys. The token-wise part of the graph (GEMMs, elementwise ops, norms, the attention)
//! runs on the `T` valid tokens packed as `[T, D]` rows instead of `[B, S, D]`; attention
//! runs per sequence over cumulative lengths; values leaving that part are scattered back
//! with zero pad rows.
//!
//! ```text
//! %am : i64[batch,seq]          (the padding mask input: 1 = token, 0 = padding)
//! %m  = … elementwise in %am …  (the additive mask: 0 for tokens, ≤ −10⁴ for padding)
//! %h1 = FusedMatMul %h0, …      %y = Attention %q, %k, %v, %m      %out = LayerNorm …
//!   →
//! %offsets, %inverse, %cu = PaddingOffsets %am
//! %p0 = Gather(axis:0) (Flatten(axis:2) %h0), %offsets          : f32[T,D]   (entry)
//! %h1 = FusedMatMul %p0, …      %y = PackedAttention %q, %k, %v, %cu
//! %out = Gather(axis:0) (Concat(axis:0) %zero_row, %packed), %inverse : f32[batch,seq,D]
//! ```
//!
//! Preconditions, checked: every `Attention` reads one mask, computed from one rank-2 graph
//! input and constants only, and that computation (evaluated on `[1, 0]` and `[0, 1]`)
//! gives a key-only mask that is exactly 0 on tokens and ≤ −10⁴ on padding, so a padded
//! key's softmax weight is exactly 0 in the original. A node joins the packed part when it
//! is token-wise (elementwise with constants of at most one non-unit axis, MatMul /
//! FusedMatMul with a constant 2-D weight, a norm or AddNorm over the last axis, a
//! last-axis Split, the attention) and its data inputs and outputs are `[batch, seq, ·]`.
//! Exactness on valid tokens: E0 under the reference evaluator (the same arithmetic; the
//! pad keys' exact-zero weights drop out); pad rows become 0. PASSES.md §6 padding-free,
//! test 4. Sources: ByteTransformer `remove_padding.h`, FasterTransformer
//! `invokeGetPaddingOffset` / `add_bias_input_layernorm_restore_output`, ONNX Runtime
//! `RemovePadding` / `RestorePadding` / `PackedAttention`.

use crate::rewrite::{new_const, new_node, remove_dead_from, replace_value, Namer};
use crate::{Changed, PassContext};
use std::collections::{HashMap, HashSet};
use whittle_ir::{Dim, Graph, IrError, NodeId, Op, Tensor, TensorType, Value, ValueInfo};

/// The symbol that stands for the number of valid tokens.
const TOKENS: &str = "packed_tokens";

/// The dims that stand for the batch and the sequence: the mask input's, and the batch and
/// length dims of the attention inputs that the mask broadcasts against (shape inference may
/// have named the sequence length of the hidden states differently from the mask's).
struct TokenDims {
    batch: HashSet<Dim>,
    seq: HashSet<Dim>,
}

/// Whether `v` is `[b, s, n]` with `b`, `s` the token dims and `n` known.
fn token_shaped(g: &Graph, v: Value, bs: &TokenDims) -> bool {
    g.value_type(v).shape.as_ref().is_some_and(|d| {
        d.len() == 3 && bs.batch.contains(&d[0]) && bs.seq.contains(&d[1]) && d[2].known().is_some()
    })
}

/// A constant that broadcasts along the last axis only (at most one non-unit axis, rank ≤ 2).
fn row_constant(g: &Graph, v: Value) -> bool {
    g.const_tensor(v)
        .is_some_and(|t| t.rank() <= 2 && t.shape().iter().rev().skip(1).all(|&d| d == 1))
}

/// The graph input that is the only non-constant ancestor of `m`, if so.
fn mask_source(g: &Graph, m: Value) -> Option<(Value, Vec<NodeId>)> {
    let mut seen = HashSet::new();
    let mut stack = vec![m.node];
    let mut source = None;
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        match &g.node(id).op {
            Op::Input(_) => {
                if source.is_some_and(|s| s != id) {
                    return None;
                }
                source = Some(id);
            }
            Op::Constant(_) => {}
            _ => stack.extend(g.node_inputs(id).into_iter().flatten().map(|v| v.node)),
        }
    }
    Some((Value::new(source?, 0), seen.into_iter().collect()))
}

/// Evaluates `m` from `am = pattern` (shape `[1, 2]`) using only the nodes `sub`.
fn eval_mask(
    g: &Graph,
    am: Value,
    m: Value,
    sub: &[NodeId],
    pattern: [f64; 2],
) -> Option<Vec<f64>> {
    let order: Vec<NodeId> = g
        .topo_order()
        .ok()?
        .into_iter()
        .filter(|id| sub.contains(id))
        .collect();
    let mut env: HashMap<Value, Tensor> = HashMap::new();
    let dtype = g.value_type(am).dtype;
    env.insert(am, Tensor::from_f64(dtype, vec![1, 2], &pattern));
    for id in order {
        let node = g.node(id);
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let ins: Vec<Option<Value>> = g.node_inputs(id);
        let vals: Vec<Option<Tensor>> = ins
            .iter()
            .map(|v| v.map(|v| env.get(&v).cloned()).unwrap_or(None))
            .collect();
        if ins
            .iter()
            .zip(&vals)
            .any(|(i, v)| i.is_some() && v.is_none())
        {
            return None;
        }
        let refs: Vec<Option<&Tensor>> = vals.iter().map(|v| v.as_ref()).collect();
        let outs = whittle_ir::eval::eval_op_checked(&node.op, &refs, node.outputs.len()).ok()?;
        for (p, t) in outs.into_iter().enumerate() {
            env.insert(Value::new(id, p), t);
        }
    }
    let t = env.get(&m)?;
    (t.len() == 2).then(|| (0..2).map(|i| t.get_f64(i)).collect())
}

/// The padding mask input and its `[batch, seq]` dims, or why the graph does not qualify.
fn padding_mask(g: &Graph, attns: &[NodeId]) -> Result<(Value, Vec<Dim>), String> {
    let masks: HashSet<Option<Value>> = attns.iter().map(|&a| g.input(a, 3)).collect();
    let m = match masks.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(m)] => *m,
        [None] => return Err("the attention has no padding mask".into()),
        _ => return Err("the attention nodes do not share one mask".into()),
    };
    let (am, sub) = mask_source(g, m).ok_or("the mask is not computed from one graph input")?;
    let dims = g
        .value_type(am)
        .shape
        .clone()
        .filter(|d| d.len() == 2)
        .ok_or("the mask input is not [batch, seq]")?;
    for (pattern, tok) in [([1.0, 0.0], 0), ([0.0, 1.0], 1)] {
        let v = eval_mask(g, am, m, &sub, pattern)
            .ok_or("the mask is not a key-only function of the mask input")?;
        if v[tok] != 0.0 || v[1 - tok] > -1e4 {
            return Err(format!(
                "the mask is not 0 on tokens and ≤ −1e4 on padding (gives {v:?} for {pattern:?})"
            ));
        }
    }
    Ok((am, dims))
}

/// Whether node `id` can run on packed rows.
fn tokenwise(g: &Graph, id: NodeId, bs: &TokenDims, mask: Value) -> bool {
    let node = g.node(id);
    let data = |p: usize| g.input(id, p).is_some_and(|v| token_shaped(g, v, bs));
    let outs_ok = (0..node.outputs.len()).all(|p| token_shaped(g, Value::new(id, p), bs));
    if !outs_ok {
        return false;
    }
    let last_axis = |axis: i64| axis == -1 || axis == 2;
    let ins = g.node_inputs(id);
    match &node.op {
        Op::Attention { .. } => data(0) && data(1) && data(2) && g.input(id, 3) == Some(mask),
        Op::MatMul | Op::FusedMatMul { .. } => {
            let w = g.input(id, 1).and_then(|v| g.const_tensor(v));
            data(0)
                && w.is_some_and(|t| t.rank() == 2)
                && g.input(id, 2).is_none_or(|v| row_constant(g, v))
                && (g.input(id, 3).is_none() || data(3))
        }
        Op::LayerNormalization { axis, .. } | Op::RmsNormalization { axis, .. } => {
            last_axis(*axis) && data(0) && ins[1..].iter().flatten().all(|&v| row_constant(g, v))
        }
        Op::AddNorm { .. } => {
            data(0) && data(1) && ins[2..].iter().flatten().all(|&v| row_constant(g, v))
        }
        Op::Split { axis, .. } => last_axis(*axis) && data(0),
        Op::Unary(_) | Op::Binary(_) | Op::Gelu { .. } => ins
            .iter()
            .flatten()
            .all(|&v| token_shaped(g, v, bs) || row_constant(g, v)),
        _ => false,
    }
}

/// Runs the pass; see the module docs.
pub fn remove_padding(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let order = g.topo_order()?;
    let attns: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&id| matches!(g.node(id).op, Op::Attention { .. }))
        .collect();
    if attns.is_empty() {
        cx.explain(
            "remove-padding",
            "no Attention node (run fuse-attention first)",
        );
        return Ok(Changed::No);
    }
    let (am, bs) = match padding_mask(g, &attns) {
        Ok(x) => x,
        Err(why) => {
            cx.explain("remove-padding", why);
            return Ok(Changed::No);
        }
    };
    let mask = g.input(attns[0], 3).expect("checked");
    let mut dims = TokenDims {
        batch: HashSet::from([bs[0].clone()]),
        seq: HashSet::from([bs[1].clone()]),
    };
    for &a in &attns {
        for port in 0..3 {
            if let Some(d) = g.input(a, port).and_then(|v| g.value_type(v).shape.clone()) {
                if d.len() == 3 {
                    dims.batch.insert(d[0].clone());
                    dims.seq.insert(d[1].clone());
                }
            }
        }
    }
    let region: HashSet<NodeId> = order
        .iter()
        .copied()
        .filter(|&id| tokenwise(g, id, &dims, mask))
        .collect();
    if let Some(&a) = attns.iter().find(|a| !region.contains(a)) {
        cx.explain(
            "remove-padding",
            format!(
                "Attention '{}': Q, K, V are not [batch, seq, ·] rows",
                g.node(a).name
            ),
        );
        return Ok(Changed::No);
    }
    let mut namer = Namer::new(g);
    // The bookkeeping.
    let i64_ty = |d: Vec<Dim>| TensorType::new(whittle_ir::DType::I64, d);
    let cu_dim = match &bs[0] {
        Dim::Known(b) => Dim::Known(b + 1),
        _ => Dim::Sym(format!("{TOKENS}_batch_plus_1")),
    };
    let infos = [
        ("padding_offsets", i64_ty(vec![Dim::Sym(TOKENS.into())])),
        ("padding_inverse", i64_ty(bs.clone())),
        ("cu_seqlens", i64_ty(vec![cu_dim])),
    ]
    .into_iter()
    .map(|(n, ty)| ValueInfo {
        name: namer.fresh(n),
        ty,
    })
    .collect();
    let po = g.add_node(
        Op::PaddingOffsets,
        namer.fresh("padding_offsets"),
        &[Some(am)],
        infos,
    );
    let (offsets, inverse, cu) = (Value::new(po, 0), Value::new(po, 1), Value::new(po, 2));
    let packed_ty = |g: &Graph, v: Value| {
        let t = g.value_type(v);
        let n = t.shape.as_ref().expect("token-shaped")[2].clone();
        TensorType::new(t.dtype, vec![Dim::Sym(TOKENS.into()), n])
    };
    // Entries: outside values read in the region, packed once each.
    let mut packed: HashMap<Value, Value> = HashMap::new();
    let region_order: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|id| region.contains(id))
        .collect();
    for &id in &region_order {
        for (port, v) in g.node_inputs(id).into_iter().enumerate() {
            let Some(v) = v else { continue };
            if region.contains(&v.node) || !token_shaped(g, v, &dims) {
                continue;
            }
            let p = match packed.get(&v) {
                Some(&p) => p,
                None => {
                    let t = g.value_type(v).clone();
                    let dims = t.shape.clone().expect("token-shaped");
                    let flat_ty = TensorType::new(
                        t.dtype,
                        vec![Dim::Sym(format!("{TOKENS}_rows")), dims[2].clone()],
                    );
                    let base = g.value_info(v).name.clone();
                    let flat = new_node(
                        g,
                        &mut namer,
                        &format!("{base}_rows"),
                        Op::Flatten { axis: 2 },
                        &[Some(v)],
                        flat_ty,
                    );
                    let pty = packed_ty(g, v);
                    let p = new_node(
                        g,
                        &mut namer,
                        &format!("{base}_packed"),
                        Op::Gather { axis: 0 },
                        &[Some(flat), Some(offsets)],
                        pty,
                    );
                    packed.insert(v, p);
                    p
                }
            };
            g.set_input(id, port, Some(p));
        }
    }
    // Exits: region values read outside (or graph outputs), restored with zero pad rows.
    for &id in &region_order {
        for port in 0..g.node(id).outputs.len() {
            let v = Value::new(id, port);
            let outside: Vec<(NodeId, usize)> = g
                .consumers(v)
                .into_iter()
                .filter(|(n, _)| !region.contains(n))
                .collect();
            let full_ty = g.value_type(v).clone();
            if outside.is_empty() && !g.is_output(v) {
                g.set_value_type(v, packed_ty(g, v));
                continue;
            }
            let dims = full_ty.shape.clone().expect("token-shaped");
            let base = g.value_info(v).name.clone();
            let zero = new_const(
                g,
                &mut namer,
                &format!("{base}_zero_row"),
                Tensor::from_f64(
                    full_ty.dtype,
                    vec![1, dims[2].known().expect("known")],
                    &vec![0.0; dims[2].known().expect("known")],
                ),
            );
            let pty = packed_ty(g, v);
            g.set_value_type(v, pty);
            let with_zero_ty = TensorType::new(
                full_ty.dtype,
                vec![Dim::Sym(format!("{TOKENS}_plus_1")), dims[2].clone()],
            );
            let padded = new_node(
                g,
                &mut namer,
                &format!("{base}_with_zero"),
                Op::Concat { axis: 0 },
                &[Some(zero), Some(v)],
                with_zero_ty,
            );
            let restored = new_node(
                g,
                &mut namer,
                &format!("{base}_restored"),
                Op::Gather { axis: 0 },
                &[Some(padded), Some(inverse)],
                full_ty,
            );
            for (n, p) in outside {
                g.set_input(n, p, Some(restored));
            }
            if g.is_output(v) {
                // The restored value takes over the output (and its name); region readers
                // keep the packed rows.
                let name = g.value_info(v).name.clone();
                let spare = namer.fresh(&format!("{name}_packed"));
                g.node_mut(id).outputs[port].name = spare;
                g.node_mut(restored.node).outputs[0].name = name;
                let outs = g
                    .outputs()
                    .iter()
                    .cloned()
                    .map(|mut o| {
                        if o.value == v {
                            o.value = restored;
                        }
                        o
                    })
                    .collect();
                g.set_outputs(outs);
            }
        }
    }
    // Axis attributes of the packed (rank 2) ops, and the attention itself.
    let mut dead = Vec::new();
    for &id in &region_order {
        let op = g.node(id).op.clone();
        match op {
            Op::LayerNormalization { epsilon, .. } => {
                g.node_mut(id).op = Op::LayerNormalization { axis: -1, epsilon }
            }
            Op::RmsNormalization { epsilon, .. } => {
                g.node_mut(id).op = Op::RmsNormalization { axis: -1, epsilon }
            }
            Op::Split { num_outputs, .. } => {
                g.node_mut(id).op = Op::Split {
                    axis: -1,
                    num_outputs,
                }
            }
            Op::Attention { num_heads, scale } => {
                let y = Value::new(id, 0);
                let ty = g.value_type(y).clone();
                let ins = [g.input(id, 0), g.input(id, 1), g.input(id, 2), Some(cu)];
                let name = g.node(id).name.clone();
                let pa = new_node(
                    g,
                    &mut namer,
                    &name,
                    Op::PackedAttention { num_heads, scale },
                    &ins,
                    ty,
                );
                replace_value(g, &mut namer, y, pa);
                dead.push(id);
            }
            _ => {}
        }
    }
    remove_dead_from(g, &dead);
    cx.explain(
        "remove-padding",
        format!(
            "{} nodes run on packed tokens ({} entries packed); mask input '{}'",
            region.len(),
            packed.len(),
            g.value_info(am).name
        ),
    );
    Ok(Changed::Yes)
}
