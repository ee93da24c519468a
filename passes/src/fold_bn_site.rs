//! Finds the per-channel affine map around a `BatchNormalization` node for `fold-bn`:
//! `root = a ⊙ u + b` along one axis of `u`, with `a = γ/√(σ²+ε)` and `b = β − a·μ`
//! computed in f64. Recognised shapes of the site:
//!
//! - `BN(u)` (channel axis 1);
//! - `Transpose(p) → BN → Transpose(p⁻¹)` (SLAB's `[B,N,C]` layout: axis `p[1]` of `u`);
//! - `Reshape([B·N,C]) → BN → Reshape(back)` (last axis of `u`);
//! - SLAB RepBN `BN(u) + η·u` around any of these (`a ← a + η`; PASSES.md §2 PRepBN).

use crate::rewrite::{consumed_only_by, producer_op, scalar_const, single_consumer, static_shape};
use whittle_ir::{BinaryOp, Graph, NodeId, Op, Value};

/// One affine site.
#[derive(Debug)]
pub struct Site {
    /// The value the affine map reads.
    pub input: Value,
    /// Its channel axis.
    pub axis: usize,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    /// The value equal to `a ⊙ input + b`.
    pub root: Value,
    /// Nodes of the site (BN, wrapping transposes/reshapes, RepBN Mul/Add).
    pub inside: Vec<NodeId>,
    /// A short description for explanations.
    pub kind: String,
}

/// Reads the site around BN node `bn`, or says why it cannot be folded.
pub fn match_site(g: &Graph, bn: NodeId) -> Result<Site, String> {
    let Op::BatchNormalization { epsilon } = g.node(bn).op else {
        return Err("not a BatchNormalization".into());
    };
    let x = g.input(bn, 0).ok_or("BatchNormalization has no input")?;
    let mut params = Vec::new();
    for (port, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
        let t = g
            .input(bn, port)
            .and_then(|v| g.const_tensor(v))
            .ok_or(format!(
                "its {what} is not a constant (statistics must be fixed)"
            ))?;
        params.push(t.to_f64_vec());
    }
    let c = params[0].len();
    if params.iter().any(|p| p.len() != c) {
        return Err("its parameters have different lengths".into());
    }
    let eps = epsilon as f64;
    let a: Vec<f64> = (0..c)
        .map(|i| params[0][i] / (params[3][i] + eps).sqrt())
        .collect();
    let b: Vec<f64> = (0..c).map(|i| params[1][i] - a[i] * params[2][i]).collect();
    let mut site = Site {
        input: x,
        axis: 1,
        a,
        b,
        root: Value::new(bn, 0),
        inside: vec![bn],
        kind: "BatchNormalization".into(),
    };
    unwrap_transpose(g, &mut site);
    unwrap_reshape(g, &mut site);
    rep_bn(g, &mut site);
    let rank = g
        .value_type(site.input)
        .rank()
        .ok_or("its input has unknown rank")?;
    if site.axis >= rank {
        return Err("its channel axis is out of range".into());
    }
    Ok(site)
}

fn perm_of(g: &Graph, id: NodeId) -> Option<Vec<usize>> {
    let Op::Transpose { perm } = &g.node(id).op else {
        return None;
    };
    match perm {
        Some(p) => Some(p.clone()),
        None => {
            let r = g.value_type(g.input(id, 0)?).rank()?;
            Some((0..r).rev().collect())
        }
    }
}

/// `Transpose(p) → BN → Transpose(q)` with `p[q[i]] = i`.
fn unwrap_transpose(g: &Graph, s: &mut Site) {
    let (t1, bn_out) = (s.input.node, s.root);
    let Some(p) = perm_of(g, t1) else { return };
    let Some((t2, _)) = single_consumer(g, bn_out) else {
        return;
    };
    let Some(q) = perm_of(g, t2) else { return };
    let inverse = p.len() == q.len() && (0..q.len()).all(|i| q[i] < p.len() && p[q[i]] == i);
    let Some(u) = g.input(t1, 0) else { return };
    if !inverse || p.len() < 2 || !consumed_only_by(g, s.input, &s.inside) {
        return;
    }
    s.axis = p[1];
    s.input = u;
    s.root = Value::new(t2, 0);
    s.inside.extend([t1, t2]);
    s.kind = "Transpose-BatchNormalization-Transpose".into();
}

/// `Reshape([M,C]) → BN → Reshape(shape of u)` with `u`'s last dim `C`.
fn unwrap_reshape(g: &Graph, s: &mut Site) {
    let (r1, bn_out) = (s.input.node, s.root);
    if !matches!(g.node(r1).op, Op::Reshape { .. }) || s.inside.len() != 1 {
        return;
    }
    let Some((r2, _)) = single_consumer(g, bn_out) else {
        return;
    };
    if !matches!(g.node(r2).op, Op::Reshape { .. }) {
        return;
    }
    let Some(u) = g.input(r1, 0) else { return };
    let (Some(us), Some(xs), Some(ys)) = (
        static_shape(g, u),
        static_shape(g, s.input),
        static_shape(g, Value::new(r2, 0)),
    ) else {
        return;
    };
    if xs.len() != 2
        || us.last() != xs.last()
        || ys != us
        || !consumed_only_by(g, s.input, &s.inside)
    {
        return;
    }
    s.axis = us.len() - 1;
    s.input = u;
    s.root = Value::new(r2, 0);
    s.inside.extend([r1, r2]);
    s.kind = "Reshape-BatchNormalization-Reshape".into();
}

/// `root + η·input` (RepBN): the sum is the affine map with `a + η`.
fn rep_bn(g: &Graph, s: &mut Site) {
    let Some((add, _)) = single_consumer(g, s.root) else {
        return;
    };
    if !matches!(g.node(add).op, Op::Binary(BinaryOp::Add)) {
        return;
    }
    let (Some(l), Some(r)) = (g.input(add, 0), g.input(add, 1)) else {
        return;
    };
    let other = if l == s.root { r } else { l };
    if !matches!(producer_op(g, other), Op::Binary(BinaryOp::Mul))
        || single_consumer(g, other).map(|c| c.0) != Some(add)
        || g.value_type(Value::new(add, 0)) != g.value_type(s.input)
    {
        return;
    }
    let (Some(m0), Some(m1)) = (g.input(other.node, 0), g.input(other.node, 1)) else {
        return;
    };
    let eta = match (m0 == s.input, m1 == s.input) {
        (true, _) => scalar_const(g, m1),
        (_, true) => scalar_const(g, m0),
        _ => None,
    };
    let Some(eta) = eta else { return };
    for a in &mut s.a {
        *a += eta;
    }
    s.root = Value::new(add, 0);
    s.inside.extend([add, other.node]);
    s.kind = format!("RepBN (η={eta}) around {}", s.kind);
}
