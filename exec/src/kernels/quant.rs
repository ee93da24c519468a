//! Integer quantization kernels: QuantizeLinear / DequantizeLinear (per tensor, per axis,
//! blocked; parameter indices precomputed), DynamicQuantizeLinear, and the integer matrix
//! products MatMulInteger and QLinearMatMul (exact i64 accumulation, requantization with
//! half-to-even rounding and saturation), with the reference's float rounding steps.

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
    /// Saturation range of a quantized output.
    pub lo_hi: (i128, i128),
}

impl QLinear {
    /// # Safety
    /// `x`, `s`, `z` (may be null when `z_dt` is None) and `y` hold the geometry's sizes.
    pub unsafe fn run(&self, x: *const u8, s: *const u8, z: *const u8, y: *mut u8) {
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
    pub unsafe fn run(&self, p: &IntMatMulArgs, y: *mut u8) {
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
        unsafe { mm.run(&args, y.as_mut_ptr() as _) };
        assert_eq!(y, [4]);
    }
}
