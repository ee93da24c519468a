//! AVX-512 vector math with explicit FMA: `exp16`, `erf16`, the attention kernel's row
//! softmax (`row = exp(scale·row + mask − max)` in two passes, in-register max/sum
//! reductions, masked tails) and erf-GELU in place. The same polynomials as `epilogue`'s
//! portable versions, which the compiler vectorises but cannot contract into FMAs; the
//! portable softmax's per-row scalar reductions cost as much as its exps on 128-key rows.
//! Full vectors use plain stores: masked stores are slow on AMD cores.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the functions of this module may be called on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// e^x on 16 lanes, the same Cephes reduction and polynomial as `epilogue::exp` (clamped to
/// [-87, 88]), evaluated with FMA. NaN stays NaN: `vmaxps`/`vminps` return their second
/// operand when either is NaN, so `x` goes second in the clamps.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_set1_ps(88.0),
        _mm512_max_ps(_mm512_set1_ps(-87.0), x),
    );
    let big = _mm512_set1_ps(12_582_912.0);
    let t = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), big);
    let n = _mm512_sub_ps(t, big);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_fmadd_ps(
        _mm512_set1_ps(1.987_569_1e-4),
        r,
        _mm512_set1_ps(1.398_199_9e-3),
    );
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
    let r2 = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    let bits = _mm512_slli_epi32::<23>(_mm512_sub_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(0x4B40_0000 - 127),
    ));
    _mm512_mul_ps(e, _mm512_castsi512_ps(bits))
}

/// erf on 16 lanes: `epilogue::erf`'s rational approximation (Eigen's), evaluated with FMA.
/// NaN stays NaN (as in [`exp16`], `x` goes second in the clamps).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn erf16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_set1_ps(4.0), _mm512_max_ps(_mm512_set1_ps(-4.0), x));
    let x2 = _mm512_mul_ps(x, x);
    let c = _mm512_set1_ps;
    let mut p = _mm512_fmadd_ps(x2, c(-2.726_142_3e-10), c(2.770_681_4e-8));
    p = _mm512_fmadd_ps(x2, p, c(-2.101_024e-6));
    p = _mm512_fmadd_ps(x2, p, c(-5.692_506_4e-5));
    p = _mm512_fmadd_ps(x2, p, c(-7.349_906e-4));
    p = _mm512_fmadd_ps(x2, p, c(-2.954_600_2e-3));
    p = _mm512_fmadd_ps(x2, p, c(-1.609_603_3e-2));
    p = _mm512_mul_ps(p, x);
    let mut q = _mm512_fmadd_ps(x2, c(-1.456_607_2e-5), c(-2.133_740_6e-4));
    q = _mm512_fmadd_ps(x2, q, c(-1.682_827e-3));
    q = _mm512_fmadd_ps(x2, q, c(-7.373_329e-3));
    q = _mm512_fmadd_ps(x2, q, c(-1.426_474e-2));
    _mm512_div_ps(p, q)
}

/// `y = 0.5·y·(1 + erf(y/√2))` in place.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn gelu_erf(y: &mut [f32]) {
    let n = y.len();
    let p = y.as_mut_ptr();
    let full = n / 16 * 16;
    let gelu = |v: __m512| {
        let e = erf16(_mm512_mul_ps(
            v,
            _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
        ));
        let h = _mm512_mul_ps(v, _mm512_set1_ps(0.5));
        _mm512_fmadd_ps(h, e, h)
    };
    let mut j = 0;
    while j < full {
        _mm512_storeu_ps(p.add(j), gelu(_mm512_loadu_ps(p.add(j))));
        j += 16;
    }
    if full < n {
        let k: __mmask16 = ((1u32 << (n - full)) - 1) as __mmask16;
        _mm512_mask_storeu_ps(p.add(full), k, gelu(_mm512_maskz_loadu_ps(k, p.add(full))));
    }
}

