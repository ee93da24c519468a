//! The op registry: ONE table mapping (domain, op type, opset range) to the builder that
//! lowers such a node into the IR. String op names exist only here and in the exporter.
//!
//! The opset in a range is the model's opset for the node's domain (a node's schema is the
//! newest one whose version is at most that). Old forms are normalised to the IR's newest
//! form by the builders (`ops::*`), e.g. Slice-1's attributes become constant inputs.

use crate::ops::attention as attn;
use crate::ops::index_norm as ixn;
use crate::ops::seq;
use crate::ops::signal_vision as sv;
use crate::ops::{
    act, contrib, elementwise as ew, linalg, movement as mv, norm, quant, reduce as rd, resize,
    BuildResult, NodeCtx,
};
use crate::proto::ModelProto;
use crate::FrontendError;
use prost::Message;

/// The oldest default-domain opset the registry handles for most ops (a few ops whose
/// schema never changed, like Not and Identity, are accepted from opset 1).
pub const MIN_OPSET: i64 = 7;
/// The newest default-domain opset the registry handles (ONNX 1.23).
pub const MAX_OPSET: i64 = 28;

pub(crate) type BuildFn = fn(&NodeCtx) -> BuildResult;

/// One registry row: nodes `domain::op_type` in models whose opset for `domain` lies in
/// `since..=until` are built by `build`.
pub struct OpEntry {
    pub domain: &'static str,
    pub op_type: &'static str,
    pub since: i64,
    pub until: i64,
    pub(crate) build: BuildFn,
}

const M: i64 = MAX_OPSET;

macro_rules! ops {
    // A row's domain: `["domain"] "Op"`, or the default domain for a bare `"Op"`.
    (@domain) => { "" };
    (@domain $d:literal) => { $d };
    ($($([$dom:literal])? $op:literal $since:literal ..= $until:expr => $f:path;)*) => {
        &[$(OpEntry {
            domain: ops!(@domain $($dom)?),
            op_type: $op,
            since: $since,
            until: $until,
            build: $f,
        },)*]
    };
}

