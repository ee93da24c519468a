//! Resize (nearest, linear, cubic, antialias; every coordinate transformation) as a
//! separable interpolation. The plan's per-axis tap tables come from the reference
//! evaluator's [`whittle_ir::eval::resize::plan`] at compile time, and the kernel applies
//! them with the evaluator's own [`apply_axis`] in f64, rounding/saturating to the dtype
//! with [`saturate_value`]: one implementation serves both.

use super::ewise::{ld_f, st_f};
use whittle_ir::eval::resize::{apply_axis, saturate_value};
use whittle_ir::DType;

pub use whittle_ir::eval::resize::AxisTaps;

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

impl ResizePlan {
    /// # Safety
    /// `x` holds the input, `y` the output, of the plan's shapes and dtype.
    pub unsafe fn run(&self, x: *const u8, y: *mut u8) {
        let n: usize = self.in_shape.iter().product();
        let mut data: Vec<f64> = (0..n).map(|i| ld_f(self.dt, x, i)).collect();
        let mut shape = self.in_shape.clone();
        for ap in &self.axes {
            data = apply_axis(&data, &shape, ap.axis, &ap.taps);
            shape[ap.axis] = ap.taps.len();
        }
        for (i, &v) in data.iter().enumerate() {
            st_f(self.dt, y, i, saturate_value(self.dt, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::eval::resize::axis_taps;
    use whittle_ir::{CoordTransform, ResizeAttrs, ResizeMode};

    fn attrs(mode: ResizeMode, coord: CoordTransform) -> ResizeAttrs {
        ResizeAttrs::with_defaults(mode, coord)
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
