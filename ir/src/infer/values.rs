//! Symbolic values of shape computations. Small integer tensors built from `Shape` (for
//! instance `Shape → Gather → Unsqueeze → Concat`) are tracked element by element as
//! integers or dim symbols, so that `Reshape`, `Expand` and `ConstantOfShape` fed by them
//! get symbolic output shapes (`[batch, seq, 12, 64]`) before any input size is known.

use super::dims::{norm_axis, Ins, SymGen};
use super::movement::slice_len;
use super::shape_ops::shape_range;
use crate::{BinaryOp, Dim, Op, Tensor};

/// One element of a symbolically known integer tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymElem {
    Int(i64),
    Sym(String),
}

impl SymElem {
    /// As a dim (negative integers have no dim).
    pub fn to_dim(&self) -> Option<Dim> {
        match self {
            SymElem::Int(v) => usize::try_from(*v).ok().map(Dim::Known),
            SymElem::Sym(s) => Some(Dim::Sym(s.clone())),
        }
    }

    fn from_dim(d: &Dim) -> SymElem {
        match d {
            Dim::Known(n) => SymElem::Int(*n as i64),
            Dim::Sym(s) => SymElem::Sym(s.clone()),
        }
    }
}

impl std::fmt::Display for SymElem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SymElem::Int(v) => write!(f, "{v}"),
            SymElem::Sym(s) => f.write_str(s),
        }
    }
}

/// Longest shape value tracked (shape vectors are short).
const MAX_TRACKED: usize = 64;

/// The elements of a small integer constant of rank ≤ 1.
pub fn of_tensor(t: &Tensor) -> Option<Vec<SymElem>> {
    if !t.dtype().is_int() || t.rank() > 1 || t.len() > MAX_TRACKED {
        return None;
    }
    Some(t.to_i64_vec().into_iter().map(SymElem::Int).collect())
}

