//! IR `Op` → ONNX op type + attributes, in the newest form (inputs where ONNX moved an
//! attribute to an input), and the opset each form needs.

use crate::proto::{attribute_proto::AttributeType, AttributeProto};
use crate::tensor::{dtype_to_onnx, tensor_to_proto};
use whittle_ir::{
    Activation, AspectPolicy, AutoPad, BinaryOp, CoordTransform, GeluApprox, Graph, NearestMode,
    NodeId, Op, PadMode, ReduceOp, ResizeMode, Tensor, UnaryOp, VariadicOp, Window,
};

/// The lowest default-domain opset whose schema can spell node `id` as the exporter writes
/// it (the IR's newest form: axes, pads, split sizes, clip bounds as inputs). The exporter
/// takes the maximum over the graph and the source model's opset, so a model is written
/// back at the opset it came in at whenever that can express it.
pub(crate) fn min_opset(g: &Graph, id: NodeId) -> i64 {
    let connected = |port: usize| g.input(id, port).is_some();
    match &g.node(id).op {
        Op::SdpAttention(at) => super::attention::min_opset(g, id, at),
        op @ (Op::If { .. } | Op::Loop { .. } | Op::Scan(_)) => {
            super::control::bodies_min_opset(op)
        }
        Op::RotaryEmbedding { .. } => 23,
        Op::CausalConvWithState { .. } | Op::LinearAttention { .. } => 27,
        Op::RmsNormalization { .. } | Op::AddNorm { rms: true, .. } => 23,
        Op::Recurrent(r) if r.batch_major => 14,
        Op::QuantizeLinear {
            block_size,
            output_dtype,
            ..
        } if *block_size != 0 || output_dtype.is_some() => 21,
        Op::DequantizeLinear { block_size, .. } if *block_size != 0 => 21,
        Op::Gelu { .. }
        | Op::FusedMatMul {
            activation: Activation::Gelu(_),
        } => 20,
        Op::Pad {
            mode: PadMode::Wrap,
        } => 19,
        Op::Resize(r) if r.coord == CoordTransform::HalfPixelSymmetric => 19,
        Op::AveragePool { window, .. } if window.dilations.iter().any(|&d| d != 1) => 19,
        // Reduce axes as an input (ReduceSum has it from 13), Split's `num_outputs`,
        // Pad's `axes` input, Resize's antialias / keep_aspect_ratio_policy attributes.
        Op::Reduce { op, .. } if *op != ReduceOp::Sum => 18,
        Op::Split { .. } if !connected(1) => 18,
        Op::Pad { .. } if connected(3) => 18,
        Op::Resize(_) => 18,
        Op::LayerNormalization { .. } | Op::AddNorm { rms: false, .. } => 17,
        Op::Shape { start, end } if *start != 0 || end.is_some() => 15,
        Op::Unary(UnaryOp::HardSwish) | Op::Trilu { .. } => 14,
        op if super::act::min_opset(op).is_some() => super::act::min_opset(op).unwrap_or(13),
        op if super::signal_vision::min_opset(op).is_some() => {
            super::signal_vision::min_opset(op).unwrap_or(13)
        }
        op if super::index_norm::min_opset(op).is_some() => {
            super::index_norm::min_opset(op).unwrap_or(13)
        }
        // Softmax per axis, Squeeze/Unsqueeze/ReduceSum axes and Split sizes as inputs.
        _ => 13,
    }
}

pub(crate) fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub(crate) fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub(crate) fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub(crate) fn attr_ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.into_iter().collect(),
        ..Default::default()
    }
}

pub(crate) fn attr_t(name: &str, t: &Tensor) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(tensor_to_proto("", t)),
        ..Default::default()
    }
}

fn usizes(v: &[usize]) -> impl Iterator<Item = i64> + '_ {
    v.iter().map(|&x| x as i64)
}

