//! Einsum: the equation (explicit or implicit output, `...` broadcasting, repeated labels
//! for diagonals) becomes a contraction plan — iteration sizes, the output's axes first, and
//! each input's stride per iteration axis — that the reference evaluator runs here and the
//! cpu backend's contraction kernel runs from the same [`plan`].

use super::linalg::Acc;
use super::util::{float_tensor, int_tensor, strides, to_i128_vec};
use super::OpResult;
use crate::Tensor;

/// A parsed einsum: iteration axis sizes (the first `n_out` are the output's, in output
/// order; the rest are summed) and, per input, the stride each iteration axis adds to its
/// offset (0 where the input lacks the label or broadcasts it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EinsumPlan {
    pub sizes: Vec<usize>,
    pub strides: Vec<Vec<usize>>,
    pub n_out: usize,
}

impl EinsumPlan {
    /// The output's shape.
    pub fn out_shape(&self) -> &[usize] {
        &self.sizes[..self.n_out]
    }
}

/// Label of one einsum axis: a letter, or position `i` of the broadcast ellipsis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Label {
    Letter(char),
    Ellipsis(usize),
}

/// Parses one einsum term into its labels, expanding `...` to `ell` axes (right-aligned
/// ellipsis positions `total - ell .. total`).
fn parse_term(term: &str, rank: Option<usize>, total_ell: usize) -> Result<Vec<Label>, String> {
    let letters = term.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let has_ell = term.contains("...");
    if term.matches("...").count() > 1 {
        return Err(format!("einsum term '{term}' has more than one ellipsis"));
    }
    let ell = match rank {
        Some(r) if has_ell => r
            .checked_sub(letters)
            .ok_or(format!("einsum term '{term}' has too many labels"))?,
        Some(r) if r != letters => {
            return Err(format!(
                "einsum term '{term}' has {letters} labels but the input has rank {r}"
            ))
        }
        _ if has_ell => total_ell,
        _ => 0,
    };
    let mut out = Vec::new();
    let rest = term.replace("...", "#");
    for ch in rest.chars() {
        match ch {
            '#' => out.extend((total_ell - ell..total_ell).map(Label::Ellipsis)),
            c if c.is_ascii_alphabetic() => out.push(Label::Letter(c)),
            c => return Err(format!("unexpected character '{c}' in einsum equation")),
        }
    }
    Ok(out)
}

/// Plans `equation` for inputs of `shapes`.
pub fn plan(equation: &str, shapes: &[&[usize]]) -> Result<EinsumPlan, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(format!(
            "einsum equation has {} terms but {} inputs",
            terms.len(),
            shapes.len()
        ));
    }
    // Ellipsis width: the largest of the inputs'.
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
    // Size of every label (size-1 axes broadcast).
    let mut labels: Vec<(Label, usize)> = Vec::new();
    for (ls, s) in in_labels.iter().zip(shapes) {
        for (&l, &d) in ls.iter().zip(s.iter()) {
            match labels.iter_mut().find(|(m, _)| *m == l) {
                Some((_, z)) if *z == d || d == 1 => {}
                Some((_, z)) if *z == 1 => *z = d,
                Some((_, z)) => return Err(format!("einsum label {l:?} has sizes {z} and {d}")),
                None => labels.push((l, d)),
            }
        }
    }
    let out_labels: Vec<Label> = match rhs {
        Some(r) => parse_term(r, None, total_ell)?,
        None => {
            // Implicit output: ellipsis axes, then letters that appear once, alphabetically.
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
    // Iteration order: output labels, then summed labels.
    let mut order: Vec<(Label, usize)> = Vec::new();
    for (i, l) in out_labels.iter().enumerate() {
        if out_labels[..i].contains(l) {
            return Err(format!("einsum output label {l:?} is repeated"));
        }
        let size = match labels.iter().find(|(m, _)| m == l) {
            Some(&(_, s)) => s,
            None if matches!(l, Label::Ellipsis(_)) => 1,
            None => return Err(format!("einsum output label {l:?} is not in any input")),
        };
        order.push((*l, size));
    }
    for &(l, s) in &labels {
        if !out_labels.contains(&l) {
            order.push((l, s));
        }
    }
    let sizes: Vec<usize> = order.iter().map(|&(_, s)| s).collect();
    let in_strides = in_labels
        .iter()
        .zip(shapes)
        .map(|(ls, s)| {
            let st = strides(s);
            let mut v = vec![0usize; order.len()];
            for ((l, &stride), &d) in ls.iter().zip(&st).zip(s.iter()) {
                if let Some(p) = order.iter().position(|(m, _)| m == l) {
                    if d != 1 {
                        v[p] += stride;
                    }
                }
            }
            v
        })
        .collect();
    Ok(EinsumPlan {
        sizes,
        strides: in_strides,
        n_out: out_labels.len(),
    })
}

pub fn einsum(equation: &str, ins: &[Option<&Tensor>]) -> OpResult {
    let ts: Vec<&Tensor> = ins.iter().copied().flatten().collect();
    let first = ts.first().ok_or("Einsum needs at least one input")?;
    let dt = first.dtype();
    if ts.iter().any(|t| t.dtype() != dt) {
        return Err("Einsum inputs must share a dtype".into());
    }
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    let p = plan(equation, &shapes)?;
    let out_shape = p.out_shape().to_vec();
    let out_len: usize = out_shape.iter().product();
    let inner: usize = p.sizes[p.n_out..].iter().product();
    if dt.is_float() {
        let vals: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64_vec()).collect();
        let out = run(&vals, &p.strides, &p.sizes, out_len, inner);
        Ok(vec![float_tensor(dt, out_shape, &out)?])
    } else {
        let vals: Vec<Vec<i128>> = ts
            .iter()
            .map(|t| to_i128_vec(t).unwrap_or_default())
            .collect();
        let out = run(&vals, &p.strides, &p.sizes, out_len, inner);
        Ok(vec![int_tensor(dt, out_shape, &out)?])
    }
}

