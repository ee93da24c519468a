//! Lowering of Einsum to the generic contraction kernel: the equation is parsed at compile
//! time (explicit or implicit output, `...` broadcasting, repeated labels for diagonals)
//! into iteration sizes and per-input strides, following `whittle_ir::eval::linalg`.

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::index::{dense, Contraction};
use whittle_ir::{NodeId, Op, Value};
use whittle_runtime::RuntimeError;

/// An einsum axis label: a letter, or position `i` of the ellipsis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Letter(char),
    Ellipsis(usize),
}

fn parse_term(term: &str, rank: Option<usize>, total_ell: usize) -> Result<Vec<Label>, String> {
    let letters = term.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let has_ell = term.contains("...");
    if term.matches("...").count() > 1 {
        return Err(format!("term '{term}' has more than one ellipsis"));
    }
    let ell = match rank {
        Some(r) if has_ell => r
            .checked_sub(letters)
            .ok_or(format!("term '{term}' has too many labels"))?,
        Some(r) if r != letters => {
            return Err(format!("term '{term}' has {letters} labels for rank {r}"))
        }
        _ if has_ell => total_ell,
        _ => 0,
    };
    let mut out = Vec::new();
    for ch in term.replace("...", "#").chars() {
        match ch {
            '#' => out.extend((total_ell - ell..total_ell).map(Label::Ellipsis)),
            c if c.is_ascii_alphabetic() => out.push(Label::Letter(c)),
            c => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(out)
}

/// Iteration sizes, per-input strides per iteration axis, and the number of output axes.
type Plan = (Vec<usize>, Vec<Vec<usize>>, usize);

/// Parses `equation` for inputs of `shapes` into a contraction (dtype filled by the caller).
fn plan(equation: &str, shapes: &[Vec<usize>]) -> Result<Plan, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(format!("{} terms for {} inputs", terms.len(), shapes.len()));
    }
    let mut total_ell = 0;
    for (t, s) in terms.iter().zip(shapes) {
        if t.contains("...") {
            let letters = t.chars().filter(|c| c.is_ascii_alphabetic()).count();
            total_ell = total_ell.max(s.len().saturating_sub(letters));
        }
    }
    let in_labels: Vec<Vec<Label>> = terms
        .iter()
        .zip(shapes)
        .map(|(t, s)| parse_term(t, Some(s.len()), total_ell))
        .collect::<Result<_, _>>()?;
    let mut labels: Vec<(Label, usize)> = Vec::new();
    for (ls, s) in in_labels.iter().zip(shapes) {
        for (&l, &d) in ls.iter().zip(s) {
            match labels.iter_mut().find(|(m, _)| *m == l) {
                Some((_, z)) if *z == d || d == 1 => {}
                Some((_, z)) if *z == 1 => *z = d,
                Some((_, z)) => return Err(format!("label {l:?} has sizes {z} and {d}")),
                None => labels.push((l, d)),
            }
        }
    }
    let out_labels: Vec<Label> = match rhs {
        Some(r) => parse_term(r, None, total_ell)?,
        None => {
            let mut v: Vec<Label> = (0..total_ell).map(Label::Ellipsis).collect();
            let mut letters: Vec<char> = labels
                .iter()
                .filter_map(|(l, _)| match l {
                    Label::Letter(c) => Some(*c),
                    _ => None,
                })
                .filter(|c| {
                    in_labels
                        .iter()
                        .flatten()
                        .filter(|l| **l == Label::Letter(*c))
                        .count()
                        == 1
                })
                .collect();
            letters.sort_unstable();
            v.extend(letters.into_iter().map(Label::Letter));
            v
        }
    };
    let mut order: Vec<(Label, usize)> = Vec::new();
    for (i, l) in out_labels.iter().enumerate() {
        if out_labels[..i].contains(l) {
            return Err(format!("output label {l:?} is repeated"));
        }
        let size = match labels.iter().find(|(m, _)| m == l) {
            Some(&(_, s)) => s,
            None if matches!(l, Label::Ellipsis(_)) => 1,
            None => return Err(format!("output label {l:?} is not in any input")),
        };
        order.push((*l, size));
    }
    for &(l, s) in &labels {
        if !out_labels.contains(&l) {
            order.push((l, s));
        }
    }
    let sizes: Vec<usize> = order.iter().map(|&(_, s)| s).collect();
    let strides = in_labels
        .iter()
        .zip(shapes)
        .map(|(ls, s)| {
            let st = dense(s);
            let mut v = vec![0usize; order.len()];
            for ((l, &stride), &d) in ls.iter().zip(&st).zip(s) {
                if let Some(p) = order.iter().position(|(m, _)| m == l) {
                    if d != 1 {
                        v[p] += stride;
                    }
                }
            }
            v
        })
        .collect();
    Ok((sizes, strides, out_labels.len()))
}

impl Lowerer<'_> {
    /// Lowers Einsum; `Ok(false)` for other ops.
    pub(super) fn host_einsum(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let Op::Einsum { equation } = &g.node(id).op else {
            return Ok(false);
        };
        let err = |m: String| unsupported(g, id, m);
        let ins: Vec<Value> = g.node_inputs(id).into_iter().flatten().collect();
        let out = Value::new(id, 0);
        let dt = self.dtype(out);
        if ins.iter().any(|&v| self.dtype(v) != dt) || dt == whittle_ir::DType::Bool {
            return Err(err("Einsum inputs must share a numeric dtype".into()));
        }
        let shapes: Vec<Vec<usize>> = ins.iter().map(|&v| self.shape(v)).collect();
        let (sizes, strides, n_out) = plan(equation, &shapes).map_err(err)?;
        if sizes[..n_out].iter().product::<usize>() != self.numel(out) {
            return Err(err(
                "the equation's output size differs from the graph's".into()
            ));
        }
        let c = Contraction {
            sizes,
            strides,
            n_out,
            dt,
        };
        self.push_ext_op(id, ExtOp::Einsum(c), &ins, &[out])?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_equation_orders_output_then_summed_labels() {
        let (sizes, st, n_out) = plan("ij,jk->ik", &[vec![2, 3], vec![3, 4]]).unwrap();
        assert_eq!((sizes, n_out), (vec![2, 4, 3], 2));
        assert_eq!(st, vec![vec![3, 0, 1], vec![0, 1, 4]]);
        // Implicit output: letters appearing once, sorted.
        let (sizes, _, n_out) = plan("ba,ac", &[vec![2, 3], vec![3, 5]]).unwrap();
        assert_eq!((sizes, n_out), (vec![2, 5, 3], 2));
    }
}
