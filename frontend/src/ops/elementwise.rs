//! Builders for elementwise ONNX ops: unary, binary, variadic, activations, Clip, Where,
//! Cast, plus the plumbing ops Constant, Identity and Dropout.

use super::{scalar_of, BuildResult, In, Lowered, NodeCtx};
use crate::proto::{attribute_proto::AttributeType, SparseTensorProto};
use crate::tensor::{checked_shape, tensor_from_proto};
use crate::FrontendError;
use std::sync::Arc;
use whittle_ir::{BinaryOp, GeluApprox, Op, Tensor, UnaryOp, VariadicOp};

/// The unary op an ONNX op type names.
pub(crate) fn unary_kind(op_type: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    Some(match op_type {
        "Neg" => Neg,
        "Abs" => Abs,
        "Sqrt" => Sqrt,
        "Reciprocal" => Reciprocal,
        "Exp" => Exp,
        "Log" => Log,
        "Erf" => Erf,
        "Tanh" => Tanh,
        "Sigmoid" => Sigmoid,
        "Relu" => Relu,
        "Sin" => Sin,
        "Cos" => Cos,
        "Floor" => Floor,
        "Ceil" => Ceil,
        "Round" => Round,
        "Sign" => Sign,
        "Not" => Not,
        "HardSwish" => HardSwish,
        _ => return None,
    })
}

pub(crate) fn unary(cx: &NodeCtx) -> BuildResult {
    let u = unary_kind(cx.op_type()).ok_or_else(|| cx.bad_node("not a unary op"))?;
    cx.same_inputs(Op::Unary(u))
}

pub(crate) fn binary_kind(op_type: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    Some(match op_type {
        "Add" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "Pow" => Pow,
        "Equal" => Equal,
        "Less" => Less,
        "LessOrEqual" => LessOrEqual,
        "Greater" => Greater,
        "GreaterOrEqual" => GreaterOrEqual,
        "And" => And,
        "Or" => Or,
        "Xor" => Xor,
        _ => return None,
    })
}

pub(crate) fn binary(cx: &NodeCtx) -> BuildResult {
    let b = binary_kind(cx.op_type()).ok_or_else(|| cx.bad_node("not a binary op"))?;
    cx.same_inputs(Op::Binary(b))
}

/// `Mod`: `fmod = 1` is C fmod, `fmod = 0` the sign-of-divisor modulus.
pub(crate) fn modulo(cx: &NodeCtx) -> BuildResult {
    let op = if cx.bool("fmod", false)? {
        BinaryOp::FMod
    } else {
        BinaryOp::Mod
    };
    cx.same_inputs(Op::Binary(op))
}

pub(crate) fn variadic(cx: &NodeCtx) -> BuildResult {
    let v = match cx.op_type() {
        "Sum" => VariadicOp::Sum,
        "Mean" => VariadicOp::Mean,
        "Min" => VariadicOp::Min,
        "Max" => VariadicOp::Max,
        _ => return Err(cx.bad_node("not a variadic op")),
    };
    cx.same_inputs(Op::Variadic(v))
}

pub(crate) fn leaky_relu(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::LeakyRelu {
        alpha: cx.float("alpha", 0.01)?,
    })
}

pub(crate) fn elu(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Elu {
        alpha: cx.float("alpha", 1.0)?,
    })
}

pub(crate) fn hard_sigmoid(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::HardSigmoid {
        alpha: cx.float("alpha", 0.2)?,
        beta: cx.float("beta", 0.5)?,
    })
}

pub(crate) fn gelu(cx: &NodeCtx) -> BuildResult {
    let approximate = match cx.string("approximate", "none")?.as_str() {
        "none" => GeluApprox::None,
        "tanh" => GeluApprox::Tanh,
        other => return Err(cx.bad_attr("approximate", format!("unknown value '{other}'"))),
    };
    cx.same_inputs(Op::Gelu { approximate })
}

/// Clip before opset 11: `min`/`max` attributes become constant inputs.
pub(crate) fn clip_attrs(cx: &NodeCtx) -> BuildResult {
    let dt = cx.input_dtype(0);
    let lo = cx
        .float_opt("min")?
        .map_or(In::Absent, |v| scalar_of(dt, v as f64));
    let hi = cx
        .float_opt("max")?
        .map_or(In::Absent, |v| scalar_of(dt, v as f64));
    Ok(Lowered {
        op: Op::Clip,
        inputs: vec![In::Onnx(0), lo, hi],
    })
}

pub(crate) fn clip(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Clip)
}

pub(crate) fn where_(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Where)
}

pub(crate) fn cast(cx: &NodeCtx) -> BuildResult {
    let to = cx
        .dtype_attr("to")?
        .ok_or_else(|| cx.bad_attr("to", "required attribute missing"))?;
    cx.same_inputs(Op::Cast { to })
}

/// `CastLike(input, target_type)`: a `Cast` to the dtype of the second input, which the
/// loader always knows (graph inputs, initializers and inferred node outputs are typed).
pub(crate) fn cast_like(cx: &NodeCtx) -> BuildResult {
    let to = cx
        .input_dtype(1)
        .ok_or_else(|| cx.bad_node("the dtype of input 1 (target_type) is not known"))?;
    Ok(Lowered {
        op: Op::Cast { to },
        inputs: vec![In::Onnx(0)],
    })
}

pub(crate) fn is_nan(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::IsNaN)
}

pub(crate) fn is_inf(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::IsInf {
        detect_negative: cx.bool("detect_negative", true)?,
        detect_positive: cx.bool("detect_positive", true)?,
    })
}

pub(crate) fn identity(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Identity)
}

