//! Integer quantization kernels: QuantizeLinear / DequantizeLinear (per tensor, per axis,
//! blocked; parameter indices precomputed) and DynamicQuantizeLinear, with the reference's
//! float rounding steps (the integer products are `qmatmul.rs`).

use super::ewise::{ld_f, ld_i, st_f, st_i};
use whittle_ir::eval::util::round_to;
use whittle_ir::DType;

/// Quantize (`x` float → `out_dt`) or dequantize (`x` int → `s_dt`) elementwise.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QLinear {
    pub quantize: bool,
    pub x_dt: DType,
    pub s_dt: DType,
    pub z_dt: Option<DType>,
    pub out_dt: DType,
    pub s_idx: Vec<usize>,
    pub z_idx: Vec<usize>,
    /// Every index is 0 (one scale and zero point): the vectorised f32 ⇄ byte loops apply.
    #[serde(default)]
    pub per_tensor: bool,
    /// Saturation range of a quantized output.
    pub lo_hi: (i128, i128),
}

impl QLinear {
    /// # Safety
    /// `x`, `s`, `z` (may be null when `z_dt` is None) and `y` hold the geometry's sizes.
    pub unsafe fn run(&self, x: *const u8, s: *const u8, z: *const u8, y: *mut u8) {
        if self.run_fast(x, s, z, y) {
            return;
        }
        let zp = |i: usize| match self.z_dt {
            Some(dt) => ld_i(dt, z, self.z_idx[i]),
            None => 0,
        };
        for i in 0..self.s_idx.len() {
            let sc = ld_f(self.s_dt, s, self.s_idx[i]);
            if self.quantize {
                let cdt = if self.x_dt == self.s_dt {
                    self.x_dt
                } else if self.x_dt == DType::F64 || self.s_dt == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let q = round_to(cdt, ld_f(self.x_dt, x, i) / sc).round_ties_even();
                let v = ((q as i128) + zp(i)).clamp(self.lo_hi.0, self.lo_hi.1);
                st_i(self.out_dt, y, i, v);
            } else {
                let cdt = if self.s_dt == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let v = ld_i(self.x_dt, x, i);
                let dx = round_to(DType::F32, round_to(DType::F32, v as f64) - zp(i) as f64);
                st_f(self.out_dt, y, i, round_to(cdt, dx * sc));
            }
        }
    }
}

impl QLinear {
    /// Per-tensor f32 ⇄ u8/i8, the common case, in plain loops; false for anything else.
    /// The f32 operations are the generic path's (a quotient of two f32 rounded once, ...).
    unsafe fn run_fast(&self, x: *const u8, s: *const u8, z: *const u8, y: *mut u8) -> bool {
        let n = self.s_idx.len();
        let byte = |d: DType| matches!(d, DType::U8 | DType::I8);
        let q_dt = if self.quantize {
            self.out_dt
        } else {
            self.x_dt
        };
        let per_tensor = self.per_tensor;
        let float_dt = if self.quantize {
            self.x_dt
        } else {
            self.out_dt
        };
        if !per_tensor || self.s_dt != DType::F32 || float_dt != DType::F32 || !byte(q_dt) {
            return false;
        }
        if self.z_dt.is_some_and(|d| d != q_dt) {
            return false;
        }
        let signed = q_dt == DType::I8;
        let sc = *(s as *const f32);
        let zp = if self.z_dt.is_some() && n > 0 {
            if signed {
                *(z as *const i8) as f32
            } else {
                *z as f32
            }
        } else {
            0.0
        };
        if self.quantize {
            if !(sc.is_finite() && sc > 0.0) {
                return false;
            }
            let (lo, hi) = (self.lo_hi.0 as f32, self.lo_hi.1 as f32);
            let xs = std::slice::from_raw_parts(x as *const f32, n);
            let ys = std::slice::from_raw_parts_mut(y, n);
            let any_nan = quantize_bytes(xs, ys, sc, zp, (lo, hi), signed);
            // NaN inputs take the generic path's answer.
            if any_nan {
                for (i, &v) in xs.iter().enumerate() {
                    if v.is_nan() {
                        let q = (v / sc).round_ties_even();
                        let c = ((q as i128) + zp as i128).clamp(self.lo_hi.0, self.lo_hi.1);
                        ys[i] = c as u8;
                    }
                }
            }
        } else {
            let ys = std::slice::from_raw_parts_mut(y as *mut f32, n);
            let xs = std::slice::from_raw_parts(x, n);
            dequantize_bytes(xs, ys, sc, zp, signed);
        }
        true
    }
}

