//! The Q, K and V sides of `fuse-attention`: how to read the head-split tensor that the
//! scores or `·V` MatMul reads back in the `[B, S, H·D]` layout `Attention` wants, and how
//! to build that (nothing for a plain head split; a Reshape, a Transpose + Reshape, or for
//! GQA's `repeat_kv` a Transpose + Unsqueeze + Expand + Reshape that materialises the
//! repeated heads). Every plan is exact: it only moves elements.

use super::{made_by, Builder};
use crate::rewrite::{const_i64, scalar_const};
use whittle_ir::{BinaryOp, Dim, Graph, Op, TensorType, Value};

/// The logical axis an axis of a head-split tensor holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Role {
    B,
    H,
    S,
    D,
}

use Role::{B, D, H, S};

/// Axis order of Q and V as the MatMuls read them, `[B, H, S, D]`.
pub(super) const BHSD: [Role; 4] = [B, H, S, D];
/// Axis order of Kᵀ, `[B, H, D, S]`.
pub(super) const BHDS: [Role; 4] = [B, H, D, S];
const BSHD: [Role; 4] = [B, S, H, D];

/// How one of Q, K, V becomes `[B, S, H·D]`.
#[derive(Clone, Debug)]
pub(super) enum Plan {
    /// Already there: the input `x: [B,S,H·D]` of a head-split Reshape.
    Direct(Value),
    /// A 4-D value; transposed by `perm` (`None`: already `[B,S,H,D]`), then reshaped
    /// to `[0, 0, H·D]`.
    Merge { v: Value, perm: Option<[usize; 4]> },
    /// GQA `repeat_kv`: `inner` (with `H/n` heads), every head repeated `n` times.
    Repeat { inner: Box<Heads>, n: usize },
}

/// A planned Q, K or V: the plan, heads, head size, and the batch and sequence dims of
/// the `[B, S, H·D]` result.
#[derive(Clone, Debug)]
pub(super) struct Heads {
    pub plan: Plan,
    pub heads: usize,
    /// Head size (`None`: not known statically, as after a Concat of rotary halves).
    pub head: Option<usize>,
    pub batch: Dim,
    pub seq: Dim,
}

impl Heads {
    /// Width `H·D` of the merged tensor, when known.
    pub fn width(&self) -> Option<usize> {
        self.head.map(|d| self.heads * d)
    }
}

fn dims(g: &Graph, v: Value) -> Option<Vec<Dim>> {
    g.value_type(v).shape.clone()
}

/// Whether Reshape target entry `s` keeps input dim `d` (`0`, `-1` or the same size).
pub(super) fn keeps(s: i64, d: &Dim) -> bool {
    s == 0 || s == -1 || (s > 0 && d.known() == Some(s as usize))
}

/// The Reshape producing `v`, with its `allowzero`.
pub(super) fn reshape_of(g: &Graph, v: Value) -> Option<(whittle_ir::NodeId, bool)> {
    let n = made_by(g, v, |op| matches!(op, Op::Reshape { .. }))?;
    let Op::Reshape { allowzero } = g.node(n).op else {
        unreachable!()
    };
    Some((n, allowzero))
}

/// Whether constant Reshape target entry `s` keeps input dim `d`: `-1`, the same known
/// size, or (without `allowzero`) `0`.
pub(super) fn keeps_dim(s: i64, d: &Dim, allowzero: bool) -> bool {
    (s == 0 && !allowzero) || keeps(s, d)
}

/// `r = Reshape(x, t)` keeps axes 0 and 1 of `x` (rank 3) in its output (rank ≥ 3): by a
/// constant target (`0`, `-1` at most once, or the same known size) or, for a target
/// computed from shapes, because inference gave both the same dims.
fn reshape_keeps_two(g: &Graph, x: Value, r: Value, allowzero: bool) -> bool {
    let (Some(xs), Some(rs)) = (dims(g, x), dims(g, r)) else {
        return false;
    };
    let Some(t) = g.input(r.node, 1) else {
        return false;
    };
    match const_i64(g, t) {
        Some(t) => {
            t.len() == rs.len()
                && t.iter().filter(|&&s| s == -1).count() <= 1
                && keeps_dim(t[0], &xs[0], allowzero)
                && keeps_dim(t[1], &xs[1], allowzero)
                && t[2..].iter().all(|&s| s > 0)
        }
        None => rs[0] == xs[0] && rs[1] == xs[1],
    }
}

