//! Row kernels over the last axis of f32 tensors: LayerNormalization (with γ/β), the
//! residual-add + norm of `AddNorm`, Softmax (max-subtract, exp, sum, scale) and sum/mean
//! reductions. Each row is cache-resident;
//! the loops work on 16-lane chunks so that the compiler vectorizes them, and run through
//! an AVX-512 or AVX2+FMA clone of the same code when the CPU has it. Rows are split over
//! the thread pool.

use super::par::{par_for, row_chunks, SendPtr};

/// Lanes per chunk: one AVX-512 register, two AVX2 ones.
const L: usize = 16;

#[inline(always)]
fn sum_lanes(acc: [f32; L]) -> f32 {
    // Pairwise, so the rounding does not depend on the row length's alignment.
    let mut a = acc;
    let mut w = L / 2;
    while w > 0 {
        for i in 0..w {
            a[i] += a[i + w];
        }
        w /= 2;
    }
    a[0]
}

#[inline(always)]
fn row_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            acc[i] += c[i];
        }
    }
    sum_lanes(acc) + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn row_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    sum_lanes(acc) + tail
}

#[inline(always)]
fn layer_norm_rows_impl(
    x: &[f32],
    y: &mut [f32],
    cols: usize,
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
) {
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let mean = row_sum(xr) / cols as f32;
        let var = row_sq_dev(xr, mean) / cols as f32;
        let inv = 1.0 / (var + eps).sqrt();
        match beta {
            Some(b) => {
                for j in 0..cols {
                    yr[j] = (xr[j] - mean) * inv * gamma[j] + b[j];
                }
            }
            None => {
                for j in 0..cols {
                    yr[j] = (xr[j] - mean) * inv * gamma[j];
                }
            }
        }
    }
}

/// `s = (x + bias) + r` (the bias row, if any, repeats every `cols`).
#[inline(always)]
fn add_rows_impl(x: &[f32], r: &[f32], bias: Option<&[f32]>, s: &mut [f32], cols: usize) {
    match bias {
        Some(b) => {
            for ((xr, rr), sr) in x
                .chunks_exact(cols)
                .zip(r.chunks_exact(cols))
                .zip(s.chunks_exact_mut(cols))
            {
                for j in 0..cols {
                    sr[j] = (xr[j] + b[j]) + rr[j];
                }
            }
        }
        None => {
            for ((xv, rv), sv) in x.iter().zip(r).zip(s.iter_mut()) {
                *sv = *xv + *rv;
            }
        }
    }
}

#[inline(always)]
fn rms_norm_rows_impl(x: &[f32], y: &mut [f32], cols: usize, gamma: &[f32], eps: f32) {
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let ms = row_sq_dev(xr, 0.0) / cols as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for j in 0..cols {
            yr[j] = xr[j] * inv * gamma[j];
        }
    }
}

/// `e^x` for `x ≤ 0` region use (valid on all of f32; underflows to 0 below -87.3):
/// Cephes' range reduction and degree-6 polynomial, branch-free so that it vectorizes.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n from the bits of n + 1.5·2²³ (n is an integer in [-126, 128] here): no float →
    // int conversion, which does not vectorize as well.
    let bits = (n + 12_582_912.0)
        .to_bits()
        .wrapping_sub(0x4B40_0000)
        .wrapping_add(127)
        << 23;
    e * f32::from_bits(bits)
}

#[inline(always)]
fn softmax_rows_impl(x: &[f32], y: &mut [f32], cols: usize) {
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let mut mx = [f32::NEG_INFINITY; L];
        let mut chunks = xr.chunks_exact(L);
        for c in &mut chunks {
            for i in 0..L {
                // A plain compare (vmaxps): a NaN here still makes its row NaN below.
                mx[i] = if c[i] > mx[i] { c[i] } else { mx[i] };
            }
        }
        let m = chunks.remainder().iter().fold(
            mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
            |a, &b| a.max(b),
        );
        // Rows holding NaN or ±inf give NaN through `x - m`, as in the reference.
        for j in 0..cols {
            yr[j] = exp_approx(xr[j] - m);
        }
        let s = row_sum(yr);
        let inv = 1.0 / s;
        for v in yr.iter_mut() {
            *v *= inv;
        }
    }
}

