//! Shared test helpers: small graph builders, seeded random tensors, and comparison of the
//! cpu backend against the reference evaluator.

#![allow(dead_code)]

pub mod battery;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use whittle_cpu::CpuBackend;
use whittle_ir::{DType, Graph, Op, Tensor, TensorType, Value, ValueInfo};
use whittle_runtime::Backend;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn rand_tensor(r: &mut StdRng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(lo..hi)).collect();
    Tensor::from_vec(shape.to_vec(), v)
}

pub fn f32_info(name: &str, shape: &[usize]) -> Vec<ValueInfo> {
    vec![ValueInfo {
        name: name.into(),
        ty: TensorType::fixed(DType::F32, shape),
    }]
}

/// Adds a node with one f32 output of `shape`.
pub fn node(g: &mut Graph, op: Op, name: &str, ins: &[Option<Value>], shape: &[usize]) -> Value {
    let id = g.add_node(op, name, ins, f32_info(name, shape));
    Value::new(id, 0)
}

/// numpy broadcast of two shapes.
pub fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            if x == 1 {
                y
            } else {
                x
            }
        })
        .collect()
}

/// Runs `g` on the cpu backend and the reference evaluator; asserts every output element
/// satisfies `|got - want| ≤ rtol·|want| + atol` (NaN must match NaN).
pub fn check(g: &Graph, inputs: &[(&str, Tensor)], rtol: f64, atol: f64) {
    let exe = CpuBackend::default()
        .compile(g)
        .unwrap_or_else(|e| panic!("compile: {e}"));
    let got = exe.run(inputs).unwrap_or_else(|e| panic!("run: {e}"));
    let want = whittle_ir::eval::run(g, inputs).unwrap_or_else(|e| panic!("eval: {e}"));
    assert_eq!(got.len(), want.len());
    for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_eq!(gt.shape(), wt.shape(), "output {gn}");
        assert_eq!(gt.dtype(), wt.dtype(), "output {gn}");
        for (i, (x, y)) in gt.to_f64_vec().iter().zip(wt.to_f64_vec()).enumerate() {
            let ok =
                (x.is_nan() && y.is_nan()) || x == &y || (x - y).abs() <= rtol * y.abs() + atol;
            assert!(
                ok,
                "output {gn}[{i}] of shape {:?}: got {x}, want {y}",
                gt.shape()
            );
        }
    }
}

/// Relative L2 error between the backend and the reference.
pub fn rel_l2(g: &Graph, inputs: &[(&str, Tensor)]) -> f64 {
    rel_l2_on(&CpuBackend::default(), g, inputs)
}

/// [`rel_l2`] on a pool of `threads` workers (the GEMM and attention splits differ by count).
#[allow(dead_code)]
pub fn rel_l2_threads(threads: usize, g: &Graph, inputs: &[(&str, Tensor)]) -> f64 {
    rel_l2_on(&CpuBackend::with_threads(threads), g, inputs)
}

fn rel_l2_on(be: &CpuBackend, g: &Graph, inputs: &[(&str, Tensor)]) -> f64 {
    let exe = be.compile(g).unwrap_or_else(|e| panic!("compile: {e}"));
    let got = exe.run(inputs).unwrap_or_else(|e| panic!("run: {e}"));
    let want = whittle_ir::eval::run(g, inputs).unwrap_or_else(|e| panic!("eval: {e}"));
    let (gt, wt) = (&got[0].1, &want[0].1);
    assert_eq!(gt.shape(), wt.shape());
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in gt.to_f64_vec().iter().zip(wt.to_f64_vec()) {
        num += (x - y) * (x - y);
        den += y * y;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}
