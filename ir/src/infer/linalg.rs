//! Shape inference for the linear-algebra ops: MatMul (and its integer and quantized
//! forms), Gemm and Einsum.

use super::dims::{broadcast_dim, broadcast_shapes, show_dims, unify_dim, Ins, SymGen};
use crate::{DType, Dim, TensorType};
use std::collections::BTreeMap;

/// Numpy `matmul` of inputs `ia` and `ib`: batched, with 1-D promotion. `dtype` overrides
/// the output dtype (integer and quantized forms); otherwise both inputs must agree.
pub fn matmul(
    ins: &Ins,
    ia: usize,
    ib: usize,
    dtype: Option<DType>,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let a = ins.ty(ia, "A")?;
    let b = ins.ty(ib, "B")?;
    let dtype = match dtype {
        Some(d) => d,
        None => {
            if a.dtype != b.dtype {
                return Err(format!(
                    "A has dtype {} but B has dtype {}",
                    a.dtype, b.dtype
                ));
            }
            a.dtype
        }
    };
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(TensorType::unknown_rank(dtype));
    };
    if sa.is_empty() || sb.is_empty() {
        return Err("MatMul inputs must have rank >= 1".into());
    }
    let a_vec = sa.len() == 1;
    let b_vec = sb.len() == 1;
    let sa: Vec<Dim> = if a_vec {
        vec![Dim::Known(1), sa[0].clone()]
    } else {
        sa.clone()
    };
    let sb: Vec<Dim> = if b_vec {
        vec![sb[0].clone(), Dim::Known(1)]
    } else {
        sb.clone()
    };
    let (ra, rb) = (sa.len(), sb.len());
    unify_dim(
        &sa[ra - 1],
        &sb[rb - 2],
        "inner dimensions of A and B differ",
    )
    .map_err(|e| format!("{e} (A is {}, B is {})", show_dims(&sa), show_dims(&sb)))?;
    let batch =
        broadcast_shapes(&[Some(&sa[..ra - 2]), Some(&sb[..rb - 2])], gen)?.unwrap_or_default();
    let mut out = batch;
    if !a_vec {
        out.push(sa[ra - 2].clone());
    }
    if !b_vec {
        out.push(sb[rb - 1].clone());
    }
    Ok(TensorType::new(dtype, out))
}

/// `alpha·op(A)·op(B) + beta·C` with 2-D A and B; C must broadcast to `[M, N]`.
pub fn gemm(
    ins: &Ins,
    trans_a: bool,
    trans_b: bool,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let a = ins.ty(0, "A")?;
    let b = ins.ty(1, "B")?;
    if a.dtype != b.dtype {
        return Err(format!(
            "A has dtype {} but B has dtype {}",
            a.dtype, b.dtype
        ));
    }
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(TensorType::unknown_rank(a.dtype));
    };
    if sa.len() != 2 || sb.len() != 2 {
        return Err(format!(
            "A and B must be 2-D, got {} and {}",
            show_dims(sa),
            show_dims(sb)
        ));
    }
    let (m, ka) = if trans_a {
        (&sa[1], &sa[0])
    } else {
        (&sa[0], &sa[1])
    };
    let (kb, n) = if trans_b {
        (&sb[1], &sb[0])
    } else {
        (&sb[0], &sb[1])
    };
    unify_dim(ka, kb, "inner dimensions of A and B differ")
        .map_err(|e| format!("{e} (A is {}, B is {})", show_dims(sa), show_dims(sb)))?;
    let out = vec![m.clone(), n.clone()];
    if let Some(Some(sc)) = ins.opt_ty(2).map(|c| c.shape.as_deref()) {
        if sc.len() > 2 {
            return Err(format!("C must have rank <= 2, got {}", show_dims(sc)));
        }
        let bc = broadcast_shapes(&[Some(&out), Some(sc)], gen)?.unwrap_or_default();
        for (o, d) in out.iter().zip(&bc) {
            if let (Dim::Known(x), Dim::Known(y)) = (o, d) {
                if x != y {
                    return Err(format!(
                        "C {} does not broadcast to [M,N] = {}",
                        show_dims(sc),
                        show_dims(&out)
                    ));
                }
            }
        }
    }
    Ok(TensorType::new(a.dtype, out))
}

