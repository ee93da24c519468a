//! Builders of the ONNX standard attention ops: `Attention` (opsets 23–25) →
//! `Op::SdpAttention`, `RotaryEmbedding` (opset 23) → `Op::RotaryEmbedding`.

use super::{BuildResult, NodeCtx};
use crate::FrontendError;
use whittle_ir::{Op, SdpAttentionAttrs};

/// An optional head count: absent or 0 is `None`, negative an error.
fn heads(cx: &NodeCtx, name: &str) -> Result<Option<usize>, FrontendError> {
    match cx.int_opt(name)? {
        None | Some(0) => Ok(None),
        Some(v) => usize::try_from(v)
            .map(Some)
            .map_err(|_| cx.bad_attr(name, format!("negative value {v}"))),
    }
}

/// A window bound: `-1` (the default) leaves that side unbounded.
fn window(cx: &NodeCtx, name: &str) -> Result<Option<usize>, FrontendError> {
    match cx.int(name, -1)? {
        -1 => Ok(None),
        v => usize::try_from(v)
            .map(Some)
            .map_err(|_| cx.bad_attr(name, format!("must be -1 or non-negative, found {v}"))),
    }
}

pub(crate) fn attention(cx: &NodeCtx) -> BuildResult {
    let mode = cx.int("qk_matmul_output_mode", 0)?;
    let qk_matmul_output_mode = u8::try_from(mode).ok().filter(|m| *m <= 3).ok_or_else(|| {
        cx.bad_attr(
            "qk_matmul_output_mode",
            format!("must be 0..3, found {mode}"),
        )
    })?;
    let softmax_precision = cx.dtype_attr("softmax_precision")?;
    if let Some(d) = softmax_precision {
        if !d.is_float() {
            return Err(cx.bad_attr(
                "softmax_precision",
                format!("must be a float type, found {d}"),
            ));
        }
    }
    let attrs = SdpAttentionAttrs {
        q_num_heads: heads(cx, "q_num_heads")?,
        kv_num_heads: heads(cx, "kv_num_heads")?,
        scale: cx.float_opt("scale")?,
        is_causal: cx.bool("is_causal", false)?,
        softcap: cx.float("softcap", 0.0)?,
        qk_matmul_output_mode,
        softmax_precision,
        left_window: window(cx, "left_window_size")?,
        right_window: window(cx, "right_window_size")?,
    };
    cx.same_inputs(Op::SdpAttention(Box::new(attrs)))
}

pub(crate) fn rotary_embedding(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::RotaryEmbedding {
        interleaved: cx.bool("interleaved", false)?,
        rotary_dim: cx.usize_attr("rotary_embedding_dim", 0)?,
        num_heads: cx.usize_attr("num_heads", 0)?,
    })
}
