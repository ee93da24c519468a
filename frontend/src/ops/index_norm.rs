//! Builders for the scatters (ScatterElements, the old Scatter, ScatterND, TensorScatter),
//! Compress, Unique, ReverseSequence, DepthToSpace / SpaceToDepth, CenterCropPad, Col2Im,
//! MaxUnpool, LpPool and the extra normalizations (LpNormalization, LRN,
//! InstanceNormalization, GroupNormalization, MeanVarianceNormalization) and Det.

use super::{BuildResult, NodeCtx};
use crate::FrontendError;
use whittle_ir::{AutoPad, Op, ScatterKind, ScatterReduction};

fn reduction(cx: &NodeCtx) -> Result<ScatterReduction, FrontendError> {
    Ok(match cx.string("reduction", "none")?.as_str() {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" if cx.opset >= 18 => ScatterReduction::Max,
        "min" if cx.opset >= 18 => ScatterReduction::Min,
        other => return Err(cx.bad_attr("reduction", format!("unknown value '{other}'"))),
    })
}

/// ScatterElements (opset 11+) and the old Scatter (opset 9–10, no reduction).
pub(crate) fn scatter_elements(cx: &NodeCtx) -> BuildResult {
    let reduction = if cx.op_type() == "Scatter" {
        ScatterReduction::None
    } else {
        reduction(cx)?
    };
    cx.same_inputs(Op::Scatter {
        kind: ScatterKind::Elements {
            axis: cx.int("axis", 0)?,
        },
        reduction,
    })
}

pub(crate) fn scatter_nd(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Scatter {
        kind: ScatterKind::Nd,
        reduction: reduction(cx)?,
    })
}

pub(crate) fn tensor_scatter(cx: &NodeCtx) -> BuildResult {
    let circular = match cx.string("mode", "linear")?.as_str() {
        "linear" => false,
        "circular" => true,
        other => return Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
    };
    cx.same_inputs(Op::Scatter {
        kind: ScatterKind::Tensor {
            axis: cx.int("axis", -2)?,
            circular,
        },
        reduction: ScatterReduction::None,
    })
}

pub(crate) fn compress(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Compress {
        axis: cx.int_opt("axis")?,
    })
}

pub(crate) fn unique(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Unique {
        axis: cx.int_opt("axis")?,
        sorted: cx.bool("sorted", true)?,
    })
}

pub(crate) fn reverse_sequence(cx: &NodeCtx) -> BuildResult {
    let batch_axis = cx.int("batch_axis", 1)?;
    let time_axis = cx.int("time_axis", 0)?;
    for (name, v) in [("batch_axis", batch_axis), ("time_axis", time_axis)] {
        if v != 0 && v != 1 {
            return Err(cx.bad_attr(name, format!("must be 0 or 1, found {v}")));
        }
    }
    if batch_axis == time_axis {
        return Err(cx.bad_attr("time_axis", "must differ from batch_axis"));
    }
    cx.same_inputs(Op::ReverseSequence {
        batch_axis,
        time_axis,
    })
}

fn blocksize(cx: &NodeCtx) -> Result<usize, FrontendError> {
    match cx.int_opt("blocksize")? {
        None => Err(cx.bad_attr("blocksize", "required attribute missing")),
        Some(b) if b <= 0 => Err(cx.bad_attr("blocksize", format!("must be positive, found {b}"))),
        Some(b) => usize::try_from(b).map_err(|_| cx.bad_attr("blocksize", "too large")),
    }
}

/// The DCR / CRD mode (DepthToSpace from opset 11, SpaceToDepth from opset 28).
fn crd_mode(cx: &NodeCtx, since: i64) -> Result<bool, FrontendError> {
    if cx.opset < since {
        return Ok(false);
    }
    match cx.string("mode", "DCR")?.as_str() {
        "DCR" => Ok(false),
        "CRD" => Ok(true),
        other => Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
    }
}

pub(crate) fn depth_to_space(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::DepthToSpace {
        blocksize: blocksize(cx)?,
        crd: crd_mode(cx, 11)?,
    })
}

pub(crate) fn space_to_depth(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::SpaceToDepth {
        blocksize: blocksize(cx)?,
        crd: crd_mode(cx, 28)?,
    })
}

pub(crate) fn center_crop_pad(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::CenterCropPad {
        axes: cx.ints("axes")?,
    })
}

pub(crate) fn col2im(cx: &NodeCtx) -> BuildResult {
    let dilations = cx.usizes("dilations")?;
    let strides = cx.usizes("strides")?;
    if dilations.contains(&0) || strides.contains(&0) {
        return Err(cx.bad_attr("strides", "strides and dilations must be positive"));
    }
    cx.same_inputs(Op::Col2Im {
        dilations,
        pads: cx.usizes("pads")?,
        strides,
    })
}

/// Pool windows whose `kernel_shape` ONNX requires.
fn pool_window(cx: &NodeCtx) -> Result<whittle_ir::Window, FrontendError> {
    let w = cx.window()?;
    if w.kernel_shape.is_empty() {
        return Err(cx.bad_attr("kernel_shape", "required attribute missing"));
    }
    Ok(w)
}

pub(crate) fn max_unpool(cx: &NodeCtx) -> BuildResult {
    let w = pool_window(cx)?;
    if w.auto_pad != AutoPad::NotSet || !w.dilations.is_empty() {
        return Err(cx.bad_node("MaxUnpool takes no auto_pad or dilations"));
    }
    cx.same_inputs(Op::MaxUnpool { window: w })
}

pub(crate) fn lp_pool(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::LpPool {
        window: pool_window(cx)?,
        ceil_mode: cx.bool("ceil_mode", false)?,
        p: cx.int("p", 2)?,
    })
}

pub(crate) fn lp_normalization(cx: &NodeCtx) -> BuildResult {
    let p = cx.int("p", 2)?;
    if p != 1 && p != 2 {
        return Err(cx.bad_attr("p", format!("must be 1 or 2, found {p}")));
    }
    cx.same_inputs(Op::LpNormalization {
        axis: cx.int("axis", -1)?,
        p,
    })
}

pub(crate) fn lrn(cx: &NodeCtx) -> BuildResult {
    let size = match cx.int_opt("size")? {
        Some(s) if s > 0 => s as usize,
        Some(s) => return Err(cx.bad_attr("size", format!("must be positive, found {s}"))),
        None => return Err(cx.bad_attr("size", "required attribute missing")),
    };
    cx.same_inputs(Op::Lrn {
        alpha: cx.float("alpha", 1e-4)?,
        beta: cx.float("beta", 0.75)?,
        bias: cx.float("bias", 1.0)?,
        size,
    })
}

pub(crate) fn instance_norm(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::InstanceNormalization {
        epsilon: cx.float("epsilon", 1e-5)?,
    })
}

/// GroupNormalization: opset 18 has per-group scale / bias, opset 21 per-channel.
pub(crate) fn group_norm(cx: &NodeCtx) -> BuildResult {
    let num_groups = match cx.int_opt("num_groups")? {
        Some(g) if g > 0 => g as usize,
        Some(g) => return Err(cx.bad_attr("num_groups", format!("must be positive, found {g}"))),
        None => return Err(cx.bad_attr("num_groups", "required attribute missing")),
    };
    cx.same_inputs(Op::GroupNormalization {
        epsilon: cx.float("epsilon", 1e-5)?,
        num_groups,
        per_group_affine: cx.opset < 21,
    })
}

pub(crate) fn mean_variance_norm(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::MeanVarianceNormalization {
        axes: cx.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]),
    })
}

pub(crate) fn det(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Det)
}
