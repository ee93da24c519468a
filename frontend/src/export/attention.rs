//! Exporter pieces of the ONNX standard attention ops: `SdpAttention` → `Attention`
//! (opset 23, 24 with `nonpad_kv_seqlen`, 25 with a sliding window) and
//! `RotaryEmbedding` (opset 23). Defaults are left out.

use super::ops::{attr_f, attr_i};
use crate::proto::AttributeProto;
use crate::tensor::dtype_to_onnx;
use whittle_ir::{Graph, NodeId, SdpAttentionAttrs};

pub(crate) fn min_opset(g: &Graph, id: NodeId, a: &SdpAttentionAttrs) -> i64 {
    if a.left_window.is_some() || a.right_window.is_some() {
        25
    } else if g.input(id, 6).is_some() {
        24
    } else {
        23
    }
}

pub(crate) fn attention_attrs(a: &SdpAttentionAttrs, out: &mut Vec<AttributeProto>) {
    if let Some(h) = a.q_num_heads {
        out.push(attr_i("q_num_heads", h as i64));
    }
    if let Some(h) = a.kv_num_heads {
        out.push(attr_i("kv_num_heads", h as i64));
    }
    if let Some(s) = a.scale {
        out.push(attr_f("scale", s));
    }
    if a.is_causal {
        out.push(attr_i("is_causal", 1));
    }
    if a.softcap != 0.0 {
        out.push(attr_f("softcap", a.softcap));
    }
    if a.qk_matmul_output_mode != 0 {
        out.push(attr_i(
            "qk_matmul_output_mode",
            a.qk_matmul_output_mode as i64,
        ));
    }
    if let Some(d) = a.softmax_precision {
        out.push(attr_i("softmax_precision", dtype_to_onnx(d) as i64));
    }
    if let Some(l) = a.left_window {
        out.push(attr_i("left_window_size", l as i64));
    }
    if let Some(r) = a.right_window {
        out.push(attr_i("right_window_size", r as i64));
    }
}

pub(crate) fn rotary_attrs(
    interleaved: bool,
    rotary_dim: usize,
    num_heads: usize,
    out: &mut Vec<AttributeProto>,
) {
    if interleaved {
        out.push(attr_i("interleaved", 1));
    }
    if rotary_dim != 0 {
        out.push(attr_i("rotary_embedding_dim", rotary_dim as i64));
    }
    if num_heads != 0 {
        out.push(attr_i("num_heads", num_heads as i64));
    }
}
