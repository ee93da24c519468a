//! Builders for the losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss), the
//! recurrent ops (RNN, GRU, LSTM) and the sequence-model ops (CausalConvWithState,
//! LinearAttention, TfIdfVectorizer).

use super::{BuildResult, NodeCtx};
use crate::FrontendError;
use whittle_ir::{
    LinearAttentionRule, LossReduction, Op, RnnActivation, RnnAttrs, RnnCell, RnnDirection,
    TfIdfAttrs, TfIdfMode,
};

fn reduction(cx: &NodeCtx) -> Result<LossReduction, FrontendError> {
    match cx.string("reduction", "mean")?.as_str() {
        "none" => Ok(LossReduction::None),
        "sum" => Ok(LossReduction::Sum),
        "mean" => Ok(LossReduction::Mean),
        other => Err(cx.bad_attr("reduction", format!("unknown value '{other}'"))),
    }
}

pub(crate) fn nll_loss(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::NegativeLogLikelihoodLoss {
        reduction: reduction(cx)?,
        ignore_index: cx.int_opt("ignore_index")?,
    })
}

pub(crate) fn softmax_cross_entropy_loss(cx: &NodeCtx) -> BuildResult {
    cx.same_inputs(Op::SoftmaxCrossEntropyLoss {
        reduction: reduction(cx)?,
        ignore_index: cx.int_opt("ignore_index")?,
    })
}

/// One activation by ONNX name, taking alpha / beta from the lists where it uses them.
fn activation(
    cx: &NodeCtx,
    name: &str,
    alphas: &mut impl Iterator<Item = f32>,
    betas: &mut impl Iterator<Item = f32>,
) -> Result<RnnActivation, FrontendError> {
    let mut alpha = |d: f32| alphas.next().unwrap_or(d);
    use RnnActivation::*;
    Ok(match name.to_ascii_lowercase().as_str() {
        "relu" => Relu,
        "tanh" => Tanh,
        "sigmoid" => Sigmoid,
        "softsign" => Softsign,
        "softplus" => Softplus,
        "leakyrelu" => LeakyRelu { alpha: alpha(0.01) },
        "thresholdedrelu" => ThresholdedRelu { alpha: alpha(1.0) },
        "elu" => Elu { alpha: alpha(1.0) },
        "affine" => Affine {
            alpha: alpha(1.0),
            beta: betas.next().unwrap_or(0.0),
        },
        "scaledtanh" => ScaledTanh {
            alpha: alpha(1.0),
            beta: betas.next().unwrap_or(1.0),
        },
        "hardsigmoid" => HardSigmoid {
            alpha: alpha(0.2),
            beta: betas.next().unwrap_or(0.5),
        },
        _ => return Err(cx.bad_attr("activations", format!("unknown activation '{name}'"))),
    })
}

