//! Elementwise ops with numpy broadcasting: unary math, binary arithmetic and comparison,
//! activations, Where, Clip, Dropout. Floating math runs in f64 and rounds to the output
//! dtype; integer math runs exactly in i128 and wraps to the output width like numpy.

use super::util::{
    broadcast_all, broadcast_index_map, broadcast_to, int_tensor, map_float, round_half_even,
    select_tensor, to_i128_vec,
};
use super::{opt, req, OpResult};
use crate::*;

/// Inference-mode Dropout: the input passes through; the optional mask is all true.
pub fn dropout(ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let x = req(ins, 0, "data")?;
    let ratio = match opt(ins, 1) {
        Some(r) => r.to_f64_vec().first().copied().unwrap_or(0.5),
        None => 0.5,
    };
    let training = match opt(ins, 2) {
        Some(t) => t.to_f64_vec().first().is_some_and(|&v| v != 0.0),
        None => false,
    };
    if training && ratio != 0.0 {
        return Err("training-mode Dropout is not supported".into());
    }
    let mut outs = vec![x.clone()];
    if num_outputs >= 2 {
        outs.push(Tensor::from_vec(x.shape().to_vec(), vec![true; x.len()]));
    }
    Ok(outs)
}

/// erf(x) to near f64 precision: `2/√π · e^{-x²} · Σ 2ⁿ x^{2n+1} / (2n+1)!!`, a series of
/// positive terms (no cancellation); |x| ≥ 6 is ±1 within f64.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > sum.abs() * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if n > 500.0 {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// `ln(1 + eˣ)` without overflow for large `x`.
pub(crate) fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `IsNaN` / `IsInf`: a bool tensor, true where `pred` holds for a float element.
pub fn classify(pred: impl Fn(f64) -> bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    if !x.dtype().is_float() {
        return Err(format!("needs a float input, got {}", x.dtype()));
    }
    let v: Vec<bool> = x.to_f64_vec().into_iter().map(pred).collect();
    Ok(vec![Tensor::from_vec(x.shape().to_vec(), v)])
}

pub fn unary(op: UnaryOp, ins: &[Option<&Tensor>]) -> OpResult {
    use UnaryOp::*;
    let x = req(ins, 0, "X")?;
    if x.dtype().is_float() {
        let f: fn(f64) -> f64 = match op {
            Neg => |v| -v,
            Abs => f64::abs,
            Sqrt => f64::sqrt,
            Reciprocal => |v| 1.0 / v,
            Exp => f64::exp,
            Log => f64::ln,
            Erf => erf,
            Tanh => f64::tanh,
            Sigmoid => sigmoid,
            Relu => |v| if v > 0.0 || v.is_nan() { v } else { 0.0 },
            Sin => f64::sin,
            Cos => f64::cos,
            Floor => f64::floor,
            Ceil => f64::ceil,
            Round => round_half_even,
            Sign => |v| {
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    v
                }
            },
            HardSwish => |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
            Tan => f64::tan,
            Asin => f64::asin,
            Acos => f64::acos,
            Atan => f64::atan,
            Sinh => f64::sinh,
            Cosh => f64::cosh,
            Asinh => f64::asinh,
            Acosh => f64::acosh,
            Atanh => f64::atanh,
            Softplus => softplus,
            Softsign => |v| v / (1.0 + v.abs()),
            Mish => |v| v * softplus(v).tanh(),
            Not => return Err("Not needs a bool input".into()),
            BitwiseNot => return Err("BitwiseNot needs an integer input".into()),
        };
        return Ok(vec![map_float(x, f)?]);
    }
    let v = to_i128_vec(x).ok_or("unsupported dtype")?;
    let dt = x.dtype();
    if dt == DType::Bool {
        return match op {
            Not => Ok(vec![int_tensor(
                dt,
                x.shape().to_vec(),
                &v.iter().map(|&b| (b == 0) as i128).collect::<Vec<_>>(),
            )?]),
            _ => Err(format!("{op:?} does not accept bool input")),
        };
    }
    let f: fn(i128) -> i128 = match op {
        Neg => |a| -a,
        Abs => i128::abs,
        Relu => |a| a.max(0),
        Sign => i128::signum,
        Floor | Ceil | Round => |a| a,
        BitwiseNot => |a| !a,
        _ => return Err(format!("{op:?} does not accept integer input ({dt})")),
    };
    let out: Vec<i128> = v.into_iter().map(f).collect();
    Ok(vec![int_tensor(dt, x.shape().to_vec(), &out)?])
}

