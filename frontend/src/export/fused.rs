//! Decomposes the compiler-made fused ops back into standard ONNX ops, so that an
//! optimized model still runs anywhere: `FusedMatMul` → `MatMul`, `Add`, activation, `Add`;
//! `Attention` → head split (`Reshape`, `Transpose`), `MatMul`, `Mul`, `Add`, `Softmax`,
//! `MatMul`, head merge; `AddNorm` → `Add`, `Add`, `LayerNormalization` / `RMSNormalization`.

use super::ops::{attr_f, attr_i, attr_ints, attr_s, attr_t};
use super::Namer;
use crate::proto::{GraphProto, NodeProto};
use whittle_ir::{Activation, DType, GeluApprox, Tensor};

/// Emits nodes into `gp`, naming intermediate values and nodes after the fused node.
pub(super) struct Emitter<'a> {
    gp: &'a mut GraphProto,
    nm: &'a mut Namer,
    name: &'a str,
}

impl<'a> Emitter<'a> {
    pub(super) fn new(gp: &'a mut GraphProto, nm: &'a mut Namer, name: &'a str) -> Self {
        Emitter { gp, nm, name }
    }

    /// One node; `out` is the output value name, or `None` for a fresh one. Returns it.
    pub(super) fn node(
        &mut self,
        ty: &str,
        ins: Vec<String>,
        out: Option<&str>,
        attribute: Vec<crate::proto::AttributeProto>,
    ) -> String {
        let out = match out {
            Some(o) => o.to_string(),
            None => self
                .nm
                .fresh(&format!("{}_{}", self.name, ty.to_lowercase())),
        };
        let name = self.nm.fresh(&format!("{}/{ty}", self.name));
        self.gp.node.push(NodeProto {
            name: Some(name),
            op_type: Some(ty.into()),
            input: ins,
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    pub(super) fn constant(&mut self, t: &Tensor) -> String {
        self.node("Constant", vec![], None, vec![attr_t("value", t)])
    }
}

fn input(ins: &[String], i: usize) -> Option<String> {
    ins.get(i).filter(|s| !s.is_empty()).cloned()
}

/// `FusedMatMul`: `y = activation(MatMul(a, b) + bias) + residual`.
#[allow(clippy::too_many_arguments)]
pub(super) fn expand_fused_matmul(
    gp: &mut GraphProto,
    nm: &mut Namer,
    name: &str,
    activation: Activation,
    dtype: DType,
    ins: &[String],
    out: &str,
    opset: i64,
) {
    let mut e = Emitter { gp, nm, name };
    let (bias, res) = (input(ins, 2), input(ins, 3));
    let a = input(ins, 0).unwrap_or_default();
    let b = input(ins, 1).unwrap_or_default();
    // The last node writes `out`; earlier ones get fresh names.
    let has_act = activation != Activation::Linear;
    let (has_bias, has_res) = (bias.is_some(), res.is_some());
    // Whether stage 0 (MatMul), 1 (bias) or 2 (activation) is the last one emitted.
    let target = |stage: u8| {
        let later = match stage {
            0 => has_bias || has_act || has_res,
            1 => has_act || has_res,
            _ => has_res,
        };
        if later {
            None
        } else {
            Some(out)
        }
    };
    let mut y = e.node("MatMul", vec![a, b], target(0), vec![]);
    if let Some(bias) = bias {
        y = e.node("Add", vec![y, bias], target(1), vec![]);
    }
    y = emit_activation(&mut e, activation, dtype, y, target(2), opset);
    if let Some(res) = res {
        e.node("Add", vec![y, res], Some(out), vec![]);
    }
}

/// `activation(y)` as standard ops, written to `out` (a fresh name when `None`); returns
/// the result's name (`y` itself for `Linear`).
pub(super) fn emit_activation(
    e: &mut Emitter,
    activation: Activation,
    dtype: DType,
    y: String,
    out: Option<&str>,
    opset: i64,
) -> String {
    match activation {
        Activation::Linear => y,
        Activation::Relu => e.node("Relu", vec![y], out, vec![]),
        Activation::Gelu(mode) if opset < super::decompose::GELU => {
            super::decompose::gelu(e, mode, dtype, &y, out)
        }
        Activation::Gelu(mode) => {
            let s = if mode == GeluApprox::Tanh {
                "tanh"
            } else {
                "none"
            };
            e.node("Gelu", vec![y], out, vec![attr_s("approximate", s)])
        }
        Activation::Silu => {
            let s = e.node("Sigmoid", vec![y.clone()], None, vec![]);
            e.node("Mul", vec![y, s], out, vec![])
        }
    }
}

/// `Attention`: split heads, `softmax(scale·QKᵀ + mask)·V`, merge heads.
#[allow(clippy::too_many_arguments)]
pub(super) fn expand_attention(
    gp: &mut GraphProto,
    nm: &mut Namer,
    name: &str,
    num_heads: usize,
    scale: f32,
    dtype: DType,
    ins: &[String],
    out: &str,
) {
    let mut e = Emitter { gp, nm, name };
    let h = num_heads as i64;
    let split_shape = e.constant(&Tensor::from_vec(vec![4], vec![0i64, 0, h, -1]));
    let merge_shape = e.constant(&Tensor::from_vec(vec![3], vec![0i64, 0, -1]));
    let scale_c = e.constant(&Tensor::from_f64(dtype, vec![], &[scale as f64]));
    let split = |e: &mut Emitter, x: Option<String>, perm: [i64; 4]| {
        let r = e.node(
            "Reshape",
            vec![x.unwrap_or_default(), split_shape.clone()],
            None,
            vec![],
        );
        e.node("Transpose", vec![r], None, vec![attr_ints("perm", perm)])
    };
    let q = split(&mut e, input(ins, 0), [0, 2, 1, 3]);
    let k = split(&mut e, input(ins, 1), [0, 2, 3, 1]);
    let v = split(&mut e, input(ins, 2), [0, 2, 1, 3]);
    let s = e.node("MatMul", vec![q, k], None, vec![]);
    let mut s = e.node("Mul", vec![s, scale_c], None, vec![]);
    if let Some(mask) = input(ins, 3) {
        s = e.node("Add", vec![s, mask], None, vec![]);
    }
    let p = e.node("Softmax", vec![s], None, vec![attr_i("axis", -1)]);
    let o = e.node("MatMul", vec![p, v], None, vec![]);
    let t = e.node(
        "Transpose",
        vec![o],
        None,
        vec![attr_ints("perm", [0, 2, 1, 3])],
    );
    e.node("Reshape", vec![t, merge_shape], Some(out), vec![]);
}

/// `AddNorm`: `sum = (x + bias) + residual` (`outs[1]` when the node has that output), then
/// `LayerNormalization` or `RMSNormalization` over the last axis into `outs[0]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn expand_add_norm(
    gp: &mut GraphProto,
    nm: &mut Namer,
    name: &str,
    rms: bool,
    epsilon: f32,
    (rank, dtype): (usize, DType),
    ins: &[String],
    outs: &[String],
    opset: i64,
) {
    let mut e = Emitter { gp, nm, name };
    let x = input(ins, 0).unwrap_or_default();
    let r = input(ins, 1).unwrap_or_default();
    let x = match input(ins, 4) {
        Some(bias) => e.node("Add", vec![x, bias], None, vec![]),
        None => x,
    };
    let sum_out = outs.get(1).filter(|s| !s.is_empty()).map(String::as_str);
    let sum = e.node("Add", vec![x, r], sum_out, vec![]);
    let gamma = input(ins, 2).unwrap_or_default();
    let first = if rms {
        super::decompose::RMS_NORM
    } else {
        super::decompose::LAYER_NORM
    };
    if opset < first {
        let mut norm_ins = vec![sum, gamma];
        norm_ins.extend(input(ins, 3));
        let (axis, d) = (-1, dtype);
        super::decompose::norm(
            &mut e, rms, axis, epsilon, rank, d, &norm_ins, &outs[0], opset,
        );
        return;
    }
    let attrs = vec![attr_i("axis", -1), attr_f("epsilon", epsilon)];
    if rms {
        e.node("RMSNormalization", vec![sum, gamma], Some(&outs[0]), attrs);
    } else {
        let mut norm_ins = vec![sum, gamma];
        norm_ins.extend(input(ins, 3));
        e.node("LayerNormalization", norm_ins, Some(&outs[0]), attrs);
    }
}