/// The symbolic value of output 0 of `op`, when it is a tracked shape computation.
pub fn propagate(op: &Op, ins: &Ins, gen: &mut SymGen) -> Option<Vec<SymElem>> {
    let out = match op {
        Op::Constant(t) => of_tensor(t)?,
        Op::Shape { start, end } => {
            let dims = ins.opt_ty(0)?.shape.as_ref()?;
            let (s, e) = shape_range(*start, *end, dims.len());
            dims[s..e].iter().map(SymElem::from_dim).collect()
        }
        Op::Identity | Op::Squeeze | Op::Unsqueeze => ins.sym_value(0)?,
        Op::Cast { to } if to.is_int() => ins.sym_value(0)?,
        Op::Gather { axis } => {
            let data = ins.sym_value(0)?;
            norm_axis(*axis, 1).ok()?;
            let idx = ins.konst(1)?;
            if idx.rank() > 1 {
                return None;
            }
            let n = data.len() as i64;
            let mut out = Vec::new();
            for i in idx.to_i64_vec() {
                let j = if i < 0 { i + n } else { i };
                out.push(data.get(usize::try_from(j).ok()?)?.clone());
            }
            out
        }
        Op::Concat { .. } => {
            let mut out = Vec::new();
            for i in 0..ins.types.len() {
                out.extend(ins.sym_value(i)?);
            }
            out
        }
        Op::Slice => {
            let data = ins.sym_value(0)?;
            let (starts, ends) = (ins.const_i64(1)?, ins.const_i64(2)?);
            let step = if ins.present(4) {
                ins.const_i64(4)?
            } else {
                vec![1]
            };
            if ins.present(3) && norm_axis(*ins.const_i64(3)?.first()?, 1).is_err() {
                return None;
            }
            let (&b, &e, &st) = (starts.first()?, ends.first()?, step.first()?);
            let n = data.len() as i64;
            let len = slice_len(data.len(), b, e, st).ok()?;
            let first = if st > 0 {
                (if b < 0 { b + n } else { b }).clamp(0, n)
            } else {
                (if b < 0 { b + n } else { b }).clamp(-1, n - 1)
            };
            (0..len as i64)
                .map(|k| data.get((first + k * st) as usize).cloned())
                .collect::<Option<Vec<_>>>()?
        }
        Op::Binary(b @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)) => {
            let (x, y) = (ins.sym_value(0)?, ins.sym_value(1)?);
            let n = x.len().max(y.len());
            if (x.len() != n && x.len() != 1) || (y.len() != n && y.len() != 1) {
                return None;
            }
            let at = |v: &[SymElem], i: usize| v[if v.len() == 1 { 0 } else { i }].clone();
            (0..n)
                .map(|i| arith(*b, &at(&x, i), &at(&y, i), gen))
                .collect()
        }
        // Torch's `expand` export: `Where(Equal(shape, -1·ones), ones, shape)` over a shape
        // held in a Reshape to 1-D, a ConstantOfShape of ones and an Equal.
        Op::Reshape { .. } if ins.opt_ty(0)?.rank()? <= 1 => ins.sym_value(0)?,
        Op::ConstantOfShape { value } => {
            let len = ins.sym_value(0)?;
            let [SymElem::Int(n)] = len.as_slice() else {
                return None;
            };
            let n = usize::try_from(*n).ok().filter(|&n| n <= MAX_TRACKED)?;
            let v = of_tensor(value)?;
            vec![v.first()?.clone(); n]
        }
        Op::Binary(BinaryOp::Equal) => {
            let (x, y) = (ins.sym_value(0)?, ins.sym_value(1)?);
            if x.len() != y.len() {
                return None;
            }
            x.iter()
                .zip(&y)
                .map(|(a, b)| match (a, b) {
                    (SymElem::Int(p), SymElem::Int(q)) => Some(SymElem::Int((p == q) as i64)),
                    (SymElem::Sym(p), SymElem::Sym(q)) if p == q => Some(SymElem::Int(1)),
                    // A dim is never negative.
                    (SymElem::Sym(_), SymElem::Int(q)) | (SymElem::Int(q), SymElem::Sym(_))
                        if *q < 0 =>
                    {
                        Some(SymElem::Int(0))
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?
        }
        Op::Where => {
            let (c, x, y) = (ins.sym_value(0)?, ins.sym_value(1)?, ins.sym_value(2)?);
            let n = c.len();
            if x.len() != n || y.len() != n {
                return None;
            }
            (0..n)
                .map(|i| match &c[i] {
                    SymElem::Int(0) => Some(y[i].clone()),
                    SymElem::Int(_) => Some(x[i].clone()),
                    SymElem::Sym(_) => None,
                })
                .collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    (out.len() <= MAX_TRACKED).then_some(out)
}

fn arith(op: BinaryOp, a: &SymElem, b: &SymElem, gen: &mut SymGen) -> SymElem {
    use SymElem::Int;
    match (op, a, b) {
        (BinaryOp::Add, Int(x), Int(y)) => x.checked_add(*y).map(Int),
        (BinaryOp::Sub, Int(x), Int(y)) => x.checked_sub(*y).map(Int),
        (BinaryOp::Mul, Int(x), Int(y)) => x.checked_mul(*y).map(Int),
        (BinaryOp::Div, Int(x), Int(y)) if *y != 0 => x.checked_div(*y).map(|q| {
            Int(if x % y != 0 && (*x < 0) != (*y < 0) {
                q - 1
            } else {
                q
            })
        }),
        (BinaryOp::Mul, s, Int(1)) | (BinaryOp::Mul, Int(1), s) => Some(s.clone()),
        (BinaryOp::Add | BinaryOp::Sub, s, Int(0)) | (BinaryOp::Div, s, Int(1)) => Some(s.clone()),
        _ => None,
    }
    .unwrap_or_else(|| match gen.fresh() {
        Dim::Sym(s) => SymElem::Sym(s),
        Dim::Known(n) => Int(n as i64),
    })
}