/// numpy `mod` on floats: the remainder takes the sign of the divisor.
fn float_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else if r == 0.0 {
        // numpy gives a zero with the divisor's sign.
        0.0f64.copysign(b)
    } else {
        r
    }
}

fn int_pow(base: i128, exp: i128) -> Result<i128, String> {
    if exp < 0 {
        return Err("integers to negative integer powers are not allowed".into());
    }
    let mut result: i128 = 1;
    let mut b = base;
    let mut e = exp;
    // Square-and-multiply with wrapping: the low 64 bits stay exact.
    while e > 0 {
        if e & 1 == 1 {
            result = result.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    Ok(result)
}

/// Broadcasts the inputs and returns (out_shape, per-input flat index maps).
fn broadcast_inputs(ts: &[&Tensor]) -> Result<(Vec<usize>, Vec<Vec<usize>>), String> {
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    let out = broadcast_all(&shapes)?;
    let maps = ts
        .iter()
        .map(|t| broadcast_index_map(t.shape(), &out))
        .collect::<Result<_, _>>()?;
    Ok((out, maps))
}

pub fn binary(op: BinaryOp, ins: &[Option<&Tensor>]) -> OpResult {
    use BinaryOp::*;
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    if op != Pow && a.dtype() != b.dtype() {
        return Err(format!(
            "input dtypes differ: {} and {}",
            a.dtype(),
            b.dtype()
        ));
    }
    let (shape, maps) = broadcast_inputs(&[a, b])?;
    let (ma, mb) = (&maps[0], &maps[1]);
    let dt = a.dtype();
    let cmp = matches!(op, Equal | Less | LessOrEqual | Greater | GreaterOrEqual);
    if matches!(op, And | Or | Xor) {
        let (Some(x), Some(y)) = (a.as_slice::<bool>(), b.as_slice::<bool>()) else {
            return Err(format!("{op:?} needs bool inputs"));
        };
        let out = ma
            .iter()
            .zip(mb)
            .map(|(&i, &j)| match op {
                And => x[i] && y[j],
                Or => x[i] || y[j],
                _ => x[i] != y[j],
            })
            .collect();
        return Ok(vec![Tensor::from_vec(shape, out)]);
    }
    let bitwise = matches!(
        op,
        BitwiseAnd | BitwiseOr | BitwiseXor | BitShiftLeft | BitShiftRight
    );
    if bitwise && !dt.is_int() {
        return Err(format!("{op:?} needs integer inputs, got {dt}"));
    }
    if dt.is_float() || (op == Pow && b.dtype().is_float()) {
        let x = a.to_f64_vec();
        let y = b.to_f64_vec();
        if cmp {
            let out = ma
                .iter()
                .zip(mb)
                .map(|(&i, &j)| {
                    let (p, q) = (x[i], y[j]);
                    match op {
                        Equal => p == q,
                        Less => p < q,
                        LessOrEqual => p <= q,
                        Greater => p > q,
                        _ => p >= q,
                    }
                })
                .collect();
            return Ok(vec![Tensor::from_vec(shape, out)]);
        }
        let f: fn(f64, f64) -> f64 = match op {
            Add => |p, q| p + q,
            Sub => |p, q| p - q,
            Mul => |p, q| p * q,
            Div => |p, q| p / q,
            Pow => f64::powf,
            Mod => float_mod,
            FMod => |p, q| p % q,
            PRelu => |p, q| if p < 0.0 { p * q } else { p },
            _ => unreachable!("comparisons, logic and bitwise ops handled above"),
        };
        let out: Vec<f64> = ma.iter().zip(mb).map(|(&i, &j)| f(x[i], y[j])).collect();
        // Pow keeps the base dtype (an integer base truncates, like numpy `astype`).
        return Ok(vec![Tensor::from_f64(dt, shape, &out)]);
    }
    let x = to_i128_vec(a).ok_or("unsupported dtype")?;
    let y = to_i128_vec(b).ok_or("unsupported dtype")?;
    if cmp {
        let out = ma
            .iter()
            .zip(mb)
            .map(|(&i, &j)| {
                let (p, q) = (x[i], y[j]);
                match op {
                    Equal => p == q,
                    Less => p < q,
                    LessOrEqual => p <= q,
                    Greater => p > q,
                    _ => p >= q,
                }
            })
            .collect();
        return Ok(vec![Tensor::from_vec(shape, out)]);
    }
    if dt == DType::Bool {
        return Err(format!("{op:?} does not accept bool inputs"));
    }
    let width = dt.size_of() as i128 * 8;
    let mut out = Vec::with_capacity(ma.len());
    for (&i, &j) in ma.iter().zip(mb) {
        let (p, q) = (x[i], y[j]);
        // Integer division by zero is an error, as in onnxruntime.
        if q == 0 && matches!(op, Div | Mod | FMod) {
            return Err("integer division by zero".into());
        }
        let r = match op {
            Add => p.wrapping_add(q),
            Sub => p.wrapping_sub(q),
            Mul => p.wrapping_mul(q),
            Div => p.checked_div(q).unwrap_or(0),
            Mod => p
                .checked_rem_euclid(q)
                .map_or(0, |r| if r != 0 && q < 0 { r + q } else { r }),
            FMod => p.checked_rem(q).unwrap_or(0),
            Pow => int_pow(p, q)?,
            BitwiseAnd => p & q,
            BitwiseOr => p | q,
            BitwiseXor => p ^ q,
            // Values are exact in i128 (sign-extended); wrapping to the dtype keeps the
            // low bits, which is the shift in the dtype's width.
            BitShiftLeft if (0..width).contains(&q) => p.wrapping_shl(q as u32),
            BitShiftRight if (0..width).contains(&q) => p >> q,
            BitShiftLeft => 0,
            BitShiftRight => -((p < 0) as i128),
            PRelu => {
                if p < 0 {
                    p.wrapping_mul(q)
                } else {
                    p
                }
            }
            _ => unreachable!("comparisons and logic handled above"),
        };
        out.push(r);
    }
    Ok(vec![int_tensor(dt, shape, &out)?])
}

pub fn variadic(op: VariadicOp, ins: &[Option<&Tensor>]) -> OpResult {
    let ts: Vec<&Tensor> = ins.iter().copied().flatten().collect();
    let Some(first) = ts.first() else {
        return Err("needs at least one input".into());
    };
    let dt = first.dtype();
    if let Some(t) = ts.iter().find(|t| t.dtype() != dt) {
        return Err(format!("input dtypes differ: {dt} and {}", t.dtype()));
    }
    let (shape, maps) = broadcast_inputs(&ts)?;
    let n = shape.iter().product::<usize>();
    let count = ts.len();
    if dt.is_float() {
        let vals: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64_vec()).collect();
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            let mut it = vals.iter().zip(&maps).map(|(v, m)| v[m[k]]);
            let first = it.next().unwrap_or(0.0);
            let r = it.fold(first, |acc, v| match op {
                // np.maximum / np.minimum propagate NaN.
                VariadicOp::Max => {
                    if acc.is_nan() || v.is_nan() {
                        f64::NAN
                    } else {
                        acc.max(v)
                    }
                }
                VariadicOp::Min => {
                    if acc.is_nan() || v.is_nan() {
                        f64::NAN
                    } else {
                        acc.min(v)
                    }
                }
                VariadicOp::Sum | VariadicOp::Mean => acc + v,
            });
            out.push(if op == VariadicOp::Mean {
                r / count as f64
            } else {
                r
            });
        }
        return Ok(vec![Tensor::from_f64(dt, shape, &out)]);
    }
    if dt == DType::Bool {
        return Err(format!("{op:?} does not accept bool inputs"));
    }
    let vals: Vec<Vec<i128>> = ts
        .iter()
        .map(|t| to_i128_vec(t).unwrap_or_default())
        .collect();
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let mut it = vals
            .iter()
            .zip(&maps)
            .map(|(v, m)| v.get(m[k]).copied().unwrap_or(0));
        let first = it.next().unwrap_or(0);
        let r = it.fold(first, |acc, v| match op {
            VariadicOp::Max => acc.max(v),
            VariadicOp::Min => acc.min(v),
            VariadicOp::Sum | VariadicOp::Mean => acc.wrapping_add(v),
        });
        // Mean divides in floating point and truncates back, like the reference.
        out.push(if op == VariadicOp::Mean {
            (r as f64 / count as f64) as i128
        } else {
            r
        });
    }
    Ok(vec![int_tensor(dt, shape, &out)?])
}

