//! Attribute types of the signal, vision and conv-variant ops (`Op::GridSample`,
//! `Op::RoiAlign`, `Op::SignalWindow`, ...).

use serde::{Deserialize, Serialize};

/// How GridSample reads outside the input (ONNX `padding_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GridPadding {
    /// Zero outside.
    Zeros,
    /// The nearest border value.
    Border,
    /// Reflected at the borders.
    Reflection,
}

/// RoiAlign's pooling of the samples in a bin (ONNX `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoiMode {
    Avg,
    Max,
}

/// The window function of `Op::SignalWindow` (HannWindow, HammingWindow, BlackmanWindow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}
