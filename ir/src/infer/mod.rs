//! Shape and dtype inference (`infer_node`, `infer_graph`) and input-shape specialisation
//! with shape-computation folding (`specialize`).
//!
//! Dims are known sizes or symbols. Broadcasting follows numpy: a symbol broadcast with 1
//! stays the symbol, two different symbols give a fresh one. Where an output size depends
//! on values (Reshape's shape, Slice's starts, TopK's k, ...) the constant inputs are used;
//! when a size cannot be known a fresh symbol `unk_<n>` stands for it, and the rank is left
//! unknown only when even the rank cannot be known. Mismatches that are certain (MatMul
//! inner dims 3 vs 4, Concat non-axis dims that differ, Add of `[2,3]` and `[4,3]`) are
//! errors.

mod act;
mod attention;
mod contrib;
mod contrib_ms;
pub(crate) mod control;
pub(crate) mod dims;
mod fused;
mod graph;
mod index_norm;
mod linalg;
mod movement;
mod seq;
mod shape_ops;
mod signal_vision;
mod values;
mod window;

pub use contrib::{check_batch_ranks, qkv_widths, scaled_matmul_perm};
pub use dims::{broadcast_dim, broadcast_shapes, is_fresh, SymGen, FRESH_PREFIX};
pub(crate) use graph::input_info;
pub use graph::{
    eval_fold, infer_graph, merge_declared, merge_types, remove_dead_nodes, specialize,
    FOLD_MAX_ELEMENTS,
};
pub use movement::{slice_len, slice_range};

use crate::{BinaryOp, DType, Dim, Op, Tensor, TensorType};
use dims::{norm_axis, Ins};
use values::SymElem;

/// Output types of `op` given its input types (`None` for an absent optional input) and
/// the constant values of inputs that are constants. `num_outputs` is the node's number of
/// output ports; the result has one type per port. Fresh symbols are numbered from 0, so
/// they are unique only within this call: graph-level inference uses [`infer_node_with`].
pub fn infer_node(
    op: &Op,
    inputs: &[Option<&TensorType>],
    const_inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    infer_node_with(
        &mut SymGen::default(),
        op,
        inputs,
        const_inputs,
        num_outputs,
    )
}

/// [`infer_node`] drawing fresh symbols from `gen`.
pub fn infer_node_with(
    gen: &mut SymGen,
    op: &Op,
    inputs: &[Option<&TensorType>],
    const_inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    infer_node_vals(gen, op, inputs, const_inputs, &[], num_outputs)
}

