//! Builders for Resize (opsets 10, 11–17, 18+) and the deprecated Upsample, all lowered to
//! the IR's newest Resize form `x, roi?, scales?, sizes?`.

use super::{BuildResult, In, Lowered, NodeCtx};
use whittle_ir::{AspectPolicy, CoordTransform, NearestMode, Op, ResizeAttrs, ResizeMode, Tensor};

fn mode(cx: &NodeCtx) -> Result<ResizeMode, crate::FrontendError> {
    Ok(match cx.string("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        "cubic" if cx.op_type() == "Resize" && cx.opset >= 11 => ResizeMode::Cubic,
        other => return Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
    })
}

/// The behaviour of Upsample and Resize-10: asymmetric coordinates, nearest rounds down.
fn legacy_attrs(cx: &NodeCtx) -> Result<ResizeAttrs, crate::FrontendError> {
    Ok(ResizeAttrs {
        nearest: NearestMode::Floor,
        ..ResizeAttrs::with_defaults(mode(cx)?, CoordTransform::Asymmetric)
    })
}

/// Upsample-7 (`scales` attribute) and Upsample-9 (`scales` input).
pub(crate) fn upsample(cx: &NodeCtx) -> BuildResult {
    let attrs = legacy_attrs(cx)?;
    let scales = if cx.opset < 9 {
        let s = cx
            .floats("scales")?
            .ok_or_else(|| cx.bad_attr("scales", "required attribute missing"))?;
        In::Const(Tensor::from_vec(vec![s.len()], s))
    } else {
        In::Onnx(1)
    };
    Ok(Lowered {
        op: Op::Resize(Box::new(attrs)),
        inputs: vec![In::Onnx(0), In::Absent, scales],
    })
}

/// Resize-10: `x, scales` only.
pub(crate) fn resize10(cx: &NodeCtx) -> BuildResult {
    let attrs = legacy_attrs(cx)?;
    Ok(Lowered {
        op: Op::Resize(Box::new(attrs)),
        inputs: vec![In::Onnx(0), In::Absent, In::Onnx(1)],
    })
}

/// Resize-11 and later: `x, roi?, scales?, sizes?`.
pub(crate) fn resize(cx: &NodeCtx) -> BuildResult {
    let coord = match cx
        .string("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => CoordTransform::HalfPixel,
        "half_pixel_symmetric" if cx.opset >= 19 => CoordTransform::HalfPixelSymmetric,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "tf_crop_and_resize" => CoordTransform::TfCropAndResize,
        other => {
            return Err(cx.bad_attr(
                "coordinate_transformation_mode",
                format!("unsupported value '{other}'"),
            ))
        }
    };
    let nearest = match cx.string("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(cx.bad_attr("nearest_mode", format!("unknown value '{other}'"))),
    };
    let aspect = match cx.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
        "stretch" => AspectPolicy::Stretch,
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        other => {
            return Err(cx.bad_attr(
                "keep_aspect_ratio_policy",
                format!("unknown value '{other}'"),
            ))
        }
    };
    let attrs = ResizeAttrs {
        mode: mode(cx)?,
        coord,
        nearest,
        cubic_coeff_a: cx.float("cubic_coeff_a", -0.75)?,
        exclude_outside: cx.bool("exclude_outside", false)?,
        extrapolation_value: cx.float("extrapolation_value", 0.0)?,
        antialias: cx.bool("antialias", false)?,
        axes: cx.ints("axes")?,
        aspect,
    };
    cx.same_inputs(Op::Resize(Box::new(attrs)))
}
