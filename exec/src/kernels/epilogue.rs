//! `FusedMatMul` post-ops applied to a finished block of GEMM output rows while it is still
//! in cache: the activation (ReLU, erf-/tanh-GELU, SiLU) and the residual add, in branch-free
//! loops that the compiler vectorises at full AVX-512 / AVX2 width (one clone per ISA,
//! picked at run time). erf uses the rational approximation of Eigen's
//! `generic_fast_erf_float` (|error| < 2e-7 on [-4, 4], ±1 beyond); exp uses the Cephes
//! `expf` range reduction and polynomial (relative error < 2e-7).

use super::par::SendPtr;
use whittle_ir::{Activation, GeluApprox};

/// What happens to each finished block of rows after the bias: `act`, then `+ residual`.
#[derive(Clone, Copy, Debug)]
pub struct Finish {
    pub act: Activation,
    /// The residual laid out like the output block (row stride = output row stride), or
    /// `None`.
    pub residual: Option<SendPtr<f32>>,
}

impl Finish {
    /// No post-ops.
    pub const NONE: Finish = Finish {
        act: Activation::Linear,
        residual: None,
    };

    /// Applies to rows `r0..r0+rows`, columns `j0..j0+cols` of `c` (row stride `ldc`; the
    /// residual has the same layout).
    ///
    /// # Safety
    /// `c` and the residual address that block; they do not overlap.
    pub unsafe fn apply_block(
        &self,
        c: *mut f32,
        ldc: usize,
        r0: usize,
        rows: usize,
        j0: usize,
        cols: usize,
    ) {
        if self.is_noop() {
            return;
        }
        for i in r0..r0 + rows {
            let y = std::slice::from_raw_parts_mut(c.add(i * ldc + j0), cols);
            activate(self.act, y);
            if let Some(r) = self.residual {
                let r = std::slice::from_raw_parts(r.get().add(i * ldc + j0) as *const f32, cols);
                add_assign(y, r);
            }
        }
    }

    /// Whether there is nothing to do.
    pub fn is_noop(&self) -> bool {
        self.act == Activation::Linear && self.residual.is_none()
    }

    /// The same post-ops for the output batch starting `offset` elements further.
    ///
    /// # Safety
    /// The residual must hold at least `offset` more elements.
    pub unsafe fn at(&self, offset: usize) -> Finish {
        Finish {
            act: self.act,
            residual: self.residual.map(|p| SendPtr(p.get().add(offset))),
        }
    }

    /// Applies to rows `r0..r0+rows` of the contiguous `· × n` matrix `c`.
    ///
    /// # Safety
    /// `c` (and the residual) address at least `(r0 + rows)·n` elements; they do not overlap.
    pub unsafe fn apply(&self, c: *mut f32, r0: usize, rows: usize, n: usize) {
        let y = std::slice::from_raw_parts_mut(c.add(r0 * n), rows * n);
        activate(self.act, y);
        if let Some(r) = self.residual {
            let r = std::slice::from_raw_parts(r.get().add(r0 * n) as *const f32, rows * n);
            add_assign(y, r);
        }
    }
}

/// Applies `act` in place.
pub fn activate(act: Activation, y: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Relu => relu(y),
        Activation::Gelu(GeluApprox::None) => {
            #[cfg(target_arch = "x86_64")]
            if super::vmath512::available() {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { super::vmath512::gelu_erf(y) };
            }
            gelu_erf(y)
        }
        Activation::Gelu(GeluApprox::Tanh) => gelu_tanh(y),
        Activation::Silu => silu(y),
    }
}

multiversion!(pub relu, relu_impl, (y: &mut [f32]));
multiversion!(pub gelu_erf, gelu_erf_impl, (y: &mut [f32]));
multiversion!(pub gelu_tanh, gelu_tanh_impl, (y: &mut [f32]));
multiversion!(pub silu, silu_impl, (y: &mut [f32]));
multiversion!(pub add_assign, add_assign_impl, (y: &mut [f32], r: &[f32]));

#[inline(always)]
fn relu_impl(y: &mut [f32]) {
    for v in y {
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

#[inline(always)]
fn add_assign_impl(y: &mut [f32], r: &[f32]) {
    for (v, x) in y.iter_mut().zip(r) {
        *v += *x;
    }
}

#[inline(always)]
fn gelu_erf_impl(y: &mut [f32]) {
    for v in y {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_tanh_impl(y: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    for v in y {
        let x = *v;
        *v = 0.5 * x * (1.0 + tanh(C * (x + 0.044715 * x * x * x)));
    }
}

#[inline(always)]
fn silu_impl(y: &mut [f32]) {
    for v in y {
        let x = *v;
        *v = x / (1.0 + exp(-x));
    }
}

/// `min(max(x, lo), hi)` as selects (NaN-agnostic, so it vectorises).
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// erf: odd rational approximation on [-4, 4] (Eigen `generic_fast_erf_float`).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = clamp(x, -4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906e-4;
    p = x2 * p + -2.954_600_2e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// e^x for x in [-87, 88] (clamped outside): Cephes `expf`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = clamp(x, -87.0, 88.0);
    // Round x·log2(e) to the nearest integer n: adding 1.5·2^23 leaves n in the low
    // mantissa bits of t (bit pattern 0x4B40_0000 + n), read back below without a
    // float → int conversion, so the loop stays vectorised.
    let t = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4 * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n: the biased exponent n + 127 shifted into place.
    e * f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23)
}

/// tanh(x) = 1 − 2/(e^{2x} + 1).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // The Maclaurin series, accurate in f64 for |x| ≤ 4; beyond, 1 − erf(|x|) < 2e-8.
        if x.abs() > 4.0 {
            return x.signum();
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut k = 0.0;
        while term.abs() > 1e-17 || k < 5.0 {
            sum += term / (2.0 * k + 1.0);
            k += 1.0;
            term *= -x * x / k;
            if k > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let want = erf64(x as f64);
            assert!((erf(x) as f64 - want).abs() < 5e-7, "erf({x})");
        }
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            let want = (x as f64).exp();
            assert!(
                ((exp(x) as f64 - want) / want).abs() < 5e-7,
                "exp({x}) = {} vs {want}",
                exp(x)
            );
        }
        assert!((tanh(0.5) as f64 - 0.5f64.tanh()).abs() < 1e-7);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }

    #[test]
    fn activations_match_their_formulas() {
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.2).collect();
        let check = |act: Activation, f: &dyn Fn(f64) -> f64| {
            let mut y = xs.clone();
            activate(act, &mut y);
            for (x, v) in xs.iter().zip(&y) {
                let want = f(*x as f64);
                assert!(
                    (*v as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{act:?}({x}) = {v}, want {want}"
                );
            }
        };
        check(Activation::Relu, &|x| x.max(0.0));
        check(Activation::Gelu(GeluApprox::None), &|x| {
            0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2))
        });
        check(Activation::Gelu(GeluApprox::Tanh), &|x| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        });
        check(Activation::Silu, &|x| x / (1.0 + (-x).exp()));
    }

    #[test]
    fn finish_adds_the_residual_rows() {
        let mut c = vec![-1.0f32, 2.0, -3.0, 4.0];
        let mut r = vec![10.0f32, 20.0, 30.0, 40.0];
        let f = Finish {
            act: Activation::Relu,
            residual: Some(SendPtr(r.as_mut_ptr())),
        };
        // SAFETY: two rows of two.
        unsafe { f.apply(c.as_mut_ptr(), 1, 1, 2) };
        assert_eq!(c, vec![-1.0, 2.0, 30.0, 44.0]);
    }
}
