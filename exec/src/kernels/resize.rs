//! Resize (nearest, linear, cubic, antialias; every coordinate transformation) as a
//! separable interpolation: per resized axis, a tap table (input index and weight per
//! output position, or the extrapolation value) is computed at compile time with the
//! reference evaluator's rules (`whittle_ir::eval::resize`); the kernel applies the axes
//! one after the other in f64 and rounds/saturates to the output dtype.

use super::ewise::{ld_f, st_f};
use whittle_ir::{CoordTransform, DType, NearestMode, ResizeAttrs, ResizeMode};

/// Per output position along one axis: `(input index, weight)` taps, or a constant.
pub type AxisTaps = Vec<Result<Vec<(usize, f64)>, f64>>;

/// One resized axis of the input shape.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AxisPlan {
    pub axis: usize,
    pub taps: AxisTaps,
}

/// The whole resize: input shape, axes in application order, and dtype.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResizePlan {
    pub in_shape: Vec<usize>,
    pub axes: Vec<AxisPlan>,
    pub dt: DType,
}

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
            (center * (1.0 - adjustment) + (y + 0.5) / scale - 0.5, false)
        }
    }
}

fn normalise(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|v| v / s).collect()
}

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
            normalise(
                (start..start + footprint)
                    .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                    .collect(),
            )
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

/// Tap table of one axis (`in_w → out_w` at `scale`).
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

impl ResizePlan {
    /// # Safety
    /// `x` holds the input, `y` the output, of the plan's shapes and dtype.
    pub unsafe fn run(&self, x: *const u8, y: *mut u8) {
        let n: usize = self.in_shape.iter().product();
        let mut data: Vec<f64> = (0..n).map(|i| ld_f(self.dt, x, i)).collect();
        let mut shape = self.in_shape.clone();
        for ap in &self.axes {
            let a = ap.axis;
            let in_w = shape[a];
            let out_w = ap.taps.len();
            let outer: usize = shape[..a].iter().product();
            let inner: usize = shape[a + 1..].iter().product();
            let mut res = vec![0.0f64; outer * out_w * inner];
            for o in 0..outer {
                for (yy, t) in ap.taps.iter().enumerate() {
                    let dst = (o * out_w + yy) * inner;
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
            data = res;
            shape[a] = out_w;
        }
        let max = match self.dt {
            DType::F32 => f32::MAX as f64,
            DType::F16 => 65504.0,
            DType::BF16 => 3.3895313892515355e38,
            _ => f64::INFINITY,
        };
        for (i, &v) in data.iter().enumerate() {
            let v = if self.dt.is_int() {
                let (lo, hi) = int_bounds(self.dt);
                v.round_ties_even().clamp(lo, hi)
            } else if v.is_nan() {
                v
            } else {
                v.clamp(-max, max)
            };
            st_f(self.dt, y, i, v);
        }
    }
}

fn int_bounds(dt: DType) -> (f64, f64) {
    match dt {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U16 => (0.0, 65535.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        _ => (f64::MIN, f64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::AspectPolicy;

    fn attrs(mode: ResizeMode, coord: CoordTransform) -> ResizeAttrs {
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

    #[test]
    fn nearest_upsample_by_two_and_linear_half_pixel() {
        let a = attrs(ResizeMode::Nearest, CoordTransform::Asymmetric);
        let t = axis_taps(&a, 2, 4, 2.0, None).unwrap();
        let idx: Vec<usize> = t
            .iter()
            .map(|v| v.as_ref().unwrap().iter().find(|p| p.1 == 1.0).unwrap().0)
            .collect();
        assert_eq!(idx, vec![0, 0, 1, 1]);
        let l = attrs(ResizeMode::Linear, CoordTransform::HalfPixel);
        let plan = ResizePlan {
            in_shape: vec![2],
            axes: vec![AxisPlan {
                axis: 0,
                taps: axis_taps(&l, 2, 4, 2.0, None).unwrap(),
            }],
            dt: DType::F32,
        };
        let x = [0f32, 4.0];
        let mut y = [0f32; 4];
        unsafe { plan.run(x.as_ptr() as _, y.as_mut_ptr() as _) };
        assert_eq!(y, [0.0, 1.0, 3.0, 4.0]);
    }
}
