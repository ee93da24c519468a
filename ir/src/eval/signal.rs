//! Signal ops: DFT, STFT, the Hann / Hamming / Blackman windows and MelWeightMatrix,
//! following the ONNX reference (`op_dft.py`, `op_stft.py`, `op_*_window.py`,
//! `op_mel_weight_matrix.py`). Transforms are direct O(n²) sums in f64 with exact twiddle
//! indices (`j·k mod n`), clear rather than fast.

use super::util::scalar_i64;
use super::{opt, req, OpResult};
use crate::limits::{numel, try_vec};
use crate::{DType, Tensor, WindowKind};
use std::f64::consts::PI;

/// `e^{sign·2πi·m/n}` for every `m < n` (allocated against the memory budget).
fn twiddles(n: usize, sign: f64) -> Result<Vec<(f64, f64)>, String> {
    let mut tw = try_vec(n, (0.0, 0.0), "DFT twiddles")?;
    for (m, t) in tw.iter_mut().enumerate() {
        let a = sign * 2.0 * PI * m as f64 / n as f64;
        *t = (a.cos(), a.sin());
    }
    Ok(tw)
}

/// `j·k mod n` without overflow.
fn mul_mod(j: usize, k: usize, n: usize) -> usize {
    ((j as u128 * k as u128) % n as u128) as usize
}

/// A scalar (or one-element) integer input as a positive length.
fn length_input(t: &Tensor, what: &str) -> Result<usize, String> {
    if !t.dtype().is_int() {
        return Err(format!("{what} must be an integer, got {}", t.dtype()));
    }
    let v = scalar_i64(t, what)?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{what} must be positive, got {v}"))
}

/// The geometry of a DFT: signal axis, input length along it, transform length and output
/// length along it, and the output's last dim (1 real, 2 complex).
pub(crate) struct DftPlan {
    pub axis: usize,
    pub n: usize,
    pub out_len: usize,
    pub out_c: usize,
}

/// Plans a DFT of an input of `shape` (last dim 1 or 2); `dft_length`/`axis` are the
/// optional input values (`axis` defaults to -2, i.e. the last signal axis).
pub(crate) fn dft_plan(
    shape: &[usize],
    dft_length: Option<i64>,
    axis: Option<i64>,
    inverse: bool,
    onesided: bool,
) -> Result<DftPlan, String> {
    let r = shape.len();
    if r < 2 || !(shape[r - 1] == 1 || shape[r - 1] == 2) {
        return Err(format!(
            "input shape {shape:?} must have rank >= 2 and a last dim of 1 (real) or 2 (complex)"
        ));
    }
    let a = axis.unwrap_or(-2);
    let ax = if a < 0 { a + r as i64 } else { a };
    if ax < 0 || ax >= r as i64 - 1 {
        return Err(format!(
            "axis {a} must name a signal axis of the input shape {shape:?} (not the last)"
        ));
    }
    let axis = ax as usize;
    let len = shape[axis];
    let n = match dft_length {
        Some(v) => usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("dft_length must be positive, got {v}"))?,
        None if inverse && onesided => 2 * len.saturating_sub(1),
        None => len,
    };
    if n == 0 {
        return Err(format!("the transform length along axis {axis} is 0"));
    }
    let (out_len, out_c) = match (inverse, onesided) {
        (false, true) => (n / 2 + 1, 2),
        (true, true) => (n, 1),
        _ => (n, 2),
    };
    Ok(DftPlan {
        axis,
        n,
        out_len,
        out_c,
    })
}

fn dft_inputs(ins: &[Option<&Tensor>]) -> Result<(Option<i64>, Option<i64>), String> {
    let dl = match opt(ins, 1) {
        Some(t) if !t.is_empty() => Some(length_input(t, "dft_length")? as i64),
        _ => None,
    };
    let axis = match opt(ins, 2) {
        Some(t) if !t.is_empty() => {
            if !t.dtype().is_int() {
                return Err(format!("axis must be an integer, got {}", t.dtype()));
            }
            Some(scalar_i64(t, "axis")?)
        }
        _ => None,
    };
    Ok((dl, axis))
}

