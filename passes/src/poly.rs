//! Polynomial view of small elementwise subgraphs, for pattern matching that does not
//! depend on operand order or association: `Mul(Mul(x, 0.5), s)`, `Mul(x, Mul(s, 0.5))`
//! and `Div(Mul(x, s), 2)` all read as `0.5·x·s`. Leaves are up to two chosen values;
//! anything else must be a one-element float constant combined by `Add`, `Sub`, `Mul`,
//! `Div` (by a constant), `Pow` (small integer exponent) or `Neg`.

use crate::rewrite::{producer_op, scalar_const};
use std::collections::BTreeMap;
use whittle_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp, Value};

/// Largest degree of each leaf that is tracked.
const MAX_DEGREE: u8 = 4;
/// Most nodes expanded for one polynomial.
const MAX_NODES: usize = 24;

/// `Σ c·leaf0^i·leaf1^j`, keyed by `(i, j)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Poly(pub BTreeMap<(u8, u8), f64>);

impl Poly {
    fn constant(c: f64) -> Poly {
        Poly([((0, 0), c)].into_iter().collect())
    }
    fn add(&self, o: &Poly, sign: f64) -> Poly {
        let mut m = self.0.clone();
        for (k, c) in &o.0 {
            *m.entry(*k).or_default() += sign * c;
        }
        Poly(m)
    }
    fn mul(&self, o: &Poly) -> Option<Poly> {
        let mut m: BTreeMap<(u8, u8), f64> = BTreeMap::new();
        for ((i, j), a) in &self.0 {
            for ((k, l), b) in &o.0 {
                let key = (i + k, j + l);
                if key.0 > MAX_DEGREE || key.1 > MAX_DEGREE {
                    return None;
                }
                *m.entry(key).or_default() += a * b;
            }
        }
        Some(Poly(m))
    }
    /// The constant value if the polynomial has no leaf terms.
    fn as_constant(&self) -> Option<f64> {
        self.0
            .iter()
            .all(|((i, j), c)| (*i == 0 && *j == 0) || *c == 0.0)
            .then(|| self.0.get(&(0, 0)).copied().unwrap_or(0.0))
    }

    /// Whether this equals `target` (coefficients within `rel`, other terms negligible).
    pub fn matches(&self, target: &[((u8, u8), f64)], rel: f64) -> bool {
        let scale = target.iter().map(|(_, c)| c.abs()).fold(0.0, f64::max);
        let ok_targets = target.iter().all(|(k, c)| {
            let got = self.0.get(k).copied().unwrap_or(0.0);
            (got - c).abs() <= rel * c.abs().max(1e-30)
        });
        let ok_rest = self
            .0
            .iter()
            .filter(|(k, _)| !target.iter().any(|(t, _)| t == *k))
            .all(|(_, c)| c.abs() <= rel * scale);
        ok_targets && ok_rest
    }
}

/// The polynomial computed by `v` in terms of `leaves`, and the nodes expanded on the way
/// (the subgraph's interior). `None` when `v` depends on anything else.
pub fn poly_of(g: &Graph, v: Value, leaves: &[Value]) -> Option<(Poly, Vec<NodeId>)> {
    let mut interior = Vec::new();
    let p = walk(g, v, leaves, &mut interior)?;
    Some((p, interior))
}

fn walk(g: &Graph, v: Value, leaves: &[Value], interior: &mut Vec<NodeId>) -> Option<Poly> {
    if let Some(i) = leaves.iter().position(|l| *l == v) {
        let key = if i == 0 { (1, 0) } else { (0, 1) };
        return Some(Poly([(key, 1.0)].into_iter().collect()));
    }
    if let Some(c) = scalar_const(g, v) {
        return Some(Poly::constant(c));
    }
    if interior.len() >= MAX_NODES || v.port != 0 {
        return None;
    }
    let id = v.node;
    let arg = |i: usize, interior: &mut Vec<NodeId>| -> Option<Poly> {
        walk(g, g.input(id, i)?, leaves, interior)
    };
    let op = producer_op(g, v).clone();
    interior.push(id);
    match op {
        Op::Binary(b) => {
            let x = arg(0, interior)?;
            let y = arg(1, interior)?;
            match b {
                BinaryOp::Add => Some(x.add(&y, 1.0)),
                BinaryOp::Sub => Some(x.add(&y, -1.0)),
                BinaryOp::Mul => x.mul(&y),
                BinaryOp::Div => {
                    let d = y.as_constant()?;
                    (d != 0.0).then(|| x.mul(&Poly::constant(1.0 / d)))?
                }
                BinaryOp::Pow => {
                    let e = y.as_constant()?;
                    if e.fract() != 0.0 || !(1.0..=3.0).contains(&e) {
                        return None;
                    }
                    let mut p = x.clone();
                    for _ in 1..(e as usize) {
                        p = p.mul(&x)?;
                    }
                    Some(p)
                }
                _ => None,
            }
        }
        Op::Unary(UnaryOp::Neg) => Some(arg(0, interior)?.mul(&Poly::constant(-1.0))?),
        _ => None,
    }
}

/// Candidate leaves for a one-leaf polynomial rooted at `v`: the non-constant values met
/// walking down through the ops `walk` understands, nearest first.
pub fn leaf_candidates(g: &Graph, v: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([v]);
    while let Some(u) = queue.pop_front() {
        if out.len() > MAX_NODES || out.contains(&u) || scalar_const(g, u).is_some() {
            continue;
        }
        out.push(u);
        if matches!(
            producer_op(g, u),
            Op::Binary(
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Pow
            ) | Op::Unary(UnaryOp::Neg)
        ) {
            queue.extend(g.node_inputs(u.node).into_iter().flatten());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::parse_graph;

    #[test]
    fn reads_any_association() {
        // (x·0.5)·s  and  (x·s)/2  are both 0.5·x·s; x³ via Pow; x - (-x) = 2x.
        let src = r#"graph "g" {
  input %x: f32[4]
  input %s: f32[4]
  %h = const f32[] [0.5]
  %two = const f32[] [2.0]
  %three = const f32[] [3.0]
  %a = Binary(Mul) %x, %h : f32[4]
  %b = Binary(Mul) %a, %s : f32[4]
  %c = Binary(Mul) %x, %s : f32[4]
  %d = Binary(Div) %c, %two : f32[4]
  %p = Binary(Pow) %x, %three : f32[4]
  %n = Unary(Neg) %x : f32[4]
  %m = Binary(Sub) %x, %n : f32[4]
  output %b
  output %d
  output %p
  output %m
}
"#;
        let g = parse_graph(src).unwrap();
        let v = g.values_by_name();
        let leaves = [v["x"], v["s"]];
        for name in ["b", "d"] {
            let (p, _) = poly_of(&g, v[name], &leaves).unwrap();
            assert!(p.matches(&[((1, 1), 0.5)], 1e-9), "{name}: {p:?}");
        }
        let (p, _) = poly_of(&g, v["p"], &leaves).unwrap();
        assert!(p.matches(&[((3, 0), 1.0)], 1e-9));
        let (p, interior) = poly_of(&g, v["m"], &leaves).unwrap();
        assert!(p.matches(&[((1, 0), 2.0)], 1e-9));
        assert_eq!(interior.len(), 2);
        assert!(poly_of(&g, v["b"], &[v["x"]]).is_none(), "s is not a leaf");
        assert_eq!(
            leaf_candidates(&g, v["d"]),
            vec![v["d"], v["c"], v["x"], v["s"]]
        );
    }
}
