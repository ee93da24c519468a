//! Seeded random-model generators for pass tests and benchmarks: Pre-LN transformers (GPT
//! style, with tied/untied heads, parallel blocks, layer scale, ...), Post-LN (BERT style)
//! encoders and a small ViT, all as IR graphs in f32 or f64, plus the helpers that run and
//! compare them (`random_inputs`, `run_outputs`, `rel_l2`).
//!
//! The models are tiny (widths of a few dozen) so that `ir::eval` runs them in milliseconds.

mod transformer;
mod vit;

pub use transformer::{gpt, GptConfig, HeadKind, LnForm, NormPlacement};
pub use vit::{vit, VitConfig};

use whittle_ir::infer::infer_node;
use whittle_ir::{DType, Graph, IrError, NodeId, Op, Tensor, TensorType, Value, ValueInfo};

/// A small deterministic generator (SplitMix64) with uniform and normal draws.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

/// Builds a graph node by node, inferring each output type from its inputs.
pub struct Builder {
    pub g: Graph,
    pub rng: Rng,
    pub dtype: DType,
}

impl Builder {
    pub fn new(name: &str, dtype: DType, seed: u64) -> Builder {
        Builder {
            g: Graph::new(name),
            rng: Rng::new(seed),
            dtype,
        }
    }

    /// Adds a node with `n_out` outputs named `name`, `name.1`, ...; types are inferred.
    pub fn node_n(
        &mut self,
        op: Op,
        name: &str,
        ins: &[Option<Value>],
        n_out: usize,
    ) -> Vec<Value> {
        let tys: Vec<Option<TensorType>> = ins
            .iter()
            .map(|v| v.map(|v| self.g.value_type(v).clone()))
            .collect();
        let ty_refs: Vec<Option<&TensorType>> = tys.iter().map(|t| t.as_ref()).collect();
        let consts: Vec<Option<&Tensor>> = ins
            .iter()
            .map(|v| v.and_then(|v| self.g.const_tensor(v)))
            .collect();
        let out_tys = infer_node(&op, &ty_refs, &consts, n_out)
            .unwrap_or_else(|e| panic!("generator built an ill-typed node '{name}': {e}"));
        let outputs = out_tys
            .into_iter()
            .enumerate()
            .map(|(i, ty)| ValueInfo {
                name: if i == 0 {
                    name.to_string()
                } else {
                    format!("{name}.{i}")
                },
                ty,
            })
            .collect();
        let id: NodeId = self.g.add_node(op, name, ins, outputs);
        (0..n_out).map(|p| Value::new(id, p)).collect()
    }

    /// Adds a one-output node whose inputs are all present.
    pub fn node(&mut self, op: Op, name: &str, ins: &[Value]) -> Value {
        let ins: Vec<Option<Value>> = ins.iter().map(|v| Some(*v)).collect();
        self.node_n(op, name, &ins, 1)[0]
    }

    /// A float constant of the builder's dtype.
    pub fn konst(&mut self, name: &str, shape: &[usize], v: &[f64]) -> Value {
        self.g
            .add_const(name, Tensor::from_f64(self.dtype, shape.to_vec(), v))
    }

    /// An i64 constant (shapes, axes, indices).
    pub fn ints(&mut self, name: &str, v: &[i64]) -> Value {
        self.g
            .add_const(name, Tensor::from_vec(vec![v.len()], v.to_vec()))
    }

    /// A constant with entries `mean + std·N(0,1)`.
    pub fn randn(&mut self, name: &str, shape: &[usize], mean: f64, std: f64) -> Value {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| mean + std * self.rng.normal()).collect();
        self.konst(name, shape, &v)
    }

    /// A constant with entries uniform in [lo, hi).
    pub fn uniform(&mut self, name: &str, shape: &[usize], lo: f64, hi: f64) -> Value {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| lo + (hi - lo) * self.rng.uniform())
            .collect();
        self.konst(name, shape, &v)
    }
}

/// Random inputs for every graph input: integer inputs (token ids) uniform in
/// `[0, int_range)`, float inputs standard normal. Every dimension must be known.
pub fn random_inputs(g: &Graph, int_range: usize, seed: u64) -> Vec<(String, Tensor)> {
    let mut rng = Rng::new(seed);
    (0..g.inputs().len())
        .map(|i| {
            let ty = g.input_type(i);
            let shape = ty.concrete_shape().unwrap_or_default();
            let n: usize = shape.iter().product();
            let t = if ty.dtype.is_float() {
                let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                Tensor::from_f64(ty.dtype, shape, &v)
            } else {
                let v: Vec<i64> = (0..n).map(|_| rng.below(int_range) as i64).collect();
                Tensor::from_i64(ty.dtype, shape, &v)
            };
            (g.input_name(i).to_string(), t)
        })
        .collect()
}

/// Runs `g` with the reference evaluator on named inputs; returns every output as f64.
pub fn run_outputs(g: &Graph, inputs: &[(String, Tensor)]) -> Result<Vec<Vec<f64>>, IrError> {
    let ins: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    Ok(whittle_ir::eval::run(g, &ins)?
        .into_iter()
        .map(|(_, t)| t.to_f64_vec())
        .collect())
}

/// Relative L2 error `‖got − want‖ / ‖want‖` (absolute when `want` is zero).
pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let den: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_roughly_normal() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let xs: Vec<f64> = (0..4000).map(|_| a.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.1, "{mean}");
        assert!((var - 1.0).abs() < 0.1, "{var}");
    }

    #[test]
    fn rel_l2_hand_checked() {
        // ‖(0,1)‖ / ‖(3,4)‖ = 1/5.
        assert!((rel_l2(&[3.0, 5.0], &[3.0, 4.0]) - 0.2).abs() < 1e-15);
        assert_eq!(rel_l2(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }

    #[test]
    fn generated_models_run() {
        for dtype in [DType::F32, DType::F64] {
            let cfg = GptConfig {
                dtype,
                ..GptConfig::default()
            };
            let g = gpt(&cfg);
            g.verify().unwrap();
            let ins = random_inputs(&g, cfg.vocab, 1);
            let out = run_outputs(&g, &ins).unwrap();
            assert_eq!(out[0].len(), cfg.seq * cfg.vocab);
            assert!(out[0].iter().all(|x| x.is_finite()));
        }
        let v = vit(&VitConfig::default());
        v.verify().unwrap();
        let out = run_outputs(&v, &random_inputs(&v, 1, 2)).unwrap();
        assert_eq!(out[0].len(), VitConfig::default().classes);
    }
}