#[inline(always)]
fn reduce_rows_impl(x: &[f32], y: &mut [f32], cols: usize, scale: f32) {
    for (xr, yv) in x.chunks_exact(cols).zip(y.iter_mut()) {
        *yv = row_sum(xr) * scale;
    }
}

multiversion!(pub(crate) layer_norm_rows, layer_norm_rows_impl, (x: &[f32], y: &mut [f32], cols: usize, gamma: &[f32], beta: Option<&[f32]>, eps: f32));
multiversion!(pub(crate) rms_norm_rows, rms_norm_rows_impl, (x: &[f32], y: &mut [f32], cols: usize, gamma: &[f32], eps: f32));
multiversion!(pub(crate) add_rows, add_rows_impl, (x: &[f32], r: &[f32], bias: Option<&[f32]>, s: &mut [f32], cols: usize));
multiversion!(pub(crate) softmax_rows, softmax_rows_impl, (x: &[f32], y: &mut [f32], cols: usize));
multiversion!(pub(crate) reduce_rows, reduce_rows_impl, (x: &[f32], y: &mut [f32], cols: usize, scale: f32));

/// Rows per task: enough work (≥ 16k elements) to pay for the hand-off.
fn min_rows(cols: usize) -> usize {
    (16 * 1024 / cols.max(1)).max(1)
}

/// Runs `f(x_rows, y_rows)` over row chunks of `x` (`rows × in_cols`) and `y`
/// (`rows × out_cols`).
///
/// # Safety
/// `x` addresses `rows·in_cols` readable floats, `y` `rows·out_cols` writable ones, and the
/// two do not overlap.
unsafe fn split_rows(
    x: *const f32,
    y: *mut f32,
    rows: usize,
    in_cols: usize,
    out_cols: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) {
    let chunks = row_chunks(rows, min_rows(in_cols), 1);
    let (xp, yp) = (SendPtr(x as *mut f32), SendPtr(y));
    par_for(chunks.len(), |t| {
        let (r0, n) = chunks[t];
        // SAFETY: chunks are disjoint row ranges inside the buffers (caller's contract).
        let (xs, ys) = unsafe {
            (
                std::slice::from_raw_parts(xp.get().add(r0 * in_cols), n * in_cols),
                std::slice::from_raw_parts_mut(yp.get().add(r0 * out_cols), n * out_cols),
            )
        };
        f(xs, ys);
    });
}

/// LayerNormalization of `rows × cols` with `gamma`/`beta` of `cols` elements.
///
/// # Safety
/// As `split_rows`; `gamma` (and `beta` when not null) address `cols` floats.
pub unsafe fn layer_norm(
    x: *const f32,
    y: *mut f32,
    rows: usize,
    cols: usize,
    gamma: *const f32,
    beta: *const f32,
    eps: f32,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let g = std::slice::from_raw_parts(gamma, cols);
    let b = (!beta.is_null()).then(|| std::slice::from_raw_parts(beta, cols));
    split_rows(x, y, rows, cols, cols, |xs, ys| {
        layer_norm_rows(xs, ys, cols, g, b, eps)
    });
}

/// RMSNormalization of `rows × cols` with `gamma` of `cols` elements:
/// `y = x / sqrt(mean(x²) + eps) · gamma`.
///
/// # Safety
/// As `split_rows`; `gamma` addresses `cols` floats.
pub unsafe fn rms_norm(
    x: *const f32,
    y: *mut f32,
    rows: usize,
    cols: usize,
    gamma: *const f32,
    eps: f32,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let g = std::slice::from_raw_parts(gamma, cols);
    split_rows(x, y, rows, cols, cols, |xs, ys| {
        rms_norm_rows(xs, ys, cols, g, eps)
    });
}

