//! The closed set of operations (`Op`) with typed attributes. No attribute maps: the
//! frontend turns ONNX attributes into these fields, and everything after it matches on them.
//!
//! Where ONNX moved an attribute to an input across opsets (Slice starts, Pad pads, Split
//! sizes, Squeeze/Unsqueeze/Reduce axes, Clip bounds, TopK k, Resize scales), the IR uses
//! the newest form: the value is an input, and the frontend makes a constant for old opsets.
//! Optional inputs are ports with no edge.

use crate::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Elementwise ops with one input and no attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Erf,
    Tanh,
    Sigmoid,
    Relu,
    Sin,
    Cos,
    Floor,
    Ceil,
    Round,
    Sign,
    Not,
    HardSwish,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// `ln(1 + eˣ)`
    Softplus,
    /// `x / (1 + |x|)`
    Softsign,
    /// `x·tanh(softplus(x))`
    Mish,
    /// Integers only: every bit flipped.
    BitwiseNot,
}

/// Elementwise ops with two inputs and multidirectional (numpy) broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `Mod` with `fmod = 0`: result takes the sign of the divisor (integers only in ONNX).
    Mod,
    /// `Mod` with `fmod = 1`: C `fmod`, result takes the sign of the dividend.
    FMod,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    /// Integers only (same dtype).
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    /// `BitShift` with `direction = LEFT`: shifts of `b < 0` or `b ≥` the bit width give 0.
    BitShiftLeft,
    /// `BitShift` with `direction = RIGHT` (arithmetic for signed types); out-of-range
    /// shifts give 0 (or −1 for a negative signed `a`).
    BitShiftRight,
    /// `x < 0 ? slope·x : x` (`b` is the slope, broadcast to `a`).
    PRelu,
}

/// Elementwise activations with float attributes (`x → y`, see [`Op::ParamUnary`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ParamUnary {
    /// `gamma·(x > 0 ? x : alpha·(eˣ − 1))`
    Selu { alpha: f32, gamma: f32 },
    /// `max(0, x) + min(0, alpha·(e^{x/alpha} − 1))`
    Celu { alpha: f32 },
    /// `x > alpha ? x : 0`
    ThresholdedRelu { alpha: f32 },
    /// `x < −lambd ? x + bias : (x > lambd ? x − bias : 0)`
    Shrink { bias: f32, lambd: f32 },
    /// `x·sigmoid(alpha·x)`
    Swish { alpha: f32 },
}

impl ParamUnary {
    /// The ONNX op type.
    pub fn onnx_name(&self) -> &'static str {
        match self {
            ParamUnary::Selu { .. } => "Selu",
            ParamUnary::Celu { .. } => "Celu",
            ParamUnary::ThresholdedRelu { .. } => "ThresholdedRelu",
            ParamUnary::Shrink { .. } => "Shrink",
            ParamUnary::Swish { .. } => "Swish",
        }
    }
}

/// Variadic elementwise ops with broadcasting (`Min`, `Max`, `Sum`, `Mean`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VariadicOp {
    Min,
    Max,
    Sum,
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    SumSquare,
    L1,
    L2,
    LogSum,
    LogSumExp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// Window geometry shared by Conv, ConvTranspose and the pools. Empty vectors mean the
/// ONNX default (kernel from the weight shape, strides/dilations 1, pads 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub auto_pad: AutoPad,
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// ONNX layout: all begins, then all ends.
    pub pads: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GeluApprox {
    None,
    Tanh,
}

/// The activation in a [`Op::FusedMatMul`] epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Activation {
    /// No activation.
    Linear,
    Relu,
    /// `Gelu` with its ONNX `approximate` mode (erf and tanh are never interchanged).
    Gelu(GeluApprox),
    /// SiLU / swish: `x·sigmoid(x)`.
    Silu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CoordTransform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    pub axes: Option<Vec<i64>>,
    pub aspect: AspectPolicy,
}

