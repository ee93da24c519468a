//! The elementwise extras: activations with attributes (`ParamUnary`), SwiGLU, BitCast,
//! Hardmax, CumProd and EyeLike. Float math runs in f64 and rounds to the dtype.

use super::elementwise::sigmoid;
use super::util::{
    float_tensor, int_tensor, map_float, norm_axis, outer_axis_inner, scalar_i64, to_i128_vec,
};
use super::{req, OpResult};
use crate::{DType, ParamUnary, Tensor};

/// Selu, Celu, ThresholdedRelu, Shrink, Swish. Shrink also takes integers (computed in
/// f64 and truncated back, as `astype`); the others need floats.
pub fn param_unary(p: ParamUnary, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    if let ParamUnary::Shrink { bias, lambd } = p {
        let (bias, lambd) = (bias as f64, lambd as f64);
        let f = move |v: f64| {
            if v < -lambd {
                v + bias
            } else if v > lambd {
                v - bias
            } else {
                0.0
            }
        };
        if x.dtype() == DType::Bool {
            return Err("Shrink does not accept bool input".into());
        }
        if !x.dtype().is_float() {
            let v: Vec<f64> = x.to_f64_vec().into_iter().map(f).collect();
            return Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &v)]);
        }
        return Ok(vec![map_float(x, f)?]);
    }
    let y = match p {
        ParamUnary::Selu { alpha, gamma } => {
            let (a, g) = (alpha as f64, gamma as f64);
            map_float(x, move |v| g * if v > 0.0 { v } else { a * v.exp_m1() })?
        }
        ParamUnary::Celu { alpha } => {
            if alpha == 0.0 {
                return Err("Celu needs a non-zero alpha".into());
            }
            let a = alpha as f64;
            map_float(x, move |v| v.max(0.0) + (a * (v / a).exp_m1()).min(0.0))?
        }
        ParamUnary::ThresholdedRelu { alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| if v > a { v } else { 0.0 })?
        }
        ParamUnary::Swish { alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| v * sigmoid(a * v))?
        }
        ParamUnary::Shrink { .. } => unreachable!("handled above"),
    };
    Ok(vec![y])
}

/// `SwiGLU(a, b) = a·sigmoid(alpha·a)·b`, equal shapes.
pub fn swiglu(alpha: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(format!(
            "A and B must have the same shape and dtype, got {}{:?} and {}{:?}",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        ));
    }
    let al = alpha as f64;
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let out: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(&p, &q)| p * sigmoid(al * p) * q)
        .collect();
    Ok(vec![float_tensor(a.dtype(), a.shape().to_vec(), &out)?])
}

/// `BitCast`: the same bytes read as `to` (element sizes must match).
pub fn bit_cast(to: DType, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    if x.dtype().size_of() != to.size_of() {
        return Err(format!(
            "BitCast needs equal element sizes: {} and {to}",
            x.dtype()
        ));
    }
    let t = Tensor::from_le_bytes(to, x.shape().to_vec(), &x.to_le_bytes())
        .map_err(|e| e.to_string())?;
    Ok(vec![t])
}

/// `Hardmax`: 1 at the first maximum of each row along `axis` (NaN counts as the
/// largest, like `np.argmax`); `coerce_2d` flattens at `axis` first (opset < 13).
pub fn hardmax(axis: i64, coerce_2d: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    if x.dtype() == DType::Bool {
        return Err("Hardmax does not accept bool input".into());
    }
    let rank = x.rank();
    let (outer, len, inner) = if coerce_2d {
        let a = if rank == 0 && axis == 0 {
            0
        } else {
            norm_axis(axis, rank)?
        };
        let outer: usize = x.shape()[..a].iter().product();
        let row: usize = x.shape()[a..].iter().product();
        (outer, row, 1)
    } else {
        if rank == 0 {
            return Err("Hardmax needs an input of rank >= 1".into());
        }
        let a = norm_axis(axis, rank)?;
        outer_axis_inner(x.shape(), a)
    };
    let v = x.to_f64_vec();
    let mut out = vec![0.0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |s: usize| o * len * inner + s * inner + i;
            let mut best: Option<usize> = None;
            for s in 0..len {
                let cur = v[at(s)];
                let better = match best {
                    None => true,
                    Some(b) => {
                        let bv = v[at(b)];
                        !bv.is_nan() && (cur.is_nan() || cur > bv)
                    }
                };
                if better {
                    best = Some(s);
                }
            }
            if let Some(b) = best {
                out[at(b)] = 1.0;
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &out)])
}

/// `CumProd` along the axis given by input 1; `exclusive` starts each run at 1,
/// `reverse` multiplies from the end. Integers wrap like numpy.
pub fn cum_prod(exclusive: bool, reverse: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let axis = scalar_i64(req(ins, 1, "axis")?, "axis")?;
    if x.rank() == 0 {
        return Err("CumProd needs an input of rank >= 1".into());
    }
    let ax = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = outer_axis_inner(x.shape(), ax);
    let geo = (outer, len, inner);
    let shape = x.shape().to_vec();
    if x.dtype().is_float() {
        let out =
            super::reduce::cumulative(&x.to_f64_vec(), geo, (exclusive, reverse), 1.0, |a, b| {
                a * b
            });
        return Ok(vec![float_tensor(x.dtype(), shape, &out)?]);
    }
    if x.dtype() == DType::Bool {
        return Err("CumProd does not accept bool input".into());
    }
    let v = to_i128_vec(x).ok_or("unsupported dtype")?;
    let out = super::reduce::cumulative(&v, geo, (exclusive, reverse), 1, i128::wrapping_mul);
    Ok(vec![int_tensor(x.dtype(), shape, &out)?])
}

