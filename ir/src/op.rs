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
            Op::Binary(b) => format!("{b:?}"),
            Op::Variadic(v) => format!("{v:?}"),
            Op::Reduce { op, .. } => format!("Reduce{op:?}"),
            Op::Resize(_) => "Resize".to_string(),
            Op::Constant(_) => "Constant".to_string(),
            Op::Input(_) => "Input".to_string(),
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
