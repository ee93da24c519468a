//! Compound ops written as opset-13 primitives when the export targets an opset that lacks
//! them (`ExportOptions::opset`): LayerNormalization (17), RMSNormalization (23), Gelu (20)
//! and HardSwish (14). The decompositions are the patterns `canonicalize` recognises, so a
//! re-import folds them back: LayerNorm `ReduceMean → Sub → Mul → ReduceMean → Add → Sqrt →
//! Div → Mul → Add`, RMSNorm `Mul → ReduceMean → Add → Sqrt → Div → Mul`, erf-GELU
//! `(0.5·x)·(1 + erf(x/√2))`, tanh-GELU `(0.5·x)·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
//! HardSwish `x·HardSigmoid(x; 1/6, 1/2)`. ReduceMean takes its axes as an attribute below
//! opset 18 and as an input from 18.

use super::fused::Emitter;
use super::ops::{attr_f, attr_i, attr_ints};
use whittle_ir::{DType, GeluApprox, Tensor};

/// The first opset that has each compound op.
pub(super) const LAYER_NORM: i64 = 17;
pub(super) const RMS_NORM: i64 = 23;
pub(super) const GELU: i64 = 20;
pub(super) const HARD_SWISH: i64 = 14;

/// A scalar constant of `dtype`.
fn scalar(e: &mut Emitter, dtype: DType, v: f64) -> String {
    e.constant(&Tensor::from_f64(dtype, vec![], &[v]))
}

/// `ReduceMean(x)` over `axes`, keepdims, in the form of `opset`.
fn reduce_mean(e: &mut Emitter, x: String, axes: &[i64], opset: i64) -> String {
    if opset >= 18 {
        let a = e.constant(&Tensor::from_vec(vec![axes.len()], axes.to_vec()));
        e.node("ReduceMean", vec![x, a], None, vec![attr_i("keepdims", 1)])
    } else {
        let attrs = vec![
            attr_ints("axes", axes.iter().copied()),
            attr_i("keepdims", 1),
        ];
        e.node("ReduceMean", vec![x], None, attrs)
    }
}

/// LayerNorm (`rms` false: centred, with an optional bias) or RMSNorm over the axes
/// `axis..rank` of `x`, writing `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn norm(
    e: &mut Emitter,
    rms: bool,
    axis: i64,
    epsilon: f32,
    rank: usize,
    dtype: DType,
    ins: &[String],
    out: &str,
    opset: i64,
) {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    let axes: Vec<i64> = (a.max(0)..rank as i64).collect();
    let x = ins[0].clone();
    let centred = if rms {
        x.clone()
    } else {
        let mean = reduce_mean(e, x.clone(), &axes, opset);
        e.node("Sub", vec![x, mean], None, vec![])
    };
    let sq = e.node("Mul", vec![centred.clone(), centred.clone()], None, vec![]);
    let var = reduce_mean(e, sq, &axes, opset);
    let eps = scalar(e, dtype, epsilon as f64);
    let ve = e.node("Add", vec![var, eps], None, vec![]);
    let sd = e.node("Sqrt", vec![ve], None, vec![]);
    let n = e.node("Div", vec![centred, sd], None, vec![]);
    let bias = ins.get(2).filter(|s| !s.is_empty() && !rms).cloned();
    let scaled_out = if bias.is_some() { None } else { Some(out) };
    let y = e.node("Mul", vec![n, ins[1].clone()], scaled_out, vec![]);
    if let Some(b) = bias {
        e.node("Add", vec![y, b], Some(out), vec![]);
    }
}

/// GELU of `x` into `out` (a fresh value when `None`); returns the output name.
pub(super) fn gelu(
    e: &mut Emitter,
    approx: GeluApprox,
    dtype: DType,
    x: &str,
    out: Option<&str>,
) -> String {
    let x = x.to_string();
    let half = scalar(e, dtype, 0.5);
    let hx = e.node("Mul", vec![x.clone(), half], None, vec![]);
    let inner = match approx {
        GeluApprox::None => {
            let r2 = scalar(e, dtype, std::f64::consts::SQRT_2);
            let z = e.node("Div", vec![x, r2], None, vec![]);
            e.node("Erf", vec![z], None, vec![])
        }
        GeluApprox::Tanh => {
            let c = scalar(e, dtype, 0.044715);
            let k = scalar(e, dtype, (2.0 / std::f64::consts::PI).sqrt());
            let x2 = e.node("Mul", vec![x.clone(), x.clone()], None, vec![]);
            let x3 = e.node("Mul", vec![x2, x.clone()], None, vec![]);
            let cx3 = e.node("Mul", vec![x3, c], None, vec![]);
            let s = e.node("Add", vec![x, cx3], None, vec![]);
            let ks = e.node("Mul", vec![s, k], None, vec![]);
            e.node("Tanh", vec![ks], None, vec![])
        }
    };
    let one = scalar(e, dtype, 1.0);
    let p = e.node("Add", vec![one, inner], None, vec![]);
    e.node("Mul", vec![hx, p], out, vec![])
}

/// HardSwish of `x` into `out`.
pub(super) fn hard_swish(e: &mut Emitter, x: &str, out: &str) {
    let attrs = vec![attr_f("alpha", 1.0 / 6.0), attr_f("beta", 0.5)];
    let hs = e.node("HardSigmoid", vec![x.to_string()], None, attrs);
    e.node("Mul", vec![x.to_string(), hs], Some(out), vec![]);
}
