//! Integer quantization kernels: QuantizeLinear / DequantizeLinear (per tensor, per axis,
//! blocked; parameter indices precomputed), DynamicQuantizeLinear, and the integer matrix
//! products MatMulInteger and QLinearMatMul (exact i64 accumulation, requantization with
//! half-to-even rounding and saturation), with the reference's float rounding steps.

use super::ewise::{ld_f, ld_i, st_f, st_i};
use super::igemm::{igemm, PackedQA, PackedQB, QOut, ZeroPoints, MR, NR};
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
        let per_tensor = self.s_idx.iter().all(|&i| i == 0) && self.z_idx.iter().all(|&i| i == 0);
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
            for (o, &v) in ys.iter_mut().zip(xs) {
                let q = v / sc;
                // Beyond ±2²² the quotient is saturated anyway: clamp before rounding.
                let r = round_even_small(q.clamp(-4_194_304.0, 4_194_304.0));
                let c = (r + zp).clamp(lo, hi);
                *o = if signed { c as i8 as u8 } else { c as u8 };
            }
            // NaN inputs take the generic path's answer.
            for (i, &v) in xs.iter().enumerate() {
                if v.is_nan() {
                    let q = (v / sc).round_ties_even();
                    let c = ((q as i128) + zp as i128).clamp(self.lo_hi.0, self.lo_hi.1);
                    ys[i] = c as u8;
                }
            }
        } else {
            let ys = std::slice::from_raw_parts_mut(y as *mut f32, n);
            if signed {
                let xs = std::slice::from_raw_parts(x as *const i8, n);
                for (o, &v) in ys.iter_mut().zip(xs) {
                    *o = (v as f32 - zp) * sc;
                }
            } else {
                let xs = std::slice::from_raw_parts(x, n);
                for (o, &v) in ys.iter_mut().zip(xs) {
                    *o = (v as f32 - zp) * sc;
                }
            }
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
    let (mut lo, mut hi) = ([0.0f32; 16], [0.0f32; 16]);
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let mut minx = lo.iter().copied().fold(0.0f32, f32::min);
    let mut maxx = hi.iter().copied().fold(0.0f32, f32::max);
    for &v in rest {
        minx = minx.min(v);
        maxx = maxx.max(v);
    }
    if x.iter().any(|v| v.is_nan()) {
        // f32::min/max skip NaN; keep the generic fold's exact answer for that case.
        minx = x.iter().copied().fold(0.0f32, f32::min);
        maxx = x.iter().copied().fold(0.0f32, f32::max);
    }
    let scale = if maxx == minx { 1.0f32 } else { maxx - minx } / 255.0f32;
    let zp = (0.0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    let finite = scale.is_finite() && scale > 0.0 && maxx.is_finite() && minx.is_finite();
    for (o, &v) in y.iter_mut().zip(x) {
        let q = v / scale;
        let r = if finite {
            round_even_small(q)
        } else {
            q.round_ties_even()
        };
        *o = (r + zp).clamp(0.0, 255.0) as u8;
    }
    (scale, zp as u8)
}

/// Requantization of QLinearMatMul.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Requant {
    pub s_dt: DType,
    pub sa_len: usize,
    pub sb_len: usize,
    pub out_dt: DType,
    pub lo_hi: (i128, i128),
}

/// Integer batched matrix product with zero points (per tensor, per row of A, per column
/// of B) and optional requantization.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntMatMul {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Per output batch: (A batch, B batch).
    pub pairs: Vec<(usize, usize)>,
    pub a_dt: DType,
    pub b_dt: DType,
    /// Zero-point dtypes and lengths (1 or m / n).
    pub za: Option<(DType, usize)>,
    pub zb: Option<(DType, usize)>,
    pub requant: Option<Requant>,
    /// A constant u8/i8 B packed for the integer GEMM (one per B batch), with A u8 or i8:
    /// then the product runs on `igemm`'s micro-kernels instead of the exact scalar loop.
    #[serde(default)]
    pub packed: Option<Vec<PackedQB>>,
}

/// Pointers of an integer product: A, B, their zero points, and the QLinear scales.
pub struct IntMatMulArgs {
    pub a: *const u8,
    pub b: *const u8,
    pub za: *const u8,
    pub zb: *const u8,
    pub sa: *const u8,
    pub sb: *const u8,
    pub sy: *const u8,
    pub zy: Option<(DType, *const u8)>,
}