/// `input [..., 1|2], dft_length?, axis? → output`: the (inverse) discrete Fourier
/// transform along `axis`, zero-padded or truncated to `dft_length`. `onesided` keeps the
/// first `n/2 + 1` bins of a forward transform; an inverse onesided transform takes the
/// half spectrum of a real signal and returns that real signal (`irfft`).
pub fn dft(inverse: bool, onesided: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    if !x.dtype().is_float() {
        return Err(format!("input must be floating point, got {}", x.dtype()));
    }
    let (dl, axis) = dft_inputs(ins)?;
    let shape = x.shape();
    let p = dft_plan(shape, dl, axis, inverse, onesided)?;
    let r = shape.len();
    let c = shape[r - 1];
    let len = shape[p.axis];
    let outer: usize = shape[..p.axis].iter().product();
    let inner: usize = shape[p.axis + 1..r - 1].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape[p.axis] = p.out_len;
    out_shape[r - 1] = p.out_c;
    let total = numel(&out_shape).ok_or("the output shape overflows")?;
    let xv = x.to_f64_vec();
    let n = p.n;
    let mut y = try_vec(total, 0.0f64, "DFT output")?;
    if total == 0 {
        return Ok(vec![Tensor::from_f64(x.dtype(), out_shape, &y)]);
    }
    let tw = twiddles(n, if inverse { 1.0 } else { -1.0 })?;
    let at = |o: usize, k: usize, i: usize| -> (f64, f64) {
        let base = ((o * len + k) * inner + i) * c;
        (xv[base], if c == 2 { xv[base + 1] } else { 0.0 })
    };
    for o in 0..outer {
        for i in 0..inner {
            for j in 0..p.out_len {
                let (mut re, mut im) = (0.0, 0.0);
                if inverse && onesided {
                    // Hermitian half spectrum → real signal (imaginary parts of the DC and
                    // Nyquist bins are ignored, as numpy's irfft).
                    let half = n / 2 + 1;
                    for k in 0..half.min(len) {
                        let (zr, zi) = at(o, k, i);
                        let (cr, ci) = tw[mul_mod(j, k, n)];
                        let edge = k == 0 || (n % 2 == 0 && k == n / 2);
                        if edge {
                            re += zr * cr;
                        } else {
                            re += 2.0 * (zr * cr - zi * ci);
                        }
                    }
                } else {
                    for k in 0..n.min(len) {
                        let (zr, zi) = at(o, k, i);
                        let (cr, ci) = tw[mul_mod(j, k, n)];
                        re += zr * cr - zi * ci;
                        im += zr * ci + zi * cr;
                    }
                }
                if inverse {
                    re /= n as f64;
                    im /= n as f64;
                }
                let base = ((o * p.out_len + j) * inner + i) * p.out_c;
                y[base] = re;
                if p.out_c == 2 {
                    y[base + 1] = im;
                }
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), out_shape, &y)])
}

/// The frame geometry of an STFT: `(frame_length, frames, bins)`.
pub(crate) fn stft_plan(
    shape: &[usize],
    frame_step: i64,
    window_len: Option<usize>,
    frame_length: Option<i64>,
    onesided: bool,
) -> Result<(usize, usize, usize), String> {
    if shape.len() != 3 || !(shape[2] == 1 || shape[2] == 2) {
        return Err(format!(
            "signal shape {shape:?} must be [batch, length, 1 (real) or 2 (complex)]"
        ));
    }
    let step = usize::try_from(frame_step)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("frame_step must be positive, got {frame_step}"))?;
    let fl = match (frame_length, window_len) {
        (Some(f), w) => {
            let f = usize::try_from(f)
                .ok()
                .filter(|&f| f > 0)
                .ok_or_else(|| format!("frame_length must be positive, got {f}"))?;
            if w.is_some_and(|w| w != f) {
                return Err(format!(
                    "window length {} differs from frame_length {f}",
                    w.unwrap_or(0)
                ));
            }
            f
        }
        (None, Some(w)) => w,
        (None, None) => shape[1],
    };
    if fl == 0 || fl > shape[1] {
        return Err(format!(
            "frame length {fl} must be positive and at most the signal length {}",
            shape[1]
        ));
    }
    let frames = 1 + (shape[1] - fl) / step;
    let bins = if onesided { fl / 2 + 1 } else { fl };
    Ok((fl, frames, bins))
}