/// The table. Rows for one op type must not overlap.
pub static OPS: &[OpEntry] = ops! {
    // plumbing
    "Constant" 1..=M => ew::constant;
    "Identity" 1..=M => ew::identity;
    "Dropout" 7..=11 => ew::dropout_attrs;
    "Dropout" 12..=M => ew::dropout;
    // unary
    "Neg" 7..=M => ew::unary;
    "Abs" 7..=M => ew::unary;
    "Sqrt" 7..=M => ew::unary;
    "Reciprocal" 7..=M => ew::unary;
    "Exp" 7..=M => ew::unary;
    "Log" 7..=M => ew::unary;
    "Erf" 9..=M => ew::unary;
    "Tanh" 7..=M => ew::unary;
    "Sigmoid" 7..=M => ew::unary;
    "Relu" 7..=M => ew::unary;
    "Sin" 7..=M => ew::unary;
    "Cos" 7..=M => ew::unary;
    "Floor" 7..=M => ew::unary;
    "Ceil" 7..=M => ew::unary;
    "Round" 11..=M => ew::unary;
    "Sign" 9..=M => ew::unary;
    "Not" 1..=M => ew::unary;
    "HardSwish" 14..=M => ew::unary;
    // binary
    "Add" 7..=M => ew::binary;
    "Sub" 7..=M => ew::binary;
    "Mul" 7..=M => ew::binary;
    "Div" 7..=M => ew::binary;
    "Pow" 7..=M => ew::binary;
    "Mod" 10..=M => ew::modulo;
    "Equal" 7..=M => ew::binary;
    "Less" 7..=M => ew::binary;
    "LessOrEqual" 12..=M => ew::binary;
    "Greater" 7..=M => ew::binary;
    "GreaterOrEqual" 12..=M => ew::binary;
    "And" 7..=M => ew::binary;
    "Or" 7..=M => ew::binary;
    "Xor" 7..=M => ew::binary;
    // variadic
    "Sum" 7..=M => ew::variadic;
    "Mean" 7..=M => ew::variadic;
    "Min" 7..=M => ew::variadic;
    "Max" 7..=M => ew::variadic;
    // activations and friends
    "LeakyRelu" 7..=M => ew::leaky_relu;
    "Elu" 7..=M => ew::elu;
    "HardSigmoid" 7..=M => ew::hard_sigmoid;
    "Gelu" 20..=M => ew::gelu;
    "Clip" 7..=10 => ew::clip_attrs;
    "Clip" 11..=M => ew::clip;
    "Where" 9..=M => ew::where_;
    "Cast" 7..=M => ew::cast;
    "CastLike" 15..=M => ew::cast_like;
    "IsNaN" 9..=M => ew::is_nan;
    "IsInf" 10..=M => ew::is_inf;
    // elementwise extras (ops/act.rs)
    "Tan" 7..=M => act::unary;
    "Asin" 7..=M => act::unary;
    "Acos" 7..=M => act::unary;
    "Atan" 7..=M => act::unary;
    "Sinh" 9..=M => act::unary;
    "Cosh" 9..=M => act::unary;
    "Asinh" 9..=M => act::unary;
    "Acosh" 9..=M => act::unary;
    "Atanh" 9..=M => act::unary;
    "Softplus" 7..=M => act::unary;
    "Softsign" 7..=M => act::unary;
    "Mish" 18..=M => act::unary;
    "BitwiseNot" 18..=M => act::unary;
    "BitwiseAnd" 18..=M => act::binary;
    "BitwiseOr" 18..=M => act::binary;
    "BitwiseXor" 18..=M => act::binary;
    "BitShift" 11..=M => act::bit_shift;
    "PRelu" 7..=M => act::binary;
    "Selu" 7..=M => act::param_unary;
    "Celu" 12..=M => act::param_unary;
    "ThresholdedRelu" 10..=M => act::param_unary;
    "Shrink" 9..=M => act::param_unary;
    "Swish" 24..=M => act::param_unary;
    "SwiGLU" 28..=M => act::swiglu;
    "BitCast" 26..=M => act::bit_cast;
    "Hardmax" 7..=12 => act::hardmax_2d;
    "Hardmax" 13..=M => act::hardmax;
    "CumProd" 26..=M => act::cum_prod;
    "EyeLike" 9..=M => act::eye_like;
    // linear algebra
    "MatMul" 7..=M => linalg::matmul;
    "Gemm" 7..=M => linalg::gemm;
    "Einsum" 12..=M => linalg::einsum;
    "Conv" 7..=M => linalg::conv;
    "ConvTranspose" 7..=M => linalg::conv_transpose;
    // normalization
    "BatchNormalization" 7..=M => norm::batch_norm;
    "LayerNormalization" 17..=M => norm::layer_norm;
    "RMSNormalization" 23..=M => norm::rms_norm;
    // attention (ONNX standard)
    "Attention" 23..=M => attn::attention;
    "RotaryEmbedding" 23..=M => attn::rotary_embedding;
    "Softmax" 7..=M => norm::softmax;
    "LogSoftmax" 7..=M => norm::softmax;
    // reductions
    "ReduceSum" 7..=12 => rd::reduce_attrs;
    "ReduceSum" 13..=M => rd::reduce_inputs;
    "ReduceMean" 7..=17 => rd::reduce_attrs;
    "ReduceMean" 18..=M => rd::reduce_inputs;
    "ReduceMax" 7..=17 => rd::reduce_attrs;
    "ReduceMax" 18..=M => rd::reduce_inputs;
    "ReduceMin" 7..=17 => rd::reduce_attrs;
    "ReduceMin" 18..=M => rd::reduce_inputs;
    "ReduceProd" 7..=17 => rd::reduce_attrs;
    "ReduceProd" 18..=M => rd::reduce_inputs;
    "ReduceSumSquare" 7..=17 => rd::reduce_attrs;
    "ReduceSumSquare" 18..=M => rd::reduce_inputs;
    "ReduceL1" 7..=17 => rd::reduce_attrs;
    "ReduceL1" 18..=M => rd::reduce_inputs;
    "ReduceL2" 7..=17 => rd::reduce_attrs;
    "ReduceL2" 18..=M => rd::reduce_inputs;
    "ReduceLogSum" 7..=17 => rd::reduce_attrs;
    "ReduceLogSum" 18..=M => rd::reduce_inputs;
    "ReduceLogSumExp" 7..=17 => rd::reduce_attrs;
    "ReduceLogSumExp" 18..=M => rd::reduce_inputs;
    "ArgMax" 7..=M => rd::arg_max_min;
    "ArgMin" 7..=M => rd::arg_max_min;
    "TopK" 7..=9 => rd::top_k_attr;
    "TopK" 10..=M => rd::top_k;
    "CumSum" 11..=M => rd::cum_sum;
    // pooling
    "MaxPool" 7..=M => linalg::max_pool;
    "AveragePool" 7..=M => linalg::average_pool;
    "GlobalAveragePool" 7..=M => linalg::global_average_pool;
    "GlobalMaxPool" 7..=M => linalg::global_max_pool;
    // shape and data movement
    "Reshape" 7..=M => mv::reshape;
    "Transpose" 7..=M => mv::transpose;
    "Flatten" 7..=M => mv::flatten;
    "Squeeze" 7..=12 => mv::squeeze_attrs;
    "Squeeze" 13..=M => mv::squeeze_inputs;
    "Unsqueeze" 7..=12 => mv::squeeze_attrs;
    "Unsqueeze" 13..=M => mv::squeeze_inputs;
    "Concat" 7..=M => mv::concat;
    "Split" 7..=12 => mv::split_attrs;
    "Split" 13..=M => mv::split_inputs;
    "Slice" 7..=9 => mv::slice_attrs;
    "Slice" 10..=M => mv::slice;
    "Gather" 7..=M => mv::gather;
    "GatherElements" 11..=M => mv::gather_elements;
    "GatherND" 11..=M => mv::gather_nd;
    "Expand" 8..=M => mv::expand;
    "Tile" 7..=M => mv::tile;
    "Pad" 7..=10 => mv::pad_attrs;
    "Pad" 11..=M => mv::pad;
    "Shape" 7..=M => mv::shape;
    "Size" 7..=M => mv::size;
    "ConstantOfShape" 9..=M => mv::constant_of_shape;
    "Range" 11..=M => mv::range;
    "Trilu" 14..=M => mv::trilu;
    "Resize" 10..=10 => resize::resize10;
    "Resize" 11..=M => resize::resize;
    "Upsample" 7..=9 => resize::upsample;
    "NonZero" 9..=M => mv::non_zero;
    "OneHot" 9..=M => mv::one_hot;
    // index, movement and normalization extras (ops/index_norm.rs)
    "Scatter" 9..=10 => ixn::scatter_elements;
    "ScatterElements" 11..=M => ixn::scatter_elements;
    "ScatterND" 11..=M => ixn::scatter_nd;
    "TensorScatter" 24..=M => ixn::tensor_scatter;
    "Compress" 9..=M => ixn::compress;
    "Unique" 11..=M => ixn::unique;
    "ReverseSequence" 10..=M => ixn::reverse_sequence;
    "DepthToSpace" 7..=M => ixn::depth_to_space;
    "SpaceToDepth" 7..=M => ixn::space_to_depth;
    "CenterCropPad" 18..=M => ixn::center_crop_pad;
    "Col2Im" 18..=M => ixn::col2im;
    "MaxUnpool" 9..=M => ixn::max_unpool;
    "LpPool" 7..=M => ixn::lp_pool;
    "LpNormalization" 7..=M => ixn::lp_normalization;
    "LRN" 7..=M => ixn::lrn;
    "InstanceNormalization" 7..=M => ixn::instance_norm;
    "GroupNormalization" 18..=M => ixn::group_norm;
    "MeanVarianceNormalization" 9..=M => ixn::mean_variance_norm;
    "Det" 11..=M => ixn::det;
    // quantization
    "QuantizeLinear" 10..=M => quant::quantize_linear;
    "DequantizeLinear" 10..=M => quant::dequantize_linear;
    "DynamicQuantizeLinear" 11..=M => quant::dynamic_quantize_linear;
    "MatMulInteger" 10..=M => quant::matmul_integer;
    "QLinearMatMul" 10..=M => quant::qlinear_matmul;
    // signal, vision, conv variants
    "GridSample" 16..=M => sv::grid_sample;
    "AffineGrid" 20..=M => sv::affine_grid;
    "RoiAlign" 10..=M => sv::roi_align;
    "NonMaxSuppression" 10..=M => sv::non_max_suppression;
    "DFT" 17..=19 => sv::dft_attr_axis;
    "DFT" 20..=M => sv::dft;
    "STFT" 17..=M => sv::stft;
    "HannWindow" 17..=M => sv::hann_window;
    "HammingWindow" 17..=M => sv::hamming_window;
    "BlackmanWindow" 17..=M => sv::blackman_window;
    "MelWeightMatrix" 17..=M => sv::mel_weight_matrix;
    "DeformConv" 19..=M => sv::deform_conv;
    "ConvInteger" 10..=M => sv::conv_integer;
    "QLinearConv" 10..=M => sv::qlinear_conv;
    // losses, recurrent and sequence-model ops
    "NegativeLogLikelihoodLoss" 12..=M => seq::nll_loss;
    "SoftmaxCrossEntropyLoss" 12..=M => seq::softmax_cross_entropy_loss;
    "RNN" 7..=M => seq::recurrent;
    "GRU" 7..=M => seq::recurrent;
    "LSTM" 7..=M => seq::recurrent;
    "CausalConvWithState" 27..=M => seq::causal_conv_with_state;
    "LinearAttention" 27..=M => seq::linear_attention;
    "TfIdfVectorizer" 9..=M => seq::tfidf_vectorizer;
    // onnxruntime contrib ops (ops/contrib.rs); onnxruntime also runs these two in the
    // default domain (onnxruntime-genai writes SimplifiedLayerNormalization there)
    "SimplifiedLayerNormalization" 1..=M => contrib::simplified_layer_norm;
    "LayerNormalization" 1..=16 => norm::layer_norm;
    ["com.microsoft"] "SkipLayerNormalization" 1..=1 => contrib::skip_layer_norm;
    ["com.microsoft"] "SkipSimplifiedLayerNormalization" 1..=1 => contrib::skip_simplified_layer_norm;
    ["com.microsoft"] "SimplifiedLayerNormalization" 1..=1 => contrib::simplified_layer_norm;
    ["com.microsoft"] "LayerNormalization" 1..=1 => norm::layer_norm;
    ["com.microsoft"] "Gelu" 1..=1 => contrib::gelu;
    ["com.microsoft"] "BiasGelu" 1..=1 => contrib::bias_gelu;
    ["com.microsoft"] "FastGelu" 1..=1 => contrib::fast_gelu;
    ["com.microsoft"] "QuickGelu" 1..=1 => contrib::quick_gelu;
    ["com.microsoft"] "FusedMatMul" 1..=1 => contrib::fused_matmul;
    ["com.microsoft"] "EmbedLayerNormalization" 1..=1 => contrib::embed_layer_norm;
    ["com.microsoft"] "Attention" 1..=1 => contrib::attention;
    ["com.microsoft"] "MultiHeadAttention" 1..=1 => contrib::multi_head_attention;
    ["com.microsoft"] "GroupQueryAttention" 1..=1 => contrib::group_query_attention;
    ["com.microsoft"] "RotaryEmbedding" 1..=1 => contrib::rotary_embedding;
    ["com.microsoft"] "MatMulNBits" 1..=1 => contrib::matmul_nbits;
    ["com.microsoft"] "MatMulIntegerToFloat" 1..=1 => quant::matmul_integer_to_float;
};

