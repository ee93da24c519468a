//! Attribute types of the onnxruntime contrib ops (domain `com.microsoft`) that have no
//! equivalent among the IR's own ops: `QkvAttention` (com.microsoft `Attention`).

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