/// Attributes of the ONNX standard `Attention` op (opsets 23–25), see `Op::SdpAttention`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdpAttentionAttrs {
    /// Heads of Q, and of K and V, for 3-D inputs `[B, S, heads·D]` (ignored for 4-D).
    pub q_num_heads: Option<usize>,
    pub kv_num_heads: Option<usize>,
    /// Scale of `Q·Kᵀ`; `None` is `1/√D` (D = Q's head size).
    pub scale: Option<f32>,
    /// Bottom-right aligned causal mask (query `i` sees key `j ≤ i + offset`, `offset` the
    /// past length or `nonpad_kv_seqlen[b] - Sq`).
    pub is_causal: bool,
    /// `softcap·tanh(s/softcap)` on the scores when positive.
    pub softcap: f32,
    /// What the 4th output holds: 0 and 1 the (soft-capped) scaled scores, 2 the scores
    /// plus the bias, 3 the softmax probabilities.
    pub qk_matmul_output_mode: u8,
    /// The float dtype the softmax is computed in (`None`: the input dtype).
    pub softmax_precision: Option<DType>,
    /// Sliding window (opset 25): query at absolute position `p` sees keys in
    /// `p - left ..= p + right`; `None` leaves that side unbounded.
    pub left_window: Option<usize>,
    pub right_window: Option<usize>,
}

/// How a scatter combines an update with the element it lands on (ONNX `reduction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScatterReduction {
    /// The update replaces the element.
    None,
    Add,
    Mul,
    Max,
    Min,
}

/// The addressing scheme of an [`Op::Scatter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScatterKind {
    /// ScatterElements (and the old Scatter): `y[p with axis ← indices[p]] ⊕= updates[p]`.
    Elements { axis: i64 },
    /// ScatterND: each last-axis tuple of `indices` addresses a slice of `data`.
    Nd,
    /// TensorScatter (a KV-cache write): per batch `b`, `update` goes into `past_cache` at
    /// `write_indices[b]..` along `axis`, wrapping around when `circular`.
    Tensor { axis: i64, circular: bool },
}