/// Whether a node domain is the default ONNX domain.
pub(crate) fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// The registry row for `domain::op_type` at `opset`, if any.
pub fn lookup(domain: &str, op_type: &str, opset: i64) -> Option<&'static OpEntry> {
    let domain = if is_default_domain(domain) {
        ""
    } else {
        domain
    };
    OPS.iter().find(|e| {
        e.domain == domain && e.op_type == op_type && (e.since..=e.until).contains(&opset)
    })
}

/// One node the registry cannot lower: `(node name, op type, domain, opset)`.
pub type UnsupportedNode = (String, String, String, i64);

/// Lists every node of a serialized model that the registry cannot lower (opset 0 when the
/// model imports no opset for the node's domain). Nested subgraphs are not searched.
pub fn unsupported_ops(bytes: &[u8]) -> Result<Vec<UnsupportedNode>, FrontendError> {
    let model = ModelProto::decode(bytes).map_err(|e| FrontendError::Decode(e.to_string()))?;
    Ok(unsupported_ops_in(&model))
}

/// As [`unsupported_ops`], on a decoded model.
pub fn unsupported_ops_in(model: &ModelProto) -> Vec<UnsupportedNode> {
    let mut out = Vec::new();
    let Some(graph) = &model.graph else {
        return out;
    };
    for (i, node) in graph.node.iter().enumerate() {
        let domain = node.domain();
        let opset = opset_for(model, domain).unwrap_or(0);
        if lookup(domain, node.op_type(), opset).is_none() {
            let name = if node.name().is_empty() {
                format!("{}_{i}", node.op_type())
            } else {
                node.name().to_string()
            };
            out.push((name, node.op_type().to_string(), domain.to_string(), opset));
        }
    }
    out
}