pub fn leaky_relu(alpha: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let a = alpha as f64;
    Ok(vec![map_float(req(ins, 0, "X")?, |v| {
        if v < 0.0 {
            a * v
        } else {
            v
        }
    })?])
}

pub fn elu(alpha: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let a = alpha as f64;
    Ok(vec![map_float(req(ins, 0, "X")?, |v| {
        if v < 0.0 {
            a * (v.exp() - 1.0)
        } else {
            v
        }
    })?])
}

pub fn hard_sigmoid(alpha: f32, beta: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let (a, b) = (alpha as f64, beta as f64);
    Ok(vec![map_float(req(ins, 0, "X")?, |v| {
        (a * v + b).clamp(0.0, 1.0)
    })?])
}

pub fn gelu(approximate: GeluApprox, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let y = match approximate {
        GeluApprox::None => map_float(x, |v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))?,
        GeluApprox::Tanh => map_float(x, |v| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
        })?,
    };
    Ok(vec![y])
}

/// `Clip`: `min(max(x, lo), hi)` like `np.clip` (so `hi` wins when `lo > hi`); NaN passes.
pub fn clip(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let lo = opt(ins, 1).filter(|t| !t.is_empty());
    let hi = opt(ins, 2).filter(|t| !t.is_empty());
    let dt = x.dtype();
    for b in [lo, hi].into_iter().flatten() {
        if b.dtype() != dt {
            return Err(format!(
                "bound dtype {} differs from input dtype {dt}",
                b.dtype()
            ));
        }
        if b.len() != 1 {
            return Err(format!(
                "min/max must be scalars, got shape {:?}",
                b.shape()
            ));
        }
    }
    if dt.is_float() {
        let l = lo.map(|t| t.get_f64(0));
        let h = hi.map(|t| t.get_f64(0));
        let y = map_float(x, |v| {
            let mut r = v;
            if let Some(l) = l {
                r = if r.is_nan() || l.is_nan() {
                    f64::NAN
                } else {
                    r.max(l)
                };
            }
            if let Some(h) = h {
                r = if r.is_nan() || h.is_nan() {
                    f64::NAN
                } else {
                    r.min(h)
                };
            }
            r
        })?;
        return Ok(vec![y]);
    }
    let v = to_i128_vec(x).ok_or("unsupported dtype")?;
    let l = lo.and_then(to_i128_vec).and_then(|v| v.first().copied());
    let h = hi.and_then(to_i128_vec).and_then(|v| v.first().copied());
    let out: Vec<i128> = v
        .into_iter()
        .map(|mut r| {
            if let Some(l) = l {
                r = r.max(l);
            }
            if let Some(h) = h {
                r = r.min(h);
            }
            r
        })
        .collect();
    Ok(vec![int_tensor(dt, x.shape().to_vec(), &out)?])
}

