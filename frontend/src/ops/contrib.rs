//! Builders of the onnxruntime contrib ops (domain `com.microsoft`, opset 1) that
//! onnxruntime's transformer optimizer writes into shipped models. Where a contrib op means
//! what an IR op means it becomes that op, so the backends' kernels serve it:
//!
//! | contrib op | IR op |
//! | --- | --- |
//! | SkipLayerNormalization | `AddNorm { rms: false }` (the sum is output 3, IR port 1) |
//! | SkipSimplifiedLayerNormalization | `AddNorm { rms: true }` (likewise) |
//! | SimplifiedLayerNormalization (also default domain) | `RmsNormalization` |
//! | LayerNormalization (also default domain, opset < 17) | `LayerNormalization` |
//! | Gelu / BiasGelu | `Gelu { None }` / `BiasGelu { None }` |
//! | FastGelu | `Gelu { Tanh }`, with a bias `BiasGelu { Tanh }` |
//! | QuickGelu | `ParamUnary(Swish { alpha })` |
//! | FusedMatMul | `MatMul` (alpha 1, no transposes) or `ScaledMatMul` |
//! | EmbedLayerNormalization | `EmbedLayerNorm` |
//! | Attention | `QkvAttention` |
//! | MultiHeadAttention | `MultiHeadAttention` |
//! | GroupQueryAttention | `GroupQueryAttention` |
//! | RotaryEmbedding | `RotaryEmbedding` (ports reordered; position_ids may be a start offset) |
//! | MatMulNBits | `MatMulNBits` |
//! | MatMulIntegerToFloat | `MatMulIntegerToFloat` (built in `quant.rs`) |
//!
//! Outputs that only training or debugging reads (the normalizations' mean and inverse
//! standard deviation) and key/value caches are refused by name when a model names them.

use super::{BuildResult, In, Lowered, NodeCtx};
use crate::FrontendError;
use whittle_ir::{
    GeluApprox, GqaAttrs, MatMulNBitsAttrs, MhaAttrs, Op, ParamUnary, QkvAttentionAttrs,
};

/// The domain of the contrib ops.
pub(crate) const MS_DOMAIN: &str = "com.microsoft";

/// For contrib ops whose ONNX outputs are not the IR op's output ports in order: the ONNX
/// output index of each IR output port.
pub(crate) fn output_ports(domain: &str, op_type: &str) -> Option<&'static [usize]> {
    match (domain, op_type) {
        // output, mean, inv_std_var, input_skip_bias_sum → AddNorm's y, sum
        (MS_DOMAIN, "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization") => Some(&[0, 3]),
        _ => None,
    }
}

fn has_input(cx: &NodeCtx, i: usize) -> bool {
    cx.node.input.get(i).is_some_and(|s| !s.is_empty())
}

