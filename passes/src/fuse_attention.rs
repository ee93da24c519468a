//! `fuse-attention`: BERT-style multi-head attention, spelled out as head split, scaled
//! `Q·Kᵀ`, additive mask, softmax, `·V` and head merge, becomes one `Attention` op that
//! reads Q, K and V in their natural `[B, S, H·D]` layout.
//!
//! ```text
//! %q4 = Reshape %q, [0,0,12,32]        %qh = Transpose(perm:[0,2,1,3]) %q4
//! %k4 = Reshape %k, [0,0,12,32]        %kt = Transpose(perm:[0,2,3,1]) %k4
//! %v4 = Reshape %v, [0,0,12,32]        %vh = Transpose(perm:[0,2,1,3]) %v4
//! %s  = MatMul %qh, %kt                %sd = Binary(Div) %s, %c          (or Mul by 1/c)
//! %sm = Binary(Add) %sd, %mask         %p  = Softmax(axis:-1) %sm
//! %o  = MatMul %p, %vh                 %ot = Transpose(perm:[0,2,1,3]) %o
//! %y  = Reshape %ot, [0,0,384]
//!   →   %y = Attention(num_heads:12,scale:0.17677669) %q, %k, %v, %mask : f32[b,s,384]
//! ```
//!
//! The scale step and the mask are optional. Every intermediate value from the scores to
//! the merged heads must have a single reader; the head-split reshapes must keep the
//! batch and sequence axes (`0`, `-1` or the same known size; for a target computed from
//! shapes, as torch exports write it, inference must prove the output keeps them) and
//! split the last axis into `H × D`. Exactness E1: `Div` by `c` becomes a multiplication by `1/c` (one
//! rounding), everything else is the same arithmetic. Sources (PASSES.md §6):
//! ByteTransformer fused MHA, FasterTransformer `decoder_masked_multihead_attention`,
//! DeepSpeed `softmax_context`, flash-style online softmax; ONNX Runtime `Attention`.

use crate::rewrite::{
    const_i64, new_node, remove_dead_from, replace_value, scalar_const, single_consumer, Namer,
};
use crate::{Changed, PassContext};
use whittle_ir::{BinaryOp, Dim, Graph, IrError, NodeId, Op, Value};

struct Match {
    q: Value,
    k: Value,
    v: Value,
    mask: Option<Value>,
    num_heads: usize,
    scale: f32,
    root: Value,
}

/// The node producing `v`, if its op satisfies `pred`.
fn made_by(g: &Graph, v: Value, pred: impl Fn(&Op) -> bool) -> Option<NodeId> {
    (v.port == 0 && pred(&g.node(v.node).op)).then_some(v.node)
}

/// Whether Reshape target entry `s` keeps input dim `d` (`0`, `-1` or the same size).
fn keeps(s: i64, d: &Dim) -> bool {
    s == 0 || s == -1 || (s > 0 && d.known() == Some(s as usize))
}

/// `v = Transpose(perm, Reshape(x, [·,·,H,D]))` with `x: [B,S,H·D]`: returns `(x, H)`.
fn head_split(g: &Graph, v: Value, perm: [usize; 4]) -> Option<(Value, usize)> {
    let t = made_by(
        g,
        v,
        |op| matches!(op, Op::Transpose { perm: Some(p) } if p.as_slice() == perm),
    )?;
    let r4 = g.input(t, 0)?;
    let r = made_by(g, r4, |op| matches!(op, Op::Reshape { allowzero: false }))?;
    let x = g.input(r, 0)?;
    let xs = g.value_type(x).shape.clone()?;
    let os = g.value_type(r4).shape.clone()?;
    if xs.len() != 3 || os.len() != 4 {
        return None;
    }
    let (h, d, e) = (os[2].known()?, os[3].known()?, xs[2].known()?);
    let ok = h * d == e
        && h > 0
        && match const_i64(g, g.input(r, 1)?) {
            Some(shape) => {
                shape.len() == 4
                    && shape.iter().filter(|&&s| s == -1).count() <= 1
                    && keeps(shape[0], &xs[0])
                    && keeps(shape[1], &xs[1])
                    && (shape[2] == h as i64 || shape[2] == -1)
                    && (shape[3] == d as i64 || shape[3] == -1)
            }
            // A target computed from shapes (`Concat(Shape(x)[0], Shape(x)[1], H, D)`, as
            // exporters write it): inference proved the output keeps batch and sequence.
            None => os[0] == xs[0] && os[1] == xs[1],
        };
    ok.then_some((x, h))
}

/// `y = Reshape(Transpose([0,2,1,3], o), [·,·,H·Dv])`: returns `y`.
fn head_merge(g: &Graph, o: Value, h: usize) -> Option<Value> {
    let (t, _) = single_consumer(g, o)?;
    if !matches!(&g.node(t).op, Op::Transpose { perm: Some(p) } if p.as_slice() == [0, 2, 1, 3]) {
        return None;
    }
    let tv = Value::new(t, 0);
    let (r, port) = single_consumer(g, tv)?;
    if port != 0 || !matches!(g.node(r).op, Op::Reshape { allowzero: false }) {
        return None;
    }
    let ts = g.value_type(tv).shape.clone()?;
    let y = Value::new(r, 0);
    let ys = g.value_type(y).shape.clone()?;
    if ts.len() != 4 || ys.len() != 3 {
        return None;
    }
    let width = ts[2].known()? * ts[3].known()?;
    let ok = ts[2].known()? == h
        && ys[2].known() == Some(width)
        && match const_i64(g, g.input(r, 1)?) {
            Some(shape) => {
                shape.len() == 3
                    && shape.iter().filter(|&&s| s == -1).count() <= 1
                    && keeps(shape[0], &ts[0])
                    && keeps(shape[1], &ts[1])
                    && (shape[2] == width as i64 || shape[2] == -1)
            }
            // A computed target: inference proved batch and sequence kept.
            None => ys[0] == ts[0] && ys[1] == ts[1],
        };
    ok.then_some(y)
}

