//! Resize: nearest, linear and cubic interpolation (with antialiasing) under every
//! coordinate transformation mode, reproducing the ONNX reference `op_resize.py`: the
//! resize is separable, so it runs one axis at a time in f64.

use super::{opt, req, OpResult};
use crate::{AspectPolicy, CoordTransform, DType, NearestMode, ResizeAttrs, ResizeMode, Tensor};

/// An optional input, treating an empty tensor as absent (older opsets pass empty
/// placeholders for roi and scales).
fn present<'a>(ins: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    opt(ins, i).filter(|t| !t.is_empty())
}

/// `x, roi?, scales?, sizes? → y`.
pub fn resize(attrs: &ResizeAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let r = x.rank();
    let in_shape = x.shape().to_vec();
    let axes: Vec<usize> = match &attrs.axes {
        Some(a) => super::util::norm_axes(a, r)?,
        None => (0..r).collect(),
    };
    let na = axes.len();
    let mut scales = vec![1.0f64; r];
    let mut out = in_shape.clone();
    if let Some(sizes) = present(ins, 3) {
        let sv = super::index::int_list(sizes, "sizes")?;
        if sv.len() != na {
            return Err(format!("sizes {sv:?} must have {na} entries"));
        }
        let sv = super::index::to_sizes(&sv, "sizes")?;
        for (i, &a) in axes.iter().enumerate() {
            out[a] = sv[i];
            scales[a] = sv[i] as f64 / in_shape[a] as f64;
        }
        if attrs.aspect != AspectPolicy::Stretch {
            let it = axes.iter().map(|&a| scales[a]);
            let s = if attrs.aspect == AspectPolicy::NotLarger {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &a in &axes {
                scales[a] = s;
                out[a] = (s * in_shape[a] as f64 + 0.5) as usize;
            }
        }
    } else if let Some(sc) = present(ins, 2) {
        let sv = sc.to_f64_vec();
        if sv.len() != na {
            return Err(format!("scales {sv:?} must have {na} entries"));
        }
        for (i, &a) in axes.iter().enumerate() {
            if !(sv[i] > 0.0 && sv[i].is_finite()) {
                return Err(format!("scale {} must be positive", sv[i]));
            }
            scales[a] = sv[i];
            out[a] = (sv[i] * in_shape[a] as f64) as usize;
        }
    } else {
        return Err("Resize needs scales or sizes".into());
    }
    let roi: Option<Vec<f64>> = match present(ins, 1) {
        Some(t) => {
            let v = t.to_f64_vec();
            if v.len() != 2 * na {
                return Err(format!("roi has {} entries, expected {}", v.len(), 2 * na));
            }
            let mut full = vec![0.0; r];
            full.extend(vec![1.0; r]);
            for (i, &a) in axes.iter().enumerate() {
                full[a] = v[i];
                full[r + a] = v[na + i];
            }
            Some(full)
        }
        None => None,
    };
    if attrs.coord == CoordTransform::TfCropAndResize && roi.is_none() {
        return Err("tf_crop_and_resize needs a roi input".into());
    }
    if attrs.mode == ResizeMode::Nearest && attrs.antialias {
        return Err("antialias is not supported with mode nearest".into());
    }
    let mut data = x.to_f64_vec();
    let mut shape = in_shape.clone();
    for &a in &axes {
        let trivial_roi = roi
            .as_ref()
            .is_none_or(|v| v[a] == 0.0 && (v[r + a] - 1.0).abs() <= 1e-9);
        if (scales[a] - 1.0).abs() <= 1e-9 * scales[a].abs().max(1.0)
            && out[a] == shape[a]
            && trivial_roi
        {
            continue;
        }
        let axis_roi = roi.as_ref().map(|v| (v[a], v[r + a]));
        data = interpolate_axis(&data, &shape, a, scales[a], out[a], axis_roi, attrs)?;
        shape[a] = out[a];
    }
    Ok(vec![saturate(x.dtype(), shape, &data)])
}

/// Converts the f64 result to `dtype` like numpy's `saturate_cast`: integers round half
/// to even, then every value is clipped to the dtype's range.
fn saturate(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
    let max = match dtype {
        DType::F32 => f32::MAX as f64,
        DType::F16 => 65504.0,
        DType::BF16 => half::bf16::MAX.to_f64(),
        _ => f64::INFINITY,
    };
    let conv: Vec<f64> = v
        .iter()
        .map(|&x| {
            if dtype.is_int() {
                x.round_ties_even()
            } else if x.is_nan() {
                x
            } else {
                x.clamp(-max, max)
            }
        })
        .collect();
    Tensor::from_f64(dtype, shape, &conv)
}

/// Source coordinate of output index `y` and whether it is extrapolated
/// (`tf_crop_and_resize` outside the input).
fn source_coord(
    mode: CoordTransform,
    y: f64,
    scale: f64,
    in_w: usize,
    out_w: usize,
    roi: Option<(f64, f64)>,
) -> (f64, bool) {
    let inw = in_w as f64;
    let ow = scale * inw;
    match mode {
        CoordTransform::AlignCorners => (
            if ow == 1.0 {
                0.0
            } else {
                y * (inw - 1.0) / (ow - 1.0)
            },
            false,
        ),
        CoordTransform::Asymmetric => (y / scale, false),
        CoordTransform::TfCropAndResize => {
            let (r0, r1) = roi.unwrap_or((0.0, 1.0));
            let x = if ow == 1.0 {
                (r1 - r0) * (inw - 1.0) / 2.0
            } else {
                y * (r1 - r0) * (inw - 1.0) / (ow - 1.0)
            };
            let x = x + r0 * (inw - 1.0);
            (x, x < 0.0 || x > inw - 1.0)
        }
        CoordTransform::PytorchHalfPixel => (
            if ow == 1.0 {
                -0.5
            } else {
                (y + 0.5) / scale - 0.5
            },
            false,
        ),
        CoordTransform::HalfPixel => ((y + 0.5) / scale - 0.5, false),
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = out_w as f64 / ow;
            let center = inw / 2.0;
            let offset = center * (1.0 - adjustment);
            (offset + (y + 0.5) / scale - 0.5, false)
        }
    }
}