/// `signal [B, L, 1|2], frame_step, window? [W], frame_length? → output [B, frames, bins, 2]`:
/// the DFT of every windowed frame `signal[b, f·step .. f·step + W]`.
pub fn stft(onesided: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "signal")?;
    let step = req(ins, 1, "frame_step")?;
    if !x.dtype().is_float() {
        return Err(format!("signal must be floating point, got {}", x.dtype()));
    }
    if !step.dtype().is_int() {
        return Err(format!(
            "frame_step must be an integer, got {}",
            step.dtype()
        ));
    }
    let window = opt(ins, 2);
    if let Some(w) = window {
        if w.rank() != 1 {
            return Err(format!("window must be 1-D, got shape {:?}", w.shape()));
        }
    }
    let fl_in = match opt(ins, 3) {
        Some(t) => Some(length_input(t, "frame_length")? as i64),
        None => None,
    };
    let (fl, frames, bins) = stft_plan(
        x.shape(),
        scalar_i64(step, "frame_step")?,
        window.map(|w| w.len()),
        fl_in,
        onesided,
    )?;
    let hop = scalar_i64(step, "frame_step")? as usize;
    let (b_n, len, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let out_shape = vec![b_n, frames, bins, 2];
    let total = numel(&out_shape).ok_or("the output shape overflows")?;
    let xv = x.to_f64_vec();
    let mut y = try_vec(total, 0.0f64, "STFT output")?;
    if total == 0 {
        return Ok(vec![Tensor::from_f64(x.dtype(), out_shape, &y)]);
    }
    let wv = match window {
        Some(w) => w.to_f64_vec(),
        None => try_vec(fl, 1.0, "STFT window")?,
    };
    let tw = twiddles(fl, -1.0)?;
    for b in 0..b_n {
        for f in 0..frames {
            for j in 0..bins {
                let (mut re, mut im) = (0.0, 0.0);
                for k in 0..fl {
                    let base = (b * len + f * hop + k) * c;
                    let (zr, zi) = (xv[base], if c == 2 { xv[base + 1] } else { 0.0 });
                    let (zr, zi) = (zr * wv[k], zi * wv[k]);
                    let (cr, ci) = tw[mul_mod(j, k, fl)];
                    re += zr * cr - zi * ci;
                    im += zr * ci + zi * cr;
                }
                let o = ((b * frames + f) * bins + j) * 2;
                y[o] = re;
                y[o + 1] = im;
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), out_shape, &y)])
}

/// `size → window [size]` of `output_dtype`.
pub fn window(
    kind: WindowKind,
    periodic: bool,
    output_dtype: DType,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let s = req(ins, 0, "size")?;
    if !s.dtype().is_int() {
        return Err(format!("size must be an integer, got {}", s.dtype()));
    }
    let size = scalar_i64(s, "size")?;
    let size =
        usize::try_from(size).map_err(|_| format!("size must be non-negative, got {size}"))?;
    let n1 = if periodic {
        size as f64
    } else {
        size as f64 - 1.0
    };
    let mut v = try_vec(size, 0.0f64, "window output")?;
    for (i, w) in v.iter_mut().enumerate() {
        let t = i as f64 / n1;
        *w = match kind {
            WindowKind::Hann => (PI * t).sin().powi(2),
            WindowKind::Hamming => {
                let alpha = 25.0 / 46.0;
                alpha - (1.0 - alpha) * (2.0 * PI * t).cos()
            }
            WindowKind::Blackman => 0.42 - 0.5 * (2.0 * PI * t).cos() + 0.08 * (4.0 * PI * t).cos(),
        };
    }
    Ok(vec![Tensor::from_f64(output_dtype, vec![size], &v)])
}

/// `num_mel_bins, dft_length` as the output shape `[dft_length/2 + 1, num_mel_bins]`.
pub(crate) fn mel_shape(num_mel_bins: i64, dft_length: i64) -> Result<Vec<usize>, String> {
    let bins = usize::try_from(num_mel_bins)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("num_mel_bins must be positive, got {num_mel_bins}"))?;
    let dl = usize::try_from(dft_length)
        .ok()
        .filter(|&d| d > 0)
        .ok_or_else(|| format!("dft_length must be positive, got {dft_length}"))?;
    let shape = vec![dl / 2 + 1, bins];
    numel(&shape).ok_or("the output shape overflows")?;
    Ok(shape)
}