/// `row = exp(scale·row + mask − max)` where `mask` (when given) is contiguous; returns 1/Σ.
/// A row whose every entry is `-inf` becomes NaN (as in the reference).
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); `mask`, when given, holds `row.len()` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn scaled_softmax_row(row: &mut [f32], scale: f32, mask: Option<&[f32]>) -> f32 {
    let n = row.len();
    let x = row.as_mut_ptr();
    let full = n / 16 * 16;
    let tail: __mmask16 = ((1u32 << (n - full)) - 1) as __mmask16;
    let sc = _mm512_set1_ps(scale);
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    // Pass 1: scale, add the mask, running max. Full vectors use plain loads and stores
    // (masked stores are slow on AMD cores); only the tail is masked.
    let scaled = |j: usize, k: __mmask16| {
        let v = _mm512_maskz_loadu_ps(k, x.add(j));
        match mask {
            Some(m) => _mm512_fmadd_ps(v, sc, _mm512_maskz_loadu_ps(k, m.as_ptr().add(j))),
            None => _mm512_mul_ps(v, sc),
        }
    };
    let mut j = 0;
    while j < full {
        let v = scaled(j, 0xFFFF);
        _mm512_storeu_ps(x.add(j), v);
        vmax = _mm512_max_ps(vmax, v);
        j += 16;
    }
    if full < n {
        let v = scaled(full, tail);
        _mm512_mask_storeu_ps(x.add(full), tail, v);
        vmax = _mm512_mask_max_ps(vmax, tail, vmax, v);
    }
    let max = _mm512_reduce_max_ps(vmax);
    if max == f32::NEG_INFINITY {
        row.fill(f32::NAN);
        return f32::NAN;
    }
    // Pass 2: exponentiate and sum, two vectors per step (two independent chains).
    let vm = _mm512_set1_ps(max);
    let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut j = 0;
    while j + 32 <= full {
        let a = exp16(_mm512_sub_ps(_mm512_loadu_ps(x.add(j)), vm));
        let b = exp16(_mm512_sub_ps(_mm512_loadu_ps(x.add(j + 16)), vm));
        _mm512_storeu_ps(x.add(j), a);
        _mm512_storeu_ps(x.add(j + 16), b);
        s0 = _mm512_add_ps(s0, a);
        s1 = _mm512_add_ps(s1, b);
        j += 32;
    }
    if j < full {
        let a = exp16(_mm512_sub_ps(_mm512_loadu_ps(x.add(j)), vm));
        _mm512_storeu_ps(x.add(j), a);
        s0 = _mm512_add_ps(s0, a);
    }
    if full < n {
        let a = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x.add(full)), vm));
        _mm512_mask_storeu_ps(x.add(full), tail, a);
        s1 = _mm512_mask_add_ps(s1, tail, s1, a);
    }
    let vsum = _mm512_add_ps(s0, s1);
    1.0 / _mm512_reduce_add_ps(vsum)
}

