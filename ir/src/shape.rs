//! Dimensions, shapes and tensor types (`Dim`, `TensorType`) as they appear on graph values.

use crate::DType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One dimension of a value's shape: a known size, or a symbol (`batch`, `seq`, or a
/// name made up by shape inference for a size it cannot know before run time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    Known(usize),
    Sym(String),
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// The static type of a graph value: element type plus shape. `shape == None` means the
/// rank itself is unknown (rare: only when a shape tensor of unknown length feeds `Reshape`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Option<Vec<Dim>>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> TensorType {
        TensorType {
            dtype,
            shape: Some(shape),
        }
    }

    /// A type with all dimensions known.
    pub fn fixed(dtype: DType, shape: &[usize]) -> TensorType {
        TensorType::new(dtype, shape.iter().map(|&n| Dim::Known(n)).collect())
    }

    pub fn unknown_rank(dtype: DType) -> TensorType {
        TensorType { dtype, shape: None }
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.len())
    }

    /// Whether a concrete tensor agrees with this type: same dtype, and same rank and sizes
    /// wherever a dimension is known.
    pub fn admits(&self, t: &crate::Tensor) -> bool {
        self.dtype == t.dtype()
            && self.shape.as_ref().is_none_or(|dims| {
                dims.len() == t.rank()
                    && dims
                        .iter()
                        .zip(t.shape())
                        .all(|(d, &n)| d.known().is_none_or(|k| k == n))
            })
    }

    /// The concrete shape, if every dimension is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape.as_ref()?.iter().map(Dim::known).collect()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype)?;
        match &self.shape {
            None => f.write_str("[*]"),
            Some(dims) => {
                f.write_str("[")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
        }
    }
}
