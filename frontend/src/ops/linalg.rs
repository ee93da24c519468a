//! Builders for linear algebra and pooling: MatMul, Gemm, Einsum, Conv, ConvTranspose,
//! MaxPool, AveragePool and the global pools.

use super::{BuildResult, NodeCtx};
use whittle_ir::Op;

pub(crate) fn matmul(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::MatMul)
}

pub(crate) fn gemm(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Gemm {
        alpha: cx.float("alpha", 1.0)?,
        beta: cx.float("beta", 1.0)?,
        trans_a: cx.bool("transA", false)?,
        trans_b: cx.bool("transB", false)?,
    })
}

pub(crate) fn einsum(cx: &NodeCtx) -> BuildResult {
    let equation = cx
        .string_opt("equation")?
        .ok_or_else(|| cx.bad_attr("equation", "required attribute missing"))?;
    cx.same_inputs(Op::Einsum { equation })
}

fn group(cx: &NodeCtx) -> Result<usize, crate::FrontendError> {
    let g = cx.usize_attr("group", 1)?;
    if g == 0 {
        return Err(cx.bad_attr("group", "must be at least 1"));
    }
    Ok(g)
}

pub(crate) fn conv(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::Conv {
        window: cx.window()?,
        group: group(cx)?,
    })
}

pub(crate) fn conv_transpose(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::ConvTranspose {
        window: cx.window()?,
        group: group(cx)?,
        output_padding: cx.usizes("output_padding")?,
        output_shape: cx.usizes("output_shape")?,
    })
}

pub(crate) fn max_pool(cx: &NodeCtx) -> BuildResult {
    let storage_order = match cx.int("storage_order", 0)? {
        0 => 0,
        1 => 1,
        v => return Err(cx.bad_attr("storage_order", format!("must be 0 or 1, found {v}"))),
    };
    cx.same_inputs(Op::MaxPool {
        window: cx.window()?,
        ceil_mode: cx.bool("ceil_mode", false)?,
        storage_order,
    })
}

pub(crate) fn average_pool(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::AveragePool {
        window: cx.window()?,
        ceil_mode: cx.bool("ceil_mode", false)?,
        count_include_pad: cx.bool("count_include_pad", false)?,
    })
}

pub(crate) fn global_average_pool(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::GlobalAveragePool)
}

pub(crate) fn global_max_pool(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::GlobalMaxPool)
}
