//! Helpers shared by the pass integration tests: seeded random inputs, a relative error,
//! running a pass list, and comparing a graph before and after under `ir::eval`.
#![allow(dead_code)]

use whittle_ir::eval::run;
use whittle_ir::{Graph, Tensor};
use whittle_passes::{PassContext, Pipeline};

/// Deterministic uniform values in [-2, 2).
pub fn random(n: usize, seed: &mut u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

/// Random values for every graph input (symbolic dims become 3). An input named `m` gets
/// non-negative values (the filetests use it for variances).
pub fn inputs(g: &Graph, seed: &mut u64) -> Vec<(String, Tensor)> {
    (0..g.inputs().len())
        .map(|i| {
            let ty = g.input_type(i);
            let shape: Vec<usize> = ty
                .shape
                .as_ref()
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap_or(3))
                .collect();
            let mut v = random(shape.iter().product(), seed);
            if g.input_name(i) == "m" {
                v.iter_mut().for_each(|x| *x = x.abs());
            }
            (
                g.input_name(i).to_string(),
                Tensor::from_f64(ty.dtype, shape, &v),
            )
        })
        .collect()
}

/// Largest |a − b| over the largest |a|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    let scale = a.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// `g` after the comma-separated `passes`, verified after every change.
pub fn apply(g: &Graph, passes: &str) -> Graph {
    let mut h = g.clone();
    Pipeline::parse(passes)
        .unwrap()
        .run(
            &mut h,
            &mut PassContext {
                verify: true,
                ..Default::default()
            },
        )
        .unwrap();
    h
}

/// Largest relative output error between `g` and `h` over `rounds` random inputs.
pub fn max_err(g: &Graph, h: &Graph, mut seed: u64, rounds: usize) -> f64 {
    let mut worst = 0.0f64;
    for _ in 0..rounds {
        let ins = inputs(g, &mut seed);
        let refs: Vec<(&str, Tensor)> = ins.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let want = run(g, &refs).unwrap();
        let got = run(h, &refs).unwrap();
        for ((_, w), (_, o)) in want.iter().zip(&got) {
            worst = worst.max(rel_err(w, o));
        }
    }
    worst
}