/// Refuses a named output `i` that the IR op does not compute.
fn refuse_output(cx: &NodeCtx, i: usize, what: &str) -> Result<(), FrontendError> {
    match cx.node.output.get(i) {
        Some(s) if !s.is_empty() => Err(cx.bad_node(format!(
            "output {i} ({what}, named '{s}') is not supported; only the model's \
             inference outputs are"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a connected input `i` that the IR op does not take.
fn refuse_input(cx: &NodeCtx, i: usize, what: &str) -> Result<(), FrontendError> {
    if has_input(cx, i) {
        return Err(cx.bad_node(format!("input {i} ({what}) is not supported")));
    }
    Ok(())
}

fn lowered(op: Op, inputs: Vec<In>) -> BuildResult {
    Ok(Lowered { op, inputs })
}

/// SkipLayerNormalization: `input, skip, gamma, beta?, bias? → output, mean?,
/// inv_std_var?, input_skip_bias_sum?`.
pub(crate) fn skip_layer_norm(cx: &NodeCtx) -> BuildResult {
    refuse_output(cx, 1, "mean")?;
    refuse_output(cx, 2, "inv_std_var")?;
    let epsilon = cx.float("epsilon", 1e-12)?;
    lowered(
        Op::AddNorm {
            rms: false,
            epsilon,
        },
        (0..5).map(In::Onnx).collect(),
    )
}

/// SkipSimplifiedLayerNormalization: `input, skip, gamma, bias? → output, mean?,
/// inv_std_var?, input_skip_bias_sum?` (RMS, no beta).
pub(crate) fn skip_simplified_layer_norm(cx: &NodeCtx) -> BuildResult {
    refuse_output(cx, 1, "mean")?;
    refuse_output(cx, 2, "inv_std_var")?;
    let epsilon = cx.float("epsilon", 1e-12)?;
    lowered(
        Op::AddNorm { rms: true, epsilon },
        vec![
            In::Onnx(0),
            In::Onnx(1),
            In::Onnx(2),
            In::Absent,
            In::Onnx(3),
        ],
    )
}

/// SimplifiedLayerNormalization: `X, scale → Y, inv_std_var?` (RMS over `axis..`).
pub(crate) fn simplified_layer_norm(cx: &NodeCtx) -> BuildResult {
    refuse_output(cx, 1, "inv_std_var")?;
    lowered(
        Op::RmsNormalization {
            axis: cx.int("axis", -1)?,
            epsilon: cx.float("epsilon", 1e-5)?,
        },
        vec![In::Onnx(0), In::Onnx(1)],
    )
}

/// com.microsoft Gelu: the exact (erf) GELU.
pub(crate) fn gelu(_cx: &NodeCtx) -> BuildResult {
    lowered(
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        vec![In::Onnx(0)],
    )
}

/// BiasGelu: `A, B → gelu(A + B)` (erf).
pub(crate) fn bias_gelu(_cx: &NodeCtx) -> BuildResult {
    lowered(
        Op::BiasGelu {
            approximate: GeluApprox::None,
        },
        vec![In::Onnx(0), In::Onnx(1)],
    )
}

/// FastGelu: `X, bias? → gelu_tanh(X + bias)`.
pub(crate) fn fast_gelu(cx: &NodeCtx) -> BuildResult {
    let approximate = GeluApprox::Tanh;
    if has_input(cx, 1) {
        lowered(Op::BiasGelu { approximate }, vec![In::Onnx(0), In::Onnx(1)])
    } else {
        lowered(Op::Gelu { approximate }, vec![In::Onnx(0)])
    }
}

/// QuickGelu: `x·sigmoid(alpha·x)`.
pub(crate) fn quick_gelu(cx: &NodeCtx) -> BuildResult {
    let alpha = cx.float("alpha", 1.702)?;
    lowered(
        Op::ParamUnary(ParamUnary::Swish { alpha }),
        vec![In::Onnx(0)],
    )
}

/// FusedMatMul: `A, B → alpha·op(A)·op(B)`; a plain MatMul when it is one.
pub(crate) fn fused_matmul(cx: &NodeCtx) -> BuildResult {
    let alpha = cx.float("alpha", 1.0)?;
    if !alpha.is_finite() {
        return Err(cx.bad_attr("alpha", format!("must be finite, found {alpha}")));
    }
    let trans_a = cx.bool("transA", false)?;
    let trans_b = cx.bool("transB", false)?;
    let trans_batch_a = cx.bool("transBatchA", false)?;
    let trans_batch_b = cx.bool("transBatchB", false)?;
    let ins = vec![In::Onnx(0), In::Onnx(1)];
    if alpha == 1.0 && !(trans_a || trans_b || trans_batch_a || trans_batch_b) {
        return lowered(Op::MatMul, ins);
    }
    lowered(
        Op::ScaledMatMul {
            alpha,
            trans_a,
            trans_b,
            trans_batch_a,
            trans_batch_b,
        },
        ins,
    )
}

/// EmbedLayerNormalization: `input_ids, segment_ids?, word_embedding, position_embedding,
/// segment_embedding?, gamma, beta?, mask?, position_ids? → output, mask_index,
/// embedding_sum?` (the IR op takes its required ports first).
pub(crate) fn embed_layer_norm(cx: &NodeCtx) -> BuildResult {
    let epsilon = cx.float("epsilon", 1e-12)?;
    lowered(
        Op::EmbedLayerNorm { epsilon },
        [0, 2, 3, 5, 6, 1, 4, 7, 8]
            .into_iter()
            .map(In::Onnx)
            .collect(),
    )
}

/// com.microsoft Attention: `input, weights, bias?, mask_index?, past?, attention_bias?,
/// past_sequence_length? → output, present?`; no key/value cache, no rotary embedding.
pub(crate) fn attention(cx: &NodeCtx) -> BuildResult {
    let num_heads = positive(cx, "num_heads")?;
    if cx.bool("do_rotary", false)? {
        return Err(cx.bad_attr(
            "do_rotary",
            "rotary embedding inside Attention is not supported",
        ));
    }
    if cx.bool("past_present_share_buffer", false)? {
        return Err(cx.bad_attr(
            "past_present_share_buffer",
            "key/value caches are not supported",
        ));
    }
    refuse_input(cx, 4, "past")?;
    refuse_input(cx, 6, "past_sequence_length")?;
    refuse_output(cx, 1, "present")?;
    let qkv_hidden_sizes = match cx.ints("qkv_hidden_sizes")? {
        None => None,
        Some(v) => {
            let sizes: Option<Vec<usize>> = v.iter().map(|&x| usize::try_from(x).ok()).collect();
            match sizes.as_deref() {
                Some(&[q, k, v]) => Some([q, k, v]),
                _ => {
                    return Err(cx.bad_attr(
                        "qkv_hidden_sizes",
                        format!("must be three non-negative sizes, found {v:?}"),
                    ))
                }
            }
        }
    };
    let scale = cx.float_opt("scale")?.filter(|&s| s != 0.0);
    if scale.is_some_and(|s| !s.is_finite()) {
        return Err(cx.bad_attr("scale", "must be finite"));
    }
    let attrs = QkvAttentionAttrs {
        num_heads,
        unidirectional: cx.bool("unidirectional", false)?,
        qkv_hidden_sizes,
        scale,
        mask_filter_value: cx.float("mask_filter_value", -10000.0)?,
    };
    lowered(
        Op::QkvAttention(Box::new(attrs)),
        [0, 1, 2, 3, 5].into_iter().map(In::Onnx).collect(),
    )
}

/// A required positive attribute.
fn positive(cx: &NodeCtx, name: &str) -> Result<usize, FrontendError> {
    match cx.int_opt(name)? {
        None => Err(cx.bad_attr(name, "is required")),
        Some(h) => usize::try_from(h)
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| cx.bad_attr(name, format!("must be positive, found {h}"))),
    }
}

/// com.microsoft MultiHeadAttention: `query, key, value, bias?, key_padding_mask?,
/// attention_bias?, past_key?, past_value? → output, present_key?, present_value?`; packed
/// QKV/KV, beam-search cache indirection and the QK output are refused.
pub(crate) fn multi_head_attention(cx: &NodeCtx) -> BuildResult {
    let num_heads = positive(cx, "num_heads")?;
    if !has_input(cx, 1) || !has_input(cx, 2) {
        return Err(cx.bad_node("packed QKV or KV (no separate key and value) is not supported"));
    }
    refuse_input(cx, 8, "past_sequence_length")?;
    refuse_input(cx, 9, "cache_indirection")?;
    refuse_output(cx, 3, "qk")?;
    let scale = cx.float_opt("scale")?.filter(|&s| s != 0.0);
    if scale.is_some_and(|s| !s.is_finite()) {
        return Err(cx.bad_attr("scale", "must be finite"));
    }
    let attrs = MhaAttrs {
        num_heads,
        unidirectional: cx.bool("unidirectional", false)?,
        scale,
        mask_filter_value: cx.float("mask_filter_value", -10000.0)?,
    };
    lowered(
        Op::MultiHeadAttention(Box::new(attrs)),
        (0..8).map(In::Onnx).collect(),
    )
}

/// com.microsoft GroupQueryAttention: `query, key?, value?, past_key?, past_value?,
/// seqlens_k, total_sequence_length, cos_cache?, sin_cache?, position_ids?, attention_bias?
/// → output, present_key?, present_value?`; head sinks (smooth softmax), quantized caches,
/// Q/K norms, right-padded chunks, window-sized caches and the QK output are refused.
pub(crate) fn group_query_attention(cx: &NodeCtx) -> BuildResult {
    let num_heads = positive(cx, "num_heads")?;
    let kv_num_heads = positive(cx, "kv_num_heads")?;
    if num_heads % kv_num_heads != 0 {
        return Err(cx.bad_attr(
            "kv_num_heads",
            format!("{kv_num_heads} does not divide num_heads {num_heads}"),
        ));
    }
    for (attr, what) in [
        ("smooth_softmax", "smooth softmax"),
        ("sliding_window_cache", "window-sized caches"),
        ("qk_output", "the QK output"),
    ] {
        if cx.int(attr, 0)? != 0 {
            return Err(cx.bad_attr(attr, format!("{what} is not supported")));
        }
    }
    for q in ["k_quant_type", "v_quant_type"] {
        if cx.string_opt(q)?.is_some_and(|s| s != "NONE") {
            return Err(cx.bad_attr(q, "quantized KV caches are not supported"));
        }
    }
    for (i, what) in [
        (11, "head_sink"),
        (12, "k_scale"),
        (13, "v_scale"),
        (14, "q_norm_weight"),
        (15, "k_norm_weight"),
        (16, "query_seqlens"),
    ] {
        refuse_input(cx, i, what)?;
    }
    refuse_output(cx, 3, "output_qk")?;
    let causal = cx.bool("causal", true)?;
    let window = cx.int("local_window_size", -1)?;
    let local_window = match window {
        -1 => None,
        w if w > 0 && causal => Some(w as usize),
        w => {
            return Err(cx.bad_attr(
                "local_window_size",
                format!("must be -1 or positive with causal attention, found {w}"),
            ))
        }
    };
    let scale = cx.float_opt("scale")?.filter(|&s| s != 0.0);
    let softcap = cx.float("softcap", 0.0)?;
    if scale.is_some_and(|s| !s.is_finite()) || !softcap.is_finite() || softcap < 0.0 {
        return Err(cx.bad_attr("scale", "scale and softcap must be finite, softcap ≥ 0"));
    }
    let attrs = GqaAttrs {
        num_heads,
        kv_num_heads,
        scale,
        softcap,
        local_window,
        do_rotary: cx.bool("do_rotary", false)?,
        rotary_interleaved: cx.bool("rotary_interleaved", false)?,
        causal,
    };
    lowered(
        Op::GroupQueryAttention(Box::new(attrs)),
        (0..11).map(In::Onnx).collect(),
    )
}

/// com.microsoft RotaryEmbedding: `input, position_ids, cos_cache, sin_cache` → the IR op's
/// `x, cos_cache, sin_cache, position_ids` (position_ids `[B,S]` or a one-element start).
pub(crate) fn rotary_embedding(cx: &NodeCtx) -> BuildResult {
    if cx.bool("is_packed_batching", false)? {
        return Err(cx.bad_attr("is_packed_batching", "ragged batches are not supported"));
    }
    let scale = cx.float("scale", 1.0)?;
    if scale != 1.0 {
        return Err(cx.bad_attr("scale", format!("only 1.0 is supported, found {scale}")));
    }
    let op = Op::RotaryEmbedding {
        interleaved: cx.bool("interleaved", false)?,
        rotary_dim: cx.usize_attr("rotary_embedding_dim", 0)?,
        num_heads: cx.usize_attr("num_heads", 0)?,
    };
    lowered(op, [0, 2, 3, 1].into_iter().map(In::Onnx).collect())
}

/// com.microsoft MatMulNBits: `A, B, scales, zero_points?, g_idx?, bias? → Y` (weights not
/// prepacked for an execution provider; `accuracy_level` is a hint and ignored).
pub(crate) fn matmul_nbits(cx: &NodeCtx) -> BuildResult {
    let bits = positive(cx, "bits")?;
    if !matches!(bits, 2 | 4 | 8) {
        return Err(cx.bad_attr("bits", format!("must be 2, 4 or 8, found {bits}")));
    }
    let block_size = positive(cx, "block_size")?;
    if block_size < 16 || !block_size.is_power_of_two() {
        return Err(cx.bad_attr(
            "block_size",
            format!("must be a power of two of at least 16, found {block_size}"),
        ));
    }
    if cx.int("weight_prepacked", 0)? != 0 {
        return Err(cx.bad_attr(
            "weight_prepacked",
            "prepacked CUDA layouts are not supported",
        ));
    }
    refuse_input(cx, 4, "g_idx")?;
    let attrs = MatMulNBitsAttrs {
        k: positive(cx, "K")?,
        n: positive(cx, "N")?,
        bits: bits as u8,
        block_size,
    };
    cx.same_inputs(Op::MatMulNBits(Box::new(attrs)))
}

#[cfg(test)]
mod tests {
    use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
    use crate::registry::OPS;

    /// Every contrib row builds at its opset into the IR op the module table names.
    #[test]
    fn every_contrib_row_builds() {
        for e in OPS.iter().filter(|e| e.domain == super::MS_DOMAIN) {
            let int = |name: &str, v: i64| AttributeProto {
                name: Some(name.into()),
                r#type: Some(AttributeType::Int as i32),
                i: Some(v),
                ..Default::default()
            };
            let attribute = match e.op_type {
                "Attention" | "MultiHeadAttention" => vec![int("num_heads", 2)],
                "GroupQueryAttention" => vec![int("num_heads", 2), int("kv_num_heads", 1)],
                "MatMulNBits" => vec![
                    int("K", 32),
                    int("N", 8),
                    int("bits", 4),
                    int("block_size", 32),
                ],
                _ => vec![],
            };
            let node = NodeProto {
                name: Some(format!("n_{}", e.op_type)),
                op_type: Some(e.op_type.into()),
                domain: Some(e.domain.into()),
                input: (0..3).map(|i| format!("x{i}")).collect(),
                output: vec!["y".into()],
                attribute,
                ..Default::default()
            };
            let cx = super::NodeCtx {
                node: &node,
                opset: e.since,
                base_dir: None,
                input_dtypes: vec![],
            };
            let low = (e.build)(&cx).unwrap_or_else(|err| panic!("{}: {err}", e.op_type));
            let want = match e.op_type {
                "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization" => "AddNorm",
                "SimplifiedLayerNormalization" => "RmsNormalization",
                "Gelu" => "Gelu",
                "BiasGelu" | "FastGelu" => "BiasGelu",
                "QuickGelu" => "Swish",
                "FusedMatMul" => "MatMul",
                "EmbedLayerNormalization" => "EmbedLayerNorm",
                "Attention" => "QkvAttention",
                other => other,
            };
            assert_eq!(low.op.kind_name(), want, "{}", e.op_type);
        }
    }
}
