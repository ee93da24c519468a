//! The reference evaluator (`ir::eval`): plain, obviously-correct code for every op. It is
//! the oracle that every pass and backend is tested against, so clarity beats speed here;
//! accumulations (sums, dot products, variances) run in f64.

mod act;
mod attention_onnx;
mod contrib;
mod contrib_gqa;
pub mod contrib_ms;
mod control;
mod conv;
mod conv_ext;
pub mod einsum;
mod elementwise;
mod fused;
mod index;
mod linalg;
mod loss;
mod movement;
mod norm;
mod norm_extra;
mod pool;
mod quant;
pub(crate) mod rearrange;
mod recurrent;
mod reduce;
pub mod resize;
mod scatter;
mod seq;
pub(crate) mod signal;
pub mod util;
pub(crate) mod vision;

use crate::{Graph, IrError, Op, Tensor, Value};
use std::collections::HashMap;

/// Result of one op: its outputs, or a message (the caller adds node name and op).
pub type OpResult = Result<Vec<Tensor>, String>;

/// Input `i`, which the op requires.
pub(crate) fn req<'a>(
    ins: &[Option<&'a Tensor>],
    i: usize,
    what: &str,
) -> Result<&'a Tensor, String> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("missing required input {i} ({what})"))
}

/// Input `i` if present.
pub(crate) fn opt<'a>(ins: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    ins.get(i).copied().flatten()
}