/// One IR operation. Input and output lists are documented per variant as
/// `inputs → outputs`; `?` marks an optional port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    // ---- graph plumbing ----
    /// A graph input (the index into `Graph::inputs`). `→ value`
    Input(usize),
    /// A constant tensor (ONNX initializer or `Constant` node). `→ value`
    Constant(Arc<Tensor>),
    /// `x → x`
    Identity,
    /// Inference-mode dropout: `data, ratio?, training_mode? → output, mask?` (mask all true).
    Dropout,

    // ---- elementwise ----
    /// `x → y`
    Unary(UnaryOp),
    /// `a, b → c` (broadcasting)
    Binary(BinaryOp),
    /// `x0, x1, ... → y` (broadcasting)
    Variadic(VariadicOp),
    /// `x → y`
    LeakyRelu { alpha: f32 },
    /// `x → y`
    Elu { alpha: f32 },
    /// `x → y`: `max(0, min(1, alpha·x + beta))`
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x → y`
    Gelu { approximate: GeluApprox },
    /// `x, min?, max? → y`
    Clip,
    /// `cond, x, y → z` (broadcasting)
    Where,
    /// `x → y (bool)`: true where x is NaN.
    IsNaN,
    /// `x → y (bool)`: true where x is +inf (if `detect_positive`) or -inf (if `detect_negative`).
    IsInf {
        detect_negative: bool,
        detect_positive: bool,
    },
    /// `x → y`; `saturate` only matters for float8 targets (kept for fidelity).
    Cast { to: DType },
    /// `x → y`: an activation with attributes (Selu, Celu, ThresholdedRelu, Shrink, Swish).
    ParamUnary(ParamUnary),
    /// `a, b → y = a·sigmoid(alpha·a)·b` (equal shapes and dtypes, no broadcasting).
    SwiGlu { alpha: f32 },
    /// `x → y` of dtype `to`: the bytes of `x` reinterpreted (element sizes must match).
    BitCast { to: DType },

    // ---- linear algebra ----
    /// `a, b → y` (numpy matmul semantics, batched, 1-D promotion)
    MatMul,
    /// `a, b, c? → y`
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// `inputs... → y`
    Einsum { equation: String },
    /// `x, w, b? → y`
    Conv { window: Window, group: usize },
    /// `x, w, b? → y`
    ConvTranspose {
        window: Window,
        group: usize,
        output_padding: Vec<usize>,
        output_shape: Vec<usize>,
    },

    // ---- normalization ----
    /// `x, scale, bias, mean, var → y` (inference mode only)
    BatchNormalization { epsilon: f32 },
    /// `x, scale, bias? → y, mean?, inv_std_dev?`
    LayerNormalization { axis: i64, epsilon: f32 },
    /// `x, scale → y`
    RmsNormalization { axis: i64, epsilon: f32 },
    /// `x → y`. `coerce_2d` is the opset < 13 behaviour (flatten at `axis`, softmax per row).
    Softmax { axis: i64, coerce_2d: bool },
    /// `x → y`, as `Softmax`.
    LogSoftmax { axis: i64, coerce_2d: bool },
    /// `x → y`: 1 at the first maximum along `axis`, 0 elsewhere; `coerce_2d` as `Softmax`.
    Hardmax { axis: i64, coerce_2d: bool },

    // ---- reductions ----
    /// `x, axes? → y`
    Reduce {
        op: ReduceOp,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// `x → indices (i64)`
    ArgMax {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// `x → indices (i64)`
    ArgMin {
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// `x, k → values, indices`
    TopK {
        axis: i64,
        largest: bool,
        sorted: bool,
    },
    /// `x, axis → y`
    CumSum { exclusive: bool, reverse: bool },
    /// `x, axis → y`: the running product, `exclusive` and `reverse` as for `CumSum`.
    CumProd { exclusive: bool, reverse: bool },

    // ---- pooling ----
    /// `x → y, indices?`
    MaxPool {
        window: Window,
        ceil_mode: bool,
        storage_order: u8,
    },
    /// `x → y`
    AveragePool {
        window: Window,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// `x → y`
    GlobalAveragePool,
    /// `x → y`
    GlobalMaxPool,

    // ---- shape and data movement ----
    /// `data, shape → reshaped`
    Reshape { allowzero: bool },
    /// `x → y`; `perm: None` reverses the axes.
    Transpose { perm: Option<Vec<usize>> },
    /// `x → y (2-D)`
    Flatten { axis: i64 },
    /// `data, axes? → y`
    Squeeze,
    /// `data, axes → y`
    Unsqueeze,
    /// `x0, x1, ... → y`
    Concat { axis: i64 },
    /// `x, split? → y0, y1, ...` (`num_outputs` = number of output ports)
    Split { axis: i64, num_outputs: usize },
    /// `data, starts, ends, axes?, steps? → y`
    Slice,
    /// `data, indices → y`
    Gather { axis: i64 },
    /// `data, indices → y`
    GatherElements { axis: i64 },
    /// `data, indices → y`
    GatherNd { batch_dims: usize },
    /// `input, shape → y`
    Expand,
    /// `input, repeats → y`
    Tile,
    /// `data, pads, constant_value?, axes? → y`
    Pad { mode: PadMode },
    /// `data → shape (i64 1-D)`
    Shape { start: i64, end: Option<i64> },
    /// `data → size (i64 scalar)`
    Size,
    /// `shape → y` filled with `value` (a one-element tensor; default f32 0).
    ConstantOfShape { value: Arc<Tensor> },
    /// `start, limit, delta → y`
    Range,
    /// `input, k? → y`
    Trilu { upper: bool },
    /// `x, roi?, scales?, sizes? → y`
    Resize(Box<ResizeAttrs>),
    /// `x → indices (i64 [nnz, rank]ᵀ)`
    NonZero,
    /// `indices, depth, values → y`
    OneHot { axis: i64 },
    /// `x (2-D) → y`: ones on diagonal `k` (above the main one when positive), zeros
    /// elsewhere, of `dtype` (`None`: x's dtype).
    EyeLike { dtype: Option<DType>, k: i64 },

    // ---- attention (ONNX standard) ----
    /// ONNX `Attention`: `q, k, v, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen? →
    /// y, present_key?, present_value?, qk_matmul_output?`. Q/K/V are 4-D `[B, H, S, D]` or
    /// 3-D `[B, S, H·D]` (heads from the attributes); K/V heads may divide Q's (GQA).
    /// `attn_mask` is bool (true = attend) or additive, broadcast to `[B, Hq, Sq, Skv]`
    /// and padded on the key axis (false / -inf) when shorter. Presents are
    /// `concat(past, k|v)` on the sequence axis, 4-D.
    SdpAttention(Box<SdpAttentionAttrs>),
    /// ONNX `RotaryEmbedding`: `x, cos_cache, sin_cache, position_ids? → y`. `x` is
    /// `[B, H, S, D]` or `[B, S, H·D]` (`num_heads` given); the first `rotary_dim` (0 = D)
    /// channels of each head are rotated, as halves or as interleaved pairs. Caches are
    /// `[max_pos, rotary_dim/2]` gathered by `position_ids [B, S]`, or `[B, S, rotary_dim/2]`.
    RotaryEmbedding {
        interleaved: bool,
        rotary_dim: usize,
        num_heads: usize,
    },

    // ---- index, movement and normalization (scatters, crops, norms, ...) ----
    /// `data, indices, updates → y` (`Elements`, `Nd`), or `past_cache, update,
    /// write_indices? → present_cache` (`Tensor`, reduction `None`).
    Scatter {
        kind: ScatterKind,
        reduction: ScatterReduction,
    },
    /// `input, condition (1-D) → y`: the slices along `axis` (of the flattened input when
    /// `None`) whose condition is true; a short condition leaves the rest out.
    Compress { axis: Option<i64> },
    /// `x → y, indices?, inverse_indices?, counts?` (i64 but `y`); over `axis` slices, or
    /// the flattened elements when `None`; first-occurrence order unless `sorted`.
    Unique { axis: Option<i64>, sorted: bool },
    /// `input, sequence_lens (i64 [batch]) → y`: per batch, the first `len` steps along
    /// `time_axis` reversed.
    ReverseSequence { batch_axis: i64, time_axis: i64 },
    /// `x [N,C,H,W] → y [N,C/b²,H·b,W·b]`; `crd` picks the column-row-depth order (else DCR).
    DepthToSpace { blocksize: usize, crd: bool },
    /// `x [N,C,H,W] → y [N,C·b²,H/b,W/b]`; `crd` as for `DepthToSpace`.
    SpaceToDepth { blocksize: usize, crd: bool },
    /// `input, shape → y`: centre crop and/or zero pad of `axes` (all when `None`) to `shape`.
    CenterCropPad { axes: Option<Vec<i64>> },
    /// `input [N, C·∏block, L], image_shape, block_shape → y [N, C, image...]` (sums
    /// overlapping blocks); empty vectors mean the defaults (1, 0, 1).
    Col2Im {
        dilations: Vec<usize>,
        pads: Vec<usize>,
        strides: Vec<usize>,
    },
    /// `x, indices, output_shape? → y`: `x` written at the flat `indices` of a zero tensor.
    MaxUnpool { window: Window },
    /// `x → y`: `(Σ |x|^p)^(1/p)` over each window (padding counts as 0).
    LpPool {
        window: Window,
        ceil_mode: bool,
        p: i64,
    },
    /// `x → y`: `x / ‖x‖_p` along `axis` (0 where the norm is 0); `p` is 1 or 2.
    LpNormalization { axis: i64, p: i64 },
    /// `x [N,C,...] → y`: local response normalization across `size` channels.
    Lrn {
        alpha: f32,
        beta: f32,
        bias: f32,
        size: usize,
    },
    /// `x [N,C,...], scale [C], bias [C] → y`: normalised per (n, c).
    InstanceNormalization { epsilon: f32 },
    /// `x [N,C,...], scale, bias → y`: normalised per (n, group of C/num_groups channels);
    /// scale and bias are `[num_groups]` when `per_group_affine` (opset 18), else `[C]`.
    GroupNormalization {
        epsilon: f32,
        num_groups: usize,
        per_group_affine: bool,
    },
    /// `x → y = (x − mean) / std` over `axes`.
    MeanVarianceNormalization { axes: Vec<i64> },
    /// `x [..., M, M] → y [...]`: determinants.
    Det,

    // ---- quantization ----
    /// `x, y_scale, y_zero_point? → y`; `output_dtype` when no zero point says it.
    QuantizeLinear {
        axis: i64,
        block_size: usize,
        output_dtype: Option<DType>,
    },
    /// `x, x_scale, x_zero_point? → y`
    DequantizeLinear { axis: i64, block_size: usize },
    /// `x → y (u8), y_scale, y_zero_point`
    DynamicQuantizeLinear,
    /// `a, b, a_zero_point?, b_zero_point? → y (i32)`
    MatMulInteger,
    /// `a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp → y`
    QLinearMatMul,
    /// com.microsoft `MatMulIntegerToFloat`: `a, b, a_scale, b_scale, a_zero_point?,
    /// b_zero_point?, bias? → y` in the scales' float type. `y = f(Σ (a − za)(b − zb)) ·
    /// (a_scale · b_scale) + bias`, each step rounded to that type as MatMulInteger → Cast →
    /// Mul → Add computes it op by op (a_scale per tensor; b_scale, b_zero_point and bias
    /// per tensor or per column of b), then `activation` (`Linear` for the contrib op; other
    /// activations only from `fuse-int-matmul`, exported as the op and the activation).
    MatMulIntegerToFloat { activation: Activation },

    // ---- losses, recurrent and sequence-model ops (attributes in `op_seq.rs`) ----
    /// `input [N,C,d...], target [N,d...] (integer), weight? [C] → loss` (target's shape,
    /// or a scalar when reduced); targets equal to `ignore_index` weigh 0.
    NegativeLogLikelihoodLoss {
        reduction: crate::LossReduction,
        ignore_index: Option<i64>,
    },
    /// `scores [N,C,d...], labels [N,d...], weights? [C] → loss, log_prob?`: the
    /// NegativeLogLikelihoodLoss of `log_softmax(scores, axis 1)`, which is `log_prob`.
    SoftmaxCrossEntropyLoss {
        reduction: crate::LossReduction,
        ignore_index: Option<i64>,
    },
    /// ONNX RNN / GRU / LSTM: `X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P? →
    /// Y?, Y_h?, Y_c?` (`initial_c`, `P` and `Y_c` for LSTM only).
    Recurrent(Box<crate::RnnAttrs>),
    /// `input [B,C,L], weight [C,1,k], bias? [C], past_state? [B,C,k-1] → output [B,C,L],
    /// present_state [B,C,k-1]`: depthwise causal conv over `concat(past, input)`, then
    /// SiLU if `silu`; the present state is the last `k-1` positions of that concat.
    CausalConvWithState { silu: bool },
    /// `query [B,T,Hq·dk], key [B,T,Hkv·dk], value [B,T,Hkv·dv], past_state?
    /// [B,Hkv,dk,dv], decay? [B,T,Hkv·dk | Hkv], beta? [B,T,Hkv | 1] → output [B,T,Hq·dv],
    /// present_state [B,Hkv,dk,dv]`: the recurrent linear-attention state update per
    /// step (see `LinearAttentionRule`), read as `scale·qᵀS` (`scale: None` is `1/√dk`).
    LinearAttention {
        q_num_heads: usize,
        kv_num_heads: usize,
        scale: Option<f32>,
        update_rule: crate::LinearAttentionRule,
        chunk_size: i64,
    },
    /// `X [C] | [N,C] (i32/i64) → Y f32 [max index + 1] | [N, ...]`: n-gram counts.
    TfIdfVectorizer(Box<crate::TfIdfAttrs>),

    // ---- signal, vision and conv variants (attribute types in `op_signal.rs`) ----
    /// `X [N, C, D...], grid [N, O..., k] → Y [N, C, O...]`: samples X at the grid's
    /// normalised coordinates (last axis in reverse axis order, x first). `mode` Linear /
    /// Cubic are ONNX `linear`/`bilinear` and `cubic`/`bicubic`.
    GridSample {
        mode: ResizeMode,
        padding: crate::GridPadding,
        align_corners: bool,
    },
    /// `theta [N, k, k+1], size (i64 [N, C, spatial...]) → grid [N, spatial..., k]`.
    AffineGrid { align_corners: bool },
    /// `X [N, C, H, W], rois [R, 4], batch_indices [R] → Y [R, C, output_height,
    /// output_width]`; `half_pixel` is `coordinate_transformation_mode = half_pixel`.
    RoiAlign {
        mode: crate::RoiMode,
        output_height: usize,
        output_width: usize,
        sampling_ratio: usize,
        spatial_scale: f32,
        half_pixel: bool,
    },
    /// `boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class?, iou_threshold?,
    /// score_threshold? → selected_indices (i64 [K, 3])`.
    NonMaxSuppression { center_point_box: bool },
    /// ONNX `DFT`: `input [..., 1|2], dft_length?, axis? → output` (axis default -2).
    Dft { inverse: bool, onesided: bool },
    /// ONNX `STFT`: `signal [B, L, 1|2], frame_step, window?, frame_length? → [B, frames,
    /// bins, 2]`.
    Stft { onesided: bool },
    /// HannWindow / HammingWindow / BlackmanWindow: `size → window [size]`.
    SignalWindow {
        kind: crate::WindowKind,
        periodic: bool,
        output_dtype: DType,
    },
    /// `num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz →
    /// [dft_length/2 + 1, num_mel_bins]`.
    MelWeightMatrix { output_dtype: DType },
    /// `x, w, offset, b?, mask? → y`
    DeformConv {
        window: Window,
        group: usize,
        offset_group: usize,
    },
    /// `x, w, x_zero_point?, w_zero_point? → y (i32)`
    ConvInteger { window: Window, group: usize },
    /// `x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B? → y`
    QLinearConv { window: Window, group: usize },

    // ---- onnxruntime contrib ops (com.microsoft) without an IR equivalent ----
    /// `x, bias → y = gelu(x + bias)` (numpy broadcasting): com.microsoft `BiasGelu` (erf)
    /// and `FastGelu` with a bias (tanh).
    BiasGelu { approximate: GeluApprox },
    /// com.microsoft `FusedMatMul`: `a, b → y = alpha·op(a)·op(b)` (numpy matmul). `trans_*`
    /// swaps the last two axes; `trans_batch_*` first moves axis 0 to just before the last
    /// axis (`[d0, d1.., dk, n] → [d1.., dk, d0, n]`, rank ≥ 3), then `trans_*` applies.
    ScaledMatMul {
        alpha: f32,
        trans_a: bool,
        trans_b: bool,
        trans_batch_a: bool,
        trans_batch_b: bool,
    },
    /// com.microsoft `EmbedLayerNormalization` (ports reordered, required first):
    /// `input_ids [B,S], word_emb [V,H], pos_emb [P,H], gamma [H], beta? [H], segment_ids?
    /// [B,S], seg_emb? [G,H], mask? [B,S], position_ids? [B|1,S] → output [B,S,H],
    /// mask_index (i32 [B]), embedding_sum?`:
    /// `sum = word[id] + pos[position] + seg[segment]` (position `s` without
    /// `position_ids`), `output = LayerNorm(sum)·gamma + beta` over H; `mask_index[b]`
    /// counts the ones in `mask[b]` (0 without a mask).
    EmbedLayerNorm { epsilon: f32 },
    /// com.microsoft `Attention` (self-attention with a packed QKV projection): `input
    /// [B,S,Din], weights [Din, Dq+Dk+Dv], bias? [Dq+Dk+Dv], mask_index?, attention_bias?
    /// [B|1, H|1, S, S] → y [B,S,Dv]`. `mask_index` (integer) is right-padding lengths
    /// `[B]`, end and start positions `[2B]`, a 0/1 mask `[B,S]` or `[B,S,S]`; masked keys
    /// add `mask_filter_value` to their score.
    QkvAttention(Box<crate::QkvAttentionAttrs>),
    /// com.microsoft `MultiHeadAttention`: `query [B,S,H·D], key [B,Skv,H·D] or [B,H,Skv,D],
    /// value (likewise, head size Dv), bias? [2·H·D + H·Dv] (query/key/value projection
    /// biases, 3-D key and value only), key_padding_mask? (int, [B,T] with 0 = masked, or
    /// [B] valid lengths), attention_bias? [B|1, H|1, S, T], past_key? [B,H,P,D], past_value?
    /// → output [B,S,H·Dv], present_key? [B,H,T,D], present_value?` with `T = P + Skv`:
    /// per head `softmax(scale·q·kᵀ + bias)·v` over the past and new keys, a masked key
    /// adding `mask_filter_value`, and with `unidirectional` query `i` seeing keys
    /// `j ≤ P + i`.
    MultiHeadAttention(Box<crate::MhaAttrs>),
    /// com.microsoft `GroupQueryAttention`: `query [B,S,Hq·D] (or packed [B,S,(Hq+2·Hkv)·D]
    /// without key and value), key? [B,S,Hkv·D], value?, past_key? [B,Hkv,L,D], past_value?,
    /// seqlens_k (int [B]), total_sequence_length (int scalar), cos_cache? [M, R/2],
    /// sin_cache?, position_ids? [B,S], attention_bias? [B|1, Hq|1, S, total] → output
    /// [B,S,Hq·D], present_key? [B,Hkv,C,D], present_value?` with `C = max(total, L)`. For
    /// batch entry `b`, `T = seqlens_k[b] + 1` tokens are cached after the step, the first
    /// `Q = min(S, T)` rows are new and the `P = T − Q` before them come from the past;
    /// query row `s` is at position `P + s` (rotated there, or at `position_ids`, when
    /// `do_rotary`) and attends causally to keys `≤ P + s` (within the local window), query
    /// head `h` reading key/value head `h·Hkv/Hq`. Present rows from `T` on are zero.
    GroupQueryAttention(Box<crate::GqaAttrs>),
    /// com.microsoft `MatMulNBits`: `a [..., K], b (u8 [N, k_blocks, block·bits/8]), scales
    /// [N·k_blocks], zero_points? (u8 [N, ⌈k_blocks·bits/8⌉] packed, or [N·k_blocks] of a's
    /// type), g_idx? (refused), bias? [N] → y [..., N]`: `y = a·wᵀ + bias` with `w[n, k] =
    /// (q[n, k] − zp[n, k/block])·scale[n, k/block]`, `q` the `bits`-bit values packed
    /// little-end first along K, `zp` by default `2^(bits−1)`.
    MatMulNBits(Box<crate::MatMulNBitsAttrs>),

    // ---- control flow (bodies in `control.rs`; captured outer values are trailing inputs) ----
    /// `cond (bool, one element), captured... → outputs`: runs `then_branch` or
    /// `else_branch` on the captured values (both bodies take all of them, in order) and
    /// returns its outputs.
    If {
        then_branch: crate::Body,
        else_branch: crate::Body,
    },
    /// `M? (i64 trip count), cond? (bool), v_initial[carried]..., captured... →
    /// v_final[carried]..., scan_outputs...`: while `i < M` (if given) and `cond` (if given),
    /// `cond, v = body(i, cond, v..., captured...)` and the body's remaining outputs are
    /// collected per iteration and stacked along a new axis 0.
    Loop { body: crate::Body, carried: usize },
    /// ONNX `Scan` (opset 9+): see [`crate::ScanAttrs`].
    Scan(Box<crate::ScanAttrs>),

    // ---- compiler-made (fusion passes; the ONNX exporter decomposes them) ----
    /// `a, b, bias?, residual? → y = activation(matmul(a, b) + bias) + residual`: numpy
    /// `MatMul` followed by broadcasting adds, i.e. a GEMM with its epilogue
    /// (PASSES.md §6; made by `fuse-matmul`).
    FusedMatMul { activation: Activation },
    /// Multi-head scaled dot-product attention on heads that are not yet split:
    /// `q [B,Sq,H·D], k [B,Sk,H·D], v [B,Sk,H·Dv], mask? → y [B,Sq,H·Dv]`. Head `h` takes
    /// columns `h·D..(h+1)·D`; per batch and head `y_h = softmax(scale·q_h·k_hᵀ + mask)·v_h`
    /// with the additive mask broadcast (numpy) to `[B,H,Sq,Sk]`, and the heads are written
    /// back side by side (PASSES.md §6; made by `fuse-attention`).
    Attention { num_heads: usize, scale: f32 },
    /// Residual add and normalisation over the last axis in one op:
    /// `x, residual, gamma, beta?, bias? → y, sum?` with `sum = (x + bias) + residual` (or
    /// `x + residual` without a bias; `x` and `residual` of one shape, `gamma`, `beta`,
    /// `bias` 1-D of the last dimension) and `y = LayerNorm(sum)·gamma + beta`, or with
    /// `rms`, `y = sum / √(mean(sum²) + ε)·gamma` (no `beta`). The optional second output
    /// is the sum itself, the residual stream of a Pre-LN block (PASSES.md §6 "bias +
    /// residual + LN"; made by `fuse-add-norm`).
    AddNorm { rms: bool, epsilon: f32 },
    /// Padding-free execution, the bookkeeping: `mask [B,S] → offsets i64 [T], inverse i64
    /// [B,S], cu_seqlens i64 [B+1]` where a token is valid when its mask entry is non-zero,
    /// `T` counts valid tokens, `offsets[t] = b·S + s` of the `t`-th valid token (row-major
    /// order), `inverse[b,s]` is `1 + t` for a valid token and 0 for padding (an index into
    /// `[zero row; packed rows]`), and `cu_seqlens` is the prefix sum of the per-row counts
    /// (PASSES.md §6 padding-free; made by `remove-padding`).
    PaddingOffsets,
    /// Attention over packed sequences: `q [T,H·D], k [T,H·D], v [T,H·Dv], cu_seqlens
    /// [B+1] → y [T,H·Dv]`; the rows `cu_seqlens[b]..cu_seqlens[b+1]` form sequence `b` and
    /// attend only among themselves (softmax(scale·q·kᵀ)·v per head, no mask).
    PackedAttention { num_heads: usize, scale: f32 },
}