/// [`infer_node_with`] that also knows the symbolic values of shape computations.
pub(crate) fn infer_node_vals(
    gen: &mut SymGen,
    op: &Op,
    inputs: &[Option<&TensorType>],
    const_inputs: &[Option<&Tensor>],
    vals: &[Option<Vec<SymElem>>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    let ins = Ins {
        types: inputs,
        consts: const_inputs,
        vals,
    };
    let one = |t: TensorType| Ok(vec![t]);
    match op {
        Op::Input(i) => Err(format!(
            "graph input {i} has a declared type, not an inferred one"
        )),
        Op::Constant(t) => one(TensorType::fixed(t.dtype(), t.shape())),
        Op::Identity
        | Op::Unary(_)
        | Op::LeakyRelu { .. }
        | Op::Elu { .. }
        | Op::HardSigmoid { .. }
        | Op::Gelu { .. }
        | Op::Clip
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::CumSum { .. }
        | Op::CumProd { .. }
        | Op::ParamUnary(_)
        | Op::Hardmax { .. }
        | Op::Trilu { .. }
        | Op::BatchNormalization { .. }
        | Op::RmsNormalization { .. } => {
            let x = ins.ty(0, "input")?.clone();
            let mut outs = vec![x];
            if let Op::BatchNormalization { .. } = op {
                // Training-mode outputs (running mean / var) have the scale's type.
                for _ in 1..num_outputs {
                    outs.push(ins.ty(1, "scale")?.clone());
                }
            }
            Ok(outs)
        }
        Op::Dropout => {
            let x = ins.ty(0, "data")?.clone();
            let mut outs = vec![x.clone()];
            if num_outputs > 1 {
                outs.push(TensorType {
                    dtype: DType::Bool,
                    shape: x.shape,
                });
            }
            Ok(outs)
        }
        Op::Binary(b) => one(binary(*b, &ins, gen)?),
        Op::SwiGlu { .. } => one(act::swiglu(&ins)?),
        Op::BitCast { to } => one(act::bit_cast(*to, &ins)?),
        Op::EyeLike { dtype, .. } => one(act::eye_like(*dtype, &ins)?),
        Op::Variadic(_) => {
            let n = ins.types.len();
            if n == 0 {
                return Err("needs at least one input".into());
            }
            let dtype = ins.dtype(0, "x0")?;
            let mut shapes = Vec::with_capacity(n);
            for i in 0..n {
                let t = ins.ty(i, "operand")?;
                check_same_dtype(dtype, t.dtype, i)?;
                shapes.push(t.shape.as_deref());
            }
            one(TensorType {
                dtype,
                shape: broadcast_shapes(&shapes, gen)?,
            })
        }
        Op::Where => {
            let c = ins.ty(0, "condition")?;
            let x = ins.ty(1, "x")?;
            let y = ins.ty(2, "y")?;
            check_same_dtype(x.dtype, y.dtype, 2)?;
            let shape = broadcast_shapes(
                &[c.shape.as_deref(), x.shape.as_deref(), y.shape.as_deref()],
                gen,
            )?;
            one(TensorType {
                dtype: x.dtype,
                shape,
            })
        }
        Op::IsNaN | Op::IsInf { .. } => one(TensorType {
            dtype: DType::Bool,
            shape: ins.ty(0, "input")?.shape.clone(),
        }),
        Op::Cast { to } => one(TensorType {
            dtype: *to,
            shape: ins.ty(0, "input")?.shape.clone(),
        }),
        Op::MatMul => one(linalg::matmul(&ins, 0, 1, None, gen)?),
        Op::MatMulInteger => one(linalg::matmul(&ins, 0, 1, Some(DType::I32), gen)?),
        Op::MatMulIntegerToFloat { .. } => {
            let dtype = ins.dtype(2, "a_scale")?;
            if !dtype.is_float() {
                return Err(format!("a_scale must be floating point, got {dtype}"));
            }
            one(linalg::matmul(&ins, 0, 1, Some(dtype), gen)?)
        }
        Op::QLinearMatMul => {
            let dtype = ins.opt_ty(7).map(|t| t.dtype).unwrap_or(ins.dtype(0, "a")?);
            one(linalg::matmul(&ins, 0, 3, Some(dtype), gen)?)
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => one(linalg::gemm(&ins, *trans_a, *trans_b, gen)?),
        Op::FusedMatMul { .. } => one(fused::fused_matmul(&ins, gen)?),
        Op::Attention { num_heads, .. } => one(fused::attention(*num_heads, &ins)?),
        Op::PaddingOffsets => fused::padding_offsets(&ins, gen),
        Op::PackedAttention { num_heads, .. } => one(fused::packed_attention(*num_heads, &ins)?),
        Op::BiasGelu { .. } => one(contrib::bias_gelu(&ins, gen)?),
        Op::ScaledMatMul {
            trans_a,
            trans_b,
            trans_batch_a,
            trans_batch_b,
            ..
        } => one(contrib::scaled_matmul(
            [*trans_a, *trans_b, *trans_batch_a, *trans_batch_b],
            &ins,
            gen,
        )?),
        Op::EmbedLayerNorm { .. } => contrib::embed_layer_norm(&ins, num_outputs, gen),
        Op::QkvAttention(a) => one(contrib::qkv_attention(a, &ins, gen)?),
        Op::MultiHeadAttention(a) => contrib_ms::multi_head_attention(a, &ins, num_outputs, gen),
        Op::GroupQueryAttention(a) => contrib_ms::group_query_attention(a, &ins, num_outputs, gen),
        Op::MatMulNBits(a) => one(contrib_ms::matmul_nbits(a, &ins)?),
        Op::AddNorm { rms, .. } => {
            let ty = fused::add_norm(*rms, &ins)?;
            Ok(vec![ty; num_outputs.clamp(1, 2)])
        }
        Op::Einsum { equation } => one(linalg::einsum(equation, &ins, gen)?),
        Op::Conv { window, group } => one(window::conv(window, *group, &ins, gen)?),
        Op::ConvTranspose {
            window,
            group,
            output_padding,
            output_shape,
        } => one(window::conv_transpose(
            window,
            *group,
            output_padding,
            output_shape,
            &ins,
            gen,
        )?),
        Op::MaxPool {
            window, ceil_mode, ..
        } => {
            let y = window::pool(window, *ceil_mode, &ins, gen)?;
            let mut outs = vec![y.clone()];
            if num_outputs > 1 {
                outs.push(TensorType {
                    dtype: DType::I64,
                    shape: y.shape,
                });
            }
            Ok(outs)
        }
        Op::AveragePool {
            window, ceil_mode, ..
        } => one(window::pool(window, *ceil_mode, &ins, gen)?),
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            let x = ins.ty(0, "input")?;
            let shape = match &x.shape {
                None => None,
                Some(s) if s.len() < 2 => {
                    return Err(format!("input must have rank >= 2, got {}", s.len()))
                }
                Some(s) => Some(
                    s[..2]
                        .iter()
                        .cloned()
                        .chain(s[2..].iter().map(|_| Dim::Known(1)))
                        .collect(),
                ),
            };
            one(TensorType {
                dtype: x.dtype,
                shape,
            })
        }
        Op::LayerNormalization { axis, .. } => {
            let x = ins.ty(0, "X")?;
            let mut outs = vec![x.clone()];
            if num_outputs > 1 {
                // Mean and InvStdDev: X's shape with the normalised axes set to 1.
                let shape = match &x.shape {
                    None => None,
                    Some(s) => {
                        let a = norm_axis(*axis, s.len())?;
                        Some(
                            s.iter()
                                .enumerate()
                                .map(|(i, d)| if i < a { d.clone() } else { Dim::Known(1) })
                                .collect(),
                        )
                    }
                };
                let stat = TensorType {
                    dtype: x.dtype,
                    shape,
                };
                outs.extend(std::iter::repeat_n(stat, num_outputs - 1));
            }
            Ok(outs)
        }
        Op::Reduce {
            keepdims,
            noop_with_empty_axes,
            ..
        } => one(shape_ops::reduce(
            *keepdims,
            *noop_with_empty_axes,
            &ins,
            gen,
        )?),
        Op::ArgMax { axis, keepdims, .. } | Op::ArgMin { axis, keepdims, .. } => {
            one(shape_ops::arg_extreme(*axis, *keepdims, &ins)?)
        }
        Op::TopK { axis, .. } => shape_ops::top_k(*axis, &ins, gen),
        Op::Reshape { allowzero } => one(movement::reshape(*allowzero, &ins, gen)?),
        Op::Transpose { perm } => one(movement::transpose(perm.as_deref(), &ins)?),
        Op::Flatten { axis } => one(movement::flatten(*axis, &ins, gen)?),
        Op::Squeeze => one(movement::squeeze(&ins)?),
        Op::Unsqueeze => one(movement::unsqueeze(&ins, gen)?),
        Op::Concat { axis } => one(movement::concat(*axis, &ins, gen)?),
        Op::Split {
            axis,
            num_outputs: n,
        } => {
            let n = if *n > 0 { *n } else { num_outputs };
            movement::split(*axis, n, &ins, gen)
        }
        Op::Slice => one(movement::slice(&ins, gen)?),
        Op::Gather { axis } => one(movement::gather(*axis, &ins)?),
        Op::GatherElements { .. } => {
            let data = ins.ty(0, "data")?;
            let idx = ins.ty(1, "indices")?;
            one(TensorType {
                dtype: data.dtype,
                shape: idx.shape.clone(),
            })
        }
        Op::GatherNd { batch_dims } => one(movement::gather_nd(*batch_dims, &ins, gen)?),
        Op::Expand => one(movement::expand(&ins, gen)?),
        Op::Tile => one(movement::tile(&ins, gen)?),
        Op::Pad { .. } => one(movement::pad(&ins, gen)?),
        Op::Shape { start, end } => one(shape_ops::shape(*start, *end, &ins, gen)?),
        Op::Size => {
            ins.ty(0, "data")?;
            one(TensorType::fixed(DType::I64, &[]))
        }
        Op::ConstantOfShape { value } => one(shape_ops::constant_of_shape(value, &ins, gen)?),
        Op::Range => one(shape_ops::range(&ins, gen)?),
        Op::Resize(attrs) => one(shape_ops::resize(attrs, &ins, gen)?),
        Op::NonZero => {
            let x = ins.ty(0, "X")?;
            let rank = match x.rank() {
                Some(r) => Dim::Known(r),
                None => gen.fresh(),
            };
            one(TensorType::new(DType::I64, vec![rank, gen.fresh()]))
        }
        Op::OneHot { axis } => one(shape_ops::one_hot(*axis, &ins, gen)?),
        Op::Scatter { kind, .. } => one(index_norm::scatter(*kind, &ins)?),
        Op::Compress { axis } => one(index_norm::compress(*axis, &ins, gen)?),
        Op::Unique { axis, .. } => index_norm::unique(*axis, &ins, gen, num_outputs),
        Op::DepthToSpace { blocksize, .. } => {
            one(index_norm::depth_space(true, *blocksize, &ins, gen)?)
        }
        Op::SpaceToDepth { blocksize, .. } => {
            one(index_norm::depth_space(false, *blocksize, &ins, gen)?)
        }
        Op::CenterCropPad { axes } => one(index_norm::center_crop_pad(axes.as_deref(), &ins, gen)?),
        Op::Col2Im {
            dilations,
            pads,
            strides,
        } => one(index_norm::col2im(dilations, pads, strides, &ins, gen)?),
        Op::MaxUnpool { window } => one(index_norm::max_unpool(window, &ins, gen)?),
        Op::LpPool {
            window, ceil_mode, ..
        } => one(window::pool(window, *ceil_mode, &ins, gen)?),
        Op::Det => one(index_norm::det(&ins)?),
        Op::ReverseSequence { .. }
        | Op::LpNormalization { .. }
        | Op::Lrn { .. }
        | Op::InstanceNormalization { .. }
        | Op::GroupNormalization { .. }
        | Op::MeanVarianceNormalization { .. } => one(ins.ty(0, "input")?.clone()),
        Op::GridSample { .. } => one(signal_vision::grid_sample(&ins)?),
        Op::AffineGrid { .. } => one(signal_vision::affine_grid(&ins, gen)?),
        Op::RoiAlign {
            output_height,
            output_width,
            ..
        } => one(signal_vision::roi_align(
            *output_height,
            *output_width,
            &ins,
            gen,
        )?),
        Op::NonMaxSuppression { .. } => one(signal_vision::non_max_suppression(&ins, gen)?),
        Op::Dft { inverse, onesided } => one(signal_vision::dft(*inverse, *onesided, &ins, gen)?),
        Op::Stft { onesided } => one(signal_vision::stft(*onesided, &ins, gen)?),
        Op::SignalWindow { output_dtype, .. } => {
            one(signal_vision::window(*output_dtype, &ins, gen)?)
        }
        Op::MelWeightMatrix { output_dtype } => {
            one(signal_vision::mel_weight_matrix(*output_dtype, &ins, gen)?)
        }
        Op::DeformConv { window, group, .. } => {
            let dt = ins.dtype(0, "X")?;
            one(signal_vision::conv_like(
                window, *group, 0, 1, dt, &ins, gen,
            )?)
        }
        Op::ConvInteger { window, group } => one(signal_vision::conv_like(
            window,
            *group,
            0,
            1,
            DType::I32,
            &ins,
            gen,
        )?),
        Op::QLinearConv { window, group } => {
            let dt = match ins.opt_ty(7) {
                Some(z) => z.dtype,
                None => ins.dtype(0, "x")?,
            };
            one(signal_vision::conv_like(
                window, *group, 0, 3, dt, &ins, gen,
            )?)
        }
        Op::NegativeLogLikelihoodLoss { reduction, .. } => seq::loss(*reduction, &ins, 1),
        Op::SoftmaxCrossEntropyLoss { reduction, .. } => seq::loss(*reduction, &ins, num_outputs),
        Op::Recurrent(a) => seq::recurrent(a, &ins, num_outputs, gen),
        Op::If {
            then_branch,
            else_branch,
        } => control::if_(gen, then_branch, else_branch, &ins, num_outputs),
        Op::Loop { body, carried } => control::loop_(gen, body, *carried, &ins, num_outputs),
        Op::Scan(a) => control::scan(gen, a, &ins, num_outputs),
        Op::CausalConvWithState { .. } => seq::causal_conv(&ins, num_outputs, gen),
        Op::LinearAttention {
            q_num_heads,
            kv_num_heads,
            ..
        } => seq::linear_attention(*q_num_heads, *kv_num_heads, &ins, num_outputs, gen),
        Op::TfIdfVectorizer(a) => one(seq::tfidf(a, &ins)?),
        Op::SdpAttention(a) => attention::sdp_attention(a, &ins, num_outputs, gen),
        Op::RotaryEmbedding { .. } => one(attention::rotary_embedding(&ins)?),
        Op::QuantizeLinear { output_dtype, .. } => {
            let x = ins.ty(0, "x")?;
            let dtype = match ins.opt_ty(2) {
                Some(zp) => zp.dtype,
                None => output_dtype.unwrap_or(DType::U8),
            };
            one(TensorType {
                dtype,
                shape: x.shape.clone(),
            })
        }
        Op::DequantizeLinear { .. } => {
            let x = ins.ty(0, "x")?;
            let scale = ins.ty(1, "x_scale")?;
            one(TensorType {
                dtype: scale.dtype,
                shape: x.shape.clone(),
            })
        }
        Op::DynamicQuantizeLinear => {
            let x = ins.ty(0, "x")?;
            Ok(vec![
                TensorType {
                    dtype: DType::U8,
                    shape: x.shape.clone(),
                },
                TensorType::fixed(DType::F32, &[]),
                TensorType::fixed(DType::U8, &[]),
            ])
        }
    }
}

/// Two-input broadcasting ops: comparisons and logic give bool, `Pow` keeps the base type.
fn binary(b: BinaryOp, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    use BinaryOp::*;
    let a = ins.ty(0, "A")?;
    let bt = ins.ty(1, "B")?;
    if b != Pow {
        check_same_dtype(a.dtype, bt.dtype, 1)?;
    }
    act::check_bitwise(b, a.dtype)?;
    let dtype = match b {
        Equal | Less | LessOrEqual | Greater | GreaterOrEqual | And | Or | Xor => DType::Bool,
        Add | Sub | Mul | Div | Pow | Mod | FMod => a.dtype,
        BitwiseAnd | BitwiseOr | BitwiseXor | BitShiftLeft | BitShiftRight | PRelu => a.dtype,
    };
    let shape = broadcast_shapes(&[a.shape.as_deref(), bt.shape.as_deref()], gen)?;
    Ok(TensorType { dtype, shape })
}

fn check_same_dtype(expected: DType, got: DType, port: usize) -> Result<(), String> {
    if expected != got {
        return Err(format!(
            "input {port} has dtype {got} but input 0 has dtype {expected}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod graph_tests;
#[cfg(test)]
mod tests;