pub(crate) fn window_attrs(w: &Window, out: &mut Vec<AttributeProto>) {
    let pad = match w.auto_pad {
        AutoPad::NotSet => None,
        AutoPad::SameUpper => Some("SAME_UPPER"),
        AutoPad::SameLower => Some("SAME_LOWER"),
        AutoPad::Valid => Some("VALID"),
    };
    if let Some(p) = pad {
        out.push(attr_s("auto_pad", p));
    }
    for (name, v) in [
        ("kernel_shape", &w.kernel_shape),
        ("strides", &w.strides),
        ("dilations", &w.dilations),
        ("pads", &w.pads),
    ] {
        if !v.is_empty() {
            out.push(attr_ints(name, usizes(v)));
        }
    }
}

fn unary_name(u: UnaryOp) -> &'static str {
    use UnaryOp::*;
    match u {
        Neg => "Neg",
        Abs => "Abs",
        Sqrt => "Sqrt",
        Reciprocal => "Reciprocal",
        Exp => "Exp",
        Log => "Log",
        Erf => "Erf",
        Tanh => "Tanh",
        Sigmoid => "Sigmoid",
        Relu => "Relu",
        Sin => "Sin",
        Cos => "Cos",
        Floor => "Floor",
        Ceil => "Ceil",
        Round => "Round",
        Sign => "Sign",
        Not => "Not",
        HardSwish => "HardSwish",
        Tan | Asin | Acos | Atan | Sinh | Cosh | Asinh | Acosh | Atanh | Softplus | Softsign
        | Mish | BitwiseNot => super::act::unary_name(u).unwrap_or("?"),
    }
}

fn binary_name(b: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match b {
        Add => "Add",
        Sub => "Sub",
        Mul => "Mul",
        Div => "Div",
        Pow => "Pow",
        Mod | FMod => "Mod",
        Equal => "Equal",
        Less => "Less",
        LessOrEqual => "LessOrEqual",
        Greater => "Greater",
        GreaterOrEqual => "GreaterOrEqual",
        And => "And",
        Or => "Or",
        Xor => "Xor",
        // Named (with BitShift's direction) in `act.rs`.
        BitwiseAnd | BitwiseOr | BitwiseXor | BitShiftLeft | BitShiftRight | PRelu => "?",
    }
}

fn reduce_name(r: ReduceOp) -> &'static str {
    use ReduceOp::*;
    match r {
        Mean => "ReduceMean",
        Sum => "ReduceSum",
        Max => "ReduceMax",
        Min => "ReduceMin",
        Prod => "ReduceProd",
        SumSquare => "ReduceSumSquare",
        L1 => "ReduceL1",
        L2 => "ReduceL2",
        LogSum => "ReduceLogSum",
        LogSumExp => "ReduceLogSumExp",
    }
}

