//! Static facts about ops: how many input and output ports each `Op` takes (the ONNX
//! arity, with attributes that became inputs counted as inputs — see the `op` module doc).

use crate::Op;

impl Op {
    /// `(min, max)` input ports; `max == None` means variadic. Ports below `min` are
    /// required; ports from `min` up are optional (a port with no edge).
    pub fn input_arity(&self) -> (usize, Option<usize>) {
        let fixed = |n: usize| (n, Some(n));
        let range = |lo: usize, hi: usize| (lo, Some(hi));
        match self {
            Op::Input(_) | Op::Constant(_) => fixed(0),
            Op::Identity
            | Op::Unary(_)
            | Op::LeakyRelu { .. }
            | Op::Elu { .. }
            | Op::HardSigmoid { .. }
            | Op::Gelu { .. }
            | Op::Cast { .. }
            | Op::IsNaN
            | Op::IsInf { .. }
            | Op::Softmax { .. }
            | Op::LogSoftmax { .. }
            | Op::ArgMax { .. }
            | Op::ArgMin { .. }
            | Op::MaxPool { .. }
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Transpose { .. }
            | Op::Flatten { .. }
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape { .. }
            | Op::NonZero
            | Op::DynamicQuantizeLinear => fixed(1),
            Op::ParamUnary(_) | Op::Hardmax { .. } | Op::BitCast { .. } | Op::EyeLike { .. } => {
                fixed(1)
            }
            Op::SwiGlu { .. } | Op::CumProd { .. } => fixed(2),
            Op::Dropout => range(1, 3),
            Op::Binary(_)
            | Op::MatMul
            | Op::RmsNormalization { .. }
            | Op::TopK { .. }
            | Op::CumSum { .. }
            | Op::Reshape { .. }
            | Op::Unsqueeze
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
            | Op::Expand
            | Op::Tile => fixed(2),
            Op::Variadic(_) | Op::Einsum { .. } | Op::Concat { .. } => (1, None),
            Op::Clip => range(1, 3),
            Op::Where | Op::Range | Op::OneHot { .. } => fixed(3),
            Op::Gemm { .. } | Op::Conv { .. } | Op::ConvTranspose { .. } => range(2, 3),
            Op::BatchNormalization { .. } => fixed(5),
            Op::LayerNormalization { .. } => range(2, 3),
            Op::Reduce { .. } | Op::Squeeze | Op::Split { .. } | Op::Trilu { .. } => range(1, 2),
            Op::Slice => range(3, 5),
            Op::Pad { .. } => range(2, 4),
            Op::Resize(_) => range(1, 4),
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } => range(2, 3),
            Op::MatMulInteger => range(2, 4),
            Op::QLinearMatMul => fixed(8),
            Op::MatMulIntegerToFloat { .. } => range(4, 7),
            Op::FusedMatMul { .. } => range(2, 4),
            Op::Attention { .. } => range(3, 4),
            Op::AddNorm { .. } => range(3, 5),
            Op::PaddingOffsets => fixed(1),
            Op::PackedAttention { .. } => fixed(4),
            Op::BiasGelu { .. } | Op::ScaledMatMul { .. } => fixed(2),
            Op::EmbedLayerNorm { .. } => range(4, 9),
            Op::QkvAttention(_) => range(2, 5),
            Op::MultiHeadAttention(_) => range(3, 8),
            Op::GroupQueryAttention(_) => range(1, 11),
            Op::MatMulNBits(_) => range(3, 6),
            Op::Scatter {
                kind: crate::ScatterKind::Tensor { .. },
                ..
            } => range(2, 3),
            Op::Scatter { .. }
            | Op::Col2Im { .. }
            | Op::GroupNormalization { .. }
            | Op::InstanceNormalization { .. } => fixed(3),
            Op::Compress { .. } | Op::ReverseSequence { .. } | Op::CenterCropPad { .. } => fixed(2),
            Op::MaxUnpool { .. } => range(2, 3),
            Op::Unique { .. }
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::LpPool { .. }
            | Op::LpNormalization { .. }
            | Op::Lrn { .. }
            | Op::MeanVarianceNormalization { .. }
            | Op::Det => fixed(1),
            Op::NegativeLogLikelihoodLoss { .. } | Op::SoftmaxCrossEntropyLoss { .. } => {
                range(2, 3)
            }
            Op::Recurrent(a) => match a.cell {
                crate::RnnCell::Lstm { .. } => range(3, 8),
                _ => range(3, 6),
            },
            Op::CausalConvWithState { .. } => range(2, 4),
            Op::LinearAttention { .. } => range(3, 6),
            Op::TfIdfVectorizer(_) => fixed(1),
            Op::SdpAttention(_) => range(3, 7),
            Op::RotaryEmbedding { .. } => range(3, 4),
            Op::GridSample { .. } | Op::AffineGrid { .. } => fixed(2),
            Op::RoiAlign { .. } => fixed(3),
            Op::NonMaxSuppression { .. } => range(2, 5),
            Op::Dft { .. } => range(1, 3),
            Op::Stft { .. } => range(2, 4),
            Op::SignalWindow { .. } => fixed(1),
            Op::MelWeightMatrix { .. } => fixed(5),
            Op::DeformConv { .. } => range(3, 5),
            Op::ConvInteger { .. } => range(2, 4),
            Op::QLinearConv { .. } => range(8, 9),
            Op::If { .. } => (1, None),
            Op::Loop { .. } => (0, None),
            Op::Scan(_) => (1, None),
        }
    }

    /// `(min, max)` output ports.
    pub fn output_arity(&self) -> (usize, usize) {
        match self {
            Op::GridSample { .. }
            | Op::AffineGrid { .. }
            | Op::RoiAlign { .. }
            | Op::NonMaxSuppression { .. }
            | Op::Dft { .. }
            | Op::Stft { .. }
            | Op::SignalWindow { .. }
            | Op::MelWeightMatrix { .. }
            | Op::DeformConv { .. }
            | Op::ConvInteger { .. }
            | Op::QLinearConv { .. } => (1, 1),
            Op::Dropout | Op::MaxPool { .. } => (1, 2),
            Op::BatchNormalization { .. } | Op::LayerNormalization { .. } => (1, 3),
            Op::TopK { .. } => (2, 2),
            Op::DynamicQuantizeLinear => (3, 3),
            Op::Split { num_outputs, .. } if *num_outputs > 0 => (*num_outputs, *num_outputs),
            Op::Split { .. } => (1, usize::MAX),
            Op::Input(_)
            | Op::Constant(_)
            | Op::Identity
            | Op::Unary(_)
            | Op::IsNaN
            | Op::IsInf { .. }
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::LeakyRelu { .. }
            | Op::Elu { .. }
            | Op::HardSigmoid { .. }
            | Op::Gelu { .. }
            | Op::Clip
            | Op::Where
            | Op::Cast { .. }
            | Op::MatMul
            | Op::Gemm { .. }
            | Op::Einsum { .. }
            | Op::Conv { .. }
            | Op::ConvTranspose { .. }
            | Op::RmsNormalization { .. }
            | Op::Softmax { .. }
            | Op::LogSoftmax { .. }
            | Op::Reduce { .. }
            | Op::ArgMax { .. }
            | Op::ArgMin { .. }
            | Op::CumSum { .. }
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Flatten { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Concat { .. }
            | Op::Slice
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
            | Op::Expand
            | Op::Tile
            | Op::Pad { .. }
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape { .. }
            | Op::Range
            | Op::Trilu { .. }
            | Op::Resize(_)
            | Op::NonZero
            | Op::OneHot { .. }
            | Op::QuantizeLinear { .. }
            | Op::DequantizeLinear { .. }
            | Op::MatMulInteger
            | Op::QLinearMatMul
            | Op::MatMulIntegerToFloat { .. }
            | Op::FusedMatMul { .. }
            | Op::Attention { .. } => (1, 1),
            Op::AddNorm { .. } => (1, 2),
            Op::PaddingOffsets => (3, 3),
            Op::PackedAttention { .. } => (1, 1),
            Op::BiasGelu { .. }
            | Op::ScaledMatMul { .. }
            | Op::QkvAttention(_)
            | Op::MatMulNBits(_) => (1, 1),
            Op::MultiHeadAttention(_) | Op::GroupQueryAttention(_) => (1, 3),
            Op::EmbedLayerNorm { .. } => (1, 3),
            Op::ParamUnary(_)
            | Op::SwiGlu { .. }
            | Op::BitCast { .. }
            | Op::Hardmax { .. }
            | Op::CumProd { .. }
            | Op::EyeLike { .. } => (1, 1),
            Op::Unique { .. } => (1, 4),
            Op::Scatter { .. }
            | Op::Compress { .. }
            | Op::ReverseSequence { .. }
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::CenterCropPad { .. }
            | Op::Col2Im { .. }
            | Op::MaxUnpool { .. }
            | Op::LpPool { .. }
            | Op::LpNormalization { .. }
            | Op::Lrn { .. }
            | Op::InstanceNormalization { .. }
            | Op::GroupNormalization { .. }
            | Op::MeanVarianceNormalization { .. }
            | Op::Det => (1, 1),
            Op::NegativeLogLikelihoodLoss { .. } | Op::TfIdfVectorizer(_) => (1, 1),
            Op::SoftmaxCrossEntropyLoss { .. }
            | Op::CausalConvWithState { .. }
            | Op::LinearAttention { .. } => (1, 2),
            Op::Recurrent(a) => match a.cell {
                crate::RnnCell::Lstm { .. } => (1, 3),
                _ => (1, 2),
            },
            Op::SdpAttention(_) => (1, 4),
            Op::RotaryEmbedding { .. } => (1, 1),
            Op::If { .. } | Op::Loop { .. } | Op::Scan(_) => (1, usize::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{BinaryOp, Op, ReduceOp};

    #[test]
    fn arities_follow_onnx() {
        assert_eq!(Op::Binary(BinaryOp::Add).input_arity(), (2, Some(2)));
        assert_eq!(Op::Concat { axis: 0 }.input_arity(), (1, None));
        assert_eq!(Op::Slice.input_arity(), (3, Some(5)));
        assert_eq!(
            Op::Reduce {
                op: ReduceOp::Sum,
                keepdims: true,
                noop_with_empty_axes: false
            }
            .input_arity(),
            (1, Some(2))
        );
        assert_eq!(Op::QLinearMatMul.input_arity(), (8, Some(8)));
        assert_eq!(
            Op::TopK {
                axis: -1,
                largest: true,
                sorted: true
            }
            .output_arity(),
            (2, 2)
        );
        assert_eq!(
            Op::Split {
                axis: 0,
                num_outputs: 3
            }
            .output_arity(),
            (3, 3)
        );
        assert_eq!(Op::Input(0).input_arity(), (0, Some(0)));
        assert_eq!(Op::DynamicQuantizeLinear.output_arity(), (3, 3));
    }
}