/// RNN, GRU and LSTM (opsets 7..).
pub(crate) fn recurrent(cx: &NodeCtx) -> BuildResult {
    let cell = match cx.op_type() {
        "RNN" => RnnCell::Rnn,
        "GRU" => RnnCell::Gru {
            linear_before_reset: cx.bool("linear_before_reset", false)?,
        },
        _ => RnnCell::Lstm {
            input_forget: cx.bool("input_forget", false)?,
        },
    };
    let direction = match cx.string("direction", "forward")?.as_str() {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        other => return Err(cx.bad_attr("direction", format!("unknown value '{other}'"))),
    };
    let dirs = direction.num_directions();
    let na = cell.num_activations();
    let names: Vec<String> = match cx.attr("activations") {
        Some(a) => a
            .strings
            .iter()
            .map(|s| {
                std::str::from_utf8(s)
                    .map(str::to_string)
                    .map_err(|_| cx.bad_attr("activations", "not UTF-8"))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let one: &[&str] = match cell {
                RnnCell::Rnn => &["Tanh"],
                RnnCell::Gru { .. } => &["Sigmoid", "Tanh"],
                RnnCell::Lstm { .. } => &["Sigmoid", "Tanh", "Tanh"],
            };
            (0..dirs)
                .flat_map(|_| one.iter().map(|s| s.to_string()))
                .collect()
        }
    };
    // A list for one direction serves both.
    let names: Vec<String> = if names.len() == na && dirs == 2 {
        names.iter().chain(names.iter()).cloned().collect()
    } else {
        names
    };
    if names.len() != na * dirs {
        return Err(cx.bad_attr(
            "activations",
            format!("{} given, expected {}", names.len(), na * dirs),
        ));
    }
    let mut alphas = cx
        .floats("activation_alpha")?
        .unwrap_or_default()
        .into_iter();
    let mut betas = cx
        .floats("activation_beta")?
        .unwrap_or_default()
        .into_iter();
    let activations = names
        .iter()
        .map(|n| activation(cx, n, &mut alphas, &mut betas))
        .collect::<Result<_, _>>()?;
    let hidden_size = match cx.int_opt("hidden_size")? {
        None => None,
        Some(h) if h > 0 => Some(h as usize),
        Some(h) => return Err(cx.bad_attr("hidden_size", format!("must be positive, got {h}"))),
    };
    let clip = match cx.float_opt("clip")? {
        Some(c) if !(c > 0.0) => {
            return Err(cx.bad_attr("clip", format!("must be positive, got {c}")))
        }
        c => c,
    };
    cx.same_inputs(Op::Recurrent(Box::new(RnnAttrs {
        cell,
        direction,
        hidden_size,
        activations,
        clip,
        batch_major: cx.bool("layout", false)?,
    })))
}

pub(crate) fn causal_conv_with_state(cx: &NodeCtx) -> BuildResult {
    let silu = match cx.string("activation", "none")?.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => return Err(cx.bad_attr("activation", format!("unknown value '{other}'"))),
    };
    cx.same_inputs(Op::CausalConvWithState { silu })
}

pub(crate) fn linear_attention(cx: &NodeCtx) -> BuildResult {
    let heads = |name: &str| -> Result<usize, FrontendError> {
        match cx.int_opt(name)? {
            Some(h) if h > 0 => Ok(h as usize),
            Some(h) => Err(cx.bad_attr(name, format!("must be positive, got {h}"))),
            None => Err(cx.bad_attr(name, "required attribute missing")),
        }
    };
    let update_rule = match cx.string("update_rule", "gated_delta")?.as_str() {
        "linear" => LinearAttentionRule::Linear,
        "gated" => LinearAttentionRule::Gated,
        "delta" => LinearAttentionRule::Delta,
        "gated_delta" => LinearAttentionRule::GatedDelta,
        other => return Err(cx.bad_attr("update_rule", format!("unknown value '{other}'"))),
    };
    let (q_num_heads, kv_num_heads) = (heads("q_num_heads")?, heads("kv_num_heads")?);
    if q_num_heads % kv_num_heads != 0 {
        return Err(cx.bad_attr(
            "q_num_heads",
            format!("{q_num_heads} is not a multiple of kv_num_heads {kv_num_heads}"),
        ));
    }
    cx.same_inputs(Op::LinearAttention {
        q_num_heads,
        kv_num_heads,
        scale: cx.float_opt("scale")?,
        update_rule,
        chunk_size: cx.int("chunk_size", 64)?,
    })
}