/// Dropout before opset 12: the `ratio` attribute becomes a constant input.
pub(crate) fn dropout_attrs(cx: &NodeCtx) -> BuildResult {
    let ratio = cx
        .float_opt("ratio")?
        .map_or(In::Absent, |r| In::Const(Tensor::scalar(r)));
    if cx.bool("is_test", true)? {
        Ok(Lowered {
            op: Op::Dropout,
            inputs: vec![In::Onnx(0), ratio],
        })
    } else {
        Err(cx.bad_attr("is_test", "training-mode Dropout is not supported"))
    }
}

pub(crate) fn dropout(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Dropout)
}

/// `Constant`: exactly one of the value attributes.
pub(crate) fn constant(cx: &NodeCtx) -> BuildResult {
    let set: Vec<_> = cx.node.attribute.iter().map(|a| a.name()).collect();
    if set.len() != 1 {
        return Err(cx.bad_node(format!("needs exactly one value attribute, found {set:?}")));
    }
    let t = match set[0] {
        "value" => cx
            .tensor("value")?
            .ok_or_else(|| cx.bad_attr("value", "missing"))?,
        "value_float" => Tensor::scalar(cx.float("value_float", 0.0)?),
        "value_int" => Tensor::scalar(cx.int("value_int", 0)?),
        "value_floats" => {
            let v = cx.floats("value_floats")?.unwrap_or_default();
            Tensor::from_vec(vec![v.len()], v)
        }
        "value_ints" => {
            let v = cx.ints("value_ints")?.unwrap_or_default();
            Tensor::from_vec(vec![v.len()], v)
        }
        "sparse_value" => {
            let a = cx.attr("sparse_value").filter(|a| {
                matches!(
                    a.r#type(),
                    AttributeType::SparseTensor | AttributeType::Undefined
                )
            });
            let sp = a
                .and_then(|a| a.sparse_tensor.as_ref())
                .ok_or_else(|| cx.bad_attr("sparse_value", "missing"))?;
            densify(sp, cx.base_dir)?
        }
        "value_string" | "value_strings" => {
            return Err(FrontendError::UnsupportedDType {
                name: cx.name().to_string(),
                dtype: "STRING".into(),
            })
        }
        other => return Err(cx.bad_attr(other, "unknown Constant attribute")),
    };
    Ok(Lowered {
        op: Op::Constant(Arc::new(t)),
        inputs: vec![],
    })
}

/// Expands a COO sparse tensor to a dense one (indices either linear `[nnz]` or
/// coordinates `[nnz, rank]`).
pub(crate) fn densify(
    sp: &SparseTensorProto,
    base_dir: Option<&std::path::Path>,
) -> Result<Tensor, FrontendError> {
    let values_p = sp
        .values
        .as_ref()
        .ok_or_else(|| FrontendError::tensor("sparse", "no values"))?;
    let name = values_p.name().to_string();
    let values = tensor_from_proto(values_p, base_dir)?;
    let indices = match &sp.indices {
        Some(p) => tensor_from_proto(p, base_dir)?,
        None => {
            return Err(FrontendError::tensor(
                &name,
                "sparse tensor without indices",
            ))
        }
    };
    let (shape, n) = checked_shape(&sp.dims, &name)?;
    // The dense result is allocated below: refuse absurd sizes that data cannot back, and
    // sizes over the memory budget (the f64 staging buffer is the largest allocation).
    if n > (1 << 31) {
        return Err(FrontendError::tensor(
            &name,
            format!("dense shape {shape:?} is too large"),
        ));
    }
    crate::tensor::checked_bytes(&shape, values.dtype(), &name)?;
    whittle_ir::limits::check_alloc(
        n as u64 * 8,
        &format!("the dense form of sparse tensor '{name}'"),
    )
    .map_err(|e| FrontendError::tensor(&name, e))?;
    let nnz = values.len();
    let idx = indices.to_i64_vec();
    let rank = shape.len();
    let linear: Vec<usize> = if indices.rank() == 1 && idx.len() == nnz {
        idx.iter()
            .map(|&i| usize::try_from(i).unwrap_or(usize::MAX))
            .collect()
    } else if indices.rank() == 2 && indices.shape() == [nnz, rank] {
        idx.chunks(rank.max(1))
            .map(|c| {
                c.iter().zip(&shape).try_fold(0usize, |acc, (&i, &d)| {
                    let i = usize::try_from(i).ok().filter(|&i| i < d)?;
                    acc.checked_mul(d)?.checked_add(i)
                })
            })
            .map(|o| o.unwrap_or(usize::MAX))
            .collect()
    } else {
        return Err(FrontendError::tensor(
            &name,
            format!(
                "indices of shape {:?} do not fit {nnz} values",
                indices.shape()
            ),
        ));
    };
    let vals = values.to_f64_vec();
    let mut dense = vec![0.0f64; n];
    for (&pos, &v) in linear.iter().zip(&vals) {
        let slot = dense
            .get_mut(pos)
            .ok_or_else(|| FrontendError::tensor(&name, "sparse index out of range"))?;
        *slot = v;
    }
    if values.dtype() == whittle_ir::DType::I64 || values.dtype() == whittle_ir::DType::U64 {
        // Keep 64-bit integers exact instead of going through f64.
        let ivals = values.to_i64_vec();
        let mut dense_i = vec![0i64; n];
        for (&pos, &v) in linear.iter().zip(&ivals) {
            if let Some(slot) = dense_i.get_mut(pos) {
                *slot = v;
            }
        }
        return Ok(Tensor::from_i64(values.dtype(), shape, &dense_i));
    }
    Ok(Tensor::from_f64(values.dtype(), shape, &dense))
}
