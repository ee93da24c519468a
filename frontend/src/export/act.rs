//! Exporter arms for the elementwise extras (see `ops/act.rs`): op types, attributes and
//! the opsets they need.

use super::ops::{attr_f, attr_i, attr_s};
use crate::proto::AttributeProto;
use crate::tensor::dtype_to_onnx;
use whittle_ir::{BinaryOp, Op, ParamUnary, UnaryOp};

/// The opset the ops of this file need, where it is above 13.
pub(crate) fn min_opset(op: &Op) -> Option<i64> {
    use BinaryOp::*;
    Some(match op {
        Op::Unary(UnaryOp::Mish | UnaryOp::BitwiseNot)
        | Op::Binary(BitwiseAnd | BitwiseOr | BitwiseXor) => 18,
        Op::ParamUnary(ParamUnary::Swish { .. }) => 24,
        Op::BitCast { .. } | Op::CumProd { .. } => 26,
        Op::SwiGlu { .. } => 28,
        _ => return None,
    })
}

/// The ONNX names of this file's unary ops.
pub(crate) fn unary_name(u: UnaryOp) -> Option<&'static str> {
    use UnaryOp::*;
    Some(match u {
        Tan => "Tan",
        Asin => "Asin",
        Acos => "Acos",
        Atan => "Atan",
        Sinh => "Sinh",
        Cosh => "Cosh",
        Asinh => "Asinh",
        Acosh => "Acosh",
        Atanh => "Atanh",
        Softplus => "Softplus",
        Softsign => "Softsign",
        Mish => "Mish",
        BitwiseNot => "BitwiseNot",
        _ => return None,
    })
}

/// The ONNX names (and attributes) of this file's binary ops.
pub(crate) fn binary_form(b: BinaryOp, a: &mut Vec<AttributeProto>) -> Option<&'static str> {
    use BinaryOp::*;
    Some(match b {
        BitwiseAnd => "BitwiseAnd",
        BitwiseOr => "BitwiseOr",
        BitwiseXor => "BitwiseXor",
        PRelu => "PRelu",
        BitShiftLeft | BitShiftRight => {
            a.push(attr_s(
                "direction",
                if b == BitShiftLeft { "LEFT" } else { "RIGHT" },
            ));
            "BitShift"
        }
        _ => return None,
    })
}

/// Op type and attributes of the non-unary/binary ops of this file; `None` for a
/// `coerce_2d` Hardmax (the exporter expands it as Flatten → Hardmax → Reshape).
pub(crate) fn onnx_form(op: &Op, a: &mut Vec<AttributeProto>) -> Option<&'static str> {
    Some(match op {
        Op::ParamUnary(p) => {
            match *p {
                ParamUnary::Selu { alpha, gamma } => {
                    a.extend([attr_f("alpha", alpha), attr_f("gamma", gamma)])
                }
                ParamUnary::Celu { alpha }
                | ParamUnary::ThresholdedRelu { alpha }
                | ParamUnary::Swish { alpha } => a.push(attr_f("alpha", alpha)),
                ParamUnary::Shrink { bias, lambd } => {
                    a.extend([attr_f("bias", bias), attr_f("lambd", lambd)])
                }
            }
            p.onnx_name()
        }
        Op::SwiGlu { alpha } => {
            a.push(attr_f("alpha", *alpha));
            "SwiGLU"
        }
        Op::BitCast { to } => {
            a.push(attr_i("to", dtype_to_onnx(*to) as i64));
            "BitCast"
        }
        Op::Hardmax {
            axis,
            coerce_2d: false,
        } => {
            a.push(attr_i("axis", *axis));
            "Hardmax"
        }
        Op::CumProd { exclusive, reverse } => {
            a.extend([
                attr_i("exclusive", *exclusive as i64),
                attr_i("reverse", *reverse as i64),
            ]);
            "CumProd"
        }
        Op::EyeLike { dtype, k } => {
            if let Some(d) = dtype {
                a.push(attr_i("dtype", dtype_to_onnx(*d) as i64));
            }
            a.push(attr_i("k", *k));
            "EyeLike"
        }
        _ => return None,
    })
}
