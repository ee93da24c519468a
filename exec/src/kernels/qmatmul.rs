//! Integer matrix products: MatMulInteger (i32 out), QLinearMatMul (requantized) and
//! MatMulIntegerToFloat (scaled to float, plus a bias), on the packed `igemm` kernel when B
//! is a constant u8/i8 and on an exact scalar loop otherwise; both round every float step
//! as the reference does, so results equal `ir::eval` bit for bit.

use super::epilogue::activate;
use super::ewise::{ld_f, ld_i, st_f, st_i};
use super::igemm::{igemm, PackedQA, PackedQB, QOut, ZeroPoints, MR, NR};
use whittle_ir::eval::util::round_to;
use whittle_ir::{Activation, DType};

/// Requantization of QLinearMatMul.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Requant {
    pub s_dt: DType,
    pub sa_len: usize,
    pub sb_len: usize,
    pub out_dt: DType,
    pub lo_hi: (i128, i128),
}

/// MatMulIntegerToFloat's epilogue: `f(acc) · f(a_scale · b_scale[c]) + bias[c]` in `s_dt`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToFloat {
    pub s_dt: DType,
    /// Elements of b_scale (1 or n).
    pub sb_len: usize,
    /// Elements of the bias (0 when absent, else 1 or n).
    pub bias_len: usize,
    /// Applied last (f32 only).
    pub activation: Activation,
}

/// What leaves an integer product.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum IntOut {
    /// The i32 sums (MatMulInteger).
    I32,
    /// Requantized to u8/i8 (QLinearMatMul).
    Requant(Requant),
    /// Scaled to float (MatMulIntegerToFloat).
    Float(ToFloat),
}

/// Integer batched matrix product with zero points (per tensor, per row of A, per column
/// of B) and its output form.
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
    pub out: IntOut,
    /// A constant u8/i8 B packed for the integer GEMM (one per B batch), with A u8 or i8:
    /// then the product runs on `igemm`'s micro-kernels instead of the exact scalar loop.
    pub packed: Option<Vec<PackedQB>>,
}

/// The inputs of an integer product by role, whatever op they came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    A,
    B,
    Za,
    Zb,
    Sa,
    Sb,
    Sy,
    Zy,
    Bias,
}

/// Pointers of an integer product by [`Role`] (null where absent).
pub struct IntMatMulArgs {
    pub a: *const u8,
    pub b: *const u8,
    pub za: *const u8,
    pub zb: *const u8,
    pub sa: *const u8,
    pub sb: *const u8,
    pub sy: *const u8,
    pub zy: *const u8,
    pub bias: *const u8,
}

impl IntMatMulArgs {
    /// The arguments of an op whose input `i` has role `roles[i]`.
    pub fn from_roles(roles: &[Role], ins: &[*const u8]) -> IntMatMulArgs {
        let at = |r: Role| {
            roles
                .iter()
                .position(|&x| x == r)
                .and_then(|i| ins.get(i).copied())
                .unwrap_or(std::ptr::null())
        };
        IntMatMulArgs {
            a: at(Role::A),
            b: at(Role::B),
            za: at(Role::Za),
            zb: at(Role::Zb),
            sa: at(Role::Sa),
            sb: at(Role::Sb),
            sy: at(Role::Sy),
            zy: at(Role::Zy),
            bias: at(Role::Bias),
        }
    }
}

/// The factors of a requantized or float output, computed once per call.
enum Factors {
    None,
    /// Requant: per (row, column) factors come from these per-row / per-column scales.
    Requant {
        sy: f64,
        zy: i128,
    },
    /// Float: the scale product and bias per column (1 or n), in f64 holding `s_dt` values.
    Float {
        scale: Vec<f64>,
        bias: Vec<f64>,
    },
    /// Float with f32 scales: the same as f32, for the vectorised store.
    Float32 {
        scale: Vec<f32>,
        bias: Vec<f32>,
    },
}

