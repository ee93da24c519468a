//! Inference for the elementwise extras: SwiGLU (two equal-shaped inputs), BitCast (same
//! shape, another dtype of the same size), EyeLike (a 2-D input's shape), and the checks
//! of the integer-only bitwise binary ops.

use super::dims::{unify_dim, Ins};
use crate::{BinaryOp, DType, TensorType};

/// `SwiGlu`: `a` and `b` share dtype and shape (no broadcasting); the output is `a`'s type.
pub(super) fn swiglu(ins: &Ins) -> Result<TensorType, String> {
    let a = ins.ty(0, "A")?;
    let b = ins.ty(1, "B")?;
    if !a.dtype.is_float() {
        return Err(format!("needs float inputs, got {}", a.dtype));
    }
    if a.dtype != b.dtype {
        return Err(format!("input dtypes differ: {} and {}", a.dtype, b.dtype));
    }
    let shape = match (&a.shape, &b.shape) {
        (Some(sa), Some(sb)) => {
            if sa.len() != sb.len() {
                return Err(format!(
                    "A and B must have the same shape (no broadcasting): ranks {} and {}",
                    sa.len(),
                    sb.len()
                ));
            }
            let dims = sa
                .iter()
                .zip(sb)
                .map(|(x, y)| unify_dim(x, y, "A and B must have the same shape"))
                .collect::<Result<Vec<_>, _>>()?;
            Some(dims)
        }
        (Some(s), None) | (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };
    Ok(TensorType {
        dtype: a.dtype,
        shape,
    })
}

/// `BitCast` to `to`: the element sizes must be equal.
pub(super) fn bit_cast(to: DType, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    if x.dtype.size_of() != to.size_of() {
        return Err(format!(
            "BitCast needs equal element sizes: {} is {} bytes, {to} is {}",
            x.dtype,
            x.dtype.size_of(),
            to.size_of()
        ));
    }
    Ok(TensorType {
        dtype: to,
        shape: x.shape.clone(),
    })
}

/// `EyeLike`: the 2-D input's shape, of `dtype` (or the input's).
pub(super) fn eye_like(dtype: Option<DType>, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    if let Some(r) = x.rank() {
        if r != 2 {
            return Err(format!("input must be 2-D, got rank {r}"));
        }
    }
    Ok(TensorType {
        dtype: dtype.unwrap_or(x.dtype),
        shape: x.shape.clone(),
    })
}

/// The bitwise binary ops take integers only.
pub(super) fn check_bitwise(b: BinaryOp, dtype: DType) -> Result<(), String> {
    use BinaryOp::*;
    if matches!(
        b,
        BitwiseAnd | BitwiseOr | BitwiseXor | BitShiftLeft | BitShiftRight
    ) && !dtype.is_int()
    {
        return Err(format!("{b:?} needs integer inputs, got {dtype}"));
    }
    Ok(())
}
