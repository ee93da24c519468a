//! The scores side of `fuse-attention`: the Softmax input taken apart into the scaled
//! `Q·Kᵀ` MatMul and the additive terms that become the `Attention` mask.
//!
//! The input is a tree of `Add`s (each read only inside the tree) whose leaves are the
//! scaled scores and mask terms, where a `Where(cond, x, c)` (or `Where(cond, c, x)`) with
//! `c` a scalar constant at most `-1e30` (`finfo.min`, `-inf`) counts as `x` plus the
//! additive mask `Where(cond, 0, c)`: where the condition selects `c`, `x + c` rounds to
//! `c` (or to `-inf`) for any score below 1e30 in magnitude, so the exponentials are the
//! same (0, or equal ones in a row that is masked everywhere). The scaled scores are
//! `MatMul(Qh, Kᵀ)` under any chain of `Mul`/`Div` by scalar constants.

use super::{made_by, Builder};
use crate::rewrite::scalar_const;
use whittle_ir::{BinaryOp, Dim, Graph, NodeId, Op, TensorType, Value};

/// Constants at most this are "minus infinity" for masking.
const MASKED: f64 = -1e30;

/// One additive term of the mask.
#[derive(Clone, Debug)]
pub(super) enum Term {
    /// A value added as it is.
    Value(Value),
    /// `Where(cond, 0, c)` when `keep_if` (the Where kept the scores where `cond`),
    /// `Where(cond, c, 0)` otherwise; `c` is the original constant.
    Where {
        cond: Value,
        c: Value,
        keep_if: bool,
    },
}

/// The Softmax input taken apart: the `Add`/`Where` nodes of the tree and its leaves.
pub(super) struct Tree {
    pub nodes: Vec<NodeId>,
    pub leaves: Vec<Value>,
    pub wheres: Vec<(NodeId, Term)>,
}

/// `c` when `v` is a scalar constant that masks.
fn masking(g: &Graph, v: Value) -> bool {
    scalar_const(g, v).is_some_and(|c| c <= MASKED)
}

/// Whether a MatMul is reachable from `v` through `Add`, `Mul`, `Div` and `Where` (a few
/// levels): a branch of a `Where` is taken apart only when the scores are in it.
fn has_matmul(g: &Graph, v: Value, depth: usize) -> bool {
    let op = &g.node(v.node).op;
    if *op == Op::MatMul {
        return true;
    }
    depth > 0
        && matches!(
            op,
            Op::Binary(BinaryOp::Add | BinaryOp::Mul | BinaryOp::Div) | Op::Where
        )
        && g.node_inputs(v.node)
            .into_iter()
            .flatten()
            .any(|x| has_matmul(g, x, depth - 1))
}

/// Takes `v` (read only by `parent`, or the Softmax input) apart.
pub(super) fn decompose(g: &Graph, v: Value, only_reader: impl Fn(Value) -> bool) -> Tree {
    let mut t = Tree {
        nodes: vec![],
        leaves: vec![],
        wheres: vec![],
    };
    walk(g, v, &only_reader, &mut t, true);
    t
}