/// `Op::AddNorm` on f32 rows: `sum = (x + bias) + residual`, then LayerNorm (γ, β) or
/// RMSNorm (γ) of each row of the sum; the sum is written out when asked for (a Pre-LN
/// residual stream), else kept in a per-task scratch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AddNormRows {
    pub rms: bool,
    pub rows: usize,
    pub cols: usize,
    pub eps: f32,
    pub has_beta: bool,
    pub has_bias: bool,
    pub write_sum: bool,
}

impl AddNormRows {
    /// # Safety
    /// `ins` = x, residual, gamma, beta (if `has_beta`), bias (if `has_bias`); `outs` = y,
    /// sum (if `write_sum`); all sized by the geometry; outputs overlap no input.
    pub unsafe fn run(&self, ins: &[*const u8], outs: &[*mut u8]) -> Result<(), String> {
        let (rows, cols) = (self.rows, self.cols);
        let want = 3 + self.has_beta as usize + self.has_bias as usize;
        if ins.len() != want || outs.len() != 1 + self.write_sum as usize {
            return Err(format!("AddNorm takes {want} inputs, got {}", ins.len()));
        }
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let f = |p: *const u8| SendPtr(p as *mut f32);
        let (x, r) = (f(ins[0]), f(ins[1]));
        let gamma = std::slice::from_raw_parts(ins[2] as *const f32, cols);
        let beta = self
            .has_beta
            .then(|| std::slice::from_raw_parts(ins[3] as *const f32, cols));
        let bias = self
            .has_bias
            .then(|| std::slice::from_raw_parts(ins[want - 1] as *const f32, cols));
        let y = SendPtr(outs[0] as *mut f32);
        let sum = self.write_sum.then(|| SendPtr(outs[1] as *mut f32));
        let chunks = row_chunks(rows, min_rows(cols), 1);
        par_for(chunks.len(), |t| {
            let (r0, n) = chunks[t];
            let span = |p: SendPtr<f32>| (p.get().wrapping_add(r0 * cols), n * cols);
            // SAFETY: disjoint row ranges of buffers sized by the geometry.
            unsafe {
                let (xp, len) = span(x);
                let xs = std::slice::from_raw_parts(xp, len);
                let rs = std::slice::from_raw_parts(span(r).0, len);
                let ys = std::slice::from_raw_parts_mut(span(y).0, len);
                let mut scratch = Vec::new();
                let ss: &mut [f32] = match sum {
                    Some(s) => std::slice::from_raw_parts_mut(span(s).0, len),
                    None => {
                        scratch.resize(len, 0.0);
                        &mut scratch
                    }
                };
                add_rows(xs, rs, bias, ss, cols);
                if self.rms {
                    rms_norm_rows(ss, ys, cols, gamma, self.eps);
                } else {
                    layer_norm_rows(ss, ys, cols, gamma, beta, self.eps);
                }
            }
        });
        Ok(())
    }
}

/// Softmax of each row of `rows × cols`.
///
/// # Safety
/// As `split_rows`.
pub unsafe fn softmax(x: *const f32, y: *mut f32, rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::vmath512::available() {
        // The attention kernel's AVX-512 row (FMA exp, in-register reductions): SmolLM2's
        // 128-key softmaxes take 2.2 ms per run (1 thread), 3.1 ms with the
        // compiler-vectorised rows below.
        split_rows(x, y, rows, cols, cols, |xs, ys| {
            for (xr, yr) in xs.chunks_exact(cols).zip(ys.chunks_exact_mut(cols)) {
                yr.copy_from_slice(xr);
                // SAFETY: AVX-512F is present (checked above).
                unsafe { super::vmath512::softmax_row(yr) };
            }
        });
        return;
    }
    split_rows(x, y, rows, cols, cols, |xs, ys| softmax_rows(xs, ys, cols));
}