/// Evaluates one op on concrete inputs. `num_outputs` is the number of output ports the
/// node has (some ops, like `Split` or `MaxPool` with indices, depend on it).
pub fn eval_op(op: &Op, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    use Op::*;
    match op {
        Input(_) => Err("graph inputs are bound by `run`, not evaluated".into()),
        Constant(t) => Ok(vec![(**t).clone()]),
        Identity => Ok(vec![req(ins, 0, "input")?.clone()]),
        Dropout => elementwise::dropout(ins, num_outputs),
        Unary(u) => elementwise::unary(*u, ins),
        Binary(b) => elementwise::binary(*b, ins),
        Variadic(v) => elementwise::variadic(*v, ins),
        LeakyRelu { alpha } => elementwise::leaky_relu(*alpha, ins),
        Elu { alpha } => elementwise::elu(*alpha, ins),
        HardSigmoid { alpha, beta } => elementwise::hard_sigmoid(*alpha, *beta, ins),
        Gelu { approximate } => elementwise::gelu(*approximate, ins),
        Clip => elementwise::clip(ins),
        Where => elementwise::where_(ins),
        IsNaN => elementwise::classify(|x| x.is_nan(), ins),
        IsInf {
            detect_negative,
            detect_positive,
        } => {
            let (neg, pos) = (*detect_negative, *detect_positive);
            elementwise::classify(
                move |x| (pos && x == f64::INFINITY) || (neg && x == f64::NEG_INFINITY),
                ins,
            )
        }
        Cast { to } => Ok(vec![req(ins, 0, "input")?.cast(*to)]),
        ParamUnary(p) => act::param_unary(*p, ins),
        SwiGlu { alpha } => act::swiglu(*alpha, ins),
        BitCast { to } => act::bit_cast(*to, ins),
        Hardmax { axis, coerce_2d } => act::hardmax(*axis, *coerce_2d, ins),
        CumProd { exclusive, reverse } => act::cum_prod(*exclusive, *reverse, ins),
        EyeLike { dtype, k } => act::eye_like(*dtype, *k, ins),
        MatMul => linalg::matmul(ins),
        Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => linalg::gemm(*alpha, *beta, *trans_a, *trans_b, ins),
        Einsum { equation } => einsum::einsum(equation, ins),
        Conv { window, group } => conv::conv(window, *group, ins),
        ConvTranspose {
            window,
            group,
            output_padding,
            output_shape,
        } => conv::conv_transpose(window, *group, output_padding, output_shape, ins),
        BatchNormalization { epsilon } => norm::batch_norm(*epsilon, ins),
        LayerNormalization { axis, epsilon } => norm::layer_norm(*axis, *epsilon, ins, num_outputs),
        RmsNormalization { axis, epsilon } => norm::rms_norm(*axis, *epsilon, ins),
        Softmax { axis, coerce_2d } => norm::softmax(*axis, *coerce_2d, false, ins),
        LogSoftmax { axis, coerce_2d } => norm::softmax(*axis, *coerce_2d, true, ins),
        Reduce {
            op,
            keepdims,
            noop_with_empty_axes,
        } => reduce::reduce(*op, *keepdims, *noop_with_empty_axes, ins),
        ArgMax {
            axis,
            keepdims,
            select_last_index,
        } => reduce::arg_extreme(true, *axis, *keepdims, *select_last_index, ins),
        ArgMin {
            axis,
            keepdims,
            select_last_index,
        } => reduce::arg_extreme(false, *axis, *keepdims, *select_last_index, ins),
        TopK {
            axis,
            largest,
            sorted,
        } => reduce::top_k(*axis, *largest, *sorted, ins),
        CumSum { exclusive, reverse } => reduce::cum_sum(*exclusive, *reverse, ins),
        MaxPool {
            window,
            ceil_mode,
            storage_order,
        } => pool::max_pool(window, *ceil_mode, *storage_order, ins, num_outputs),
        AveragePool {
            window,
            ceil_mode,
            count_include_pad,
        } => pool::average_pool(window, *ceil_mode, *count_include_pad, ins),
        GlobalAveragePool => pool::global_pool(false, ins),
        GlobalMaxPool => pool::global_pool(true, ins),
        Reshape { allowzero } => movement::reshape(*allowzero, ins),
        Transpose { perm } => movement::transpose(perm.as_deref(), ins),
        Flatten { axis } => movement::flatten(*axis, ins),
        Squeeze => movement::squeeze(ins),
        Unsqueeze => movement::unsqueeze(ins),
        Concat { axis } => movement::concat(*axis, ins),
        Split {
            axis,
            num_outputs: n,
        } => movement::split(*axis, *n, ins),
        Slice => movement::slice(ins),
        Gather { axis } => movement::gather(*axis, ins),
        GatherElements { axis } => movement::gather_elements(*axis, ins),
        GatherNd { batch_dims } => movement::gather_nd(*batch_dims, ins),
        Expand => movement::expand(ins),
        Tile => movement::tile(ins),
        Pad { mode } => movement::pad(*mode, ins),
        Shape { start, end } => movement::shape(*start, *end, ins),
        Size => Ok(vec![Tensor::scalar(req(ins, 0, "data")?.len() as i64)]),
        ConstantOfShape { value } => movement::constant_of_shape(value, ins),
        Range => movement::range(ins),
        Trilu { upper } => movement::trilu(*upper, ins),
        Resize(attrs) => resize::resize(attrs, ins),
        NonZero => movement::non_zero(ins),
        OneHot { axis } => movement::one_hot(*axis, ins),
        Scatter { kind, reduction } => scatter::scatter(*kind, *reduction, ins),
        Compress { axis } => scatter::compress(*axis, ins),
        Unique { axis, sorted } => scatter::unique(*axis, *sorted, ins, num_outputs),
        ReverseSequence {
            batch_axis,
            time_axis,
        } => scatter::reverse_sequence(*batch_axis, *time_axis, ins),
        DepthToSpace { blocksize, crd } => rearrange::depth_to_space(*blocksize, *crd, ins),
        SpaceToDepth { blocksize, crd } => rearrange::space_to_depth(*blocksize, *crd, ins),
        CenterCropPad { axes } => rearrange::center_crop_pad(axes.as_deref(), ins),
        Col2Im {
            dilations,
            pads,
            strides,
        } => rearrange::col2im(dilations, pads, strides, ins),
        MaxUnpool { window } => rearrange::max_unpool(window, ins),
        LpPool {
            window,
            ceil_mode,
            p,
        } => norm_extra::lp_pool(window, *ceil_mode, *p, ins),
        LpNormalization { axis, p } => norm_extra::lp_normalization(*axis, *p, ins),
        Lrn {
            alpha,
            beta,
            bias,
            size,
        } => norm_extra::lrn(*alpha, *beta, *bias, *size, ins),
        InstanceNormalization { epsilon } => norm_extra::instance_norm(*epsilon, ins),
        GroupNormalization {
            epsilon,
            num_groups,
            per_group_affine,
        } => norm_extra::group_norm(*epsilon, *num_groups, *per_group_affine, ins),
        MeanVarianceNormalization { axes } => norm_extra::mean_variance_norm(axes, ins),
        Det => norm_extra::det(ins),
        GridSample {
            mode,
            padding,
            align_corners,
        } => vision::grid_sample(*mode, *padding, *align_corners, ins),
        AffineGrid { align_corners } => vision::affine_grid(*align_corners, ins),
        RoiAlign {
            mode,
            output_height,
            output_width,
            sampling_ratio,
            spatial_scale,
            half_pixel,
        } => vision::roi_align(
            *mode,
            *output_height,
            *output_width,
            *sampling_ratio,
            *spatial_scale,
            *half_pixel,
            ins,
        ),
        NonMaxSuppression { center_point_box } => {
            vision::non_max_suppression(*center_point_box, ins)
        }
        Dft { inverse, onesided } => signal::dft(*inverse, *onesided, ins),
        Stft { onesided } => signal::stft(*onesided, ins),
        SignalWindow {
            kind,
            periodic,
            output_dtype,
        } => signal::window(*kind, *periodic, *output_dtype, ins),
        MelWeightMatrix { output_dtype } => signal::mel_weight_matrix(*output_dtype, ins),
        DeformConv {
            window,
            group,
            offset_group,
        } => conv_ext::deform_conv(window, *group, *offset_group, ins),
        ConvInteger { window, group } => conv_ext::conv_integer(window, *group, ins),
        QLinearConv { window, group } => conv_ext::qlinear_conv(window, *group, ins),
        SdpAttention(a) => attention_onnx::sdp_attention(a, ins, num_outputs),
        RotaryEmbedding {
            interleaved,
            rotary_dim,
            num_heads,
        } => attention_onnx::rotary_embedding(*interleaved, *rotary_dim, *num_heads, ins),
        NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        } => loss::loss(false, *reduction, *ignore_index, ins, 1),
        SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        } => loss::loss(true, *reduction, *ignore_index, ins, num_outputs),
        Recurrent(a) => recurrent::recurrent(a, ins, num_outputs),
        CausalConvWithState { silu } => seq::causal_conv(*silu, ins),
        LinearAttention {
            q_num_heads,
            kv_num_heads,
            scale,
            update_rule,
            ..
        } => seq::linear_attention(
            &seq::LinAttn {
                q_heads: *q_num_heads,
                kv_heads: *kv_num_heads,
                scale: *scale,
                rule: *update_rule,
            },
            ins,
        ),
        TfIdfVectorizer(a) => seq::tfidf(a, ins),
        QuantizeLinear {
            axis,
            block_size,
            output_dtype,
        } => quant::quantize_linear(*axis, *block_size, *output_dtype, ins),
        DequantizeLinear { axis, block_size } => quant::dequantize_linear(*axis, *block_size, ins),
        DynamicQuantizeLinear => quant::dynamic_quantize_linear(ins),
        MatMulInteger => linalg::matmul_integer(ins),
        QLinearMatMul => linalg::qlinear_matmul(ins),
        MatMulIntegerToFloat { activation } => {
            let y = linalg::matmul_integer_to_float(ins)?;
            fused::activate(*activation, y)
        }
        FusedMatMul { activation } => fused::fused_matmul(*activation, ins),
        Attention { num_heads, scale } => fused::attention(*num_heads, *scale, ins),
        PaddingOffsets => fused::padding_offsets(ins),
        PackedAttention { num_heads, scale } => fused::packed_attention(*num_heads, *scale, ins),
        AddNorm { rms, epsilon } => fused::add_norm(*rms, *epsilon, ins, num_outputs),
        BiasGelu { approximate } => contrib::bias_gelu(*approximate, ins),
        ScaledMatMul {
            alpha,
            trans_a,
            trans_b,
            trans_batch_a,
            trans_batch_b,
        } => contrib::scaled_matmul(
            *alpha,
            [*trans_a, *trans_b, *trans_batch_a, *trans_batch_b],
            ins,
        ),
        EmbedLayerNorm { epsilon } => contrib::embed_layer_norm(*epsilon, ins, num_outputs),
        QkvAttention(a) => contrib::qkv_attention(a, ins),
        MultiHeadAttention(a) => contrib_ms::multi_head_attention(a, ins, num_outputs),
        GroupQueryAttention(a) => contrib_gqa::group_query_attention(a, ins, num_outputs),
        MatMulNBits(a) => contrib_ms::matmul_nbits(a, ins),
        If {
            then_branch,
            else_branch,
        } => control::if_(then_branch, else_branch, ins),
        Loop { body, carried } => control::loop_(body, *carried, ins, num_outputs),
        Scan(a) => control::scan(a, ins),
    }
}

