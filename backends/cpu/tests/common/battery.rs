//! The harness shared by the property-test battery (`battery.rs`, `battery_ops2.rs`): a
//! `Case` that builds a one-node graph from random inputs, compiles it on the cpu backend
//! and compares every output with `ir::eval`, plus the random data and shape strategies.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::select;
use rand::rngs::StdRng;
use rand::Rng;
use whittle_cpu::CpuBackend;
use whittle_ir::{DType, Op, Tensor, TensorType, Value};
use whittle_passes::testing::Builder;
use whittle_runtime::Backend;

pub type TR = Result<(), TestCaseError>;

/// The node under test; compile errors must name it.
pub const NODE: &str = "node_under_test";
pub const DIMS: [usize; 9] = [0, 1, 2, 3, 5, 7, 16, 17, 33];
/// Most elements of one generated operand (keeps the debug-build evaluator fast).
pub const CAP: usize = 2048;

#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
}
pub const EXACT: Tol = Tol {
    rtol: 0.0,
    atol: 0.0,
};
pub const F32: Tol = Tol {
    rtol: 1e-5,
    atol: 1e-6,
};
/// Accumulations of `k` terms of magnitude ≤ `mag`: atol grows with √k.
pub fn acc_tol(k: usize, mag: f64) -> Tol {
    Tol {
        rtol: 1e-5,
        atol: 1e-6 * (k.max(1) as f64).sqrt() * mag.max(1.0),
    }
}

/// `cases` per property, or `PROPTEST_CASES` when set (for longer soak runs); failures
/// are not persisted to files.
pub fn cfg(cases: u32) -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES").ok();
    ProptestConfig {
        cases: env.and_then(|v| v.parse().ok()).unwrap_or(cases),
        failure_persistence: None,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    }
}

/// A graph under construction plus the values of its inputs.
pub struct Case {
    pub b: Builder,
    pub ins: Vec<(String, Tensor)>,
}

impl Case {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Case {
        Case {
            b: Builder::new("battery", DType::F32, 1),
            ins: vec![],
        }
    }

    pub fn input(&mut self, name: &str, t: Tensor) -> Value {
        let v = self
            .b
            .g
            .add_input(name, TensorType::fixed(t.dtype(), t.shape()));
        self.ins.push((name.to_string(), t));
        v
    }

    pub fn konst(&mut self, name: &str, t: Tensor) -> Value {
        self.b.g.add_const(name, t)
    }

    pub fn ints(&mut self, name: &str, v: &[i64]) -> Value {
        self.b.ints(name, v)
    }

    /// The node under test with `n_out` outputs.
    pub fn op(&mut self, op: Op, ins: &[Option<Value>], n_out: usize) -> Vec<Value> {
        self.b.node_n(op, NODE, ins, n_out)
    }

    pub fn op1(&mut self, op: Op, ins: &[Value]) -> Value {
        self.b.node(op, NODE, ins)
    }

    /// Compiles and runs on the cpu backend and compares every output with `ir::eval`.
    pub fn check(mut self, outs: &[Value], tol: Tol) -> TR {
        for (i, &v) in outs.iter().enumerate() {
            self.b.g.add_output(v, format!("y{i}"));
        }
        let g = &self.b.g;
        let ins: Vec<(&str, Tensor)> = self
            .ins
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let want = match whittle_ir::eval::run(g, &ins) {
            Ok(w) => w,
            // A run-time error of the reference (integer division by zero, ...) must be the
            // cpu backend's too, with the same message.
            Err(whittle_ir::IrError::Eval { msg, .. }) => {
                let got = CpuBackend::default()
                    .compile(g)
                    .and_then(|exe| exe.run(&ins).map(|_| ()));
                let e = match got {
                    Ok(()) => {
                        return Err(TestCaseError::fail(format!("eval failed ({msg}), cpu ran")))
                    }
                    Err(e) => e.to_string(),
                };
                prop_assert!(
                    e.contains(&msg),
                    "eval failed with '{}', cpu with '{}'",
                    msg,
                    e
                );
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("eval (generator bug?): {e}"))),
        };
        let exe = match CpuBackend::default().compile(g) {
            Ok(exe) => exe,
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    msg.contains(NODE),
                    "compile error not naming the node: {msg}"
                );
                return Err(TestCaseError::fail(format!("refused: {msg}")));
            }
        };
        let got = exe
            .run(&ins)
            .map_err(|e| TestCaseError::fail(format!("run: {e}")))?;
        prop_assert_eq!(got.len(), want.len());
        for ((gn, gt), (_, wt)) in got.iter().zip(&want) {
            prop_assert_eq!(gt.shape(), wt.shape(), "shape of {}", gn);
            prop_assert_eq!(gt.dtype(), wt.dtype(), "dtype of {}", gn);
            let exact = !wt.dtype().is_float();
            for (i, (x, y)) in gt.to_f64_vec().iter().zip(wt.to_f64_vec()).enumerate() {
                let ok = if exact {
                    *x == y
                } else {
                    (x.is_nan() && y.is_nan())
                        || *x == y
                        || (x - y).abs() <= tol.rtol * y.abs() + tol.atol
                };
                prop_assert!(
                    ok,
                    "{}[{}] of shape {:?}: got {}, want {}",
                    gn,
                    i,
                    gt.shape(),
                    x,
                    y
                );
            }
        }
        Ok(())
    }
}

