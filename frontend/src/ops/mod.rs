//! Op builders: each turns one ONNX node (attributes + inputs) into an IR `Op` plus the
//! inputs it reads. `NodeCtx` reads attributes with the ONNX defaults and typed errors;
//! the registry (`crate::registry`) decides which builder handles which (op, opset).

pub(crate) mod act;
pub(crate) mod attention;
pub(crate) mod contrib;
pub(crate) mod elementwise;
pub(crate) mod index_norm;
pub(crate) mod linalg;
pub(crate) mod movement;
pub(crate) mod norm;
pub(crate) mod quant;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod seq;
pub(crate) mod signal_vision;

use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use crate::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::FrontendError;
use std::path::Path;
use whittle_ir::{AutoPad, DType, Op, Tensor, Window};

/// One input port of the lowered IR node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum In {
    /// ONNX input `i` of the node (absent if missing or named "").
    Onnx(usize),
    /// A constant the frontend makes (an attribute that became an input).
    Const(Tensor),
    /// An absent optional port.
    Absent,
}

/// What a builder produces: the op and its input ports. Outputs are the ONNX node's.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Lowered {
    pub op: Op,
    pub inputs: Vec<In>,
}

/// Everything a builder may look at.
pub(crate) struct NodeCtx<'a> {
    pub node: &'a NodeProto,
    /// The model's opset for the node's domain.
    pub opset: i64,
    pub base_dir: Option<&'a Path>,
    /// The dtype of each ONNX input, where the loader knows it.
    pub input_dtypes: Vec<Option<DType>>,
}

pub(crate) type BuildResult = Result<Lowered, FrontendError>;

impl<'a> NodeCtx<'a> {
    pub fn name(&self) -> &str {
        self.node.name()
    }

    pub fn op_type(&self) -> &str {
        self.node.op_type()
    }

    /// A lowering that reads the node's ONNX inputs unchanged.
    pub fn same_inputs(&self, op: Op) -> BuildResult {
        Ok(Lowered {
            op,
            inputs: (0..self.node.input.len()).map(In::Onnx).collect(),
        })
    }

    pub fn input_dtype(&self, i: usize) -> Option<DType> {
        self.input_dtypes.get(i).copied().flatten()
    }

    /// Number of outputs, not counting trailing optional outputs left unnamed.
    pub fn num_outputs(&self) -> usize {
        let outs = &self.node.output;
        outs.iter()
            .rposition(|s| !s.is_empty())
            .map_or(0, |p| p + 1)
    }

    pub fn bad_attr(&self, attribute: &str, why: impl Into<String>) -> FrontendError {
        FrontendError::BadAttribute {
            node: self.name().to_string(),
            attribute: attribute.to_string(),
            why: why.into(),
        }
    }

    pub fn bad_node(&self, why: impl Into<String>) -> FrontendError {
        FrontendError::BadNode {
            node: self.name().to_string(),
            op_type: self.op_type().to_string(),
            why: why.into(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    /// Checks the attribute's declared type (old models may leave it unset).
    fn typed_attr(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, FrontendError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => {
                let t = a.r#type();
                if t != AttributeType::Undefined && t != want {
                    return Err(self.bad_attr(
                        name,
                        format!("expected {}, found {}", want.as_str_name(), t.as_str_name()),
                    ));
                }
                Ok(Some(a))
            }
        }
    }

    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, FrontendError> {
        Ok(self
            .typed_attr(name, AttributeType::Int)?
            .map(|a| a.i.unwrap_or(0)))
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, FrontendError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, FrontendError> {
        match self.int_opt(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.bad_attr(name, format!("must be 0 or 1, found {v}"))),
        }
    }

    pub fn float_opt(&self, name: &str) -> Result<Option<f32>, FrontendError> {
        Ok(self
            .typed_attr(name, AttributeType::Float)?
            .map(|a| a.f.unwrap_or(0.0)))
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32, FrontendError> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }

    pub fn string_opt(&self, name: &str) -> Result<Option<String>, FrontendError> {
        match self.typed_attr(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => {
                let bytes = a.s.as_deref().unwrap_or_default();
                let s = std::str::from_utf8(bytes).map_err(|_| self.bad_attr(name, "not UTF-8"))?;
                Ok(Some(s.to_string()))
            }
        }
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String, FrontendError> {
        Ok(self
            .string_opt(name)?
            .unwrap_or_else(|| default.to_string()))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, FrontendError> {
        Ok(self
            .typed_attr(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, FrontendError> {
        Ok(self
            .typed_attr(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, FrontendError> {
        match self.typed_attr(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(a) => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.bad_attr(name, "no tensor value"))?;
                tensor_from_proto(t, self.base_dir).map(Some)
            }
        }
    }

    /// Ints that must be non-negative (sizes, strides, pads).
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>, FrontendError> {
        let v = self.ints(name)?.unwrap_or_default();
        v.iter()
            .map(|&x| {
                usize::try_from(x).map_err(|_| self.bad_attr(name, format!("negative value {x}")))
            })
            .collect()
    }

    pub fn usize_attr(&self, name: &str, default: usize) -> Result<usize, FrontendError> {
        let v = self.int(name, default as i64)?;
        usize::try_from(v).map_err(|_| self.bad_attr(name, format!("negative value {v}")))
    }

    /// A dtype attribute (`Cast.to`, `output_dtype`).
    pub fn dtype_attr(&self, name: &str) -> Result<Option<DType>, FrontendError> {
        match self.int_opt(name)? {
            None => Ok(None),
            Some(code) => {
                let what = format!("node '{}' attribute '{name}'", self.name());
                let code = i32::try_from(code)
                    .map_err(|_| self.bad_attr(name, format!("bad dtype code {code}")))?;
                dtype_from_onnx(code, &what).map(Some)
            }
        }
    }

    /// Conv/pool window attributes.
    pub fn window(&self) -> Result<Window, FrontendError> {
        let auto_pad = match self.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(self.bad_attr("auto_pad", format!("unknown value '{other}'"))),
        };
        let w = Window {
            auto_pad,
            kernel_shape: self.usizes("kernel_shape")?,
            strides: self.usizes("strides")?,
            dilations: self.usizes("dilations")?,
            pads: self.usizes("pads")?,
        };
        if w.strides.contains(&0) {
            return Err(self.bad_attr("strides", "zero stride"));
        }
        if w.dilations.contains(&0) {
            return Err(self.bad_attr("dilations", "zero dilation"));
        }
        if !w.pads.len().is_multiple_of(2) {
            return Err(self.bad_attr("pads", "odd number of values"));
        }
        Ok(w)
    }
}

/// A 1-D i64 constant input.
pub(crate) fn i64s(v: &[i64]) -> In {
    In::Const(Tensor::from_vec(vec![v.len()], v.to_vec()))
}

/// A scalar constant of `dtype` (defaults to f32 when unknown).
pub(crate) fn scalar_of(dtype: Option<DType>, v: f64) -> In {
    In::Const(Tensor::from_f64(dtype.unwrap_or(DType::F32), vec![], &[v]))
}
