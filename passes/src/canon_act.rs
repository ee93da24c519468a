//! Recognises activations spelled out in elementary ops (part of `canonicalize`):
//!
//! - erf-GELU `0.5·x·(1 + erf(x/√2))` → `Gelu{approximate:None}`,
//! - tanh-GELU `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` → `Gelu{approximate:Tanh}`,
//! - HardSwish `x·HardSigmoid(x; α=1/6, β=0.5)` or `x·Relu6(x + 3)/6` → `Unary(HardSwish)`.
//!
//! ```text
//! %d = Binary(Div) %x, %sqrt2 : f32[n]
//! %e = Unary(Erf) %d : f32[n]
//! %a = Binary(Add) %e, %one : f32[n]          →   %y = Gelu(approximate:None) %x : f32[n]
//! %m = Binary(Mul) %x, %a : f32[n]
//! %y = Binary(Mul) %m, %half : f32[n]
//! ```
//!
//! Operand order and association do not matter: the subgraph around the `Erf`/`Tanh`/
//! `HardSigmoid`/`Clip` anchor is read as a polynomial (`poly`) and compared with the
//! formula. The anchor's op decides the GELU variant, so erf- and tanh-GELU are never
//! confused (PASSES.md §6, test 2). Formulas: Hendrycks & Gimpel, "Gaussian Error Linear
//! Units" (2016); Howard et al., "Searching for MobileNetV3" (2019). Exactness E1.

use crate::poly::{leaf_candidates, poly_of};
use crate::rewrite::{
    consumed_only_by, new_node, remove_dead_from, replace_value, scalar_const, single_consumer,
    Namer,
};
use whittle_ir::{GeluApprox, Graph, NodeId, Op, UnaryOp, Value};

/// Coefficients are f32 roundings of the exact constants: accept 1e-6 relative.
const REL: f64 = 1e-6;

/// One recognised activation: replace `root` by `op(x)`.
pub struct ActMatch {
    pub x: Value,
    pub root: Value,
    pub op: Op,
}

/// Tries every anchor kind at node `id`.
pub fn match_activation(g: &Graph, id: NodeId) -> Option<ActMatch> {
    let anchor = Value::new(id, 0);
    let arg = g.input(id, 0)?;
    match &g.node(id).op {
        Op::Unary(UnaryOp::Erf) => {
            let x = find_leaf(g, arg, &[((1, 0), std::f64::consts::FRAC_1_SQRT_2)])?;
            let root = find_root(g, x, anchor, &[((1, 0), 0.5), ((1, 1), 0.5)])?;
            Some(ActMatch {
                x,
                root,
                op: Op::Gelu {
                    approximate: GeluApprox::None,
                },
            })
        }
        Op::Unary(UnaryOp::Tanh) => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let x = find_leaf(g, arg, &[((1, 0), c), ((3, 0), c * 0.044715)])?;
            let root = find_root(g, x, anchor, &[((1, 0), 0.5), ((1, 1), 0.5)])?;
            Some(ActMatch {
                x,
                root,
                op: Op::Gelu {
                    approximate: GeluApprox::Tanh,
                },
            })
        }
        Op::HardSigmoid { alpha, beta } => {
            if !close(*alpha as f64, 1.0 / 6.0) || !close(*beta as f64, 0.5) {
                return None;
            }
            let x = find_leaf(g, arg, &[((1, 0), 1.0)])?;
            let root = find_root(g, x, anchor, &[((1, 1), 1.0)])?;
            Some(ActMatch {
                x,
                root,
                op: Op::Unary(UnaryOp::HardSwish),
            })
        }
        Op::Clip => {
            let lo = scalar_const(g, g.input(id, 1)?)?;
            let hi = scalar_const(g, g.input(id, 2)?)?;
            if lo != 0.0 || hi != 6.0 {
                return None;
            }
            let x = find_leaf(g, arg, &[((1, 0), 1.0), ((0, 0), 3.0)])?;
            let root = find_root(g, x, anchor, &[((1, 1), 1.0 / 6.0)])?;
            Some(ActMatch {
                x,
                root,
                op: Op::Unary(UnaryOp::HardSwish),
            })
        }
        _ => None,
    }
}

fn close(a: f64, b: f64) -> bool {
    crate::rewrite::close(a, b, REL)
}

/// The value `x` such that `arg` computes the one-leaf polynomial `target` of `x`.
fn find_leaf(g: &Graph, arg: Value, target: &[((u8, u8), f64)]) -> Option<Value> {
    leaf_candidates(g, arg).into_iter().find(|&x| {
        g.value_type(x).dtype.is_float()
            && poly_of(g, arg, &[x]).is_some_and(|(p, _)| p.matches(target, REL))
    })
}

/// Walks up from `anchor` through single readers until a value computes `target` in terms
/// of `(x, anchor)`. Every node inside (but the root) must be read only inside, and the
/// root must have `x`'s type (no broadcasting to a bigger shape).
fn find_root(g: &Graph, x: Value, anchor: Value, target: &[((u8, u8), f64)]) -> Option<Value> {
    let mut cur = anchor;
    for _ in 0..5 {
        let (next, _) = single_consumer(g, cur)?;
        let v = Value::new(next, 0);
        let (p, interior) = poly_of(g, v, &[x, anchor])?;
        if p.matches(target, REL) {
            let mut inside: Vec<NodeId> = interior.clone();
            inside.push(anchor.node);
            let closed = interior
                .iter()
                .filter(|&&n| n != next)
                .all(|&n| consumed_only_by(g, Value::new(n, 0), &inside));
            return (closed && g.value_type(v) == g.value_type(x)).then_some(v);
        }
        cur = v;
    }
    None
}

/// Replaces a match by its single op; returns the new node's name.
pub fn apply(g: &mut Graph, namer: &mut Namer, m: ActMatch) -> String {
    let ty = g.value_type(m.root).clone();
    let base = g.node(m.root.node).name.clone();
    let new = new_node(g, namer, &base, m.op, &[Some(m.x)], ty);
    replace_value(g, namer, m.root, new);
    remove_dead_from(g, &[m.root.node]);
    g.node(new.node).name.clone()
}
