//! Resize: nearest, linear and cubic interpolation (with antialiasing) under every
//! coordinate transformation mode, reproducing the ONNX reference `op_resize.py`: the
//! resize is separable, so it runs one axis at a time in f64.
//!
//! This module is also the cpu backend's Resize kernel: [`plan`] gives the output shape
//! and one tap table per resized axis (the backend computes it once, at compile time),
//! [`apply_axis`] applies a table and [`saturate_value`] rounds a result to the dtype, so
//! the reference evaluator and the host kernel run the very same code.

use super::{opt, req, OpResult};
use crate::{AspectPolicy, CoordTransform, DType, NearestMode, ResizeAttrs, ResizeMode, Tensor};

/// Per output position along one axis: `(input index, weight)` taps, or a constant (the
/// extrapolation value of `tf_crop_and_resize` outside the input).
pub type AxisTaps = Vec<Result<Vec<(usize, f64)>, f64>>;

/// A whole resize: the output shape and, in application order, each resized axis with
/// its tap table (axes the resize leaves alone have none).
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeGeometry {
    pub out_shape: Vec<usize>,
    pub axes: Vec<(usize, AxisTaps)>,
}

impl ResizeAttrs {
    /// `mode` and `coord` with ONNX's defaults for the rest (`round_prefer_floor`,
    /// `cubic_coeff_a` -0.75, no exclude_outside/antialias, every axis, `stretch`).
    pub fn with_defaults(mode: ResizeMode, coord: CoordTransform) -> ResizeAttrs {
        ResizeAttrs {
            mode,
            coord,
            nearest: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: None,
            aspect: AspectPolicy::Stretch,
        }
    }
}

/// An optional input, treating an empty tensor as absent (older opsets pass empty
/// placeholders for roi and scales).
fn present<'a>(ins: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    opt(ins, i).filter(|t| !t.is_empty())
}

/// `x, roi?, scales?, sizes? → y`.
pub fn resize(attrs: &ResizeAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let geo = plan(
        attrs,
        x.shape(),
        present(ins, 1),
        present(ins, 2),
        present(ins, 3),
    )?;
    let mut data = x.to_f64_vec();
    let mut shape = x.shape().to_vec();
    for (a, taps) in &geo.axes {
        data = apply_axis(&data, &shape, *a, taps);
        shape[*a] = taps.len();
    }
    let dt = x.dtype();
    data.iter_mut().for_each(|v| *v = saturate_value(dt, *v));
    Ok(vec![Tensor::from_f64(dt, geo.out_shape, &data)])
}