/// Softmax of one row in place with the portable (compiler-vectorised) kernel: the
/// reference for the AVX-512 row's tests.
pub fn softmax_row_portable(row: &mut [f32]) {
    let x = row.to_vec();
    let n = row.len();
    if n > 0 {
        softmax_rows_impl(&x, row, n);
    }
}

/// Softmax of one row in place (used by the attention kernel).
pub fn softmax_row_in_place(row: &mut [f32]) {
    let x = row.to_vec();
    let n = row.len();
    if n > 0 {
        softmax_rows(&x, row, n);
    }
}

/// `y[r] = scale · Σ_j x[r, j]` (ReduceSum with scale 1, ReduceMean with 1/cols).
///
/// # Safety
/// As `split_rows` with one output per row.
pub unsafe fn reduce_sum(x: *const f32, y: *mut f32, rows: usize, cols: usize, scale: f32) {
    if rows == 0 {
        return;
    }
    if cols == 0 {
        let v = if scale.is_finite() { 0.0 } else { f32::NAN };
        std::slice::from_raw_parts_mut(y, rows).fill(v);
        return;
    }
    split_rows(x, y, rows, cols, 1, |xs, ys| {
        reduce_rows(xs, ys, cols, scale)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..20000 {
            let x = -87.0 + i as f32 * 0.0044;
            let got = exp_approx(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!(exp_approx(-200.0), 0.0f32.max(exp_approx(-200.0)));
    }

    #[test]
    fn layer_norm_of_a_hand_checked_row() {
        // [1, 2, 3, 4]: mean 2.5, var 1.25, inv std 1/sqrt(1.25).
        let x = [1f32, 2.0, 3.0, 4.0];
        let mut y = [0f32; 4];
        let (g, b) = ([1f32, 1.0, 2.0, 2.0], [0f32, 1.0, 0.0, 1.0]);
        unsafe {
            layer_norm(
                x.as_ptr(),
                y.as_mut_ptr(),
                1,
                4,
                g.as_ptr(),
                b.as_ptr(),
                0.0,
            )
        };
        let s = 1.25f32.sqrt();
        let want = [-1.5 / s, -0.5 / s + 1.0, 1.0 / s, 3.0 / s + 1.0];
        for (a, w) in y.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn rms_norm_of_hand_checked_rows() {
        // Row [3, 4]: mean square 12.5; row [0, 0] with eps 0.5: inv 1/sqrt(0.5), y = 0.
        let x = [3f32, 4.0, 0.0, 0.0];
        let mut y = [9f32; 4];
        let g = [1f32, 2.0];
        unsafe { rms_norm(x.as_ptr(), y.as_mut_ptr(), 2, 2, g.as_ptr(), 0.5) };
        let inv = 1.0 / 13f32.sqrt();
        let want = [3.0 * inv, 8.0 * inv, 0.0, 0.0];
        for (a, w) in y.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn exp_approx_over_its_whole_range() {
        // Both ends of the clamp (2^n from -126 to 127) and points in between.
        let mut x = -87.3f32;
        while x <= 88.3 {
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 2e-7 * want,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.173;
        }
        assert!(exp_approx(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_approx(f32::NAN).is_nan());
        assert_eq!(exp_approx(0.0), 1.0);
    }

    #[test]
    fn softmax_and_mean_of_hand_checked_rows() {
        let x = [0f32, 0.0, 1000.0, 1000.0];
        let mut y = [0f32; 4];
        unsafe { softmax(x.as_ptr(), y.as_mut_ptr(), 2, 2) };
        assert_eq!(y, [0.5; 4]);
        let mut m = [0f32; 2];
        let x = [1f32, 2.0, 3.0, 5.0, 7.0, 9.0];
        unsafe { reduce_sum(x.as_ptr(), m.as_mut_ptr(), 2, 3, 1.0 / 3.0) };
        assert_eq!(m, [2.0, 7.0]);
    }
}