impl Op {
    /// A short name for messages and the op histogram (`MatMul`, `Add`, `ReduceMean`, ...).
    pub fn kind_name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{u:?}"),
            Op::Binary(BinaryOp::FMod) => "Mod".to_string(),
            Op::Binary(BinaryOp::BitShiftLeft | BinaryOp::BitShiftRight) => "BitShift".to_string(),
            Op::ParamUnary(p) => p.onnx_name().to_string(),
            Op::SwiGlu { .. } => "SwiGLU".to_string(),
            Op::Binary(b) => format!("{b:?}"),
            Op::Variadic(v) => format!("{v:?}"),
            Op::Reduce { op, .. } => format!("Reduce{op:?}"),
            Op::Resize(_) => "Resize".to_string(),
            Op::Recurrent(a) => match a.cell {
                crate::RnnCell::Rnn => "RNN",
                crate::RnnCell::Gru { .. } => "GRU",
                crate::RnnCell::Lstm { .. } => "LSTM",
            }
            .to_string(),
            Op::Scatter { kind, .. } => match kind {
                ScatterKind::Elements { .. } => "ScatterElements",
                ScatterKind::Nd => "ScatterND",
                ScatterKind::Tensor { .. } => "TensorScatter",
            }
            .to_string(),
            Op::Lrn { .. } => "LRN".to_string(),
            Op::Constant(_) => "Constant".to_string(),
            Op::Input(_) => "Input".to_string(),
            Op::Dft { .. } => "DFT".to_string(),
            Op::Stft { .. } => "STFT".to_string(),
            Op::SignalWindow { kind, .. } => format!("{kind:?}Window"),
            other => {
                let dbg = format!("{other:?}");
                dbg.split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or("")
                    .to_string()
            }
        }
    }

    /// The constant tensor, if this is `Op::Constant`.
    pub fn as_constant(&self) -> Option<&Arc<Tensor>> {
        match self {
            Op::Constant(t) => Some(t),
            _ => None,
        }
    }
}