/// The model's opset for `domain` (`""` and `"ai.onnx"` are the same domain).
pub(crate) fn opset_for(model: &ModelProto, domain: &str) -> Option<i64> {
    let default = is_default_domain(domain);
    model
        .opset_import
        .iter()
        .find(|o| {
            if default {
                is_default_domain(o.domain())
            } else {
                o.domain() == domain
            }
        })
        .map(|o| o.version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_do_not_overlap() {
        for (i, a) in OPS.iter().enumerate() {
            assert!(a.since <= a.until, "{}", a.op_type);
            for b in &OPS[i + 1..] {
                if a.domain == b.domain && a.op_type == b.op_type {
                    assert!(
                        a.until < b.since || b.until < a.since,
                        "{} rows overlap",
                        a.op_type
                    );
                }
            }
        }
    }

    use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};

    fn attr(name: &str, ty: AttributeType) -> AttributeProto {
        let mut a = AttributeProto {
            name: Some(name.into()),
            r#type: Some(ty as i32),
            ..Default::default()
        };
        match ty {
            AttributeType::Int => a.i = Some(1),
            AttributeType::Ints => a.ints = vec![0, 1],
            AttributeType::Floats => a.floats = vec![1.0, 2.0],
            AttributeType::String => a.s = Some(b"ij,jk->ik".to_vec()),
            AttributeType::Tensor => {
                a.t = Some(crate::tensor_to_proto(
                    "",
                    &whittle_ir::Tensor::scalar(1.5f32),
                ))
            }
            _ => {}
        }
        a
    }

    /// The attributes an op cannot do without.
    fn required_attrs(op: &str, opset: i64) -> Vec<AttributeProto> {
        use AttributeType::*;
        match (op, opset) {
            ("Cast" | "BitCast", _) => vec![attr("to", Int)],
            ("BitShift", _) => {
                let mut d = attr("direction", String);
                d.s = Some(b"LEFT".to_vec());
                vec![d]
            }
            ("Einsum", _) => vec![attr("equation", String)],
            ("Concat", _) => vec![attr("axis", Int)],
            ("Constant", _) => vec![attr("value", Tensor)],
            ("Unsqueeze", ..=12) => vec![attr("axes", Ints)],
            ("Slice", ..=9) => vec![attr("starts", Ints), attr("ends", Ints)],
            ("TopK", ..=9) => vec![attr("k", Int)],
            ("Pad", ..=10) => vec![attr("pads", Ints)],
            ("Upsample", ..=8) => vec![attr("scales", Floats)],
            ("DepthToSpace" | "SpaceToDepth", _) => vec![attr("blocksize", Int)],
            ("LpPool" | "MaxUnpool", _) => vec![attr("kernel_shape", Ints)],
            ("LRN", _) => vec![attr("size", Int)],
            ("GroupNormalization", _) => vec![attr("num_groups", Int)],
            ("LinearAttention", _) => vec![attr("q_num_heads", Int), attr("kv_num_heads", Int)],
            ("TfIdfVectorizer", _) => {
                let mut mode = attr("mode", String);
                mode.s = Some(b"TF".to_vec());
                let ints = ["min_gram_length", "max_gram_length", "max_skip_count"];
                let mut v: Vec<_> = ints.iter().map(|n| attr(n, Int)).collect();
                v.extend([mode, attr("ngram_indexes", Ints)]);
                v
            }
            _ => vec![],
        }
    }

    /// Table-driven: every row builds at both ends of its range, into the IR op it names.
    #[test]
    fn every_op_builds() {
        for e in OPS.iter().filter(|e| e.domain.is_empty()) {
            for opset in [e.since, e.until] {
                let n_out = if e.op_type == "Split" { 2 } else { 1 };
                let node = NodeProto {
                    name: Some(format!("n_{}", e.op_type)),
                    op_type: Some(e.op_type.into()),
                    input: if e.op_type == "Constant" {
                        vec![]
                    } else {
                        (0..3).map(|i| format!("x{i}")).collect()
                    },
                    output: (0..n_out).map(|i| format!("y{i}")).collect(),
                    attribute: required_attrs(e.op_type, opset),
                    ..Default::default()
                };
                let cx = NodeCtx {
                    node: &node,
                    opset,
                    base_dir: None,
                    // CastLike reads its target dtype from input 1.
                    input_dtypes: vec![Some(whittle_ir::DType::F32); 3],
                };
                let low = (e.build)(&cx)
                    .unwrap_or_else(|err| panic!("{} at opset {opset}: {err}", e.op_type));
                let want = match e.op_type {
                    "RMSNormalization" | "SimplifiedLayerNormalization" => "RmsNormalization",
                    "Attention" => "SdpAttention",
                    "GatherND" => "GatherNd",
                    "Scatter" => "ScatterElements",
                    "Upsample" => "Resize",
                    "CastLike" => "Cast",
                    other => other,
                };
                assert_eq!(low.op.kind_name(), want, "{} at opset {opset}", e.op_type);
            }
        }
    }

    #[test]
    fn lookup_picks_the_right_form() {
        assert!(lookup("", "Slice", 9).is_some_and(|e| e.until == 9));
        assert!(lookup("ai.onnx", "Slice", 13).is_some_and(|e| e.since == 10));
        assert!(lookup("", "Gelu", 19).is_none());
        assert!(lookup("com.microsoft", "Gelu", 20).is_none());
        assert!(lookup("", "Add", MAX_OPSET + 1).is_none());
    }
}