/// Interpolation weights for the neighbours of a point at fractional offset `ratio`
/// (in `(0, 1]`, 1 for an exact grid point) past its left neighbour.
fn coeffs(attrs: &ResizeAttrs, ratio: f64, scale: f64) -> Vec<f64> {
    let b = |c: bool| if c { 1.0 } else { 0.0 };
    match attrs.mode {
        ResizeMode::Nearest => {
            if ratio.fract() == 0.0 {
                return vec![0.0, 1.0];
            }
            match attrs.nearest {
                NearestMode::RoundPreferFloor => vec![b(ratio <= 0.5), b(ratio > 0.5)],
                NearestMode::RoundPreferCeil => vec![b(ratio < 0.5), b(ratio >= 0.5)],
                NearestMode::Floor => vec![1.0, 0.0],
                NearestMode::Ceil => vec![0.0, 1.0],
            }
        }
        ResizeMode::Linear if !attrs.antialias => vec![1.0 - ratio, ratio],
        ResizeMode::Linear => {
            let s = scale.min(1.0);
            let start = (-1.0 / s).floor() as i64 + 1;
            let footprint = 2 - 2 * start;
            let c: Vec<f64> = (start..start + footprint)
                .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                .collect();
            normalise(c)
        }
        ResizeMode::Cubic => {
            let a = attrs.cubic_coeff_a as f64;
            if !attrs.antialias {
                let (r1, q) = (ratio + 1.0, 1.0 - ratio);
                return vec![
                    ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a,
                    ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
                ];
            }
            let s = scale.min(1.0);
            let cubic = |x: f64| {
                let x = x.abs();
                let (x2, x3) = (x * x, x * x * x);
                if x <= 1.0 {
                    (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                } else if x < 2.0 {
                    a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                } else {
                    0.0
                }
            };
            let i_start = (-2.0 / s).floor() as i64 + 1;
            let i_end = 2 - i_start;
            normalise(
                (i_start..i_end)
                    .map(|i| cubic(s * (i as f64 - ratio)))
                    .collect(),
            )
        }
    }
}

fn normalise(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|v| v / s).collect()
}

/// Resizes `data` (shape `shape`) along `axis` to `out_w` elements.
fn interpolate_axis(
    data: &[f64],
    shape: &[usize],
    axis: usize,
    scale: f64,
    out_w: usize,
    roi: Option<(f64, f64)>,
    attrs: &ResizeAttrs,
) -> Result<Vec<f64>, String> {
    let in_w = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    if out_w > 0 && in_w == 0 {
        return Err(format!("cannot resize an empty axis {axis} to {out_w}"));
    }
    // Per output position: (input index, weight) pairs, or the extrapolation value.
    let mut taps: Vec<Result<Vec<(usize, f64)>, f64>> = Vec::with_capacity(out_w);
    for y in 0..out_w {
        let (x, extrapolated) = source_coord(attrs.coord, y as f64, scale, in_w, out_w, roi);
        if extrapolated {
            taps.push(Err(attrs.extrapolation_value as f64));
            continue;
        }
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = coeffs(attrs, ratio, scale);
        let n = c.len() as i64;
        let pad = (n + 1) / 2;
        let xp = x + pad as f64;
        let p = xp.floor();
        let frac = xp - p;
        let off = if n % 2 == 0 {
            if frac == 0.0 {
                -(n / 2)
            } else {
                -(n / 2) + 1
            }
        } else {
            let base = -((n - 1) / 2);
            if frac <= 0.5 {
                base
            } else {
                base + 1
            }
        };
        let start = p as i64 + off - pad;
        let idx: Vec<i64> = (0..n).map(|j| start + j).collect();
        if attrs.exclude_outside {
            for (cj, &i) in c.iter_mut().zip(&idx) {
                if i < 0 || i >= in_w as i64 {
                    *cj = 0.0;
                }
            }
            let s: f64 = c.iter().sum();
            let s = if s == 0.0 { 1.0 } else { s };
            c.iter_mut().for_each(|v| *v /= s);
        }
        let last = in_w as i64 - 1;
        taps.push(Ok(idx
            .iter()
            .zip(c)
            .map(|(&i, w)| (i.clamp(0, last) as usize, w))
            .collect()));
    }
    let mut res = vec![0.0f64; outer * out_w * inner];
    for o in 0..outer {
        for (y, t) in taps.iter().enumerate() {
            let dst = (o * out_w + y) * inner;
            match t {
                Err(v) => res[dst..dst + inner].iter_mut().for_each(|d| *d = *v),
                Ok(t) => {
                    for k in 0..inner {
                        res[dst + k] = t
                            .iter()
                            .map(|&(i, w)| data[(o * in_w + i) * inner + k] * w)
                            .sum();
                    }
                }
            }
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests;