/// The other operand when `v = Mul(x, 1.0)` or `Mul(1.0, x)` (an exact no-op).
fn times_one(g: &Graph, v: Value) -> Option<Value> {
    let n = made_by(g, v, |op| *op == Op::Binary(BinaryOp::Mul))?;
    let (a, b) = (g.input(n, 0)?, g.input(n, 1)?);
    let other = match (scalar_const(g, a), scalar_const(g, b)) {
        (_, Some(1.0)) => a,
        (Some(1.0), None) => b,
        _ => return None,
    };
    (dims(g, other) == dims(g, v)).then_some(other)
}

/// Plans reading `v`, whose axes hold `roles`, as `[B, S, H·D]`.
pub(super) fn plan(g: &Graph, v: Value, roles: [Role; 4]) -> Result<Heads, String> {
    let name = |v: Value| g.value_info(v).name.clone();
    let ds = dims(g, v).ok_or_else(|| format!("'{}' has no known rank", name(v)))?;
    if ds.len() != 4 {
        return Err(format!("'{}' has rank {}, not 4", name(v), ds.len()));
    }
    let at = |r: Role| ds[roles.iter().position(|&x| x == r).unwrap()].clone();
    // A Transpose: the same roles, read through its permutation.
    if let Some(t) = made_by(
        g,
        v,
        |op| matches!(op, Op::Transpose { perm: Some(p) } if p.len() == 4),
    ) {
        let Op::Transpose { perm: Some(p) } = &g.node(t).op else {
            unreachable!()
        };
        let mut inner = roles;
        for (i, &pi) in p.iter().enumerate() {
            inner[pi] = roles[i];
        }
        return plan(g, g.input(t, 0).unwrap(), inner);
    }
    if let Some(x) = times_one(g, v) {
        return plan(g, x, roles);
    }
    let (h, d) = match (at(H).known(), at(D).known()) {
        (Some(h), d) if h > 0 && d != Some(0) => (h, d),
        _ => {
            return Err(format!(
                "'{}' {} has no known head count",
                name(v),
                g.value_type(v)
            ))
        }
    };
    let heads = |plan| Heads {
        plan,
        heads: h,
        head: d,
        batch: at(B),
        seq: at(S),
    };
    if roles == BSHD {
        if let (Some((r, allowzero)), Some(d)) = (reshape_of(g, v), d) {
            let x = g.input(r, 0).unwrap();
            let xs = dims(g, x).unwrap_or_default();
            if xs.len() == 3
                && xs[2].known() == Some(h * d)
                && reshape_keeps_two(g, x, v, allowzero)
            {
                return Ok(Heads {
                    batch: xs[0].clone(),
                    seq: xs[1].clone(),
                    ..heads(Plan::Direct(x))
                });
            }
        }
        return Ok(heads(Plan::Merge { v, perm: None }));
    }
    if roles == BHSD {
        if let Some((inner, n)) = repeat_kv(g, v)? {
            if inner.heads * n == h && inner.head == d {
                return Ok(heads(Plan::Repeat {
                    inner: Box::new(inner),
                    n,
                }));
            }
        }
    }
    let mut perm = [0; 4];
    for (i, r) in BSHD.iter().enumerate() {
        perm[i] = roles.iter().position(|x| x == r).unwrap();
    }
    Ok(heads(Plan::Merge {
        v,
        perm: Some(perm),
    }))
}

