//! Broadcasting elementwise host kernel for any dtype: the ops the Cranelift f32 chains do
//! not cover (integer and bool arithmetic, comparisons, logic, Where, Clip with run-time
//! bounds, Pow/Log/Sin/Cos, IsNaN/IsInf, ...). Float inputs are computed in f64 and rounded
//! to the output type (so one op gives the reference evaluator's result exactly); integers
//! in i128 with wrapping, like numpy.

use super::par::{par_for, SendPtr};
#[allow(unused_imports)]
use whittle_ir::half; // `with_dtype!` names `half::f16`.
use whittle_ir::{BinaryOp, DType, Element, UnaryOp};

/// The function an elementwise step computes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EwFn {
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// args: cond, x, y.
    Where,
    /// args: x, lo?, hi? (absent bounds are not passed).
    Clip {
        lo: bool,
        hi: bool,
    },
    Min,
    Max,
    Sum,
    Mean,
    IsNaN,
    IsInf {
        neg: bool,
        pos: bool,
    },
    Elu(f32),
    LeakyRelu(f32),
    HardSigmoid(f32, f32),
    GeluErf,
    GeluTanh,
}

/// Geometry and types of one elementwise step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ewise {
    pub f: EwFn,
    pub out: Vec<usize>,
    /// Per input, its element stride for each output dim (0 where it broadcasts).
    pub strides: Vec<Vec<usize>>,
    pub in_dt: Vec<DType>,
    pub out_dt: DType,
}

/// Strides of an input of `shape` broadcast to `out` (numpy rules), or None.
pub fn bcast_strides(shape: &[usize], out: &[usize]) -> Option<Vec<usize>> {
    if shape.len() > out.len() {
        return None;
    }
    let pad = out.len() - shape.len();
    let mut st = vec![0usize; out.len()];
    let mut acc = 1usize;
    for d in (0..shape.len()).rev() {
        if shape[d] == out[pad + d] && shape[d] != 1 {
            st[pad + d] = acc;
        } else if shape[d] != 1 {
            return None;
        }
        acc *= shape[d];
    }
    Some(st)
}

/// Loads element `i` of a buffer of `dt` as f64.
///
/// # Safety
/// `p` holds more than `i` values of `dt`.
#[inline]
pub unsafe fn ld_f(dt: DType, p: *const u8, i: usize) -> f64 {
    whittle_ir::with_dtype!(dt, T => std::ptr::read_unaligned((p as *const T).add(i)).to_f64())
}

/// Loads element `i` as an integer (u64 above i64::MAX wraps).
///
/// # Safety
/// As [`ld_f`].
#[inline]
pub unsafe fn ld_i(dt: DType, p: *const u8, i: usize) -> i128 {
    if dt == DType::U64 {
        return std::ptr::read_unaligned((p as *const u64).add(i)) as i128;
    }
    whittle_ir::with_dtype!(dt, T => std::ptr::read_unaligned((p as *const T).add(i)).to_i64() as i128)
}

/// Stores `v` (rounded to `dt`) at element `i`.
///
/// # Safety
/// `p` holds more than `i` writable values of `dt`.
#[inline]
pub unsafe fn st_f(dt: DType, p: *mut u8, i: usize, v: f64) {
    whittle_ir::with_dtype!(dt, T => std::ptr::write_unaligned((p as *mut T).add(i), T::from_f64(v)))
}

/// Stores `v` (wrapped to `dt`) at element `i`.
///
/// # Safety
/// As [`st_f`].
#[inline]
pub unsafe fn st_i(dt: DType, p: *mut u8, i: usize, v: i128) {
    if dt == DType::Bool {
        return std::ptr::write_unaligned(p.add(i), (v != 0) as u8);
    }
    whittle_ir::with_dtype!(dt, T => std::ptr::write_unaligned((p as *mut T).add(i), T::from_i64(v as i64)))
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > sum.abs() * 1e-17 && n < 500.0 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

fn round_half_even(v: f64) -> f64 {
    v.round_ties_even()
}

fn float_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else if r == 0.0 {
        0.0f64.copysign(b)
    } else {
        r
    }
}

