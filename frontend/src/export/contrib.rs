//! Exporter pieces of the onnxruntime contrib ops without an IR equivalent: `BiasGelu`
//! becomes standard `Add` + `Gelu` (decomposed below opset 20); `ScaledMatMul`,
//! `EmbedLayerNorm`, `QkvAttention`, `MultiHeadAttention`, `MatMulNBits` and `MatMulIntegerToFloat` are written back
//! as com.microsoft nodes (`FusedMatMul`, `EmbedLayerNormalization`, `Attention`, ...), which
//! onnxruntime runs; so is a `RotaryEmbedding` in com.microsoft's form ([`rotary`]).

use super::fused::Emitter;
use super::ops::{attr_f, attr_i, attr_ints};
use super::{decompose, Namer};
use crate::proto::{AttributeProto, GraphProto, NodeProto};
use whittle_ir::{Activation, DType, GeluApprox, Op};

/// The domain of the contrib ops.
pub(super) const MS_DOMAIN: &str = "com.microsoft";

/// Whether this module writes `op`.
pub(super) fn handles(op: &Op) -> bool {
    matches!(
        op,
        Op::BiasGelu { .. }
            | Op::ScaledMatMul { .. }
            | Op::EmbedLayerNorm { .. }
            | Op::QkvAttention(_)
            | Op::MultiHeadAttention(_)
            | Op::GroupQueryAttention(_)
            | Op::MatMulNBits(_)
            | Op::MatMulIntegerToFloat { .. }
    )
}

/// A `RotaryEmbedding` only com.microsoft's op expresses (a one-element start position, or
/// a 3-D input without num_heads), written as that op: `input, position_ids, cos, sin`.
pub(super) fn rotary(
    gp: &mut GraphProto,
    name: &str,
    (interleaved, rotary_dim, num_heads): (bool, usize, usize),
    ins: &[String],
    outs: &[String],
) {
    let mut a = vec![];
    if interleaved {
        a.push(attr_i("interleaved", 1));
    }
    if rotary_dim > 0 {
        a.push(attr_i("rotary_embedding_dim", rotary_dim as i64));
    }
    if num_heads > 0 {
        a.push(attr_i("num_heads", num_heads as i64));
    }
    gp.node.push(NodeProto {
        name: Some(name.to_string()),
        op_type: Some("RotaryEmbedding".into()),
        domain: Some(MS_DOMAIN.into()),
        input: reorder(ins, &[Some(0), Some(3), Some(1), Some(2)]),
        output: outs.to_vec(),
        attribute: a,
        ..Default::default()
    });
}

fn input(ins: &[String], i: usize) -> String {
    ins.get(i).cloned().unwrap_or_default()
}

/// `ins` picked by port (`None`: an absent input), trailing absent ones dropped.
fn reorder(ins: &[String], ports: &[Option<usize>]) -> Vec<String> {
    let mut v: Vec<String> = ports
        .iter()
        .map(|p| p.map_or(String::new(), |p| input(ins, p)))
        .collect();
    while v.last().is_some_and(|s| s.is_empty()) {
        v.pop();
    }
    v
}

