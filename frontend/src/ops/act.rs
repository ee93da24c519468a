//! Builders for the elementwise extras: trigonometric / hyperbolic functions, Softplus,
//! Softsign, Mish, the bitwise ops, PRelu, the activations with attributes (Selu, Celu,
//! ThresholdedRelu, Shrink, Swish), SwiGLU, BitCast, Hardmax, CumProd and EyeLike.

use super::{BuildResult, NodeCtx};
use whittle_ir::{BinaryOp, Op, ParamUnary, UnaryOp};

/// The unary ops of this file by ONNX op type.
fn unary_kind(op_type: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    Some(match op_type {
        "Tan" => Tan,
        "Asin" => Asin,
        "Acos" => Acos,
        "Atan" => Atan,
        "Sinh" => Sinh,
        "Cosh" => Cosh,
        "Asinh" => Asinh,
        "Acosh" => Acosh,
        "Atanh" => Atanh,
        "Softplus" => Softplus,
        "Softsign" => Softsign,
        "Mish" => Mish,
        "BitwiseNot" => BitwiseNot,
        _ => return None,
    })
}

pub(crate) fn unary(cx: &NodeCtx) -> BuildResult {
    let u = unary_kind(cx.op_type()).ok_or_else(|| cx.bad_node("not a unary op"))?;
    cx.same_inputs(Op::Unary(u))
}

/// BitwiseAnd / BitwiseOr / BitwiseXor / PRelu.
pub(crate) fn binary(cx: &NodeCtx) -> BuildResult {
    let b = match cx.op_type() {
        "BitwiseAnd" => BinaryOp::BitwiseAnd,
        "BitwiseOr" => BinaryOp::BitwiseOr,
        "BitwiseXor" => BinaryOp::BitwiseXor,
        "PRelu" => BinaryOp::PRelu,
        _ => return Err(cx.bad_node("not a binary op")),
    };
    cx.same_inputs(Op::Binary(b))
}

/// `BitShift`: `direction` (required) is `LEFT` or `RIGHT`.
pub(crate) fn bit_shift(cx: &NodeCtx) -> BuildResult {
    let b = match cx.string_opt("direction")?.as_deref() {
        Some("LEFT") => BinaryOp::BitShiftLeft,
        Some("RIGHT") => BinaryOp::BitShiftRight,
        Some(other) => {
            return Err(cx.bad_attr(
                "direction",
                format!("must be LEFT or RIGHT, found '{other}'"),
            ))
        }
        None => return Err(cx.bad_attr("direction", "required attribute missing")),
    };
    cx.same_inputs(Op::Binary(b))
}

/// Selu, Celu, ThresholdedRelu, Shrink, Swish with their ONNX defaults.
pub(crate) fn param_unary(cx: &NodeCtx) -> BuildResult {
    let p = match cx.op_type() {
        "Selu" => ParamUnary::Selu {
            alpha: cx.float("alpha", 1.673_263_2)?,
            gamma: cx.float("gamma", 1.050_701)?,
        },
        "Celu" => {
            let alpha = cx.float("alpha", 1.0)?;
            if alpha == 0.0 {
                return Err(cx.bad_attr("alpha", "must not be 0"));
            }
            ParamUnary::Celu { alpha }
        }
        "ThresholdedRelu" => ParamUnary::ThresholdedRelu {
            alpha: cx.float("alpha", 1.0)?,
        },
        "Shrink" => ParamUnary::Shrink {
            bias: cx.float("bias", 0.0)?,
            lambd: cx.float("lambd", 0.5)?,
        },
        "Swish" => ParamUnary::Swish {
            alpha: cx.float("alpha", 1.0)?,
        },
        _ => return Err(cx.bad_node("not an activation with attributes")),
    };
    cx.same_inputs(Op::ParamUnary(p))
}

pub(crate) fn swiglu(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::SwiGlu {
        alpha: cx.float("alpha", 1.0)?,
    })
}

pub(crate) fn bit_cast(cx: &NodeCtx) -> BuildResult {
    let to = cx
        .dtype_attr("to")?
        .ok_or_else(|| cx.bad_attr("to", "required attribute missing"))?;
    cx.same_inputs(Op::BitCast { to })
}

/// Hardmax before opset 13: flatten at `axis` (default 1), one-hot per row.
pub(crate) fn hardmax_2d(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Hardmax {
        axis: cx.int("axis", 1)?,
        coerce_2d: true,
    })
}

/// Hardmax from opset 13: along `axis` (default -1).
pub(crate) fn hardmax(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Hardmax {
        axis: cx.int("axis", -1)?,
        coerce_2d: false,
    })
}

pub(crate) fn cum_prod(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::CumProd {
        exclusive: cx.bool("exclusive", false)?,
        reverse: cx.bool("reverse", false)?,
    })
}

pub(crate) fn eye_like(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::EyeLike {
        dtype: cx.dtype_attr("dtype")?,
        k: cx.int("k", 0)?,
    })
}
