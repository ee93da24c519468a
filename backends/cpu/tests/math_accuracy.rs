//! The inline polynomial exp, tanh, sigmoid and erf (through the generated code, both the
//! f32x4 and scalar paths) against f64 on a dense sweep: max relative error ≤ 2e-7.

mod common;
use common::*;
use whittle_cpu::CpuBackend;
use whittle_ir::{DType, Graph, Op, Tensor, TensorType, UnaryOp};
use whittle_runtime::Backend;

fn sweep(op: UnaryOp, lo: f32, hi: f32, n: usize) -> f64 {
    // n + 3 elements so both the vector loop and the scalar tail run.
    let len = n + 3;
    let xs: Vec<f32> = (0..len)
        .map(|i| lo + (hi - lo) * (i as f32 / (len - 1) as f32))
        .collect();
    let mut g = Graph::new("m");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[len]));
    let y = node(&mut g, Op::Unary(op), "y", &[Some(x)], &[len]);
    g.add_output(y, "y");
    let got = CpuBackend::default()
        .compile(&g)
        .unwrap()
        .run(&[("x", Tensor::from_vec(vec![len], xs.clone()))])
        .unwrap();
    // The reference in f64: the same graph on f64 inputs.
    let mut g64 = Graph::new("m64");
    let x = g64.add_input("x", TensorType::fixed(DType::F64, &[len]));
    let id = g64.add_node(
        Op::Unary(op),
        "y",
        &[Some(x)],
        vec![whittle_ir::ValueInfo {
            name: "y".into(),
            ty: TensorType::fixed(DType::F64, &[len]),
        }],
    );
    g64.add_output(whittle_ir::Value::new(id, 0), "y");
    let x64 = Tensor::from_vec(
        vec![len],
        xs.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
    );
    let want = whittle_ir::eval::run(&g64, &[("x", x64)]).unwrap();
    let (gv, wv) = (got[0].1.to_f64_vec(), want[0].1.to_f64_vec());
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
        if *b == 0.0 {
            assert_eq!(*a, 0.0, "{op:?}({})", xs[i]);
            continue;
        }
        let e = ((a - b) / b).abs();
        assert!(!e.is_nan(), "{op:?}({}) = {a}, want {b}", xs[i]);
        worst = worst.max(e);
    }
    worst
}

#[test]
fn polynomial_functions_are_accurate_to_2e_7() {
    for (op, lo, hi) in [
        (UnaryOp::Exp, -87.0, 88.0),
        (UnaryOp::Exp, -1.0, 1.0),
        (UnaryOp::Tanh, -10.0, 10.0),
        (UnaryOp::Tanh, -1.0, 1.0),
        (UnaryOp::Sigmoid, -87.0, 80.0),
        (UnaryOp::Erf, -5.0, 5.0),
        (UnaryOp::Erf, -1.0, 1.0),
    ] {
        let e = sweep(op, lo, hi, 400_000);
        assert!(e <= 2e-7, "{op:?} on [{lo}, {hi}]: max rel error {e:.3e}");
    }
}