pub(crate) fn tfidf_vectorizer(cx: &NodeCtx) -> BuildResult {
    let mode = match cx.string_opt("mode")?.as_deref() {
        Some("TF") => TfIdfMode::Tf,
        Some("IDF") => TfIdfMode::Idf,
        Some("TFIDF") => TfIdfMode::TfIdf,
        Some(other) => return Err(cx.bad_attr("mode", format!("unknown value '{other}'"))),
        None => return Err(cx.bad_attr("mode", "required attribute missing")),
    };
    if cx.attr("pool_strings").is_some() {
        return Err(cx.bad_attr("pool_strings", "string pools are not supported"));
    }
    let size = |name: &str| -> Result<usize, FrontendError> {
        let v = cx
            .int_opt(name)?
            .ok_or_else(|| cx.bad_attr(name, "required attribute missing"))?;
        usize::try_from(v).map_err(|_| cx.bad_attr(name, format!("negative value {v}")))
    };
    let (min_gram_length, max_gram_length) = (size("min_gram_length")?, size("max_gram_length")?);
    if min_gram_length == 0 || min_gram_length > max_gram_length {
        return Err(cx.bad_attr(
            "min_gram_length",
            format!("need 1 <= min_gram_length ({min_gram_length}) <= max_gram_length ({max_gram_length})"),
        ));
    }
    let ngram_indexes = cx.usizes("ngram_indexes")?;
    if ngram_indexes.is_empty() {
        return Err(cx.bad_attr("ngram_indexes", "required attribute missing or empty"));
    }
    if ngram_indexes.iter().any(|&i| i > (1usize << 40)) {
        return Err(cx.bad_attr("ngram_indexes", "index too large"));
    }
    cx.same_inputs(Op::TfIdfVectorizer(Box::new(TfIdfAttrs {
        mode,
        min_gram_length,
        max_gram_length,
        max_skip_count: size("max_skip_count")?,
        ngram_counts: cx.usizes("ngram_counts")?,
        ngram_indexes,
        weights: cx.floats("weights")?.unwrap_or_default(),
        pool: cx.ints("pool_int64s")?.unwrap_or_default(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
    use crate::registry::OPS;

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(v),
            ..Default::default()
        }
    }

    fn attrs(op: &str) -> Vec<AttributeProto> {
        match op {
            "LinearAttention" => vec![int("q_num_heads", 4), int("kv_num_heads", 2)],
            "TfIdfVectorizer" => vec![
                AttributeProto {
                    name: Some("mode".into()),
                    r#type: Some(AttributeType::String as i32),
                    s: Some(b"TF".to_vec()),
                    ..Default::default()
                },
                int("min_gram_length", 1),
                int("max_gram_length", 2),
                int("max_skip_count", 0),
                AttributeProto {
                    name: Some("ngram_indexes".into()),
                    r#type: Some(AttributeType::Ints as i32),
                    ints: vec![0, 1],
                    ..Default::default()
                },
            ],
            _ => vec![],
        }
    }

    /// Every row of this family builds at both ends of its range into the op it names.
    #[test]
    fn family_builds() {
        let ours = [
            "NegativeLogLikelihoodLoss",
            "SoftmaxCrossEntropyLoss",
            "RNN",
            "GRU",
            "LSTM",
            "CausalConvWithState",
            "LinearAttention",
            "TfIdfVectorizer",
        ];
        for e in OPS.iter().filter(|e| ours.contains(&e.op_type)) {
            for opset in [e.since, e.until] {
                let node = NodeProto {
                    name: Some("n".into()),
                    op_type: Some(e.op_type.into()),
                    input: vec!["x0".into(), "x1".into(), "x2".into()],
                    output: vec!["y".into()],
                    attribute: attrs(e.op_type),
                    ..Default::default()
                };
                let cx = NodeCtx {
                    node: &node,
                    opset,
                    base_dir: None,
                    input_dtypes: vec![],
                };
                let low = (e.build)(&cx).unwrap_or_else(|err| panic!("{}: {err}", e.op_type));
                assert_eq!(low.op.kind_name(), e.op_type);
            }
        }
    }

    #[test]
    fn bad_attributes_are_errors() {
        let node = NodeProto {
            name: Some("n".into()),
            op_type: Some("LSTM".into()),
            attribute: vec![AttributeProto {
                name: Some("activations".into()),
                r#type: Some(AttributeType::Strings as i32),
                strings: vec![b"Sigmoid".to_vec(), b"Nope".to_vec(), b"Tanh".to_vec()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let cx = NodeCtx {
            node: &node,
            opset: 22,
            base_dir: None,
            input_dtypes: vec![],
        };
        let err = recurrent(&cx).unwrap_err().to_string();
        assert!(err.contains("Nope"), "{err}");
    }
}