/// Runs the whole graph on named inputs and returns the outputs in graph order.
///
/// Each input must match its declared dtype and rank, known dimensions must match, and a
/// symbolic dimension must take the same size everywhere it appears.
pub fn run(g: &Graph, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, IrError> {
    let mut env: HashMap<Value, Tensor> = HashMap::new();
    let mut syms: HashMap<String, usize> = HashMap::new();
    for (i, &id) in g.inputs().iter().enumerate() {
        let name = g.input_name(i);
        let t = inputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| IrError::Input {
                name: name.into(),
                msg: "missing: no value was given".into(),
            })?;
        check_input(name, g.input_type(i), t, &mut syms)?;
        env.insert(Value::new(id, 0), t.clone());
    }
    for (n, _) in inputs {
        if !(0..g.inputs().len()).any(|i| g.input_name(i) == *n) {
            return Err(IrError::Input {
                name: n.to_string(),
                msg: "the model has no input of this name".into(),
            });
        }
    }
    execute(g, env)
}

/// Runs a control-flow body on positional inputs (its captured values last): each must
/// have the declared dtype and rank of its input; returns the outputs in order.
pub fn run_body(g: &Graph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, IrError> {
    if inputs.len() != g.inputs().len() {
        return Err(IrError::Graph(format!(
            "body '{}' takes {} inputs but was given {}",
            g.name,
            g.inputs().len(),
            inputs.len()
        )));
    }
    let mut env: HashMap<Value, Tensor> = HashMap::new();
    for (i, (&id, t)) in g.inputs().iter().zip(inputs).enumerate() {
        let ty = g.input_type(i);
        if t.dtype() != ty.dtype || ty.rank().is_some_and(|r| r != t.rank()) {
            return Err(IrError::Input {
                name: g.input_name(i).to_string(),
                msg: format!(
                    "body input expects {ty} but got {}{:?}",
                    t.dtype(),
                    t.shape()
                ),
            });
        }
        env.insert(Value::new(id, 0), t);
    }
    Ok(execute(g, env)?.into_iter().map(|(_, t)| t).collect())
}

/// Evaluates every node of `g` in topological order from the bound inputs in `env`.
fn execute(g: &Graph, mut env: HashMap<Value, Tensor>) -> Result<Vec<(String, Tensor)>, IrError> {
    // Remaining reads per value, so intermediate tensors are dropped after their last use.
    let mut uses: HashMap<Value, usize> = HashMap::new();
    for id in g.node_ids() {
        for v in g.node_inputs(id).into_iter().flatten() {
            *uses.entry(v).or_default() += 1;
        }
    }
    for o in g.outputs() {
        *uses.entry(o.value).or_default() += 1;
    }
    for id in g.topo_order()? {
        let node = g.node(id);
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let ins = g.node_inputs(id);
        let outs = {
            let args: Vec<Option<&Tensor>> =
                ins.iter().map(|v| v.and_then(|v| env.get(&v))).collect();
            eval_op_checked(&node.op, &args, node.outputs.len()).map_err(|msg| IrError::Eval {
                node: node.name.clone(),
                op: node.op.kind_name(),
                msg,
            })?
        };
        for v in ins.into_iter().flatten() {
            if let Some(u) = uses.get_mut(&v) {
                *u -= 1;
                if *u == 0 {
                    env.remove(&v);
                }
            }
        }
        for (p, t) in outs.into_iter().enumerate().take(node.outputs.len()) {
            let v = Value::new(id, p);
            if uses.get(&v).copied().unwrap_or(0) > 0 {
                env.insert(v, t);
            }
        }
    }
    g.outputs()
        .iter()
        .map(|o| {
            let t = env
                .get(&o.value)
                .cloned()
                .ok_or_else(|| IrError::Graph(format!("output '{}' was not computed", o.name)))?;
            Ok((o.name.clone(), t))
        })
        .collect()
}

/// [`eval_op`] after checking that the outputs fit in memory (see [`crate::limits`]): what
/// constant folding and every other caller outside [`run`] should use on model data.
pub fn eval_op_checked(op: &Op, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    if let Some(outs) = inferred_outputs(op, ins, num_outputs) {
        check_sizes(&outs)?;
    }
    eval_op(op, ins, num_outputs)
}

/// The output types inference gives for `op` on these concrete inputs, or `None` where it
/// cannot tell (the kernel then checks for itself).
pub(crate) fn inferred_outputs(
    op: &Op,
    args: &[Option<&Tensor>],
    num_outputs: usize,
) -> Option<Vec<crate::TensorType>> {
    if matches!(op, Op::Constant(_) | Op::Identity | Op::Input(_)) {
        return None;
    }
    let types: Vec<Option<crate::TensorType>> = args
        .iter()
        .map(|a| a.map(|t| crate::TensorType::fixed(t.dtype(), t.shape())))
        .collect();
    let type_refs: Vec<Option<&crate::TensorType>> = types.iter().map(Option::as_ref).collect();
    crate::infer::infer_node(op, &type_refs, args, num_outputs).ok()
}

/// Refuses outputs of these (inferred) types that would not fit in memory: an overflowing
/// shape, or more than the budget of [`crate::limits`], before any kernel allocates them.
pub(crate) fn check_sizes(outs: &[crate::TensorType]) -> Result<(), String> {
    let mut total: u64 = 0;
    for (p, ty) in outs.iter().enumerate() {
        if let Some(shape) = ty.concrete_shape() {
            let bytes = crate::limits::byte_size(&shape, ty.dtype.size_of())
                .map_err(|e| format!("output {p}: {e}"))?;
            total = total.saturating_add(bytes as u64);
        }
    }
    crate::limits::check_alloc(total, "the outputs")
}

/// Checks one input value against its declared type: dtype, rank, known dimensions, and
/// symbolic dimensions consistent with the sizes `syms` already gave them (updated here).
pub fn check_input(
    name: &str,
    ty: &crate::TensorType,
    t: &Tensor,
    syms: &mut HashMap<String, usize>,
) -> Result<(), IrError> {
    let err = |msg: String| IrError::Input {
        name: name.into(),
        msg,
    };
    if t.dtype() != ty.dtype {
        return Err(err(format!(
            "expected dtype {} but got {}",
            ty.dtype,
            t.dtype()
        )));
    }
    let Some(dims) = &ty.shape else { return Ok(()) };
    if dims.len() != t.rank() {
        return Err(err(format!(
            "expected shape {ty} (rank {}) but got {:?}",
            dims.len(),
            t.shape()
        )));
    }
    for (i, (d, &n)) in dims.iter().zip(t.shape()).enumerate() {
        match d {
            crate::Dim::Known(k) if *k != n => {
                return Err(err(format!(
                    "expected shape {ty} but got {:?} (dimension {i})",
                    t.shape()
                )))
            }
            crate::Dim::Sym(s) => {
                let prev = *syms.entry(s.clone()).or_insert(n);
                if prev != n {
                    return Err(err(format!(
                        "dimension '{s}' is {prev} elsewhere but {n} here"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