fn unary_f(op: UnaryOp, v: f64) -> f64 {
    use UnaryOp::*;
    match op {
        Neg => -v,
        Abs => v.abs(),
        Sqrt => v.sqrt(),
        Reciprocal => 1.0 / v,
        Exp => v.exp(),
        Log => v.ln(),
        Erf => erf(v),
        Tanh => v.tanh(),
        Sigmoid => {
            if v >= 0.0 {
                1.0 / (1.0 + (-v).exp())
            } else {
                let e = v.exp();
                e / (1.0 + e)
            }
        }
        Relu => {
            if v > 0.0 || v.is_nan() {
                v
            } else {
                0.0
            }
        }
        Sin => v.sin(),
        Cos => v.cos(),
        Floor => v.floor(),
        Ceil => v.ceil(),
        Round => round_half_even(v),
        Sign => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }
        HardSwish => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
        Not => (v == 0.0) as u8 as f64,
        Tan => v.tan(),
        Asin => v.asin(),
        Acos => v.acos(),
        Atan => v.atan(),
        Sinh => v.sinh(),
        Cosh => v.cosh(),
        Asinh => v.asinh(),
        Acosh => v.acosh(),
        Atanh => v.atanh(),
        Softplus => softplus(v),
        Softsign => v / (1.0 + v.abs()),
        Mish => v * softplus(v).tanh(),
        // Integers only (refused by `check` for floats).
        BitwiseNot => v,
    }
}

/// `ln(1 + eˣ)` without overflow for large `x`.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn int_pow(base: i128, exp: i128) -> i128 {
    let (mut r, mut b, mut e) = (1i128, base, exp.max(0));
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

impl Ewise {
    fn numel(&self) -> usize {
        self.out.iter().product()
    }

    /// Whether the computation runs in f64 (else in i128).
    fn float_domain(&self) -> bool {
        match self.f {
            EwFn::Where => self.in_dt.get(1).is_some_and(|d| d.is_float()),
            EwFn::Binary(BinaryOp::Pow) => self.in_dt.iter().any(|d| d.is_float()),
            _ => self.in_dt.first().is_some_and(|d| d.is_float()),
        }
    }

    /// Whether the op is defined for these dtypes (checked at lowering).
    pub fn check(&self) -> Result<(), String> {
        use BinaryOp::*;
        let fl = self.float_domain();
        let ok = match self.f {
            EwFn::Unary(UnaryOp::Not) => self.in_dt[0] == DType::Bool,
            EwFn::Unary(UnaryOp::BitwiseNot) => self.in_dt[0].is_int(),
            EwFn::Binary(BitwiseAnd | BitwiseOr | BitwiseXor | BitShiftLeft | BitShiftRight) => {
                self.in_dt[0].is_int() && self.in_dt.iter().all(|&d| d == self.in_dt[0])
            }
            EwFn::Unary(u) => {
                fl || matches!(
                    u,
                    UnaryOp::Neg
                        | UnaryOp::Abs
                        | UnaryOp::Relu
                        | UnaryOp::Sign
                        | UnaryOp::Floor
                        | UnaryOp::Ceil
                        | UnaryOp::Round
                )
            }
            EwFn::Binary(And | Or | Xor) => self.in_dt.iter().all(|&d| d == DType::Bool),
            EwFn::Binary(Pow) => true,
            EwFn::Binary(_) | EwFn::Clip { .. } | EwFn::Min | EwFn::Max | EwFn::Sum => {
                self.in_dt.iter().all(|&d| d == self.in_dt[0])
            }
            EwFn::Mean => self.in_dt.iter().all(|&d| d == self.in_dt[0]),
            EwFn::Where => self.in_dt[0] == DType::Bool && self.in_dt[1] == self.in_dt[2],
            EwFn::IsNaN | EwFn::IsInf { .. } => fl,
            EwFn::Elu(_)
            | EwFn::LeakyRelu(_)
            | EwFn::HardSigmoid(..)
            | EwFn::GeluErf
            | EwFn::GeluTanh => fl,
        };
        if !ok {
            return Err(format!(
                "{:?} is not defined for input types {:?}",
                self.f, self.in_dt
            ));
        }
        if self.strides.len() != self.in_dt.len() {
            return Err("internal: stride and dtype lists differ".into());
        }
        Ok(())
    }