impl IntMatMul {
    /// # Safety
    /// The scale, zero-point and bias pointers hold the lengths the op states.
    unsafe fn factors(&self, p: &IntMatMulArgs) -> Result<Factors, String> {
        Ok(match &self.out {
            IntOut::I32 => Factors::None,
            IntOut::Requant(q) => Factors::Requant {
                sy: ld_f(q.s_dt, p.sy, 0),
                zy: if p.zy.is_null() {
                    0
                } else {
                    ld_i(q.out_dt, p.zy, 0)
                },
            },
            IntOut::Float(f) => {
                if p.sa.is_null() || p.sb.is_null() {
                    return Err("missing scale".into());
                }
                let sa = ld_f(f.s_dt, p.sa, 0);
                let scale: Vec<f64> = (0..f.sb_len)
                    .map(|c| round_to(f.s_dt, sa * ld_f(f.s_dt, p.sb, c)))
                    .collect();
                if f.bias_len > 0 && p.bias.is_null() {
                    return Err("missing bias".into());
                }
                let bias: Vec<f64> = (0..f.bias_len).map(|c| ld_f(f.s_dt, p.bias, c)).collect();
                if f.s_dt == DType::F32 {
                    let n = self.n;
                    // −0.0 is the additive identity (+0.0 would turn a −0.0 into +0.0).
                    let widen = |v: &[f64]| -> Vec<f32> {
                        match v.len() {
                            0 => vec![-0.0; n],
                            1 => vec![v[0] as f32; n],
                            _ => v.iter().map(|&x| x as f32).collect(),
                        }
                    };
                    Factors::Float32 {
                        scale: widen(&scale),
                        bias: widen(&bias),
                    }
                } else {
                    Factors::Float { scale, bias }
                }
            }
        })
    }

    /// Stores the finished sum `acc` of (`r`, `c`) at output element `o`.
    #[inline]
    unsafe fn store(
        &self,
        f: &Factors,
        p: &IntMatMulArgs,
        y: *mut u8,
        o: usize,
        rc: (usize, usize),
        acc: i32,
    ) {
        let (r, c) = rc;
        match (&self.out, f) {
            (IntOut::Requant(q), Factors::Requant { sy, zy }) => {
                let sdt = q.s_dt;
                let ka = ld_f(sdt, p.sa, if q.sa_len == 1 { 0 } else { r });
                let kb = ld_f(sdt, p.sb, if q.sb_len == 1 { 0 } else { c });
                let factor = round_to(sdt, round_to(sdt, ka * kb) / sy);
                let d = round_to(sdt, factor) * acc as f64 + *zy as f64;
                let v = (d.round_ties_even() as i128).clamp(q.lo_hi.0, q.lo_hi.1);
                st_i(q.out_dt, y, o, v);
            }
            (_, Factors::Float32 { scale, bias }) => {
                *(y as *mut f32).add(o) = acc as f32 * scale[c] + bias[c];
            }
            (IntOut::Float(t), Factors::Float { scale, bias }) => {
                let pick = |v: &[f64]| if v.len() == 1 { v[0] } else { v[c] };
                let sdt = t.s_dt;
                let mut v = round_to(sdt, round_to(sdt, acc as f64) * pick(scale));
                if !bias.is_empty() {
                    v = round_to(sdt, v + pick(bias));
                }
                st_f(sdt, y, o, v);
            }
            _ => st_i(DType::I32, y, o, acc as i128),
        }
    }