// ---- data ----

pub fn f32s(r: &mut StdRng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    super::rand_tensor(r, shape, lo, hi)
}

/// Multiples of 0.5 in [-4, 4] mixed with uniform values: ties, exact halves and zeros.
pub fn halves(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            if r.random_bool(0.5) {
                r.random_range(-8i32..=8) as f32 * 0.5
            } else {
                r.random_range(-4.0f32..4.0)
            }
        })
        .collect();
    Tensor::from_vec(shape.to_vec(), v)
}

pub fn ints(r: &mut StdRng, dt: DType, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<i64> = (0..n).map(|_| r.random_range(lo..=hi)).collect();
    Tensor::from_i64(dt, shape.to_vec(), &v)
}

pub fn bools(r: &mut StdRng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<bool> = (0..n).map(|_| r.random_bool(0.5)).collect();
    Tensor::from_vec(shape.to_vec(), v)
}

/// Random data of any dtype the battery uses.
pub fn data(r: &mut StdRng, dt: DType, shape: &[usize]) -> Tensor {
    match dt {
        DType::Bool => bools(r, shape),
        DType::F32 => halves(r, shape),
        _ => ints(r, dt, shape, -9, 9),
    }
}

// ---- shapes ----

/// Shrinks the largest dims to 2 until at most `cap` elements remain.
pub fn capped(mut s: Vec<usize>, cap: usize) -> Vec<usize> {
    while s.iter().product::<usize>() > cap {
        let i = (0..s.len()).max_by_key(|&i| s[i]).unwrap_or(0);
        s[i] = 2;
    }
    s
}

pub fn shape(lo: usize, hi: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(select(DIMS.to_vec()), lo..=hi).prop_map(|s| capped(s, CAP))
}

/// An operand that broadcasts to `out`: `drop` leading dims removed, dims with `keep[i]`
/// false set to 1.
pub fn bcast_of(out: &[usize], keep: &[bool], drop: usize) -> Vec<usize> {
    let drop = drop.min(out.len());
    out[drop..]
        .iter()
        .enumerate()
        .map(|(i, &d)| if keep[i] { d } else { 1 })
        .collect()
}

/// `n` operand shapes broadcasting (numpy) to a common shape.
pub fn bshapes(n: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    let operand = (
        prop::collection::vec(prop::bool::weighted(0.7), 4),
        prop::sample::select(vec![0usize, 0, 0, 1, 2, 4]),
    );
    (shape(0, 4), prop::collection::vec(operand, n)).prop_map(|(out, ops)| {
        ops.iter()
            .map(|(keep, drop)| bcast_of(&out, keep, *drop))
            .collect()
    })
}

/// A shape and an axis of it in `[-r, r-1]` (rank ≥ 1).
pub fn shape_axis(lo: usize, hi: usize) -> impl Strategy<Value = (Vec<usize>, i64)> {
    shape(lo.max(1), hi).prop_flat_map(|s| {
        let r = s.len() as i64;
        (Just(s), -r..r)
    })
}

pub fn pos(axis: i64, r: usize) -> usize {
    if axis < 0 {
        (axis + r as i64) as usize
    } else {
        axis as usize
    }
}