    /// # Safety
    /// `ins[k]` holds the input `k` of the geometry; `out` `numel` values of `out_dt`.
    /// Integer division or modulo by zero, and an integer to a negative power, are errors
    /// (as in onnxruntime and the reference), reported after the pass over the output.
    pub unsafe fn run(&self, ins: &[*const u8], out: *mut u8) -> Result<(), String> {
        let n = self.numel();
        if n == 0 {
            return Ok(());
        }
        let fault = std::sync::atomic::AtomicU8::new(0);
        let r = self.out.len();
        let inner = if r == 0 { 1 } else { self.out[r - 1] };
        let rows = n / inner.max(1);
        let block = (16384 / inner.max(1)).max(1);
        let tasks = rows.div_ceil(block);
        let ip: Vec<SendPtr<u8>> = ins.iter().map(|&p| SendPtr(p as *mut u8)).collect();
        let op = SendPtr(out);
        let fl = self.float_domain();
        par_for(tasks, |t| {
            let r0 = t * block;
            let r1 = (r0 + block).min(rows);
            let mut idx = vec![0usize; r.saturating_sub(1)];
            let mut rem = r0;
            for d in (0..idx.len()).rev() {
                idx[d] = rem % self.out[d];
                rem /= self.out[d];
            }
            let mut fv = [0f64; 8];
            let mut iv = [0i128; 8];
            let k = ip.len().min(8);
            let mut base = vec![0usize; self.strides.len()];
            for row in r0..r1 {
                for (b, st) in base.iter_mut().zip(&self.strides) {
                    *b = idx.iter().zip(st).map(|(&i, &s)| i * s).sum();
                }
                for j in 0..inner {
                    let o = row * inner + j;
                    for a in 0..k {
                        let s = if r == 0 { 0 } else { self.strides[a][r - 1] };
                        let at = base[a] + j * s;
                        // SAFETY: the geometry bounds every offset.
                        unsafe {
                            if fl {
                                fv[a] = ld_f(self.in_dt[a], ip[a].get(), at);
                            }
                            iv[a] = if fl && a != 0 {
                                0
                            } else {
                                ld_i(self.in_dt[a], ip[a].get(), at)
                            };
                        }
                    }
                    // SAFETY: o < numel.
                    let f = unsafe { self.apply(fl, &fv[..k], &iv[..k], op.get(), o) };
                    if f != 0 {
                        fault.store(f, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < self.out[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        });
        match fault.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Ok(()),
            FAULT_DIV_ZERO => Err("integer division by zero".into()),
            _ => Err("integers to negative integer powers are not allowed".into()),
        }
    }

    /// Computes and stores one element; 0, or the fault (`FAULT_*`) of an integer op.
    unsafe fn apply(&self, fl: bool, f: &[f64], i: &[i128], out: *mut u8, o: usize) -> u8 {
        use BinaryOp::*;
        let dt = self.out_dt;
        let cmp = |op: BinaryOp, lt: bool, eq: bool, gt: bool| -> bool {
            match op {
                Equal => eq,
                Less => lt,
                LessOrEqual => lt || eq,
                Greater => gt,
                _ => gt || eq,
            }
        };
        match self.f {
            EwFn::Binary(b @ (Equal | Less | LessOrEqual | Greater | GreaterOrEqual)) => {
                let r = if fl {
                    cmp(b, f[0] < f[1], f[0] == f[1], f[0] > f[1])
                } else {
                    cmp(b, i[0] < i[1], i[0] == i[1], i[0] > i[1])
                };
                st_i(dt, out, o, r as i128)
            }
            EwFn::Binary(b @ (And | Or | Xor)) => {
                let (p, q) = (i[0] != 0, i[1] != 0);
                let r = match b {
                    And => p && q,
                    Or => p || q,
                    _ => p != q,
                };
                st_i(dt, out, o, r as i128)
            }
            EwFn::Binary(Pow) if fl => st_f(dt, out, o, f[0].powf(f[1])),
            EwFn::Binary(b) if fl => {
                let (p, q) = (f[0], f[1]);
                let r = match b {
                    Add => p + q,
                    Sub => p - q,
                    Mul => p * q,
                    Div => p / q,
                    Mod => float_mod(p, q),
                    PRelu => {
                        if p < 0.0 {
                            p * q
                        } else {
                            p
                        }
                    }
                    _ => p % q,
                };
                st_f(dt, out, o, r)
            }
            EwFn::Binary(b) => {
                let (p, q) = (i[0], i[1]);
                if q == 0 && matches!(b, Div | Mod | FMod) {
                    st_i(dt, out, o, 0);
                    return FAULT_DIV_ZERO;
                }
                if q < 0 && b == Pow {
                    st_i(dt, out, o, 0);
                    return FAULT_NEG_POW;
                }
                let r = match b {
                    Add => p.wrapping_add(q),
                    Sub => p.wrapping_sub(q),
                    Mul => p.wrapping_mul(q),
                    Div => p.checked_div(q).unwrap_or(0),
                    Mod => {
                        p.checked_rem_euclid(q)
                            .map_or(0, |r| if r != 0 && q < 0 { r + q } else { r })
                    }
                    Pow => int_pow(p, q),
                    BitwiseAnd => p & q,
                    BitwiseOr => p | q,
                    BitwiseXor => p ^ q,
                    // Exact i128 values; the store wraps to the dtype's width.
                    BitShiftLeft | BitShiftRight => {
                        let width = dt.size_of() as i128 * 8;
                        match (b, (0..width).contains(&q)) {
                            (BitShiftLeft, true) => p.wrapping_shl(q as u32),
                            (_, true) => p >> q,
                            (BitShiftLeft, false) => 0,
                            _ => -((p < 0) as i128),
                        }
                    }
                    PRelu => {
                        if p < 0 {
                            p.wrapping_mul(q)
                        } else {
                            p
                        }
                    }
                    _ => p.checked_rem(q).unwrap_or(0),
                };
                st_i(dt, out, o, r)
            }
            EwFn::Unary(UnaryOp::Not) => st_i(dt, out, o, (i[0] == 0) as i128),
            EwFn::Unary(u) if fl => st_f(dt, out, o, unary_f(u, f[0])),
            EwFn::Unary(u) => {
                let v = i[0];
                let r = match u {
                    UnaryOp::Neg => v.wrapping_neg(),
                    UnaryOp::Abs => v.abs(),
                    UnaryOp::Relu => v.max(0),
                    UnaryOp::Sign => v.signum(),
                    UnaryOp::BitwiseNot => !v,
                    _ => v,
                };
                st_i(dt, out, o, r)
            }
            EwFn::Where => {
                if fl {
                    st_f(dt, out, o, if i[0] != 0 { f[1] } else { f[2] })
                } else {
                    // Integer branches: reload exactly (iv holds them when not fl).
                    st_i(dt, out, o, if i[0] != 0 { i[1] } else { i[2] })
                }
            }
            EwFn::Clip { lo, hi } => {
                let hi_at = if lo { 2 } else { 1 };
                if fl {
                    let mut r = f[0];
                    if lo {
                        r = nan_max(r, f[1]);
                    }
                    if hi {
                        r = nan_min(r, f[hi_at]);
                    }
                    st_f(dt, out, o, r)
                } else {
                    let mut r = i[0];
                    if lo {
                        r = r.max(i[1]);
                    }
                    if hi {
                        r = r.min(i[hi_at]);
                    }
                    st_i(dt, out, o, r)
                }
            }
            EwFn::Min | EwFn::Max | EwFn::Sum | EwFn::Mean => {
                if fl {
                    let mut acc = f[0];
                    for &v in &f[1..] {
                        acc = match self.f {
                            EwFn::Min => nan_min(acc, v),
                            EwFn::Max => nan_max(acc, v),
                            _ => acc + v,
                        };
                    }
                    if self.f == EwFn::Mean {
                        acc /= f.len() as f64;
                    }
                    st_f(dt, out, o, acc)
                } else {
                    let mut acc = i[0];
                    for &v in &i[1..] {
                        acc = match self.f {
                            EwFn::Min => acc.min(v),
                            EwFn::Max => acc.max(v),
                            _ => acc.wrapping_add(v),
                        };
                    }
                    if self.f == EwFn::Mean {
                        acc = (acc as f64 / i.len() as f64) as i128;
                    }
                    st_i(dt, out, o, acc)
                }
            }
            EwFn::IsNaN => st_i(dt, out, o, f[0].is_nan() as i128),
            EwFn::IsInf { neg, pos } => {
                let v = f[0];
                let r = v.is_infinite() && ((v > 0.0 && pos) || (v < 0.0 && neg));
                st_i(dt, out, o, r as i128)
            }
            EwFn::Elu(a) => {
                let v = f[0];
                st_f(
                    dt,
                    out,
                    o,
                    if v < 0.0 {
                        a as f64 * (v.exp() - 1.0)
                    } else {
                        v
                    },
                )
            }
            EwFn::LeakyRelu(a) => {
                let v = f[0];
                st_f(dt, out, o, if v < 0.0 { a as f64 * v } else { v })
            }
            EwFn::HardSigmoid(a, b) => {
                st_f(dt, out, o, (a as f64 * f[0] + b as f64).clamp(0.0, 1.0))
            }
            EwFn::GeluErf => {
                let v = f[0];
                st_f(
                    dt,
                    out,
                    o,
                    0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
                )
            }
            EwFn::GeluTanh => {
                let v = f[0];
                let c = (2.0 / std::f64::consts::PI).sqrt();
                st_f(
                    dt,
                    out,
                    o,
                    0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh()),
                )
            }
        }
        0
    }
}

/// Faults of integer elementwise ops, reported once per run of the kernel.
const FAULT_DIV_ZERO: u8 = 1;
const FAULT_NEG_POW: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_strides_follow_numpy() {
        assert_eq!(bcast_strides(&[3, 1], &[2, 3, 4]), Some(vec![0, 1, 0]));
        assert_eq!(bcast_strides(&[4], &[2, 4]), Some(vec![0, 1]));
        assert_eq!(bcast_strides(&[3], &[2, 4]), None);
    }

    #[test]
    fn int_less_and_where() {
        let a = [1i64, 5, -3];
        let b = [2i64];
        let mut out = [0u8; 3];
        let e = Ewise {
            f: EwFn::Binary(BinaryOp::Less),
            out: vec![3],
            strides: vec![vec![1], vec![0]],
            in_dt: vec![DType::I64, DType::I64],
            out_dt: DType::Bool,
        };
        e.check().unwrap();
        unsafe {
            e.run(&[a.as_ptr() as _, b.as_ptr() as _], out.as_mut_ptr())
                .unwrap()
        };
        assert_eq!(out, [1, 0, 1]);
        let x = [10i32, 20, 30];
        let y = [-1i32];
        let mut o = [0i32; 3];
        let w = Ewise {
            f: EwFn::Where,
            out: vec![3],
            strides: vec![vec![1], vec![1], vec![0]],
            in_dt: vec![DType::Bool, DType::I32, DType::I32],
            out_dt: DType::I32,
        };
        unsafe {
            w.run(
                &[out.as_ptr(), x.as_ptr() as _, y.as_ptr() as _],
                o.as_mut_ptr() as _,
            )
            .unwrap()
        };
        assert_eq!(o, [10, -1, 30]);
    }

    #[test]
    fn float_pow_and_round_half_even() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(-2.5), -2.0);
        let a = [2f32, 3.0];
        let b = [3i64];
        let mut o = [0f32; 2];
        let e = Ewise {
            f: EwFn::Binary(BinaryOp::Pow),
            out: vec![2],
            strides: vec![vec![1], vec![0]],
            in_dt: vec![DType::F32, DType::I64],
            out_dt: DType::F32,
        };
        unsafe {
            e.run(&[a.as_ptr() as _, b.as_ptr() as _], o.as_mut_ptr() as _)
                .unwrap()
        };
        assert_eq!(o, [8.0, 27.0]);
    }
}
