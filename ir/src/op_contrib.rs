//! Attribute types of the onnxruntime contrib ops (domain `com.microsoft`) that have no
//! equivalent among the IR's own ops: `QkvAttention` (com.microsoft `Attention`),
//! `MultiHeadAttention`, `GroupQueryAttention` and `MatMulNBits`.

use serde::{Deserialize, Serialize};

/// Attributes of [`crate::Op::QkvAttention`] (onnxruntime's `Attention`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QkvAttentionAttrs {
    pub num_heads: usize,
    /// Causal: query `i` sees keys `j ≤ i` only.
    pub unidirectional: bool,
    /// Widths of Q, K and V in the packed projection; `None` splits it in three equal parts.
    pub qkv_hidden_sizes: Option<[usize; 3]>,
    /// Scale of `Q·Kᵀ`; `None` is `1/√D` (D = Q's head size).
    pub scale: Option<f32>,
    /// What a masked-out key adds to its score (onnxruntime default -10000).
    pub mask_filter_value: f32,
}

/// Attributes of [`crate::Op::MultiHeadAttention`] (onnxruntime's `MultiHeadAttention`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MhaAttrs {
    pub num_heads: usize,
    /// Causal: query `i` sees keys `j ≤ P + i` (P the past length).
    pub unidirectional: bool,
    /// Scale of `Q·Kᵀ`; `None` is `1/√D`.
    pub scale: Option<f32>,
    /// What a key masked by `key_padding_mask` adds to its score (onnxruntime -10000).
    pub mask_filter_value: f32,
}

/// Attributes of [`crate::Op::MatMulNBits`] (onnxruntime's weight-only quantized MatMul).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMulNBitsAttrs {
    /// The logical weight is `[K, N]`, stored transposed and quantized along K.
    pub k: usize,
    pub n: usize,
    /// 2 to 8.
    pub bits: u8,
    /// Quantization block along K (a power of two ≥ 16).
    pub block_size: usize,
}

/// Attributes of [`crate::Op::GroupQueryAttention`] (onnxruntime's `GroupQueryAttention`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GqaAttrs {
    pub num_heads: usize,
    pub kv_num_heads: usize,
    /// Scale of `Q·Kᵀ`; `None` is `1/√D`.
    pub scale: Option<f32>,
    /// `softcap·tanh(s/softcap)` on the scaled scores when positive.
    pub softcap: f32,
    /// Causal local attention: a query at position `p` sees the `w` keys `p − w + 1 ..= p`.
    pub local_window: Option<usize>,
    /// Rotate the new queries and keys with the cos/sin caches first.
    pub do_rotary: bool,
    pub rotary_interleaved: bool,
    /// Causal mask (onnxruntime's default); false is bidirectional.
    pub causal: bool,
}