/// Output shape and tap tables of a resize of an input of `in_shape` (`roi`, `scales`,
/// `sizes` as the op's inputs; an empty tensor counts as absent).
pub fn plan(
    attrs: &ResizeAttrs,
    in_shape: &[usize],
    roi: Option<&Tensor>,
    scales: Option<&Tensor>,
    sizes: Option<&Tensor>,
) -> Result<ResizeGeometry, String> {
    let (roi, scales, sizes) = (
        roi.filter(|t| !t.is_empty()),
        scales.filter(|t| !t.is_empty()),
        sizes.filter(|t| !t.is_empty()),
    );
    let r = in_shape.len();
    let axes: Vec<usize> = match &attrs.axes {
        Some(a) => super::util::norm_axes(a, r)?,
        None => (0..r).collect(),
    };
    let na = axes.len();
    let mut scale = vec![1.0f64; r];
    let mut out = in_shape.to_vec();
    if let Some(sizes) = sizes {
        let sv = super::index::int_list(sizes, "sizes")?;
        if sv.len() != na {
            return Err(format!("sizes {sv:?} must have {na} entries"));
        }
        let sv = super::index::to_sizes(&sv, "sizes")?;
        for (i, &a) in axes.iter().enumerate() {
            out[a] = sv[i];
            scale[a] = sv[i] as f64 / in_shape[a] as f64;
        }
        if attrs.aspect != AspectPolicy::Stretch {
            let it = axes.iter().map(|&a| scale[a]);
            let s = if attrs.aspect == AspectPolicy::NotLarger {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &a in &axes {
                scale[a] = s;
                out[a] = (s * in_shape[a] as f64 + 0.5) as usize;
            }
        }
    } else if let Some(sc) = scales {
        let sv = sc.to_f64_vec();
        if sv.len() != na {
            return Err(format!("scales {sv:?} must have {na} entries"));
        }
        for (i, &a) in axes.iter().enumerate() {
            if !(sv[i] > 0.0 && sv[i].is_finite()) {
                return Err(format!("scale {} must be positive", sv[i]));
            }
            scale[a] = sv[i];
            out[a] = (sv[i] * in_shape[a] as f64) as usize;
        }
    } else {
        return Err("Resize needs scales or sizes".into());
    }
    let roi: Option<Vec<f64>> = match roi {
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
    let mut tables = Vec::new();
    for &a in &axes {
        let trivial_roi = roi
            .as_ref()
            .is_none_or(|v| v[a] == 0.0 && (v[r + a] - 1.0).abs() <= 1e-9);
        if (scale[a] - 1.0).abs() <= 1e-9 * scale[a].abs().max(1.0)
            && out[a] == in_shape[a]
            && trivial_roi
        {
            continue;
        }
        let axis_roi = roi.as_ref().map(|v| (v[a], v[r + a]));
        let taps = axis_taps(attrs, in_shape[a], out[a], scale[a], axis_roi)
            .map_err(|e| format!("axis {a}: {e}"))?;
        tables.push((a, taps));
    }
    Ok(ResizeGeometry {
        out_shape: out,
        axes: tables,
    })
}

/// A value computed in f64 as `dtype` would hold it, like numpy's `saturate_cast`:
/// integers round half to even, finite floats clip to the dtype's range (the store's
/// `as` cast then saturates integers to theirs).
#[inline]
pub fn saturate_value(dtype: DType, x: f64) -> f64 {
    let max = match dtype {
        DType::F32 => f32::MAX as f64,
        DType::F16 => 65504.0,
        DType::BF16 => half::bf16::MAX.to_f64(),
        _ => f64::INFINITY,
    };
    if dtype.is_int() {
        x.round_ties_even()
    } else if x.is_nan() {
        x
    } else {
        x.clamp(-max, max)
    }
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

/// Tap table of one axis resized from `in_w` to `out_w` elements at `scale`.
pub fn axis_taps(
    attrs: &ResizeAttrs,
    in_w: usize,
    out_w: usize,
    scale: f64,
    roi: Option<(f64, f64)>,
) -> Result<AxisTaps, String> {
    if out_w > 0 && in_w == 0 {
        return Err(format!("cannot resize an empty axis to {out_w}"));
    }
    let mut taps = Vec::with_capacity(out_w);
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
    Ok(taps)
}

/// Resizes `data` (row-major, of `shape`) along `axis` by the tap table `taps` (one entry
/// per output position; `taps.len()` is the new extent). Each output is
/// `Σ w · x[i]` over its taps, accumulated in tap order from 0.
pub fn apply_axis(data: &[f64], shape: &[usize], axis: usize, taps: &AxisTaps) -> Vec<f64> {
    let in_w = shape[axis];
    let out_w = taps.len();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut res = vec![0.0f64; outer * out_w * inner];
    if res.is_empty() {
        return res;
    }
    for o in 0..outer {
        let src = &data[o * in_w * inner..(o + 1) * in_w * inner];
        let dst = &mut res[o * out_w * inner..(o + 1) * out_w * inner];
        for (t, row) in taps.iter().zip(dst.chunks_exact_mut(inner)) {
            match t {
                Err(v) => row.fill(*v),
                Ok(t) if inner == 1 => {
                    row[0] = t.iter().fold(0.0, |acc, &(i, w)| acc + src[i] * w);
                }
                Ok(t) => {
                    for &(i, w) in t {
                        let s = &src[i * inner..(i + 1) * inner];
                        row.iter_mut().zip(s).for_each(|(d, &x)| *d += x * w);
                    }
                }
            }
        }
    }
    res
}

#[cfg(test)]
mod tests;