/// One operand of an einsum equation: its labels, with `None` marking the ellipsis.
fn parse_term(term: &str) -> Result<Vec<Option<char>>, String> {
    let mut out = Vec::new();
    let mut rest = term;
    let mut seen_ellipsis = false;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if seen_ellipsis {
                return Err(format!("term '{term}' has more than one ellipsis"));
            }
            seen_ellipsis = true;
            out.push(None);
            rest = &rest[3..];
        } else if c.is_ascii_alphabetic() {
            out.push(Some(c));
            rest = &rest[1..];
        } else {
            return Err(format!(
                "unexpected character '{c}' in einsum term '{term}'"
            ));
        }
    }
    Ok(out)
}

/// Einsum: label sizes come from the operands (size-1 dims broadcast), the ellipsis dims
/// broadcast across operands; without `->` the output is the ellipsis then the labels that
/// occur once, in alphabetical order.
pub fn einsum(equation: &str, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<Vec<Option<char>>> = lhs.split(',').map(parse_term).collect::<Result<_, _>>()?;
    if terms.len() != ins.types.len() {
        return Err(format!(
            "equation '{equation}' has {} operands but the node has {} inputs",
            terms.len(),
            ins.types.len()
        ));
    }
    let dtype = ins.dtype(0, "Inputs")?;
    let mut labels: BTreeMap<char, Dim> = BTreeMap::new();
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    let mut ellipsis: Option<Vec<Dim>> = Some(Vec::new());
    let mut any_ellipsis = false;
    for (i, term) in terms.iter().enumerate() {
        let t = ins.ty(i, "operand")?;
        if t.dtype != dtype {
            return Err(format!(
                "operand {i} has dtype {} but operand 0 has dtype {dtype}",
                t.dtype
            ));
        }
        for c in term.iter().flatten() {
            *counts.entry(*c).or_default() += 1;
        }
        let has_ell = term.contains(&None);
        any_ellipsis |= has_ell;
        let Some(shape) = &t.shape else {
            if has_ell {
                ellipsis = None;
            }
            continue;
        };
        let n_labels = term.iter().filter(|l| l.is_some()).count();
        if shape.len() < n_labels || (!has_ell && shape.len() != n_labels) {
            return Err(format!(
                "operand {i} has rank {} but its term has {n_labels} labels",
                shape.len()
            ));
        }
        let ell_rank = shape.len() - n_labels;
        let mut pos = 0;
        for l in term {
            match l {
                Some(c) => {
                    let d = &shape[pos];
                    let merged = match labels.get(c) {
                        Some(prev) => {
                            broadcast_dim(prev, d, gen).map_err(|e| format!("label '{c}': {e}"))?
                        }
                        None => d.clone(),
                    };
                    labels.insert(*c, merged);
                    pos += 1;
                }
                None => {
                    let dims = &shape[pos..pos + ell_rank];
                    if let Some(prev) = &ellipsis {
                        ellipsis = broadcast_shapes(&[Some(prev), Some(dims)], gen)?;
                    }
                    pos += ell_rank;
                }
            }
        }
    }
    let out_term: Vec<Option<char>> = match rhs {
        Some(r) => parse_term(r)?,
        None => {
            let mut t: Vec<Option<char>> = if any_ellipsis { vec![None] } else { vec![] };
            t.extend(
                counts
                    .iter()
                    .filter(|(_, &n)| n == 1)
                    .map(|(&c, _)| Some(c)),
            );
            t
        }
    };
    let mut out = Vec::new();
    for l in &out_term {
        match l {
            Some(c) => {
                if !counts.contains_key(c) {
                    return Err(format!("output label '{c}' does not occur in the inputs"));
                }
                out.push(labels.get(c).cloned().unwrap_or_else(|| gen.fresh()));
            }
            None => match &ellipsis {
                Some(e) => out.extend(e.iter().cloned()),
                None => return Ok(TensorType::unknown_rank(dtype)),
            },
        }
    }
    Ok(TensorType::new(dtype, out))
}