/// The ONNX op type and attributes for `op`. `split_has_sizes`: whether a Split node's
/// `split` input is connected (otherwise opset 18 needs `num_outputs`). Returns `None` for
/// ops that are not nodes (`Input`, `Constant`) or need expansion (`coerce_2d` softmax).
pub(crate) fn onnx_form(
    op: &Op,
    split_has_sizes: bool,
) -> Option<(&'static str, Vec<AttributeProto>)> {
    let mut a = Vec::new();
    let ty = match op {
        Op::Input(_) | Op::Constant(_) => return None,
        Op::If { .. } | Op::Loop { .. } | Op::Scan(_) => return None,
        Op::Softmax {
            coerce_2d: true, ..
        }
        | Op::LogSoftmax {
            coerce_2d: true, ..
        } => return None,
        Op::Identity => "Identity",
        Op::Dropout => "Dropout",
        Op::Unary(u) => unary_name(*u),
        Op::Binary(b) => {
            if *b == BinaryOp::FMod {
                a.push(attr_i("fmod", 1));
            }
            match super::act::binary_form(*b, &mut a) {
                Some(ty) => ty,
                None => binary_name(*b),
            }
        }
        Op::Variadic(v) => match v {
            VariadicOp::Min => "Min",
            VariadicOp::Max => "Max",
            VariadicOp::Sum => "Sum",
            VariadicOp::Mean => "Mean",
        },
        Op::LeakyRelu { alpha } => {
            a.push(attr_f("alpha", *alpha));
            "LeakyRelu"
        }
        Op::Elu { alpha } => {
            a.push(attr_f("alpha", *alpha));
            "Elu"
        }
        Op::HardSigmoid { alpha, beta } => {
            a.extend([attr_f("alpha", *alpha), attr_f("beta", *beta)]);
            "HardSigmoid"
        }
        Op::Gelu { approximate } => {
            a.push(attr_s(
                "approximate",
                if *approximate == GeluApprox::Tanh {
                    "tanh"
                } else {
                    "none"
                },
            ));
            "Gelu"
        }
        Op::Clip => "Clip",
        Op::IsNaN => "IsNaN",
        Op::IsInf {
            detect_negative,
            detect_positive,
        } => {
            a.extend([
                attr_i("detect_negative", *detect_negative as i64),
                attr_i("detect_positive", *detect_positive as i64),
            ]);
            "IsInf"
        }
        Op::Where => "Where",
        Op::Cast { to } => {
            a.push(attr_i("to", dtype_to_onnx(*to) as i64));
            "Cast"
        }
        Op::MatMul => "MatMul",
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            a.extend([
                attr_f("alpha", *alpha),
                attr_f("beta", *beta),
                attr_i("transA", *trans_a as i64),
                attr_i("transB", *trans_b as i64),
            ]);
            "Gemm"
        }
        Op::Einsum { equation } => {
            a.push(attr_s("equation", equation));
            "Einsum"
        }
        Op::Conv { window, group } => {
            window_attrs(window, &mut a);
            a.push(attr_i("group", *group as i64));
            "Conv"
        }
        Op::ConvTranspose {
            window,
            group,
            output_padding,
            output_shape,
        } => {
            window_attrs(window, &mut a);
            a.push(attr_i("group", *group as i64));
            if !output_padding.is_empty() {
                a.push(attr_ints("output_padding", usizes(output_padding)));
            }
            if !output_shape.is_empty() {
                a.push(attr_ints("output_shape", usizes(output_shape)));
            }
            "ConvTranspose"
        }
        Op::BatchNormalization { epsilon } => {
            a.push(attr_f("epsilon", *epsilon));
            "BatchNormalization"
        }
        Op::LayerNormalization { axis, epsilon } => {
            a.extend([attr_i("axis", *axis), attr_f("epsilon", *epsilon)]);
            "LayerNormalization"
        }
        Op::RmsNormalization { axis, epsilon } => {
            a.extend([attr_i("axis", *axis), attr_f("epsilon", *epsilon)]);
            "RMSNormalization"
        }
        Op::Softmax { axis, .. } => {
            a.push(attr_i("axis", *axis));
            "Softmax"
        }
        Op::LogSoftmax { axis, .. } => {
            a.push(attr_i("axis", *axis));
            "LogSoftmax"
        }
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes,
        } => {
            a.push(attr_i("keepdims", *keepdims as i64));
            if *noop_with_empty_axes {
                a.push(attr_i("noop_with_empty_axes", 1));
            }
            reduce_name(*op)
        }
        Op::ArgMax {
            axis,
            keepdims,
            select_last_index,
        }
        | Op::ArgMin {
            axis,
            keepdims,
            select_last_index,
        } => {
            a.extend([
                attr_i("axis", *axis),
                attr_i("keepdims", *keepdims as i64),
                attr_i("select_last_index", *select_last_index as i64),
            ]);
            if matches!(op, Op::ArgMax { .. }) {
                "ArgMax"
            } else {
                "ArgMin"
            }
        }
        Op::TopK {
            axis,
            largest,
            sorted,
        } => {
            a.extend([
                attr_i("axis", *axis),
                attr_i("largest", *largest as i64),
                attr_i("sorted", *sorted as i64),
            ]);
            "TopK"
        }
        Op::CumSum { exclusive, reverse } => {
            a.extend([
                attr_i("exclusive", *exclusive as i64),
                attr_i("reverse", *reverse as i64),
            ]);
            "CumSum"
        }
        Op::MaxPool {
            window,
            ceil_mode,
            storage_order,
        } => {
            window_attrs(window, &mut a);
            a.extend([
                attr_i("ceil_mode", *ceil_mode as i64),
                attr_i("storage_order", *storage_order as i64),
            ]);
            "MaxPool"
        }
        Op::AveragePool {
            window,
            ceil_mode,
            count_include_pad,
        } => {
            window_attrs(window, &mut a);
            a.extend([
                attr_i("ceil_mode", *ceil_mode as i64),
                attr_i("count_include_pad", *count_include_pad as i64),
            ]);
            "AveragePool"
        }
        Op::GlobalAveragePool => "GlobalAveragePool",
        Op::GlobalMaxPool => "GlobalMaxPool",
        Op::Reshape { allowzero } => {
            if *allowzero {
                a.push(attr_i("allowzero", 1));
            }
            "Reshape"
        }
        Op::Transpose { perm } => {
            if let Some(p) = perm {
                a.push(attr_ints("perm", usizes(p)));
            }
            "Transpose"
        }
        Op::Flatten { axis } => {
            a.push(attr_i("axis", *axis));
            "Flatten"
        }
        Op::Squeeze => "Squeeze",
        Op::Unsqueeze => "Unsqueeze",
        Op::Concat { axis } => {
            a.push(attr_i("axis", *axis));
            "Concat"
        }
        Op::Split { axis, num_outputs } => {
            a.push(attr_i("axis", *axis));
            if !split_has_sizes {
                a.push(attr_i("num_outputs", *num_outputs as i64));
            }
            "Split"
        }
        Op::Slice => "Slice",
        Op::Gather { axis } => {
            a.push(attr_i("axis", *axis));
            "Gather"
        }
        Op::GatherElements { axis } => {
            a.push(attr_i("axis", *axis));
            "GatherElements"
        }
        Op::GatherNd { batch_dims } => {
            a.push(attr_i("batch_dims", *batch_dims as i64));
            "GatherND"
        }
        Op::Expand => "Expand",
        Op::Tile => "Tile",
        Op::Pad { mode } => {
            let m = match mode {
                PadMode::Constant => "constant",
                PadMode::Reflect => "reflect",
                PadMode::Edge => "edge",
                PadMode::Wrap => "wrap",
            };
            a.push(attr_s("mode", m));
            "Pad"
        }
        Op::Shape { start, end } => {
            if *start != 0 {
                a.push(attr_i("start", *start));
            }
            if let Some(e) = end {
                a.push(attr_i("end", *e));
            }
            "Shape"
        }
        Op::Size => "Size",
        Op::ConstantOfShape { value } => {
            a.push(attr_t("value", value));
            "ConstantOfShape"
        }
        Op::Range => "Range",
        Op::Trilu { upper } => {
            a.push(attr_i("upper", *upper as i64));
            "Trilu"
        }
        Op::Resize(r) => {
            resize_attrs(r, &mut a);
            "Resize"
        }
        Op::NonZero => "NonZero",
        Op::OneHot { axis } => {
            a.push(attr_i("axis", *axis));
            "OneHot"
        }
        Op::SdpAttention(at) => {
            super::attention::attention_attrs(at, &mut a);
            "Attention"
        }
        Op::RotaryEmbedding {
            interleaved,
            rotary_dim,
            num_heads,
        } => {
            super::attention::rotary_attrs(*interleaved, *rotary_dim, *num_heads, &mut a);
            "RotaryEmbedding"
        }
        Op::QuantizeLinear {
            axis,
            block_size,
            output_dtype,
        } => {
            a.push(attr_i("axis", *axis));
            if *block_size != 0 {
                a.push(attr_i("block_size", *block_size as i64));
            }
            if let Some(d) = output_dtype {
                a.push(attr_i("output_dtype", dtype_to_onnx(*d) as i64));
            }
            "QuantizeLinear"
        }
        Op::DequantizeLinear { axis, block_size } => {
            a.push(attr_i("axis", *axis));
            if *block_size != 0 {
                a.push(attr_i("block_size", *block_size as i64));
            }
            "DequantizeLinear"
        }
        Op::NegativeLogLikelihoodLoss { .. }
        | Op::SoftmaxCrossEntropyLoss { .. }
        | Op::Recurrent(_)
        | Op::CausalConvWithState { .. }
        | Op::LinearAttention { .. }
        | Op::TfIdfVectorizer(_) => super::seq::onnx_form(op, &mut a)?,
        Op::DynamicQuantizeLinear => "DynamicQuantizeLinear",
        Op::MatMulInteger => "MatMulInteger",
        Op::QLinearMatMul => "QLinearMatMul",
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
        | Op::QLinearConv { .. } => super::signal_vision::onnx_form(op, &mut a)?,
        Op::ParamUnary(_)
        | Op::SwiGlu { .. }
        | Op::BitCast { .. }
        | Op::Hardmax { .. }
        | Op::CumProd { .. }
        | Op::EyeLike { .. } => super::act::onnx_form(op, &mut a)?,
        Op::Scatter { .. }
        | Op::Compress { .. }
        | Op::Unique { .. }
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
        | Op::Det => super::index_norm::onnx_form(op, &mut a)?,
        // Several nodes each (see `fused.rs`).
        Op::FusedMatMul { .. } | Op::Attention { .. } | Op::AddNorm { .. } => return None,
        // No standard ONNX form (ONNX Runtime has contrib ops for them): export refuses.
        Op::PaddingOffsets | Op::PackedAttention { .. } => return None,
        // onnxruntime contrib ops, written by `contrib.rs`.
        Op::BiasGelu { .. }
        | Op::ScaledMatMul { .. }
        | Op::EmbedLayerNorm { .. }
        | Op::QkvAttention(_)
        | Op::MultiHeadAttention(_)
        | Op::GroupQueryAttention(_)
        | Op::MatMulNBits(_)
        | Op::MatMulIntegerToFloat { .. } => return None,
    };
    Some((ty, a))
}

