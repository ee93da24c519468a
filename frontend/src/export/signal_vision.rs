//! ONNX forms of the signal, vision and conv-variant ops (see `ops/signal_vision.rs`):
//! the op type and attributes in the newest spelling (GridSample `linear` / `cubic`, DFT's
//! axis as an input), and the opset each form needs.

use super::ops::{attr_f, attr_i, attr_s, window_attrs};
use crate::proto::AttributeProto;
use crate::tensor::dtype_to_onnx;
use whittle_ir::{GridPadding, Op, ResizeMode, RoiMode, WindowKind};

/// The lowest opset that spells `op` as [`onnx_form`] writes it, for the ops of this file.
pub(crate) fn min_opset(op: &Op) -> Option<i64> {
    Some(match op {
        Op::GridSample { .. } | Op::AffineGrid { .. } | Op::Dft { .. } => 20,
        Op::DeformConv { .. } => 19,
        Op::Stft { .. } | Op::SignalWindow { .. } | Op::MelWeightMatrix { .. } => 17,
        Op::RoiAlign { .. } => 16,
        Op::NonMaxSuppression { .. } | Op::ConvInteger { .. } | Op::QLinearConv { .. } => 13,
        _ => return None,
    })
}

/// The op type for `op` (one of this file's ops), pushing its attributes onto `a`.
pub(crate) fn onnx_form(op: &Op, a: &mut Vec<AttributeProto>) -> Option<&'static str> {
    Some(match op {
        Op::GridSample {
            mode,
            padding,
            align_corners,
        } => {
            let m = match mode {
                ResizeMode::Nearest => "nearest",
                ResizeMode::Linear => "linear",
                ResizeMode::Cubic => "cubic",
            };
            let p = match padding {
                GridPadding::Zeros => "zeros",
                GridPadding::Border => "border",
                GridPadding::Reflection => "reflection",
            };
            a.push(attr_s("mode", m));
            a.push(attr_s("padding_mode", p));
            a.push(attr_i("align_corners", *align_corners as i64));
            "GridSample"
        }
        Op::AffineGrid { align_corners } => {
            a.push(attr_i("align_corners", *align_corners as i64));
            "AffineGrid"
        }
        Op::RoiAlign {
            mode,
            output_height,
            output_width,
            sampling_ratio,
            spatial_scale,
            half_pixel,
        } => {
            let ct = if *half_pixel {
                "half_pixel"
            } else {
                "output_half_pixel"
            };
            a.push(attr_s("coordinate_transformation_mode", ct));
            let m = match mode {
                RoiMode::Avg => "avg",
                RoiMode::Max => "max",
            };
            a.push(attr_s("mode", m));
            a.push(attr_i("output_height", *output_height as i64));
            a.push(attr_i("output_width", *output_width as i64));
            a.push(attr_i("sampling_ratio", *sampling_ratio as i64));
            a.push(attr_f("spatial_scale", *spatial_scale));
            "RoiAlign"
        }
        Op::NonMaxSuppression { center_point_box } => {
            a.push(attr_i("center_point_box", *center_point_box as i64));
            "NonMaxSuppression"
        }
        Op::Dft { inverse, onesided } => {
            a.push(attr_i("inverse", *inverse as i64));
            a.push(attr_i("onesided", *onesided as i64));
            "DFT"
        }
        Op::Stft { onesided } => {
            a.push(attr_i("onesided", *onesided as i64));
            "STFT"
        }
        Op::SignalWindow {
            kind,
            periodic,
            output_dtype,
        } => {
            a.push(attr_i("periodic", *periodic as i64));
            a.push(attr_i(
                "output_datatype",
                dtype_to_onnx(*output_dtype) as i64,
            ));
            match kind {
                WindowKind::Hann => "HannWindow",
                WindowKind::Hamming => "HammingWindow",
                WindowKind::Blackman => "BlackmanWindow",
            }
        }
        Op::MelWeightMatrix { output_dtype } => {
            a.push(attr_i(
                "output_datatype",
                dtype_to_onnx(*output_dtype) as i64,
            ));
            "MelWeightMatrix"
        }
        Op::DeformConv {
            window,
            group,
            offset_group,
        } => {
            window_attrs(window, a);
            a.push(attr_i("group", *group as i64));
            a.push(attr_i("offset_group", *offset_group as i64));
            "DeformConv"
        }
        Op::ConvInteger { window, group } => {
            window_attrs(window, a);
            a.push(attr_i("group", *group as i64));
            "ConvInteger"
        }
        Op::QLinearConv { window, group } => {
            window_attrs(window, a);
            a.push(attr_i("group", *group as i64));
            "QLinearConv"
        }
        _ => return None,
    })
}
