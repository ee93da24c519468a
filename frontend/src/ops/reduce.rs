//! Builders for reductions: ReduceX (axes attribute or input), ArgMax/ArgMin, TopK (k
//! attribute or input), CumSum.

use super::{i64s, BuildResult, In, Lowered, NodeCtx};
use whittle_ir::{Op, ReduceOp};

pub(crate) fn reduce_kind(op_type: &str) -> Option<ReduceOp> {
    use ReduceOp::*;
    Some(match op_type {
        "ReduceMean" => Mean,
        "ReduceSum" => Sum,
        "ReduceMax" => Max,
        "ReduceMin" => Min,
        "ReduceProd" => Prod,
        "ReduceSumSquare" => SumSquare,
        "ReduceL1" => L1,
        "ReduceL2" => L2,
        "ReduceLogSum" => LogSum,
        "ReduceLogSumExp" => LogSumExp,
        _ => return None,
    })
}

fn kind(cx: &NodeCtx) -> Result<ReduceOp, crate::FrontendError> {
    reduce_kind(cx.op_type()).ok_or_else(|| cx.bad_node("not a reduction"))
}

/// Old form: `axes` attribute (absent = all axes) becomes a constant input.
pub(crate) fn reduce_attrs(cx: &NodeCtx) -> BuildResult {
    let op = Op::Reduce {
        op: kind(cx)?,
        keepdims: cx.bool("keepdims", true)?,
        noop_with_empty_axes: false,
    };
    let axes = cx
        .ints("axes")?
        .filter(|a| !a.is_empty())
        .map_or(In::Absent, |a| i64s(&a));
    Ok(Lowered {
        op,
        inputs: vec![In::Onnx(0), axes],
    })
}

/// New form: `axes` is input 1.
pub(crate) fn reduce_inputs(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Reduce {
        op: kind(cx)?,
        keepdims: cx.bool("keepdims", true)?,
        noop_with_empty_axes: cx.bool("noop_with_empty_axes", false)?,
    })
}

pub(crate) fn arg_max_min(cx: &NodeCtx) -> BuildResult {
    let axis = cx.int("axis", 0)?;
    let keepdims = cx.bool("keepdims", true)?;
    let select_last_index = cx.bool("select_last_index", false)?;
    let op = match cx.op_type() {
        "ArgMax" => Op::ArgMax {
            axis,
            keepdims,
            select_last_index,
        },
        "ArgMin" => Op::ArgMin {
            axis,
            keepdims,
            select_last_index,
        },
        _ => return Err(cx.bad_node("not ArgMax/ArgMin")),
    };
    cx.same_inputs(op)
}

/// TopK before opset 10: `k` attribute becomes a 1-D constant input.
pub(crate) fn top_k_attr(cx: &NodeCtx) -> BuildResult {
    let k = cx
        .int_opt("k")?
        .ok_or_else(|| cx.bad_attr("k", "required attribute missing"))?;
    let op = Op::TopK {
        axis: cx.int("axis", -1)?,
        largest: true,
        sorted: true,
    };
    Ok(Lowered {
        op,
        inputs: vec![In::Onnx(0), i64s(&[k])],
    })
}

pub(crate) fn top_k(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::TopK {
        axis: cx.int("axis", -1)?,
        largest: cx.bool("largest", true)?,
        sorted: cx.bool("sorted", true)?,
    })
}

pub(crate) fn cum_sum(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::CumSum {
        exclusive: cx.bool("exclusive", false)?,
        reverse: cx.bool("reverse", false)?,
    })
}