/// Sums the products of every input over the summed axes, for each output position.
fn run<T: Acc>(
    vals: &[Vec<T>],
    st: &[Vec<usize>],
    sizes: &[usize],
    out_len: usize,
    inner: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); out_len];
    if inner == 0 {
        return out;
    }
    let mut idx = vec![0usize; sizes.len()];
    let mut offs = vec![0usize; vals.len()];
    for o in out.iter_mut() {
        let mut acc = T::default();
        for _ in 0..inner {
            let mut prod = vals[0][offs[0]];
            for (v, &off) in vals.iter().zip(&offs).skip(1) {
                prod = prod.mul(v[off]);
            }
            acc = acc.add(prod);
            // Advance the multi-index and the input offsets.
            for ax in (0..sizes.len()).rev() {
                idx[ax] += 1;
                for (off, s) in offs.iter_mut().zip(st) {
                    *off += s[ax];
                }
                if idx[ax] < sizes[ax] {
                    break;
                }
                for (off, s) in offs.iter_mut().zip(st) {
                    *off -= s[ax] * idx[ax];
                }
                idx[ax] = 0;
            }
        }
        *o = acc;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_equation_orders_output_then_summed_labels() {
        let p = plan("ij,jk->ik", &[&[2, 3], &[3, 4]]).unwrap();
        assert_eq!((p.sizes, p.n_out), (vec![2, 4, 3], 2));
        assert_eq!(p.strides, vec![vec![3, 0, 1], vec![0, 1, 4]]);
        // Implicit output: letters appearing once, sorted.
        let p = plan("ba,ac", &[&[2, 3], &[3, 5]]).unwrap();
        assert_eq!((p.sizes, p.n_out), (vec![2, 5, 3], 2));
    }

    #[test]
    fn einsum_diagonal_trace_and_implicit_output() {
        let m = Tensor::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]);
        let d = einsum("ii->i", &[Some(&m)]).unwrap().remove(0);
        assert_eq!(d.as_slice::<f64>().unwrap(), &[1.0, 4.0]);
        let t = einsum("ii", &[Some(&m)]).unwrap().remove(0);
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(t.as_slice::<f64>().unwrap(), &[5.0]);
        // Implicit output sorts the free letters: "ji" transposes.
        let tr = einsum("ji", &[Some(&m)]).unwrap().remove(0);
        assert_eq!(tr.as_slice::<f64>().unwrap(), &[1.0, 3.0, 2.0, 4.0]);
        let b = Tensor::from_vec(vec![1, 2, 2], vec![1.0f64, 2.0, 3.0, 4.0]);
        let y = einsum("...ij,...jk", &[Some(&b), Some(&m)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[1, 2, 2]);
        assert_eq!(y.as_slice::<f64>().unwrap(), &[7.0, 10.0, 15.0, 22.0]);
    }
}
