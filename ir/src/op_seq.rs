//! Attribute types of the loss, recurrent and sequence-model ops (`NegativeLogLikelihoodLoss`,
//! `SoftmaxCrossEntropyLoss`, `Recurrent` = RNN/GRU/LSTM, `LinearAttention`, `TfIdfVectorizer`).

use serde::{Deserialize, Serialize};

/// How a loss reduces the per-element losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LossReduction {
    /// One loss per target element (the target's shape).
    None,
    /// The sum of the weighted losses (a scalar).
    Sum,
    /// The weighted mean: `Σ w·l / Σ w` (a scalar).
    Mean,
}

/// Which recurrent cell a [`crate::Op::Recurrent`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RnnCell {
    /// `H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)`; one gate, one activation.
    Rnn,
    /// Gates z, r, h (ONNX order); activations f (gates) and g (candidate).
    Gru { linear_before_reset: bool },
    /// Gates i, o, f, c (ONNX order); activations f, g, h; `input_forget` couples f = 1 - i.
    Lstm { input_forget: bool },
}

impl RnnCell {
    /// Gates per direction (the multiple of `hidden_size` in W's and R's rows).
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Rnn => 1,
            RnnCell::Gru { .. } => 3,
            RnnCell::Lstm { .. } => 4,
        }
    }

    /// Activations per direction.
    pub fn num_activations(self) -> usize {
        match self {
            RnnCell::Rnn => 1,
            RnnCell::Gru { .. } => 2,
            RnnCell::Lstm { .. } => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RnnDirection {
    Forward,
    Reverse,
    Bidirectional,
}

impl RnnDirection {
    pub fn num_directions(self) -> usize {
        match self {
            RnnDirection::Bidirectional => 2,
            _ => 1,
        }
    }
}

/// An activation function of the ONNX recurrent ops (with its `alpha` / `beta`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RnnActivation {
    Relu,
    Tanh,
    Sigmoid,
    /// `alpha·x + beta`
    Affine {
        alpha: f32,
        beta: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    /// `x` if `x > alpha`, else 0.
    ThresholdedRelu {
        alpha: f32,
    },
    /// `alpha·tanh(beta·x)`
    ScaledTanh {
        alpha: f32,
        beta: f32,
    },
    /// `max(0, min(1, alpha·x + beta))`
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Elu {
        alpha: f32,
    },
    /// `x / (1 + |x|)`
    Softsign,
    /// `ln(1 + eˣ)`
    Softplus,
}

impl RnnActivation {
    /// Applies the activation in f64.
    pub fn apply(self, x: f64) -> f64 {
        use RnnActivation::*;
        match self {
            Relu => x.max(0.0),
            Tanh => x.tanh(),
            Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Affine { alpha, beta } => alpha as f64 * x + beta as f64,
            LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            ThresholdedRelu { alpha } => {
                if x > alpha as f64 {
                    x
                } else {
                    0.0
                }
            }
            ScaledTanh { alpha, beta } => alpha as f64 * (beta as f64 * x).tanh(),
            HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
            Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * (x.exp() - 1.0)
                }
            }
            Softsign => x / (1.0 + x.abs()),
            Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }

    /// The ONNX name (as in the `activations` attribute) and its alpha / beta, if any.
    pub fn onnx_name(self) -> (&'static str, Option<f32>, Option<f32>) {
        use RnnActivation::*;
        match self {
            Relu => ("Relu", None, None),
            Tanh => ("Tanh", None, None),
            Sigmoid => ("Sigmoid", None, None),
            Affine { alpha, beta } => ("Affine", Some(alpha), Some(beta)),
            LeakyRelu { alpha } => ("LeakyRelu", Some(alpha), None),
            ThresholdedRelu { alpha } => ("ThresholdedRelu", Some(alpha), None),
            ScaledTanh { alpha, beta } => ("ScaledTanh", Some(alpha), Some(beta)),
            HardSigmoid { alpha, beta } => ("HardSigmoid", Some(alpha), Some(beta)),
            Elu { alpha } => ("Elu", Some(alpha), None),
            Softsign => ("Softsign", None, None),
            Softplus => ("Softplus", None, None),
        }
    }
}

/// Attributes of [`crate::Op::Recurrent`] (ONNX RNN, GRU, LSTM).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RnnAttrs {
    pub cell: RnnCell,
    pub direction: RnnDirection,
    /// The `hidden_size` attribute; `None` takes it from R's last dimension.
    pub hidden_size: Option<usize>,
    /// `num_activations` per direction, forward direction first (always filled in).
    pub activations: Vec<RnnActivation>,
    /// Cell clip threshold (applied to gate pre-activations), if set.
    pub clip: Option<f32>,
    /// `layout = 1`: X, Y, Y_h, Y_c are batch-major (`[batch, seq, ...]`).
    pub batch_major: bool,
}

/// The state update of [`crate::Op::LinearAttention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearAttentionRule {
    /// `S += k ⊗ v`
    Linear,
    /// `S = S·exp(g); S += k ⊗ v`
    Gated,
    /// `v ← β·(v − Sᵀk); S += k ⊗ v`
    Delta,
    /// Gated, then delta.
    GatedDelta,
}

impl LinearAttentionRule {
    pub fn gated(self) -> bool {
        matches!(
            self,
            LinearAttentionRule::Gated | LinearAttentionRule::GatedDelta
        )
    }

    pub fn delta(self) -> bool {
        matches!(
            self,
            LinearAttentionRule::Delta | LinearAttentionRule::GatedDelta
        )
    }

    pub fn onnx_name(self) -> &'static str {
        match self {
            LinearAttentionRule::Linear => "linear",
            LinearAttentionRule::Gated => "gated",
            LinearAttentionRule::Delta => "delta",
            LinearAttentionRule::GatedDelta => "gated_delta",
        }
    }
}

/// What a TfIdfVectorizer writes per n-gram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TfIdfMode {
    /// The count.
    Tf,
    /// The weight if the count is non-zero.
    Idf,
    /// Count times weight.
    TfIdf,
}

/// Attributes of [`crate::Op::TfIdfVectorizer`] (integer pools only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TfIdfAttrs {
    pub mode: TfIdfMode,
    pub min_gram_length: usize,
    pub max_gram_length: usize,
    pub max_skip_count: usize,
    /// Start of the n-grams of each length (1-grams first) in `pool`.
    pub ngram_counts: Vec<usize>,
    /// Output column of each n-gram in the pool (in pool order).
    pub ngram_indexes: Vec<usize>,
    /// Per-n-gram weights (empty means all 1).
    pub weights: Vec<f32>,
    /// The n-grams, concatenated.
    pub pool: Vec<i64>,
}