impl IntMatMul {
    /// # Safety
    /// Pointers hold the geometry's sizes; `y` `pairs.len()·m·n` outputs.
    pub unsafe fn run(&self, p: &IntMatMulArgs, y: *mut u8) -> Result<(), String> {
        if let Some(packed) = &self.packed {
            return self.run_packed(packed, p, y);
        }
        let (m, k, n) = (self.m, self.k, self.n);
        let zpa = |r: usize| match self.za {
            Some((dt, len)) => ld_i(dt, p.za, if len == 1 { 0 } else { r }),
            None => 0,
        };
        let zpb = |c: usize| match self.zb {
            Some((dt, len)) => ld_i(dt, p.zb, if len == 1 { 0 } else { c }),
            None => 0,
        };
        let mut bcol = vec![0i128; k];
        for (bi, &(ia, ib)) in self.pairs.iter().enumerate() {
            for c in 0..n {
                for (t, v) in bcol.iter_mut().enumerate() {
                    *v = ld_i(self.b_dt, p.b, ib * k * n + t * n + c) - zpb(c);
                }
                for r in 0..m {
                    let za = zpa(r);
                    let mut acc = 0i128;
                    for (t, &bv) in bcol.iter().enumerate() {
                        acc += (ld_i(self.a_dt, p.a, ia * m * k + r * k + t) - za) * bv;
                    }
                    let o = bi * m * n + r * n + c;
                    match &self.requant {
                        None => st_i(DType::I32, y, o, acc as i32 as i128),
                        Some(q) => {
                            let sdt = q.s_dt;
                            let ka = ld_f(sdt, p.sa, if q.sa_len == 1 { 0 } else { r });
                            let kb = ld_f(sdt, p.sb, if q.sb_len == 1 { 0 } else { c });
                            let sy = ld_f(sdt, p.sy, 0);
                            let factor = round_to(sdt, round_to(sdt, ka * kb) / sy);
                            let zy = p.zy.map_or(0, |(dt, z)| ld_i(dt, z, 0));
                            let d = round_to(sdt, factor) * acc as f64 + zy as f64;
                            let v = (d.round_ties_even() as i128).clamp(q.lo_hi.0, q.lo_hi.1);
                            st_i(q.out_dt, y, o, v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a product of these types and depth can run on the packed integer GEMM with
/// results equal to the exact loop's: u8/i8 operands, and with requantization a depth whose
/// sums cannot leave i32 (|(a − za)(b − zb)| ≤ 255²).
pub fn packable(a_dt: DType, b_dt: DType, k: usize, requant: bool) -> bool {
    let byte = |d: DType| matches!(d, DType::U8 | DType::I8);
    byte(a_dt) && byte(b_dt) && (!requant || k <= (i32::MAX as usize) / (255 * 255))
}

/// Output writer of the packed path: i32 as is, or requantized as the exact loop does.
struct PackedOut<'a> {
    mm: &'a IntMatMul,
    p: &'a IntMatMulArgs,
    y: super::par::SendPtr<u8>,
    /// Element offset of this batch's output.
    off: usize,
}

// SAFETY: the argument pointers are only read, and each `write` call stores a block of `y`
// no other call touches (igemm hands every tile to exactly one task).
unsafe impl Sync for PackedOut<'_> {}

impl QOut for PackedOut<'_> {
    unsafe fn write(&self, r0: usize, c0: usize, rows: usize, cols: usize, acc: &[i32; MR * NR]) {
        let n = self.mm.n;
        let y = self.y.get();
        match &self.mm.requant {
            None => {
                for i in 0..rows {
                    let dst = (y as *mut i32).add(self.off + (r0 + i) * n + c0);
                    std::ptr::copy_nonoverlapping(acc.as_ptr().add(i * NR), dst, cols);
                }
            }
            Some(q) => {
                let p = self.p;
                let sdt = q.s_dt;
                let sy = ld_f(sdt, p.sy, 0);
                let zy = p.zy.map_or(0, |(dt, z)| ld_i(dt, z, 0));
                for i in 0..rows {
                    let r = r0 + i;
                    let ka = ld_f(sdt, p.sa, if q.sa_len == 1 { 0 } else { r });
                    for j in 0..cols {
                        let c = c0 + j;
                        let kb = ld_f(sdt, p.sb, if q.sb_len == 1 { 0 } else { c });
                        let factor = round_to(sdt, round_to(sdt, ka * kb) / sy);
                        let d = round_to(sdt, factor) * acc[i * NR + j] as f64 + zy as f64;
                        let v = (d.round_ties_even() as i128).clamp(q.lo_hi.0, q.lo_hi.1);
                        st_i(q.out_dt, y, self.off + r * n + c, v);
                    }
                }
            }
        }
    }
}

impl IntMatMul {
    unsafe fn run_packed(
        &self,
        packed: &[PackedQB],
        p: &IntMatMulArgs,
        y: *mut u8,
    ) -> Result<(), String> {
        let (m, k, n) = (self.m, self.k, self.n);
        let a_signed = self.a_dt == DType::I8;
        let zps = |z: Option<(DType, usize)>, ptr: *const u8, shift: i32| -> Vec<i32> {
            match z {
                None => vec![shift],
                Some((dt, len)) => (0..len).map(|i| ld_i(dt, ptr, i) as i32 + shift).collect(),
            }
        };
        for (bi, &(ia, ib)) in self.pairs.iter().enumerate() {
            let pb = &packed[ib];
            let pa = PackedQA::pack(p.a.add(ia * m * k), m, k, a_signed)?;
            let za = zps(self.za, p.za, pa.shift);
            let zb = zps(self.zb, p.zb, pb.shift);
            let out = PackedOut {
                mm: self,
                p,
                y: super::par::SendPtr(y),
                off: bi * m * n,
            };
            igemm(&pa, pb, &ZeroPoints { za: &za, zb: &zb }, &out);
        }
        Ok(())
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

    #[test]
    fn matmul_integer_subtracts_zero_points() {
        let a = [12u8, 14];
        let b = [1u8, 2];
        let za = [12u8];
        let mm = IntMatMul {
            m: 1,
            k: 2,
            n: 1,
            pairs: vec![(0, 0)],
            a_dt: DType::U8,
            b_dt: DType::U8,
            za: Some((DType::U8, 1)),
            zb: None,
            requant: None,
            packed: None,
        };
        let mut y = [0i32];
        let null = std::ptr::null();
        let args = IntMatMulArgs {
            a: a.as_ptr(),
            b: b.as_ptr(),
            za: za.as_ptr(),
            zb: null,
            sa: null,
            sb: null,
            sy: null,
            zy: None,
        };
        unsafe { mm.run(&args, y.as_mut_ptr() as _) }.unwrap();
        assert_eq!(y, [4]);
    }
}