fn walk(g: &Graph, v: Value, only: &impl Fn(Value) -> bool, t: &mut Tree, top: bool) {
    let n = v.node;
    let float = g.value_type(v).dtype.is_float();
    if v.port == 0 && float && (top || only(v)) {
        match &g.node(n).op {
            Op::Binary(BinaryOp::Add) => {
                let (a, b) = (g.input(n, 0).unwrap(), g.input(n, 1).unwrap());
                t.nodes.push(n);
                walk(g, a, only, t, false);
                walk(g, b, only, t, false);
                return;
            }
            Op::Where => {
                let (c, x, y) = (
                    g.input(n, 0).unwrap(),
                    g.input(n, 1).unwrap(),
                    g.input(n, 2).unwrap(),
                );
                let branch = if masking(g, y) && has_matmul(g, x, 6) {
                    Some((x, y, true))
                } else if masking(g, x) && has_matmul(g, y, 6) {
                    Some((y, x, false))
                } else {
                    None
                };
                if let Some((kept, konst, keep_if)) = branch {
                    if g.value_type(kept).shape == g.value_type(v).shape {
                        t.nodes.push(n);
                        let term = Term::Where {
                            cond: c,
                            c: konst,
                            keep_if,
                        };
                        t.wheres.push((n, term));
                        walk(g, kept, only, t, false);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    t.leaves.push(v);
}

/// `(raw scores, scale, the Mul/Div nodes)` for a leaf: `Div(x, c)`, `Mul(x, c)` or
/// `Mul(c, x)` by scalar constants, repeatedly (each read only by the next).
pub(super) fn unscale(
    g: &Graph,
    mut s: Value,
    only: impl Fn(Value) -> bool,
) -> (Value, f64, Vec<NodeId>) {
    let mut scale = 1.0f64;
    let mut nodes = vec![];
    loop {
        if s.port != 0 || (!nodes.is_empty() && !only(s)) {
            break;
        }
        let n = s.node;
        let (Some(a), Some(b)) = (g.input(n, 0), g.input(n, 1)) else {
            break;
        };
        let (x, f) = match &g.node(n).op {
            Op::Binary(BinaryOp::Div) => match scalar_const(g, b) {
                Some(c) if c != 0.0 && c.is_finite() => (a, 1.0 / c),
                _ => break,
            },
            Op::Binary(BinaryOp::Mul) => match (scalar_const(g, a), scalar_const(g, b)) {
                (_, Some(c)) if c.is_finite() => (a, c),
                (Some(c), None) if c.is_finite() => (b, c),
                _ => break,
            },
            _ => break,
        };
        if g.value_type(x).shape != g.value_type(s).shape {
            break;
        }
        scale *= f;
        nodes.push(n);
        s = x;
    }
    (s, scale, nodes)
}

/// Whether mask term `m` can be an `Attention` mask for `scores`: same dtype, rank ≤ 4,
/// and no known dim that contradicts the scores (other than 1).
pub(super) fn mask_fits(g: &Graph, m: Value, scores: Value) -> Result<(), String> {
    let (mt, st) = (g.value_type(m), g.value_type(scores));
    let name = &g.value_info(m).name;
    if mt.dtype != st.dtype {
        return Err(format!(
            "mask term '{name}' is {}, scores {}",
            mt.dtype, st.dtype
        ));
    }
    let Some(ms) = &mt.shape else {
        return Err(format!("mask term '{name}' has no known rank"));
    };
    if ms.len() > 4 {
        return Err(format!("mask term '{name}' has rank {}", ms.len()));
    }
    if let Some(ss) = &st.shape {
        let off = ss.len().saturating_sub(ms.len());
        for (i, d) in ms.iter().enumerate() {
            if let (Some(a), Some(b)) = (d.known(), ss.get(off + i).and_then(Dim::known)) {
                if a != 1 && a != b {
                    return Err(format!(
                        "mask term '{name}' {mt} does not broadcast to the scores {st}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The broadcast of two shapes where it is determined; other dims get a fresh symbol.
fn broadcast(b: &mut Builder, x: &TensorType, y: &TensorType) -> TensorType {
    let (Some(xs), Some(ys)) = (&x.shape, &y.shape) else {
        return TensorType::unknown_rank(x.dtype);
    };
    let r = xs.len().max(ys.len());
    let at = |s: &Vec<Dim>, i: usize| {
        (i + s.len())
            .checked_sub(r)
            .map_or(Dim::Known(1), |j| s[j].clone())
    };
    let dims = (0..r)
        .map(|i| {
            let (a, c) = (at(xs, i), at(ys, i));
            if a == c || c == Dim::Known(1) {
                a
            } else if a == Dim::Known(1) {
                c
            } else {
                b.fresh_dim()
            }
        })
        .collect();
    TensorType::new(x.dtype, dims)
}

/// Builds the mask: the terms summed left to right.
pub(super) fn build_mask(
    b: &mut Builder,
    terms: &[Term],
    dtype: whittle_ir::DType,
) -> Option<Value> {
    let mut acc: Option<Value> = None;
    for t in terms {
        let v = match t {
            Term::Value(v) => *v,
            Term::Where { cond, c, keep_if } => {
                let zero = b.scalar(dtype, 0.0);
                let (x, y) = if *keep_if { (zero, *c) } else { (*c, zero) };
                let ct = b.g.value_type(*cond).clone();
                let ty = TensorType {
                    dtype,
                    shape: ct.shape,
                };
                b.node(Op::Where, &[*cond, x, y], ty)
            }
        };
        acc = Some(match acc {
            None => v,
            Some(a) => {
                let ty = broadcast(b, &b.g.value_type(a).clone(), &b.g.value_type(v).clone());
                b.node(Op::Binary(BinaryOp::Add), &[a, v], ty)
            }
        });
    }
    acc
}

/// The node making `v` when it is a MatMul of two rank-4 operands.
pub(super) fn scores_matmul(g: &Graph, v: Value) -> Option<NodeId> {
    let mm = made_by(g, v, |op| *op == Op::MatMul)?;
    let rank4 = |p| {
        g.input(mm, p)
            .and_then(|x| g.value_type(x).rank())
            .is_some_and(|r| r == 4)
    };
    (rank4(0) && rank4(1)).then_some(mm)
}
