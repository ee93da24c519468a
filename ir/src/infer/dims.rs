//! Building blocks of shape inference: fresh symbolic dims (`SymGen`), numpy broadcasting
//! of known/symbolic dims, dim arithmetic, and typed access to a node's input types and
//! constant inputs.

use super::values::{of_tensor, SymElem};
use crate::{DType, Dim, Tensor, TensorType};

/// Makes fresh symbolic dims `unk_0`, `unk_1`, ... for sizes that shape inference cannot
/// know. One generator is used per graph so the names are unique and deterministic.
#[derive(Clone, Debug, Default)]
pub struct SymGen {
    next: usize,
}

/// The prefix of the symbols that shape inference invents.
pub const FRESH_PREFIX: &str = "unk_";

impl SymGen {
    /// A generator whose first symbol is `unk_<start>`.
    pub fn starting_at(start: usize) -> SymGen {
        SymGen { next: start }
    }

    pub fn fresh(&mut self) -> Dim {
        let d = Dim::Sym(format!("{FRESH_PREFIX}{}", self.next));
        self.next += 1;
        d
    }

    /// `n` fresh dims.
    pub fn fresh_dims(&mut self, n: usize) -> Vec<Dim> {
        (0..n).map(|_| self.fresh()).collect()
    }
}

/// Whether `d` is a symbol made up by shape inference (as opposed to a user symbol such
/// as `batch`).
pub fn is_fresh(d: &Dim) -> bool {
    fresh_index(d).is_some()
}

/// `n` for a dim `unk_<n>`.
pub fn fresh_index(d: &Dim) -> Option<usize> {
    match d {
        Dim::Sym(s) => s.strip_prefix(FRESH_PREFIX)?.parse().ok(),
        Dim::Known(_) => None,
    }
}

/// Broadcasts two dims (numpy rules). A symbol broadcast with 1 stays the symbol; a symbol
/// with a known size `n != 1` becomes `n`; two different symbols give a fresh one.
pub fn broadcast_dim(a: &Dim, b: &Dim, gen: &mut SymGen) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => {
            if x == y || *y == 1 {
                Dim::Known(*x)
            } else if *x == 1 {
                Dim::Known(*y)
            } else {
                return Err(format!(
                    "dimensions {x} and {y} cannot be broadcast together"
                ));
            }
        }
        (Dim::Known(1), s @ Dim::Sym(_)) | (s @ Dim::Sym(_), Dim::Known(1)) => s.clone(),
        (k @ Dim::Known(_), Dim::Sym(_)) | (Dim::Sym(_), k @ Dim::Known(_)) => k.clone(),
        (Dim::Sym(x), Dim::Sym(y)) => {
            if x == y {
                a.clone()
            } else {
                gen.fresh()
            }
        }
    })
}

/// Multidirectional broadcast of several shapes; `None` (unknown rank) if any is unknown.
pub fn broadcast_shapes(
    shapes: &[Option<&[Dim]>],
    gen: &mut SymGen,
) -> Result<Option<Vec<Dim>>, String> {
    let mut known: Vec<&[Dim]> = Vec::with_capacity(shapes.len());
    for s in shapes {
        match s {
            Some(s) => known.push(s),
            None => return Ok(None),
        }
    }
    let rank = known.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in &known {
        let off = rank - s.len();
        for (i, d) in s.iter().enumerate() {
            out[off + i] = broadcast_dim(&out[off + i], d, gen).map_err(|e| {
                let list: Vec<String> = known.iter().map(|s| show_dims(s)).collect();
                format!(
                    "shapes {} cannot be broadcast together ({e})",
                    list.join(", ")
                )
            })?;
        }
    }
    Ok(Some(out))
}

/// Unifies two dims that must be equal (Concat non-axis dims, MatMul inner dims, ...).
/// Known sizes that differ are an error; a known size wins over a symbol.
pub fn unify_dim(a: &Dim, b: &Dim, what: &str) -> Result<Dim, String> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => Err(format!("{what}: {x} vs {y}")),
        (Dim::Sym(_), Dim::Known(_)) => Ok(b.clone()),
        _ => Ok(a.clone()),
    }
}

/// The product of dims: known when all are known (or one is 0), the symbol itself when it
/// is the only non-1 factor, otherwise a fresh symbol.
pub fn dim_product(dims: &[Dim], gen: &mut SymGen) -> Dim {
    let mut known = 1usize;
    let mut syms: Vec<&Dim> = Vec::new();
    for d in dims {
        match d {
            Dim::Known(0) => return Dim::Known(0),
            Dim::Known(n) => known = known.saturating_mul(*n),
            Dim::Sym(_) => syms.push(d),
        }
    }
    match (syms.len(), known) {
        (0, _) => Dim::Known(known),
        (1, 1) => syms[0].clone(),
        _ => gen.fresh(),
    }
}