pub fn where_(ins: &[Option<&Tensor>]) -> OpResult {
    let c = req(ins, 0, "condition")?;
    let x = req(ins, 1, "X")?;
    let y = req(ins, 2, "Y")?;
    let cond = c.as_slice::<bool>().ok_or("condition must be bool")?;
    if x.dtype() != y.dtype() {
        return Err(format!(
            "X and Y dtypes differ: {} and {}",
            x.dtype(),
            y.dtype()
        ));
    }
    let shape = broadcast_all(&[c.shape(), x.shape(), y.shape()])?;
    let cm = broadcast_index_map(c.shape(), &shape)?;
    let cond: Vec<bool> = cm.iter().map(|&i| cond[i]).collect();
    let xb = broadcast_to(x, &shape)?;
    let yb = broadcast_to(y, &shape)?;
    Ok(vec![select_tensor(&cond, &xb, &yb)?])
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_nan_and_is_inf() {
        let x = Tensor::from_vec(
            vec![4],
            vec![1.0f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY],
        );
        let nan = classify(|v| v.is_nan(), &[Some(&x)]).unwrap();
        assert_eq!(
            nan[0].as_slice::<bool>().unwrap(),
            &[false, true, false, false]
        );
        let pos = classify(|v| v == f64::INFINITY, &[Some(&x)]).unwrap();
        assert_eq!(
            pos[0].as_slice::<bool>().unwrap(),
            &[false, false, true, false]
        );
    }

    use super::*;

    fn f32s(shape: Vec<usize>, v: &[f32]) -> Tensor {
        Tensor::from_vec(shape, v.to_vec())
    }

    fn run_binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
        binary(op, &[Some(a), Some(b)]).unwrap().remove(0)
    }

    #[test]
    fn add_broadcasts_row_and_column() {
        let a = f32s(vec![2, 1], &[10.0, 20.0]);
        let b = f32s(vec![3], &[1.0, 2.0, 3.0]);
        let c = run_binary(BinaryOp::Add, &a, &b);
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(
            c.as_slice::<f32>().unwrap(),
            &[11.0, 12.0, 13.0, 21.0, 22.0, 23.0]
        );
    }

    #[test]
    fn mod_takes_divisor_sign_and_fmod_dividend_sign() {
        let a = Tensor::from_vec(vec![4], vec![5i32, -5, 5, -5]);
        let b = Tensor::from_vec(vec![4], vec![3i32, 3, -3, -3]);
        assert_eq!(
            run_binary(BinaryOp::Mod, &a, &b).as_slice::<i32>().unwrap(),
            &[2, 1, -1, -2]
        );
        assert_eq!(
            run_binary(BinaryOp::FMod, &a, &b)
                .as_slice::<i32>()
                .unwrap(),
            &[2, -2, 2, -2]
        );
        let x = f32s(vec![2], &[-4.3, 4.3]);
        let y = f32s(vec![2], &[2.0, -2.0]);
        let m = run_binary(BinaryOp::FMod, &x, &y);
        let v = m.as_slice::<f32>().unwrap();
        assert!((v[0] + 0.3).abs() < 1e-5 && (v[1] - 0.3).abs() < 1e-5);
    }

    #[test]
    fn integer_div_truncates_toward_zero() {
        let a = Tensor::from_vec(vec![4], vec![7i64, -7, 7, -7]);
        let b = Tensor::from_vec(vec![4], vec![2i64, 2, -2, -2]);
        assert_eq!(
            run_binary(BinaryOp::Div, &a, &b).as_slice::<i64>().unwrap(),
            &[3, -3, -3, 3]
        );
    }

    #[test]
    fn integer_add_wraps_like_numpy() {
        let a = Tensor::from_vec(vec![1], vec![250u8]);
        let b = Tensor::from_vec(vec![1], vec![10u8]);
        assert_eq!(
            run_binary(BinaryOp::Add, &a, &b).as_slice::<u8>().unwrap(),
            &[4]
        );
    }

    #[test]
    fn pow_keeps_base_dtype() {
        let a = Tensor::from_vec(vec![3], vec![1i32, 2, 3]);
        let b = f32s(vec![3], &[4.0, 5.0, 6.0]);
        assert_eq!(
            run_binary(BinaryOp::Pow, &a, &b).as_slice::<i32>().unwrap(),
            &[1, 32, 729]
        );
        let e = Tensor::from_vec(vec![3], vec![4i64, 5, 6]);
        assert_eq!(
            run_binary(BinaryOp::Pow, &a, &e).as_slice::<i32>().unwrap(),
            &[1, 32, 729]
        );
    }

    #[test]
    fn round_is_half_to_even() {
        let x = f32s(vec![6], &[0.5, 1.5, 2.5, -0.5, -1.5, 2.6]);
        let y = unary(UnaryOp::Round, &[Some(&x)]).unwrap().remove(0);
        assert_eq!(
            y.as_slice::<f32>().unwrap(),
            &[0.0, 2.0, 2.0, -0.0, -2.0, 3.0]
        );
    }

    #[test]
    fn erf_matches_known_values() {
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-14);
        assert!((erf(-2.0) + 0.995_322_265_018_952_7).abs() < 1e-14);
        assert_eq!(erf(7.0), 1.0);
    }

    #[test]
    fn max_propagates_nan_and_broadcasts() {
        let a = f32s(vec![2], &[1.0, f32::NAN]);
        let b = f32s(vec![], &[3.0]);
        let y = variadic(VariadicOp::Max, &[Some(&a), Some(&b)])
            .unwrap()
            .remove(0);
        let v = y.as_slice::<f32>().unwrap();
        assert_eq!(v[0], 3.0);
        assert!(v[1].is_nan());
        let m = variadic(VariadicOp::Mean, &[Some(&a), Some(&b)])
            .unwrap()
            .remove(0);
        assert_eq!(m.as_slice::<f32>().unwrap()[0], 2.0);
    }

    #[test]
    fn clip_with_optional_bounds_and_ints() {
        let x = Tensor::from_vec(vec![4], vec![-5i32, 0, 5, 10]);
        let hi = Tensor::scalar(6i32);
        let y = clip(&[Some(&x), None, Some(&hi)]).unwrap().remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[-5, 0, 5, 6]);
    }

    #[test]
    fn where_broadcasts_all_three() {
        let c = Tensor::from_vec(vec![2, 1], vec![true, false]);
        let x = Tensor::from_vec(vec![2], vec![1i64, 2]);
        let y = Tensor::scalar(9i64);
        let z = where_(&[Some(&c), Some(&x), Some(&y)]).unwrap().remove(0);
        assert_eq!(z.shape(), &[2, 2]);
        assert_eq!(z.as_slice::<i64>().unwrap(), &[1, 2, 9, 9]);
    }

    #[test]
    fn dropout_inference_and_training_error() {
        let x = f32s(vec![2], &[1.0, 2.0]);
        let outs = dropout(&[Some(&x)], 2).unwrap();
        assert_eq!(outs[0], x);
        assert_eq!(outs[1].as_slice::<bool>().unwrap(), &[true, true]);
        let r = Tensor::scalar(0.5f32);
        let t = Tensor::scalar(true);
        assert!(dropout(&[Some(&x), Some(&r), Some(&t)], 1).is_err());
    }

    #[test]
    fn mismatched_broadcast_is_an_error() {
        let a = f32s(vec![2], &[1.0, 2.0]);
        let b = f32s(vec![3], &[1.0, 2.0, 3.0]);
        assert!(binary(BinaryOp::Add, &[Some(&a), Some(&b)]).is_err());
        assert!(binary(BinaryOp::Add, &[Some(&a)]).is_err());
    }
}