/// GQA's `repeat_kv` in the `[B, H, S, D]` layout: `v = Reshape(Expand(Unsqueeze(kv,
/// [2]), [B, Hkv, n, S, D]), [B, Hkv·n, S, D])`, each of the `Hkv` heads of `kv` repeated
/// `n` times. Returns the plan of `kv` and `n`. Inference must show that the Expand
/// changes only the new axis and that the Reshape only merges the head axes.
fn repeat_kv(g: &Graph, v: Value) -> Result<Option<(Heads, usize)>, String> {
    let Some((r, _)) = reshape_of(g, v) else {
        return Ok(None);
    };
    let e = g.input(r, 0).unwrap();
    let Some(ex) = made_by(g, e, |op| *op == Op::Expand) else {
        return Ok(None);
    };
    let u = g.input(ex, 0).unwrap();
    let Some(un) = made_by(g, u, |op| *op == Op::Unsqueeze) else {
        return Ok(None);
    };
    if g.input(un, 1).and_then(|a| const_i64(g, a)) != Some(vec![2]) {
        return Ok(None);
    }
    let kv = g.input(un, 0).unwrap();
    let (Some(vs), Some(es), Some(us), Some(ks)) =
        (dims(g, v), dims(g, e), dims(g, u), dims(g, kv))
    else {
        return Ok(None);
    };
    if es.len() != 5 || us.len() != 5 || ks.len() != 4 {
        return Ok(None);
    }
    let Some(n) = es[2].known() else {
        return Ok(None);
    };
    let kept = [0, 1, 3, 4].iter().all(|&i| es[i] == us[i]);
    let merged = vs[0] == es[0]
        && vs[2] == es[3]
        && vs[3] == es[4]
        && matches!((vs[1].known(), es[1].known()), (Some(h), Some(hkv)) if h == hkv * n);
    if !(kept && merged && us[2] == Dim::Known(1) && n > 0) {
        return Ok(None);
    }
    let inner = plan(g, kv, BHSD)?;
    if matches!(inner.plan, Plan::Repeat { .. }) {
        return Ok(None);
    }
    Ok(Some((inner, n)))
}

/// Builds `h` as a `[B, S, H·D]` value.
pub(super) fn build(b: &mut Builder, h: &Heads) -> Value {
    let dt = b.g.value_type(base(h)).dtype;
    let (width, target) = match h.width() {
        Some(w) => (Dim::Known(w), w as i64),
        None => (b.fresh_dim(), -1),
    };
    let ty3 = TensorType::new(dt, vec![h.batch.clone(), h.seq.clone(), width]);
    let four = build4(b, h);
    match &h.plan {
        Plan::Direct(x) => *x,
        Plan::Merge { .. } => b.reshape(four, &[0, 0, target], ty3),
        Plan::Repeat { inner, n } => {
            let d = b.g.value_type(four).shape.as_ref().unwrap()[3].clone();
            let dims5 = |m: usize| {
                vec![
                    h.batch.clone(),
                    h.seq.clone(),
                    Dim::Known(inner.heads),
                    Dim::Known(m),
                    d.clone(),
                ]
            };
            let u = b.unsqueeze(four, 3, TensorType::new(dt, dims5(1)));
            let e = b.expand(u, &[1, 1, 1, *n as i64, 1], TensorType::new(dt, dims5(*n)));
            b.reshape(e, &[0, 0, target], ty3)
        }
    }
}

/// The value a plan starts from.
fn base(h: &Heads) -> Value {
    match &h.plan {
        Plan::Direct(x) => *x,
        Plan::Merge { v, .. } => *v,
        Plan::Repeat { inner, .. } => base(inner),
    }
}

/// `h` as a `[B, S, H, D]` value (for `Repeat`: its inner heads in that layout).
fn build4(b: &mut Builder, h: &Heads) -> Value {
    let ty = b.g.value_type(base(h)).clone();
    match &h.plan {
        Plan::Direct(x) => *x,
        Plan::Merge { v, perm: None } => *v,
        Plan::Merge {
            v,
            perm: Some(perm),
        } => {
            let ds = ty.shape.as_ref().unwrap();
            let dims = perm.iter().map(|&p| ds[p].clone()).collect();
            b.transpose(*v, perm, TensorType::new(ty.dtype, dims))
        }
        Plan::Repeat { inner, .. } => match (&inner.plan, inner.head) {
            (Plan::Direct(x), Some(d)) => {
                let t = [0, 0, inner.heads as i64, d as i64];
                let dims = vec![
                    inner.batch.clone(),
                    inner.seq.clone(),
                    Dim::Known(inner.heads),
                    Dim::Known(d),
                ];
                b.reshape(*x, &t, TensorType::new(ty.dtype, dims))
            }
            _ => build4(b, inner),
        },
    }
}