/// Writes one contrib node (`handles(op)` is true). `dtype` is output 0's.
#[allow(clippy::too_many_arguments)]
pub(super) fn export(
    gp: &mut GraphProto,
    nm: &mut Namer,
    name: &str,
    op: &Op,
    dtype: DType,
    ins: &[String],
    outs: &[String],
    opset: i64,
) {
    let ms_node = |gp: &mut GraphProto, ty: &str, input, output, attribute| {
        gp.node.push(NodeProto {
            name: Some(name.to_string()),
            op_type: Some(ty.into()),
            domain: Some(MS_DOMAIN.into()),
            input,
            output,
            attribute,
            ..Default::default()
        })
    };
    match op {
        Op::BiasGelu { approximate } => {
            let mut e = Emitter::new(gp, nm, name);
            let sum = e.node("Add", vec![input(ins, 0), input(ins, 1)], None, vec![]);
            if opset >= decompose::GELU {
                let attrs = match approximate {
                    GeluApprox::None => vec![],
                    GeluApprox::Tanh => vec![super::ops::attr_s("approximate", "tanh")],
                };
                e.node("Gelu", vec![sum], Some(&outs[0]), attrs);
            } else {
                decompose::gelu(&mut e, *approximate, dtype, &sum, Some(&outs[0]));
            }
        }
        Op::ScaledMatMul {
            alpha,
            trans_a,
            trans_b,
            trans_batch_a,
            trans_batch_b,
        } => {
            let mut a: Vec<AttributeProto> = vec![attr_f("alpha", *alpha)];
            for (flag, n) in [
                (trans_a, "transA"),
                (trans_b, "transB"),
                (trans_batch_a, "transBatchA"),
                (trans_batch_b, "transBatchB"),
            ] {
                if *flag {
                    a.push(attr_i(n, 1));
                }
            }
            ms_node(
                gp,
                "FusedMatMul",
                reorder(ins, &[Some(0), Some(1)]),
                outs.to_vec(),
                a,
            );
        }
        Op::EmbedLayerNorm { epsilon } => {
            // IR ports: ids, word, pos, gamma, beta, segment_ids, seg_emb, mask, position_ids.
            let order = [0, 5, 1, 2, 6, 3, 4, 7, 8].map(Some);
            let mut o = outs.to_vec();
            if o.len() < 2 {
                o.push(nm.fresh(&format!("{name}_mask_index")));
            }
            let a = vec![attr_f("epsilon", *epsilon)];
            ms_node(gp, "EmbedLayerNormalization", reorder(ins, &order), o, a);
        }
        Op::QkvAttention(at) => {
            let mut a = vec![attr_i("num_heads", at.num_heads as i64)];
            if at.unidirectional {
                a.push(attr_i("unidirectional", 1));
            }
            if let Some(s) = at.qkv_hidden_sizes {
                a.push(attr_ints("qkv_hidden_sizes", s.iter().map(|&v| v as i64)));
            }
            if let Some(s) = at.scale {
                a.push(attr_f("scale", s));
            }
            a.push(attr_f("mask_filter_value", at.mask_filter_value));
            let order = [Some(0), Some(1), Some(2), Some(3), None, Some(4)];
            ms_node(gp, "Attention", reorder(ins, &order), outs.to_vec(), a);
        }
        Op::MultiHeadAttention(at) => {
            let mut a = vec![attr_i("num_heads", at.num_heads as i64)];
            if at.unidirectional {
                a.push(attr_i("unidirectional", 1));
            }
            if let Some(s) = at.scale {
                a.push(attr_f("scale", s));
            }
            a.push(attr_f("mask_filter_value", at.mask_filter_value));
            let order = (0..8).map(Some).collect::<Vec<_>>();
            ms_node(
                gp,
                "MultiHeadAttention",
                reorder(ins, &order),
                outs.to_vec(),
                a,
            );
        }
        Op::GroupQueryAttention(at) => {
            let mut a = vec![
                attr_i("num_heads", at.num_heads as i64),
                attr_i("kv_num_heads", at.kv_num_heads as i64),
            ];
            if let Some(s) = at.scale {
                a.push(attr_f("scale", s));
            }
            if at.softcap > 0.0 {
                a.push(attr_f("softcap", at.softcap));
            }
            if let Some(w) = at.local_window {
                a.push(attr_i("local_window_size", w as i64));
            }
            for (flag, n) in [
                (at.do_rotary, "do_rotary"),
                (at.rotary_interleaved, "rotary_interleaved"),
            ] {
                if flag {
                    a.push(attr_i(n, 1));
                }
            }
            if !at.causal {
                a.push(attr_i("causal", 0));
            }
            let order = (0..11).map(Some).collect::<Vec<_>>();
            ms_node(
                gp,
                "GroupQueryAttention",
                reorder(ins, &order),
                outs.to_vec(),
                a,
            );
        }
        Op::MatMulNBits(at) => {
            let a = vec![
                attr_i("K", at.k as i64),
                attr_i("N", at.n as i64),
                attr_i("bits", at.bits as i64),
                attr_i("block_size", at.block_size as i64),
            ];
            let order = (0..6).map(Some).collect::<Vec<_>>();
            ms_node(gp, "MatMulNBits", reorder(ins, &order), outs.to_vec(), a);
        }
        Op::MatMulIntegerToFloat { activation } => {
            let order = (0..7).map(Some).collect::<Vec<_>>();
            let linear = *activation == Activation::Linear;
            let y = if linear {
                outs[0].clone()
            } else {
                nm.fresh(&format!("{name}_product"))
            };
            ms_node(
                gp,
                "MatMulIntegerToFloat",
                reorder(ins, &order),
                vec![y.clone()],
                vec![],
            );
            if !linear {
                let mut e = Emitter::new(gp, nm, name);
                super::fused::emit_activation(&mut e, *activation, dtype, y, Some(&outs[0]), opset);
            }
        }
        _ => {}
    }
}