/// `a + b` for dims (known only when both are).
pub fn dim_add(a: &Dim, b: &Dim, gen: &mut SymGen) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x + y),
        (Dim::Known(0), d) | (d, Dim::Known(0)) => d.clone(),
        _ => gen.fresh(),
    }
}

/// `[2,unk_0,batch]` for messages.
pub fn show_dims(d: &[Dim]) -> String {
    let parts: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Normalises a list of axes; repeated axes are an error.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// A node's inputs as shape inference sees them: types (when connected) and constant
/// tensors (when the producer is a constant).
pub struct Ins<'a> {
    pub types: &'a [Option<&'a TensorType>],
    pub consts: &'a [Option<&'a Tensor>],
    /// Symbolic values of non-constant shape computations (may be shorter than `types`).
    pub vals: &'a [Option<Vec<SymElem>>],
}

impl<'a> Ins<'a> {
    /// Type of required input `i`.
    pub fn ty(&self, i: usize, what: &str) -> Result<&'a TensorType, String> {
        self.types
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("missing required input {i} ({what})"))
    }

    /// Type of input `i` if connected.
    pub fn opt_ty(&self, i: usize) -> Option<&'a TensorType> {
        self.types.get(i).copied().flatten()
    }

    pub fn present(&self, i: usize) -> bool {
        self.opt_ty(i).is_some() || self.konst(i).is_some()
    }

    pub fn dtype(&self, i: usize, what: &str) -> Result<DType, String> {
        Ok(self.ty(i, what)?.dtype)
    }

    /// The constant tensor of input `i`, if it is one.
    pub fn konst(&self, i: usize) -> Option<&'a Tensor> {
        self.consts.get(i).copied().flatten()
    }

    /// Constant input `i` as i64 values.
    pub fn const_i64(&self, i: usize) -> Option<Vec<i64>> {
        self.konst(i).map(|t| t.to_i64_vec())
    }

    /// Input `i` as a symbolic integer vector: a small integer constant, or a tracked
    /// shape computation.
    pub fn sym_value(&self, i: usize) -> Option<Vec<SymElem>> {
        match self.konst(i) {
            Some(t) => of_tensor(t),
            None => self.vals.get(i).cloned().flatten(),
        }
    }

    /// Length of a 1-D input `i` from its type, when known (e.g. the rank a shape tensor
    /// describes).
    pub fn len_1d(&self, i: usize) -> Option<usize> {
        if let Some(t) = self.konst(i) {
            return Some(t.len());
        }
        match self.opt_ty(i)?.shape.as_deref()? {
            [Dim::Known(n)] => Some(*n),
            [] => Some(1),
            _ => None,
        }
    }
}

/// Converts a non-negative i64 (a size read from a constant) into usize.
pub fn to_size(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} must be non-negative, got {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: usize) -> Dim {
        Dim::Known(n)
    }
    fn s(n: &str) -> Dim {
        Dim::Sym(n.into())
    }

    #[test]
    fn broadcast_with_symbols() {
        let mut g = SymGen::default();
        assert_eq!(broadcast_dim(&s("b"), &k(1), &mut g).unwrap(), s("b"));
        assert_eq!(broadcast_dim(&k(1), &s("b"), &mut g).unwrap(), s("b"));
        assert_eq!(broadcast_dim(&s("b"), &k(4), &mut g).unwrap(), k(4));
        assert_eq!(broadcast_dim(&s("b"), &s("b"), &mut g).unwrap(), s("b"));
        assert_eq!(broadcast_dim(&s("a"), &s("b"), &mut g).unwrap(), s("unk_0"));
        assert!(broadcast_dim(&k(2), &k(3), &mut g).is_err());
        let a = [s("batch"), k(1), k(4)];
        let b = [k(3), k(1)];
        let out = broadcast_shapes(&[Some(&a), Some(&b)], &mut g)
            .unwrap()
            .unwrap();
        assert_eq!(out, vec![s("batch"), k(3), k(4)]);
        assert!(broadcast_shapes(&[Some(&a), None], &mut g)
            .unwrap()
            .is_none());
        let e = broadcast_shapes(&[Some(&[k(2), k(3)]), Some(&[k(4), k(3)])], &mut g).unwrap_err();
        assert!(e.contains("[2,3], [4,3]"), "{e}");
    }

    #[test]
    fn products_and_fresh_names() {
        let mut g = SymGen::starting_at(7);
        assert_eq!(dim_product(&[k(2), k(3)], &mut g), k(6));
        assert_eq!(dim_product(&[s("b"), k(1)], &mut g), s("b"));
        assert_eq!(dim_product(&[s("b"), k(0)], &mut g), k(0));
        assert_eq!(dim_product(&[s("b"), k(2)], &mut g), s("unk_7"));
        assert_eq!(fresh_index(&s("unk_12")), Some(12));
        assert!(!is_fresh(&s("batch")));
        assert_eq!(unify_dim(&s("x"), &k(3), "w").unwrap(), k(3));
        assert!(unify_dim(&k(4), &k(3), "w").is_err());
    }
}