/// Softmax of one row in place: [`scaled_softmax_row`] with scale 1, then the division
/// by the sum. A row holding NaN or +inf, or only -inf, becomes NaN (as in the reference).
///
/// # Safety
/// The CPU has AVX-512F ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn softmax_row(row: &mut [f32]) {
    let inv = _mm512_set1_ps(scaled_softmax_row(row, 1.0, None));
    let n = row.len();
    let x = row.as_mut_ptr();
    let full = n / 16 * 16;
    let mut j = 0;
    while j < full {
        _mm512_storeu_ps(x.add(j), _mm512_mul_ps(_mm512_loadu_ps(x.add(j)), inv));
        j += 16;
    }
    if full < n {
        let k: __mmask16 = ((1u32 << (n - full)) - 1) as __mmask16;
        let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x.add(full)), inv);
        _mm512_mask_storeu_ps(x.add(full), k, v);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn nan_survives_exp16_and_erf16() {
        if !available() {
            return;
        }
        let mut v = [0.5f32; 16];
        v[3] = f32::NAN;
        v[7] = f32::INFINITY;
        v[9] = f32::NEG_INFINITY;
        let (mut e, mut r) = ([0f32; 16], [0f32; 16]);
        // SAFETY: AVX-512F checked above; 16 elements each.
        unsafe {
            _mm512_storeu_ps(e.as_mut_ptr(), exp16(_mm512_loadu_ps(v.as_ptr())));
            _mm512_storeu_ps(r.as_mut_ptr(), erf16(_mm512_loadu_ps(v.as_ptr())));
        }
        assert!(e[3].is_nan() && r[3].is_nan(), "{e:?} {r:?}");
        assert!(e[7] > 1e38 && e[9] < 1e-37, "{e:?}");
        assert!(r[7] > 0.9999 && r[9] < -0.9999, "{r:?}");
        assert!(!e[0].is_nan() && !r[0].is_nan());
    }

    #[test]
    fn softmax_rows_match_the_portable_kernel_and_its_special_values() {
        if !available() {
            return;
        }
        let rows: Vec<Vec<f32>> = vec![
            (0..37).map(|i| (i as f32 * 0.37).sin() * 4.0).collect(),
            (0..16).map(|i| i as f32 - 100.0).collect(),
            vec![1.0, f32::NAN, 2.0],
            vec![1.0, f32::INFINITY, 2.0],
            vec![f32::NEG_INFINITY; 5],
            vec![0.0, f32::NEG_INFINITY, 1.0],
            vec![3.0],
        ];
        for x in rows {
            let mut want = x.clone();
            crate::kernels::rows::softmax_row_portable(&mut want);
            let mut got = x.clone();
            // SAFETY: AVX-512F checked above.
            unsafe { softmax_row(&mut got) };
            for (g, w) in got.iter().zip(&want) {
                let same = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-6 * w.abs().max(1e-30);
                assert!(same, "{x:?}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn exp16_matches_f64_exp() {
        if !available() {
            return;
        }
        let xs: Vec<f32> = (0..16 * 200).map(|i| -87.0 + i as f32 * 0.0547).collect();
        for c in xs.chunks(16) {
            let mut out = [0f32; 16];
            // SAFETY: AVX-512F checked above; 16 elements each.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp16(_mm512_loadu_ps(c.as_ptr()))) };
            for (x, y) in c.iter().zip(out) {
                let want = (*x as f64).exp();
                let rel = ((y as f64 - want) / want).abs();
                assert!(rel < 2e-7, "exp({x}) = {y}, want {want} (rel {rel:e})");
            }
        }
    }

    #[test]
    fn gelu_erf_matches_the_portable_version() {
        if !available() {
            return;
        }
        for n in [1usize, 15, 16, 33, 1000] {
            let x: Vec<f32> = (0..n)
                .map(|i| (i as f32 - n as f32 / 2.0) * 9.0 / n as f32)
                .collect();
            let mut fast = x.clone();
            // SAFETY: AVX-512F checked above.
            unsafe { gelu_erf(&mut fast) };
            for (v, f) in x.iter().zip(&fast) {
                let want = 0.5
                    * *v as f64
                    * (1.0 + crate::kernels::epilogue::erf(*v / 2f32.sqrt()) as f64);
                // erf's absolute error bound (2e-7), scaled by 0.5·|x|, plus rounding.
                let tol = 2e-7 * v.abs() as f64 + 2e-7 * want.abs();
                assert!(
                    (*f as f64 - want).abs() <= tol,
                    "gelu({v}) = {f}, want {want}"
                );
            }
        }
    }

    #[test]
    fn softmax_row_matches_f64_on_odd_lengths_and_masks() {
        if !available() {
            return;
        }
        for n in [1usize, 7, 16, 17, 33, 128, 131] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 29) as f32 - 14.0) / 3.0)
                .collect();
            let m: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 5 == 3 {
                        f32::NEG_INFINITY
                    } else {
                        (i % 3) as f32
                    }
                })
                .collect();
            for mask in [None, Some(&m[..])] {
                let mut row = x.clone();
                // SAFETY: AVX-512F checked above; the mask has the row's length.
                let inv = unsafe { scaled_softmax_row(&mut row, 0.7, mask) };
                let z: Vec<f64> = (0..n)
                    .map(|i| x[i] as f64 * 0.7 + mask.map_or(0.0, |m| m[i] as f64))
                    .collect();
                let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|v| (v - mx).exp()).sum();
                for i in 0..n {
                    let want = (z[i] - mx).exp() / sum;
                    let got = row[i] as f64 * inv as f64;
                    assert!(
                        (got - want).abs() <= 1e-6 * want.max(1e-30) + 1e-12,
                        "n={n} i={i}"
                    );
                }
            }
        }
        let mut dead = vec![f32::NEG_INFINITY; 20];
        // SAFETY: as above.
        let inv = unsafe { scaled_softmax_row(&mut dead, 1.0, None) };
        assert!(inv.is_nan() && dead.iter().all(|v| v.is_nan()));
    }
}
