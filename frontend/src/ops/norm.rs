//! Builders for normalizations and softmax: BatchNormalization (inference only),
//! LayerNormalization, RMSNormalization, Softmax and LogSoftmax (both opset forms).

use super::{BuildResult, In, Lowered, NodeCtx};
use whittle_ir::Op;

pub(crate) fn batch_norm(cx: &NodeCtx) -> BuildResult {
    if cx.bool("training_mode", false)? {
        return Err(cx.bad_attr(
            "training_mode",
            "training-mode BatchNormalization is not supported",
        ));
    }
    if !cx.bool("spatial", true)? {
        return Err(cx.bad_attr(
            "spatial",
            "non-spatial (per-element) BatchNormalization is not supported",
        ));
    }
    if cx.num_outputs() > 1 {
        return Err(cx.bad_node("running mean/variance outputs (training mode) are not supported"));
    }
    let epsilon = cx.float("epsilon", 1e-5)?;
    Ok(Lowered {
        op: Op::BatchNormalization { epsilon },
        inputs: (0..5).map(In::Onnx).collect(),
    })
}

pub(crate) fn layer_norm(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::LayerNormalization {
        axis: cx.int("axis", -1)?,
        epsilon: cx.float("epsilon", 1e-5)?,
    })
}

pub(crate) fn rms_norm(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::RmsNormalization {
        axis: cx.int("axis", -1)?,
        epsilon: cx.float("epsilon", 1e-5)?,
    })
}

/// Softmax / LogSoftmax: before opset 13 the input is coerced to 2-D at `axis` (default 1);
/// from 13 on, the op works along `axis` (default -1).
pub(crate) fn softmax(cx: &NodeCtx) -> BuildResult {
    let coerce_2d = cx.opset < 13;
    let axis = cx.int("axis", if coerce_2d { 1 } else { -1 })?;
    let op = match cx.op_type() {
        "Softmax" => Op::Softmax { axis, coerce_2d },
        "LogSoftmax" => Op::LogSoftmax { axis, coerce_2d },
        _ => return Err(cx.bad_node("not a softmax op")),
    };
    cx.same_inputs(op)
}