    /// # Safety
    /// Pointers hold the geometry's sizes; `y` `pairs.len()·m·n` outputs.
    pub unsafe fn run(&self, p: &IntMatMulArgs, y: *mut u8) -> Result<(), String> {
        if p.a.is_null() || p.b.is_null() {
            return Err("missing matrix input".into());
        }
        let f = self.factors(p)?;
        if let Some(packed) = &self.packed {
            return self.run_packed(packed, &f, p, y);
        }
        let requant = matches!(self.out, IntOut::Requant(_));
        if packable(self.a_dt, self.b_dt, self.k, requant) {
            // A B computed at run time (attention's products in QDQ graphs) is packed here,
            // once per B batch.
            let (k, n) = (self.k, self.n);
            let batches = self
                .pairs
                .iter()
                .map(|&(_, ib)| ib)
                .max()
                .map_or(0, |b| b + 1);
            let b = std::slice::from_raw_parts(p.b, batches * k * n);
            let packed = PackedQB::pack_batches(b, k, n, batches, self.b_dt == DType::I8)?;
            return self.run_packed(&packed, &f, p, y);
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
                    self.store(&f, p, y, bi * m * n + r * n + c, (r, c), acc as i32);
                }
            }
        }
        if let (IntOut::Float(t), Factors::Float32 { .. }) = (&self.out, &f) {
            activate(
                t.activation,
                std::slice::from_raw_parts_mut(y as *mut f32, self.pairs.len() * m * n),
            );
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

/// Output writer of the packed path.
struct PackedOut<'a> {
    mm: &'a IntMatMul,
    f: &'a Factors,
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
        match self.f {
            Factors::None => {
                for i in 0..rows {
                    let dst = (y as *mut i32).add(self.off + (r0 + i) * n + c0);
                    std::ptr::copy_nonoverlapping(acc.as_ptr().add(i * NR), dst, cols);
                }
            }
            Factors::Float32 { scale, bias } => {
                let (sc, bs) = (&scale[c0..c0 + cols], &bias[c0..c0 + cols]);
                for i in 0..rows {
                    let dst = (y as *mut f32).add(self.off + (r0 + i) * n + c0);
                    let dst = std::slice::from_raw_parts_mut(dst, cols);
                    let src = &acc[i * NR..i * NR + cols];
                    // Two roundings (product, then sum), as Mul then Add compute them.
                    for j in 0..cols {
                        dst[j] = src[j] as f32 * sc[j] + bs[j];
                    }
                    if let IntOut::Float(t) = &self.mm.out {
                        activate(t.activation, dst);
                    }
                }
            }
            f => {
                for i in 0..rows {
                    for j in 0..cols {
                        let (r, c) = (r0 + i, c0 + j);
                        let o = self.off + r * n + c;
                        self.mm.store(f, self.p, y, o, (r, c), acc[i * NR + j]);
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
        f: &Factors,
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
            let pb = packed.get(ib).ok_or("missing packed B batch")?;
            let pa = PackedQA::pack(p.a.add(ia * m * k), m, k, a_signed, pb.layout)?;
            let za = zps(self.za, p.za, pa.shift);
            let zb = zps(self.zb, p.zb, pb.shift);
            let out = PackedOut {
                mm: self,
                f,
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

    fn args(a: &[u8], b: &[u8], za: &[u8]) -> IntMatMulArgs {
        let null = std::ptr::null();
        IntMatMulArgs {
            a: a.as_ptr(),
            b: b.as_ptr(),
            za: za.as_ptr(),
            zb: null,
            sa: null,
            sb: null,
            sy: null,
            zy: null,
            bias: null,
        }
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
            out: IntOut::I32,
            packed: None,
        };
        let mut y = [0i32];
        unsafe { mm.run(&args(&a, &b, &za), y.as_mut_ptr() as _) }.unwrap();
        assert_eq!(y, [4]);
    }

    #[test]
    fn to_float_scales_each_column_then_adds_the_bias() {
        // A = [[3, 5]] (za 1), B = [[1, 2], [3, 4]] i8: sums [2·1 + 4·3, 2·2 + 4·4] = [14, 20].
        let a = [3u8, 5];
        let b = [1u8, 2, 3, 4];
        let za = [1u8];
        let sa = [0.5f32];
        let sb = [2.0f32, 0.25];
        let bias = [1.0f32, -1.0];
        let mut mm = IntMatMul {
            m: 1,
            k: 2,
            n: 2,
            pairs: vec![(0, 0)],
            a_dt: DType::U8,
            b_dt: DType::I8,
            za: Some((DType::U8, 1)),
            zb: None,
            out: IntOut::Float(ToFloat {
                s_dt: DType::F32,
                sb_len: 2,
                bias_len: 2,
                activation: Activation::Linear,
            }),
            packed: None,
        };
        let mut p = args(&a, &b, &za);
        p.sa = sa.as_ptr() as _;
        p.sb = sb.as_ptr() as _;
        p.bias = bias.as_ptr() as _;
        let want = [14.0f32 * 1.0 + 1.0, 20.0 * 0.125 - 1.0];
        let mut y = [0f32; 2];
        unsafe { mm.run(&p, y.as_mut_ptr() as _) }.unwrap();
        assert_eq!(y, want);
        mm.packed = Some(vec![PackedQB::pack(&b, 2, 2, true).unwrap()]);
        let mut y = [0f32; 2];
        unsafe { mm.run(&p, y.as_mut_ptr() as _) }.unwrap();
        assert_eq!(y, want);
    }
}