/// `EyeLike`: a 2-D tensor of the input's shape with ones on diagonal `k`.
pub fn eye_like(dtype: Option<DType>, k: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let &[rows, cols] = x.shape() else {
        return Err(format!("input must be 2-D, got shape {:?}", x.shape()));
    };
    let mut v = vec![0.0f64; rows * cols];
    for (r, row) in v.chunks_mut(cols.max(1)).enumerate().take(rows) {
        // Column r + k, when it lies inside the row.
        let c = i128::from(k) + r as i128;
        if (0..cols as i128).contains(&c) {
            row[c as usize] = 1.0;
        }
    }
    Ok(vec![Tensor::from_f64(
        dtype.unwrap_or(x.dtype()),
        vec![rows, cols],
        &v,
    )])
}

#[cfg(test)]
mod tests {
    use super::super::eval_op;
    use crate::{BinaryOp, DType, Op, ParamUnary, Tensor, UnaryOp};

    fn run(op: Op, ins: &[&Tensor]) -> Result<Tensor, String> {
        let ins: Vec<Option<&Tensor>> = ins.iter().map(|&t| Some(t)).collect();
        eval_op(&op, &ins, 1).map(|mut v| v.remove(0))
    }

    #[test]
    fn bit_shifts_follow_the_dtype_width() {
        let a = Tensor::from_vec(vec![4], vec![-128i8, 1, -1, 64]);
        let b = Tensor::from_vec(vec![4], vec![1i8, 8, -1, 1]);
        let l = run(Op::Binary(BinaryOp::BitShiftLeft), &[&a, &b]).unwrap();
        assert_eq!(l.as_slice::<i8>().unwrap(), &[0, 0, 0, -128]);
        let r = run(Op::Binary(BinaryOp::BitShiftRight), &[&a, &b]).unwrap();
        assert_eq!(r.as_slice::<i8>().unwrap(), &[-64, 0, -1, 32]);
        let u = Tensor::from_vec(vec![2], vec![u64::MAX, 3]);
        let s = Tensor::from_vec(vec![2], vec![63u64, 64]);
        let l = run(Op::Binary(BinaryOp::BitShiftLeft), &[&u, &s]).unwrap();
        assert_eq!(l.as_slice::<u64>().unwrap(), &[1 << 63, 0]);
        let f = Tensor::from_vec(vec![1], vec![1.0f32]);
        assert!(run(Op::Binary(BinaryOp::BitwiseAnd), &[&f, &f]).is_err());
        let n = run(
            Op::Unary(UnaryOp::BitwiseNot),
            &[&Tensor::from_vec(vec![1], vec![5u8])],
        );
        assert_eq!(n.unwrap().as_slice::<u8>().unwrap(), &[250]);
    }

    #[test]
    fn hardmax_picks_the_first_maximum() {
        let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 3.0, 3.0, -1.0, -2.0, -3.0]);
        let y = run(
            Op::Hardmax {
                axis: -1,
                coerce_2d: false,
            },
            &[&x],
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<f32>().unwrap(),
            &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
        );
        let y = run(
            Op::Hardmax {
                axis: 0,
                coerce_2d: true,
            },
            &[&x],
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<f32>().unwrap(),
            &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        );
        let bad = Op::Hardmax {
            axis: 5,
            coerce_2d: false,
        };
        assert!(run(bad, &[&x]).is_err());
    }

    #[test]
    fn eye_like_cum_prod_bit_cast() {
        let x = Tensor::zeros(DType::I32, vec![2, 3]);
        let y = run(
            Op::EyeLike {
                dtype: Some(DType::F64),
                k: 1,
            },
            &[&x],
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<f64>().unwrap(),
            &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        );
        let huge = Op::EyeLike {
            dtype: None,
            k: i64::MIN,
        };
        assert!(run(huge, &[&x]).is_ok());
        let v = Tensor::from_vec(vec![3], vec![2i32, 3, 4]);
        let axis = Tensor::scalar(0i64);
        let ex = Op::CumProd {
            exclusive: true,
            reverse: true,
        };
        let y = run(ex, &[&v, &axis]).unwrap();
        assert_eq!(y.as_slice::<i32>().unwrap(), &[12, 4, 1]);
        let f = Tensor::from_vec(vec![1], vec![1.0f32]);
        let y = run(Op::BitCast { to: DType::I32 }, &[&f]).unwrap();
        assert_eq!(y.as_slice::<i32>().unwrap(), &[0x3f80_0000]);
        assert!(run(Op::BitCast { to: DType::I64 }, &[&f]).is_err());
        let s = run(
            Op::ParamUnary(ParamUnary::Shrink {
                bias: 1.0,
                lambd: 1.5,
            }),
            &[&Tensor::from_vec(vec![3], vec![-2i32, 0, 3])],
        )
        .unwrap();
        assert_eq!(s.as_slice::<i32>().unwrap(), &[-1, 0, 2]);
    }
}
