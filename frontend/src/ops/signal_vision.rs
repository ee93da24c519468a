//! Builders for the signal ops (DFT, STFT, HannWindow, HammingWindow, BlackmanWindow,
//! MelWeightMatrix), the vision ops (GridSample, AffineGrid, RoiAlign, NonMaxSuppression)
//! and the conv variants (DeformConv, ConvInteger, QLinearConv).

use super::{BuildResult, In, Lowered, NodeCtx};
use crate::FrontendError;
use whittle_ir::{DType, GridPadding, Op, ResizeMode, RoiMode, Tensor, WindowKind};

fn group(cx: &NodeCtx) -> Result<usize, FrontendError> {
    match cx.usize_attr("group", 1)? {
        0 => Err(cx.bad_attr("group", "must be positive")),
        g => Ok(g),
    }
}

/// GridSample-16..19 spells the modes `bilinear` / `bicubic`, GridSample-20+ `linear` /
/// `cubic`.
pub(crate) fn grid_sample(cx: &NodeCtx) -> BuildResult {
    let old = cx.opset < 20;
    let default = if old { "bilinear" } else { "linear" };
    let mode = match (cx.string("mode", default)?.as_str(), old) {
        ("nearest", _) => ResizeMode::Nearest,
        ("bilinear", true) | ("linear", false) => ResizeMode::Linear,
        ("bicubic", true) | ("cubic", false) => ResizeMode::Cubic,
        (other, _) => {
            return Err(cx.bad_attr(
                "mode",
                format!("unknown value '{other}' at opset {}", cx.opset),
            ))
        }
    };
    let padding = match cx.string("padding_mode", "zeros")?.as_str() {
        "zeros" => GridPadding::Zeros,
        "border" => GridPadding::Border,
        "reflection" => GridPadding::Reflection,
        other => return Err(cx.bad_attr("padding_mode", format!("unknown value '{other}'"))),
    };
    cx.same_inputs(Op::GridSample {
        mode,
        padding,
        align_corners: cx.bool("align_corners", false)?,
    })
}

pub(crate) fn affine_grid(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::AffineGrid {
        align_corners: cx.bool("align_corners", false)?,
    })
}

/// RoiAlign-10 has no `coordinate_transformation_mode` (it behaves as
/// `output_half_pixel`); from 16 it defaults to `half_pixel`.
pub(crate) fn roi_align(cx: &NodeCtx) -> BuildResult {
    let default = if cx.opset < 16 {
        "output_half_pixel"
    } else {
        "half_pixel"
    };
    let half_pixel = match cx
        .string("coordinate_transformation_mode", default)?
        .as_str()
    {
        "half_pixel" => true,
        "output_half_pixel" => false,
        other => {
            return Err(cx.bad_attr(
                "coordinate_transformation_mode",
                format!("unknown value '{other}'"),
            ))
        }
    };
    let mode = match cx.string("mode", "avg")?.as_str() {
        "avg" => RoiMode::Avg,
        "max" => RoiMode::Max,
        other => return Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
    };
    let positive = |name: &str| -> Result<usize, FrontendError> {
        match cx.usize_attr(name, 1)? {
            0 => Err(cx.bad_attr(name, "must be positive")),
            v => Ok(v),
        }
    };
    cx.same_inputs(Op::RoiAlign {
        mode,
        output_height: positive("output_height")?,
        output_width: positive("output_width")?,
        sampling_ratio: cx.usize_attr("sampling_ratio", 0)?,
        spatial_scale: cx.float("spatial_scale", 1.0)?,
        half_pixel,
    })
}

pub(crate) fn non_max_suppression(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::NonMaxSuppression {
        center_point_box: cx.bool("center_point_box", false)?,
    })
}

/// DFT-17..19: `axis` is an attribute (default 1); from 20 it is an input (default -2).
pub(crate) fn dft_attr_axis(cx: &NodeCtx) -> BuildResult {
    let axis = cx.int("axis", 1)?;
    let mut inputs: Vec<In> = (0..cx.node.input.len().min(2)).map(In::Onnx).collect();
    inputs.resize(2, In::Absent);
    inputs.push(In::Const(Tensor::scalar(axis)));
    Ok(Lowered {
        op: dft_op(cx)?,
        inputs,
    })
}

pub(crate) fn dft(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(dft_op(cx)?)
}

fn dft_op(cx: &NodeCtx) -> Result<Op, FrontendError> {
    Ok(Op::Dft {
        inverse: cx.bool("inverse", false)?,
        onesided: cx.bool("onesided", false)?,
    })
}

pub(crate) fn stft(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Stft {
        onesided: cx.bool("onesided", true)?,
    })
}

/// The `output_datatype` attribute, default float.
fn output_dtype(cx: &NodeCtx) -> Result<DType, FrontendError> {
    let dt = cx.dtype_attr("output_datatype")?.unwrap_or(DType::F32);
    if !(dt.is_float() || dt.is_int()) {
        return Err(cx.bad_attr("output_datatype", format!("{dt} is not numeric")));
    }
    Ok(dt)
}

fn window(cx: &NodeCtx, kind: WindowKind) -> BuildResult {
    cx.same_inputs(Op::SignalWindow {
        kind,
        periodic: cx.bool("periodic", true)?,
        output_dtype: output_dtype(cx)?,
    })
}

pub(crate) fn hann_window(cx: &NodeCtx) -> BuildResult {
    window(cx, WindowKind::Hann)
}

pub(crate) fn hamming_window(cx: &NodeCtx) -> BuildResult {
    window(cx, WindowKind::Hamming)
}

pub(crate) fn blackman_window(cx: &NodeCtx) -> BuildResult {
    window(cx, WindowKind::Blackman)
}

pub(crate) fn mel_weight_matrix(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::MelWeightMatrix {
        output_dtype: output_dtype(cx)?,
    })
}

pub(crate) fn deform_conv(cx: &NodeCtx) -> BuildResult {
    let window = cx.window()?;
    if window.auto_pad != whittle_ir::AutoPad::NotSet {
        return Err(cx.bad_attr("auto_pad", "DeformConv has no auto_pad"));
    }
    let offset_group = match cx.usize_attr("offset_group", 1)? {
        0 => return Err(cx.bad_attr("offset_group", "must be positive")),
        g => g,
    };
    cx.same_inputs(Op::DeformConv {
        window,
        group: group(cx)?,
        offset_group,
    })
}

pub(crate) fn conv_integer(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::ConvInteger {
        window: cx.window()?,
        group: group(cx)?,
    })
}

pub(crate) fn qlinear_conv(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::QLinearConv {
        window: cx.window()?,
        group: group(cx)?,
    })
}
