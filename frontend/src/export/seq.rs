//! ONNX forms of the losses, the recurrent ops and the sequence-model ops.

use super::ops::{attr_f, attr_i, attr_ints, attr_s};
use crate::proto::{attribute_proto::AttributeType, AttributeProto};
use whittle_ir::{LossReduction, Op, RnnCell, RnnDirection, TfIdfMode};

fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Strings as i32),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn attr_floats(name: &str, v: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Floats as i32),
        floats: v,
        ..Default::default()
    }
}

fn loss_attrs(reduction: LossReduction, ignore_index: Option<i64>, a: &mut Vec<AttributeProto>) {
    let r = match reduction {
        LossReduction::None => "none",
        LossReduction::Sum => "sum",
        LossReduction::Mean => "mean",
    };
    a.push(attr_s("reduction", r));
    if let Some(i) = ignore_index {
        a.push(attr_i("ignore_index", i));
    }
}

/// The op type and attributes of one of this family's ops (`None` for other ops).
pub(crate) fn onnx_form(op: &Op, a: &mut Vec<AttributeProto>) -> Option<&'static str> {
    Some(match op {
        Op::NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        } => {
            loss_attrs(*reduction, *ignore_index, a);
            "NegativeLogLikelihoodLoss"
        }
        Op::SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        } => {
            loss_attrs(*reduction, *ignore_index, a);
            "SoftmaxCrossEntropyLoss"
        }
        Op::Recurrent(r) => {
            let ty = match r.cell {
                RnnCell::Rnn => "RNN",
                RnnCell::Gru {
                    linear_before_reset,
                } => {
                    a.push(attr_i("linear_before_reset", linear_before_reset as i64));
                    "GRU"
                }
                RnnCell::Lstm { input_forget } => {
                    a.push(attr_i("input_forget", input_forget as i64));
                    "LSTM"
                }
            };
            let dir = match r.direction {
                RnnDirection::Forward => "forward",
                RnnDirection::Reverse => "reverse",
                RnnDirection::Bidirectional => "bidirectional",
            };
            a.push(attr_s("direction", dir));
            if let Some(h) = r.hidden_size {
                a.push(attr_i("hidden_size", h as i64));
            }
            if let Some(c) = r.clip {
                a.push(attr_f("clip", c));
            }
            if r.batch_major {
                a.push(attr_i("layout", 1));
            }
            let (mut names, mut alphas, mut betas) = (Vec::new(), Vec::new(), Vec::new());
            for act in &r.activations {
                let (n, al, be) = act.onnx_name();
                names.push(n);
                alphas.extend(al);
                betas.extend(be);
            }
            a.push(attr_strings("activations", &names));
            if !alphas.is_empty() {
                a.push(attr_floats("activation_alpha", alphas));
            }
            if !betas.is_empty() {
                a.push(attr_floats("activation_beta", betas));
            }
            ty
        }
        Op::CausalConvWithState { silu } => {
            a.push(attr_s("activation", if *silu { "silu" } else { "none" }));
            "CausalConvWithState"
        }
        Op::LinearAttention {
            q_num_heads,
            kv_num_heads,
            scale,
            update_rule,
            chunk_size,
        } => {
            a.push(attr_i("q_num_heads", *q_num_heads as i64));
            a.push(attr_i("kv_num_heads", *kv_num_heads as i64));
            if let Some(s) = scale {
                a.push(attr_f("scale", *s));
            }
            a.push(attr_s("update_rule", update_rule.onnx_name()));
            a.push(attr_i("chunk_size", *chunk_size));
            "LinearAttention"
        }
        Op::TfIdfVectorizer(t) => {
            let mode = match t.mode {
                TfIdfMode::Tf => "TF",
                TfIdfMode::Idf => "IDF",
                TfIdfMode::TfIdf => "TFIDF",
            };
            let us = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
            a.push(attr_s("mode", mode));
            a.push(attr_i("min_gram_length", t.min_gram_length as i64));
            a.push(attr_i("max_gram_length", t.max_gram_length as i64));
            a.push(attr_i("max_skip_count", t.max_skip_count as i64));
            a.push(attr_ints("ngram_counts", us(&t.ngram_counts)));
            a.push(attr_ints("ngram_indexes", us(&t.ngram_indexes)));
            a.push(attr_ints("pool_int64s", t.pool.iter().copied()));
            if !t.weights.is_empty() {
                a.push(attr_floats("weights", t.weights.clone()));
            }
            "TfIdfVectorizer"
        }
        _ => return None,
    })
}