fn resize_attrs(r: &whittle_ir::ResizeAttrs, a: &mut Vec<AttributeProto>) {
    let mode = match r.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let coord = match r.coord {
        CoordTransform::HalfPixel => "half_pixel",
        CoordTransform::HalfPixelSymmetric => "half_pixel_symmetric",
        CoordTransform::PytorchHalfPixel => "pytorch_half_pixel",
        CoordTransform::AlignCorners => "align_corners",
        CoordTransform::Asymmetric => "asymmetric",
        CoordTransform::TfCropAndResize => "tf_crop_and_resize",
    };
    let nearest = match r.nearest {
        NearestMode::RoundPreferFloor => "round_prefer_floor",
        NearestMode::RoundPreferCeil => "round_prefer_ceil",
        NearestMode::Floor => "floor",
        NearestMode::Ceil => "ceil",
    };
    let aspect = match r.aspect {
        AspectPolicy::Stretch => "stretch",
        AspectPolicy::NotLarger => "not_larger",
        AspectPolicy::NotSmaller => "not_smaller",
    };
    a.extend([
        attr_s("mode", mode),
        attr_s("coordinate_transformation_mode", coord),
        attr_s("nearest_mode", nearest),
        attr_s("keep_aspect_ratio_policy", aspect),
        attr_f("cubic_coeff_a", r.cubic_coeff_a),
        attr_i("exclude_outside", r.exclude_outside as i64),
        attr_f("extrapolation_value", r.extrapolation_value),
        attr_i("antialias", r.antialias as i64),
    ]);
    if let Some(axes) = &r.axes {
        a.push(attr_ints("axes", axes.iter().copied()));
    }
}
