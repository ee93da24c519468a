//! Builders for shape and data-movement ops: Reshape, Transpose, Flatten, Squeeze,
//! Unsqueeze, Concat, Split, Slice, Gather*, Expand, Tile, Pad, Shape, Size,
//! ConstantOfShape, Range, Trilu, NonZero, OneHot.

use super::{i64s, scalar_of, BuildResult, In, Lowered, NodeCtx};
use std::sync::Arc;
use whittle_ir::{Op, PadMode, Tensor};

pub(crate) fn reshape(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Reshape {
        allowzero: cx.bool("allowzero", false)?,
    })
}

pub(crate) fn transpose(cx: &NodeCtx) -> BuildResult {
    let perm = match cx.ints("perm")? {
        None => None,
        Some(p) => Some(
            p.iter()
                .map(|&x| {
                    usize::try_from(x)
                        .map_err(|_| cx.bad_attr("perm", format!("negative axis {x}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    cx.same_inputs(Op::Transpose { perm })
}

pub(crate) fn flatten(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Flatten {
        axis: cx.int("axis", 1)?,
    })
}

/// Squeeze/Unsqueeze before opset 13: the `axes` attribute becomes a constant input.
pub(crate) fn squeeze_attrs(cx: &NodeCtx) -> BuildResult {
    let axes = cx.ints("axes")?;
    let (op, axes) = match cx.op_type() {
        "Squeeze" => (Op::Squeeze, axes.map_or(In::Absent, |a| i64s(&a))),
        "Unsqueeze" => (
            Op::Unsqueeze,
            i64s(&axes.ok_or_else(|| cx.bad_attr("axes", "required attribute missing"))?),
        ),
        _ => return Err(cx.bad_node("not Squeeze/Unsqueeze")),
    };
    Ok(Lowered {
        op,
        inputs: vec![In::Onnx(0), axes],
    })
}

pub(crate) fn squeeze_inputs(cx: &NodeCtx) -> BuildResult {
    match cx.op_type() {
        "Squeeze" => cx.same_inputs(Op::Squeeze),
        "Unsqueeze" => cx.same_inputs(Op::Unsqueeze),
        _ => Err(cx.bad_node("not Squeeze/Unsqueeze")),
    }
}

pub(crate) fn concat(cx: &NodeCtx) -> BuildResult {
    let axis = cx
        .int_opt("axis")?
        .ok_or_else(|| cx.bad_attr("axis", "required attribute missing"))?;
    cx.same_inputs(Op::Concat { axis })
}

/// Split before opset 13: the `split` attribute becomes a constant input.
pub(crate) fn split_attrs(cx: &NodeCtx) -> BuildResult {
    let op = Op::Split {
        axis: cx.int("axis", 0)?,
        num_outputs: cx.node.output.len(),
    };
    let split = cx
        .ints("split")?
        .filter(|s| !s.is_empty())
        .map_or(In::Absent, |s| i64s(&s));
    Ok(Lowered {
        op,
        inputs: vec![In::Onnx(0), split],
    })
}

pub(crate) fn split_inputs(cx: &NodeCtx) -> BuildResult {
    let n = cx.node.output.len();
    if let Some(k) = cx.int_opt("num_outputs")? {
        if k != n as i64 {
            return Err(cx.bad_attr(
                "num_outputs",
                format!("is {k} but the node has {n} outputs"),
            ));
        }
    }
    cx.same_inputs(Op::Split {
        axis: cx.int("axis", 0)?,
        num_outputs: n,
    })
}

/// Slice before opset 10: `starts`, `ends`, `axes` attributes become constant inputs.
pub(crate) fn slice_attrs(cx: &NodeCtx) -> BuildResult {
    let starts = cx
        .ints("starts")?
        .ok_or_else(|| cx.bad_attr("starts", "required attribute missing"))?;
    let ends = cx
        .ints("ends")?
        .ok_or_else(|| cx.bad_attr("ends", "required attribute missing"))?;
    let axes = cx.ints("axes")?.map_or(In::Absent, |a| i64s(&a));
    Ok(Lowered {
        op: Op::Slice,
        inputs: vec![In::Onnx(0), i64s(&starts), i64s(&ends), axes],
    })
}

pub(crate) fn slice(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Slice)
}

pub(crate) fn gather(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Gather {
        axis: cx.int("axis", 0)?,
    })
}

pub(crate) fn gather_elements(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::GatherElements {
        axis: cx.int("axis", 0)?,
    })
}

pub(crate) fn gather_nd(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::GatherNd {
        batch_dims: cx.usize_attr("batch_dims", 0)?,
    })
}

pub(crate) fn expand(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Expand)
}

pub(crate) fn tile(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Tile)
}

fn pad_mode(cx: &NodeCtx) -> Result<PadMode, crate::FrontendError> {
    Ok(match cx.string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" if cx.opset >= 19 => PadMode::Wrap,
        other => return Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
    })
}

/// Pad before opset 11: `pads` and `value` attributes become constant inputs.
pub(crate) fn pad_attrs(cx: &NodeCtx) -> BuildResult {
    let pads = match cx.ints("pads")? {
        Some(p) => p,
        None => cx
            .ints("paddings")?
            .ok_or_else(|| cx.bad_attr("pads", "required attribute missing"))?,
    };
    let value = cx.float("value", 0.0)?;
    let value = if value == 0.0 {
        In::Absent
    } else {
        scalar_of(cx.input_dtype(0), value as f64)
    };
    Ok(Lowered {
        op: Op::Pad {
            mode: pad_mode(cx)?,
        },
        inputs: vec![In::Onnx(0), i64s(&pads), value],
    })
}

pub(crate) fn pad(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Pad {
        mode: pad_mode(cx)?,
    })
}

pub(crate) fn shape(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Shape {
        start: cx.int("start", 0)?,
        end: cx.int_opt("end")?,
    })
}

pub(crate) fn size(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Size)
}

pub(crate) fn constant_of_shape(cx: &NodeCtx) -> BuildResult {
    let value = cx
        .tensor("value")?
        .unwrap_or_else(|| Tensor::from_vec(vec![1], vec![0f32]));
    if value.len() != 1 {
        return Err(cx.bad_attr(
            "value",
            format!("must hold one element, has shape {:?}", value.shape()),
        ));
    }
    cx.same_inputs(Op::ConstantOfShape {
        value: Arc::new(value),
    })
}

pub(crate) fn range(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Range)
}

pub(crate) fn trilu(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Trilu {
        upper: cx.bool("upper", true)?,
    })
}

pub(crate) fn non_zero(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::NonZero)
}

pub(crate) fn one_hot(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::OneHot {
        axis: cx.int("axis", -1)?,
    })
}