/// DynamicQuantizeLinear: `y` (u8), `y_scale` (x dtype), `y_zero_point` (u8), in f32.
///
/// # Safety
/// `x` holds `n > 0` values of `dt`; outputs hold `n`, 1 and 1 values.
pub unsafe fn dynamic_quantize(
    x: *const u8,
    dt: DType,
    n: usize,
    outs: &[*mut u8],
) -> Result<(), String> {
    if outs.len() < 3 {
        return Err("DynamicQuantizeLinear writes three outputs".into());
    }
    if dt == DType::F32 {
        let xs = std::slice::from_raw_parts(x as *const f32, n);
        let ys = std::slice::from_raw_parts_mut(outs[0], n);
        let (scale, zp) = dynamic_quantize_f32(xs, ys);
        st_f(dt, outs[1], 0, scale as f64);
        *outs[2] = zp;
        return Ok(());
    }
    let xv: Vec<f32> = (0..n).map(|i| ld_f(dt, x, i) as f32).collect();
    let maxx = xv.iter().copied().fold(0.0f32, f32::max);
    let minx = xv.iter().copied().fold(0.0f32, f32::min);
    let scale = if maxx == minx { 1.0f32 } else { maxx - minx } / 255.0f32;
    let zp = (0.0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    for (i, &v) in xv.iter().enumerate() {
        *outs[0].add(i) = ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8;
    }
    st_f(dt, outs[1], 0, scale as f64);
    *outs[2] = zp as u8;
    Ok(())
}

multiversion!(quantize_bytes, quantize_bytes_impl, (x: &[f32], y: &mut [u8], sc: f32, zp: f32, lo_hi: (f32, f32), signed: bool) -> bool);
multiversion!(dequantize_bytes, dequantize_bytes_impl, (x: &[u8], y: &mut [f32], sc: f32, zp: f32, signed: bool));

/// Per-tensor QuantizeLinear of finite-scale f32 to u8/i8; returns whether x holds a NaN
/// (whose outputs the caller then fixes).
#[inline(always)]
fn quantize_bytes_impl(
    x: &[f32],
    y: &mut [u8],
    sc: f32,
    zp: f32,
    (lo, hi): (f32, f32),
    signed: bool,
) -> bool {
    let mut nan = false;
    for (o, &v) in y.iter_mut().zip(x) {
        nan |= v.is_nan();
        let q = v / sc;
        // Beyond ±2²² the quotient is saturated anyway: clamp before rounding.
        let r = round_even_small(q.clamp(-4_194_304.0, 4_194_304.0));
        let c = (r + zp).clamp(lo, hi);
        *o = if signed { c as i8 as u8 } else { c as u8 };
    }
    nan
}

/// Per-tensor DequantizeLinear of u8/i8 to f32: `(x − zp)·sc`.
#[inline(always)]
fn dequantize_bytes_impl(x: &[u8], y: &mut [f32], sc: f32, zp: f32, signed: bool) {
    if signed {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v as i8 as f32 - zp) * sc;
        }
    } else {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v as f32 - zp) * sc;
        }
    }
}

/// Rounds half to even for |v| < 2²²: adding and subtracting 1.5·2²³ leaves the integer the
/// default rounding mode picks, with no call into libm (so loops over it vectorise).
#[inline(always)]
fn round_even_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// DynamicQuantizeLinear of an f32 slice into `y`, returning (scale, zero point); the same
/// f32 operations, in the same order, as the generic path and `ir::eval`.
fn dynamic_quantize_f32(x: &[f32], y: &mut [u8]) -> (f32, u8) {
    let (mut minx, mut maxx) = min_max_f32(x);
    if minx.is_nan() || maxx.is_nan() {
        // f32::min/max skip NaN; keep the generic fold's exact answer for that case.
        minx = x.iter().copied().fold(0.0f32, f32::min);
        maxx = x.iter().copied().fold(0.0f32, f32::max);
    }
    let scale = if maxx == minx { 1.0f32 } else { maxx - minx } / 255.0f32;
    let zp = (0.0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    let finite = scale.is_finite() && scale > 0.0 && maxx.is_finite() && minx.is_finite();
    if finite {
        // |x / scale| ≤ 255 here, well inside round_even_small's range.
        quantize_u8_small(x, y, scale, zp);
    } else {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8;
        }
    }
    (scale, zp as u8)
}

multiversion!(min_max_f32, min_max_f32_impl, (x: &[f32]) -> (f32, f32));
multiversion!(quantize_u8_small, quantize_u8_small_impl, (x: &[f32], y: &mut [u8], scale: f32, zp: f32));

/// `(min(0, min x), max(0, max x))`, NaN when x holds a NaN.
#[inline(always)]
fn min_max_f32_impl(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([0.0f32; 16], [0.0f32; 16]);
    let mut nan = [false; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
            nan[i] |= c[i].is_nan();
        }
    }
    let mut minx = lo.iter().copied().fold(0.0f32, f32::min);
    let mut maxx = hi.iter().copied().fold(0.0f32, f32::max);
    for &v in rest {
        minx = minx.min(v);
        maxx = maxx.max(v);
    }
    if nan.iter().any(|&b| b) || rest.iter().any(|v| v.is_nan()) {
        return (f32::NAN, f32::NAN);
    }
    (minx, maxx)
}

/// `y = clamp(round_half_even(x / scale) + zp, 0, 255)` for `|x / scale| < 2²²`.
#[inline(always)]
fn quantize_u8_small_impl(x: &[f32], y: &mut [u8], scale: f32, zp: f32) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (round_even_small(v / scale) + zp).clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_even_then_dequantizes() {
        let x = [0.5f32, 1.5, 2.5, -300.0];
        let s = [1.0f32];
        let z = [1u8];
        let mut q = [0u8; 4];
        let ql = QLinear {
            quantize: true,
            x_dt: DType::F32,
            s_dt: DType::F32,
            z_dt: Some(DType::U8),
            out_dt: DType::U8,
            s_idx: vec![0; 4],
            z_idx: vec![0; 4],
            per_tensor: true,
            lo_hi: (0, 255),
        };
        unsafe { ql.run(x.as_ptr() as _, s.as_ptr() as _, z.as_ptr(), q.as_mut_ptr()) };
        assert_eq!(q, [1, 3, 3, 0]);
        let dq = QLinear {
            quantize: false,
            x_dt: DType::U8,
            out_dt: DType::F32,
            ..ql
        };
        let mut y = [0f32; 4];
        unsafe { dq.run(q.as_ptr(), s.as_ptr() as _, z.as_ptr(), y.as_mut_ptr() as _) };
        assert_eq!(y, [0.0, 2.0, 2.0, -1.0]);
    }
}
