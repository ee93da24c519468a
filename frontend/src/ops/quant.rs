//! Builders for quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
//! MatMulInteger, QLinearMatMul and com.microsoft's MatMulIntegerToFloat.

use super::{BuildResult, NodeCtx};
use whittle_ir::Op;

pub(crate) fn quantize_linear(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::QuantizeLinear {
        axis: cx.int("axis", 1)?,
        block_size: cx.usize_attr("block_size", 0)?,
        output_dtype: cx.dtype_attr("output_dtype").or_else(|e| {
            match cx.int("output_dtype", 0)? {
                0 => Ok(None),
                _ => Err(e),
            }
        })?,
    })
}

pub(crate) fn dequantize_linear(cx: &NodeCtx) -> BuildResult {
    // `output_dtype` (opset 23+) must equal the scale's dtype, which is the IR's output type.
    if let Some(code) = cx.int_opt("output_dtype")?.filter(|&c| c != 0) {
        let want = cx.dtype_attr("output_dtype")?;
        if want.is_none() || want != cx.input_dtype(1) {
            return Err(cx.bad_attr(
                "output_dtype",
                format!("output dtype code {code} differs from the scale's dtype"),
            ));
        }
    }
    cx.same_inputs(Op::DequantizeLinear {
        axis: cx.int("axis", 1)?,
        block_size: cx.usize_attr("block_size", 0)?,
    })
}

pub(crate) fn dynamic_quantize_linear(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::DynamicQuantizeLinear)
}

pub(crate) fn matmul_integer(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::MatMulInteger)
}

/// com.microsoft MatMulIntegerToFloat: `A, B, a_scale, b_scale, a_zero_point?,
/// b_zero_point?, bias? → Y`.
pub(crate) fn matmul_integer_to_float(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::MatMulIntegerToFloat {
        activation: whittle_ir::Activation::Linear,
    })
}

pub(crate) fn qlinear_matmul(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::QLinearMatMul)
}
