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
//!
//! Outputs that only training or debugging reads (the normalizations' mean and inverse
//! standard deviation) and key/value caches are refused by name when a model names them.

use super::{BuildResult, In, Lowered, NodeCtx};
use crate::FrontendError;
use whittle_ir::{GeluApprox, Op, ParamUnary, QkvAttentionAttrs};

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
    let num_heads = match cx.int_opt("num_heads")? {
        None => return Err(cx.bad_attr("num_heads", "is required")),
        Some(h) => usize::try_from(h)
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| cx.bad_attr("num_heads", format!("must be positive, found {h}")))?,
    };
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

#[cfg(test)]
mod tests {
    use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
    use crate::registry::OPS;

    /// Every contrib row builds at its opset into the IR op the module table names.
    #[test]
    fn every_contrib_row_builds() {
        for e in OPS.iter().filter(|e| e.domain == super::MS_DOMAIN) {
            let attribute = if e.op_type == "Attention" {
                vec![AttributeProto {
                    name: Some("num_heads".into()),
                    r#type: Some(AttributeType::Int as i32),
                    i: Some(2),
                    ..Default::default()
                }]
            } else {
                vec![]
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