/// `(scores before scaling, scale)` for `s`: `Div(x, c)`, `Mul(x, c)`, `Mul(c, x)` or `x`.
fn unscale(g: &Graph, s: Value) -> (Value, f32) {
    let n = g.node(s.node);
    let (x, c) = match (&n.op, g.input(s.node, 0), g.input(s.node, 1)) {
        (Op::Binary(BinaryOp::Div), Some(x), Some(c)) => match scalar_const(g, c) {
            Some(c) if c != 0.0 => (x, 1.0 / c),
            _ => return (s, 1.0),
        },
        (Op::Binary(BinaryOp::Mul), Some(x), Some(y)) => {
            match (scalar_const(g, x), scalar_const(g, y)) {
                (_, Some(c)) => (x, c),
                (Some(c), None) => (y, c),
                _ => return (s, 1.0),
            }
        }
        _ => return (s, 1.0),
    };
    if single_consumer(g, x).map(|(n, _)| n) == Some(s.node) {
        (x, c as f32)
    } else {
        (s, 1.0)
    }
}

/// Matches around a `Softmax` node.
fn match_at(g: &Graph, sm: NodeId) -> Option<Match> {
    let Op::Softmax {
        axis,
        coerce_2d: false,
    } = g.node(sm).op
    else {
        return None;
    };
    let x = g.input(sm, 0)?;
    let rank = g.value_type(x).shape.as_ref()?.len();
    if rank != 4 || !(axis == -1 || axis == 3) || !g.value_type(x).dtype.is_float() {
        return None;
    }
    let single = |v: Value| single_consumer(g, v).map(|(n, _)| n);
    // Mask: Add(scores, mask) in either order; the scores side leads to MatMul(Qh, Kt).
    if single(x) != Some(sm) {
        return None;
    }
    let mut candidates: Vec<(Value, Option<Value>)> = vec![(x, None)];
    if g.node(x.node).op == Op::Binary(BinaryOp::Add) {
        let (a, b) = (g.input(x.node, 0)?, g.input(x.node, 1)?);
        candidates = vec![(a, Some(b)), (b, Some(a))];
    }
    for (scaled, mask) in candidates {
        if mask.is_some() && single(scaled) != Some(x.node) {
            continue;
        }
        if let Some(m) = mask {
            let mt = g.value_type(m);
            if mt.dtype != g.value_type(x).dtype || mt.shape.as_ref().is_none_or(|s| s.len() > 4) {
                continue;
            }
        }
        let (raw, scale) = unscale(g, scaled);
        let Some(mm) = made_by(g, raw, |op| *op == Op::MatMul) else {
            continue;
        };
        let (Some(qh), Some(kt)) = (g.input(mm, 0), g.input(mm, 1)) else {
            continue;
        };
        let (Some((q, h)), Some((k, hk))) = (
            head_split(g, qh, [0, 2, 1, 3]),
            head_split(g, kt, [0, 2, 3, 1]),
        ) else {
            continue;
        };
        // Softmax → MatMul(p, Vh) → head merge.
        let p = Value::new(sm, 0);
        let Some((pv, 0)) = single_consumer(g, p) else {
            continue;
        };
        if g.node(pv).op != Op::MatMul {
            continue;
        }
        let Some((v, hv)) = g
            .input(pv, 1)
            .and_then(|vh| head_split(g, vh, [0, 2, 1, 3]))
        else {
            continue;
        };
        let Some(root) = head_merge(g, Value::new(pv, 0), h) else {
            continue;
        };
        if hk != h || hv != h {
            continue;
        }
        return Some(Match {
            q,
            k,
            v,
            mask,
            num_heads: h,
            scale,
            root,
        });
    }
    None
}

pub fn fuse_attention(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) || !matches!(g.node(id).op, Op::Softmax { .. }) {
            continue;
        }
        let Some(m) = match_at(g, id) else {
            cx.explain(
                "fuse-attention",
                format!(
                    "Softmax '{}': not inside a multi-head attention pattern",
                    g.node(id).name
                ),
            );
            continue;
        };
        let ty = g.value_type(m.root).clone();
        let base = g.node(id).name.clone();
        let op = Op::Attention {
            num_heads: m.num_heads,
            scale: m.scale,
        };
        let new = new_node(
            g,
            &mut namer,
            &format!("{base}_attention"),
            op,
            &[Some(m.q), Some(m.k), Some(m.v), m.mask],
            ty,
        );
        replace_value(g, &mut namer, m.root, new);
        remove_dead_from(g, &[m.root.node]);
        cx.explain(
            "fuse-attention",
            format!(
                "Softmax '{base}' → Attention ({} heads, scale {}, mask: {})",
                m.num_heads,
                m.scale,
                m.mask.is_some()
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