/// `num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz →
/// [dft_length/2 + 1, num_mel_bins]`: triangular filters evenly spaced on the mel scale.
pub fn mel_weight_matrix(output_dtype: DType, ins: &[Option<&Tensor>]) -> OpResult {
    let int_in = |i: usize, what: &str| -> Result<i64, String> {
        let t = req(ins, i, what)?;
        if !t.dtype().is_int() {
            return Err(format!("{what} must be an integer, got {}", t.dtype()));
        }
        scalar_i64(t, what)
    };
    let float_in = |i: usize, what: &str| -> Result<f64, String> {
        let t = req(ins, i, what)?;
        if !t.dtype().is_float() || t.len() != 1 {
            return Err(format!(
                "{what} must be one floating-point value, got {} {:?}",
                t.dtype(),
                t.shape()
            ));
        }
        Ok(t.get_f64(0))
    };
    let nmel = int_in(0, "num_mel_bins")?;
    let dl = int_in(1, "dft_length")?;
    let rate = int_in(2, "sample_rate")?;
    let lo = float_in(3, "lower_edge_hertz")?;
    let hi = float_in(4, "upper_edge_hertz")?;
    let shape = mel_shape(nmel, dl)?;
    if rate <= 0 {
        return Err(format!("sample_rate must be positive, got {rate}"));
    }
    let (spec_bins, mel_bins) = (shape[0], shape[1]);
    let mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
    let (lo_mel, hi_mel) = (mel(lo), mel(hi));
    let step = (hi_mel - lo_mel) / (mel_bins + 2) as f64;
    let mut out = try_vec(spec_bins * mel_bins, 0.0f64, "MelWeightMatrix output")?;
    let points: Vec<i64> = (0..mel_bins + 2)
        .map(|i| {
            let m = i as f64 * step + lo_mel;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            (((dl as f64 + 1.0) * hz) / rate as f64).floor() as i64
        })
        .collect();
    let cell = |j: i64, i: usize| -> Result<usize, String> {
        usize::try_from(j)
            .ok()
            .filter(|&j| j < spec_bins)
            .map(|j| j * mel_bins + i)
            .ok_or_else(|| {
                format!("mel filter {i} reaches frequency bin {j}, outside 0..{spec_bins}")
            })
    };
    for i in 0..mel_bins {
        let (l, ctr, h) = (points[i], points[i + 1], points[i + 2]);
        let rise = ctr - l;
        if rise == 0 {
            out[cell(ctr, i)?] = 1.0;
        } else {
            for j in l..=ctr {
                out[cell(j, i)?] = (j - l) as f64 / rise as f64;
            }
        }
        let fall = h - ctr;
        if fall > 0 {
            for j in ctr..h {
                out[cell(j, i)?] = (h - j) as f64 / fall as f64;
            }
        }
    }
    Ok(vec![Tensor::from_f64(output_dtype, shape, &out)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn dft_of_an_impulse_is_flat_and_inverts() {
        let x = Tensor::from_vec(vec![1, 4, 1], vec![1.0f32, 0.0, 0.0, 0.0]);
        let y = dft(false, false, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 4, 2]);
        close(
            &y[0].to_f64_vec(),
            &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        );
        let back = dft(true, false, &[Some(&y[0])]).unwrap();
        close(
            &back[0].to_f64_vec(),
            &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        );
        // rfft then irfft gives the real signal back.
        let s = Tensor::from_vec(vec![1, 4, 1], vec![1.0f32, 2.0, 3.0, 5.0]);
        let half = dft(false, true, &[Some(&s)]).unwrap();
        assert_eq!(half[0].shape(), &[1, 3, 2]);
        let real = dft(true, true, &[Some(&half[0])]).unwrap();
        assert_eq!(real[0].shape(), &[1, 4, 1]);
        close(&real[0].to_f64_vec(), &[1.0, 2.0, 3.0, 5.0]);
        // The last axis is not a signal axis; dft_length must be positive.
        let last = Tensor::scalar(2i64);
        assert!(dft(false, false, &[Some(&x), None, Some(&last)]).is_err());
        let zero = Tensor::scalar(0i64);
        assert!(dft(false, false, &[Some(&x), Some(&zero)]).is_err());
    }

    #[test]
    fn stft_frames_the_signal() {
        let x = Tensor::from_vec(vec![1, 6, 1], vec![1.0f32; 6]);
        let step = Tensor::scalar(2i64);
        let len = Tensor::scalar(2i64);
        let y = stft(true, &[Some(&x), Some(&step), None, Some(&len)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 3, 2, 2]);
        close(&y[0].to_f64_vec(), &[2.0, 0.0, 0.0, 0.0].repeat(3));
        let long = Tensor::scalar(9i64);
        assert!(stft(true, &[Some(&x), Some(&step), None, Some(&long)]).is_err());
    }

    #[test]
    fn windows_and_mel() {
        let n = Tensor::scalar(4i32);
        let w = window(WindowKind::Hann, true, DType::F32, &[Some(&n)]).unwrap();
        close(&w[0].to_f64_vec(), &[0.0, 0.5, 1.0, 0.5]);
        let w = window(WindowKind::Blackman, false, DType::F64, &[Some(&n)]).unwrap();
        close(&w[0].to_f64_vec()[..1], &[0.0]);
        let neg = Tensor::scalar(-1i64);
        assert!(window(WindowKind::Hamming, true, DType::F32, &[Some(&neg)]).is_err());
        let i = |v: i32| Tensor::scalar(v);
        let f = |v: f32| Tensor::scalar(v);
        let (m, d, r, lo, hi) = (i(8), i(16), i(8192), f(0.0), f(4096.0));
        let y = mel_weight_matrix(
            DType::F32,
            &[Some(&m), Some(&d), Some(&r), Some(&lo), Some(&hi)],
        );
        assert_eq!(y.unwrap()[0].shape(), &[9, 8]);
        // An upper edge far above the sample rate reaches past the spectrum: an error.
        let far = f(1e9);
        let e = mel_weight_matrix(
            DType::F32,
            &[Some(&m), Some(&d), Some(&r), Some(&lo), Some(&far)],
        );
        assert!(e.is_err());
    }
}
