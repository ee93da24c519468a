//! Host-kernel ops on the cpu backend against `ir::eval` (rel tol 1e-5) on random shapes,
//! odd sizes included: Gather, Cast, LayerNormalization, Softmax, Transpose, Slice, Concat,
//! Expand, Reduce{Sum,Mean}, the view ops, and compile-time folding of constant subgraphs.

mod common;

use common::*;
use whittle_ir::{DType, Op, ReduceOp, Tensor, TensorType, Value};
use whittle_passes::testing::Builder;

fn builder(name: &str) -> Builder {
    Builder::new(name, DType::F32, 7)
}

fn input(b: &mut Builder, name: &str, dtype: DType, shape: &[usize]) -> Value {
    b.g.add_input(name, TensorType::fixed(dtype, shape))
}

fn run_check(b: Builder, y: Value, inputs: &[(&str, Tensor)]) {
    let mut g = b.g;
    g.add_output(y, "y");
    check(&g, inputs, 1e-5, 1e-6);
}

#[test]
fn gather_rows_any_axis_with_negative_indices() {
    let mut r = rng(1);
    // Embedding lookup: [50, 7] table, i64 ids [3, 5] including negatives.
    let mut b = builder("gather0");
    let ids = input(&mut b, "ids", DType::I64, &[3, 5]);
    let table = b.randn("table", &[50, 7], 0.0, 1.0);
    let y = b.node(Op::Gather { axis: 0 }, "g", &[table, ids]);
    let idv: Vec<i64> = (0..15).map(|i| (i * 13 % 100) as i64 - 50).collect();
    run_check(b, y, &[("ids", Tensor::from_vec(vec![3, 5], idv))]);
    // Axis 1 of a runtime tensor with i32 indices.
    let mut b = builder("gather1");
    let x = input(&mut b, "x", DType::F32, &[4, 9, 3]);
    let idx =
        b.g.add_const("idx", Tensor::from_vec(vec![2], vec![8i32, -9]));
    let y = b.node(Op::Gather { axis: 1 }, "g", &[x, idx]);
    run_check(b, y, &[("x", rand_tensor(&mut r, &[4, 9, 3], -1.0, 1.0))]);
}

#[test]
fn gather_out_of_range_is_a_run_time_error() {
    let mut b = builder("gather_oob");
    let ids = input(&mut b, "ids", DType::I64, &[2]);
    let table = b.randn("table", &[4, 3], 0.0, 1.0);
    let y = b.node(Op::Gather { axis: 0 }, "g", &[table, ids]);
    b.g.add_output(y, "y");
    let exe = whittle_runtime::Backend::compile(&whittle_cpu::CpuBackend::default(), &b.g).unwrap();
    assert!(exe
        .run(&[("ids", Tensor::from_vec(vec![2], vec![0i64, 4]))])
        .is_err());
}

#[test]
fn cast_between_masks_and_floats() {
    let mut b = builder("cast");
    let m = input(&mut b, "m", DType::I64, &[2, 7]);
    let f = b.node(Op::Cast { to: DType::F32 }, "c", &[m]);
    let one = b.konst("one", &[], &[1.0]);
    let s = b.node(Op::Binary(whittle_ir::BinaryOp::Sub), "s", &[one, f]);
    let big = b.konst("big", &[], &[-3.4e38]);
    let y = b.node(Op::Binary(whittle_ir::BinaryOp::Mul), "mask", &[s, big]);
    let mv: Vec<i64> = (0..14).map(|i| (i % 3 == 0) as i64).collect();
    run_check(b, y, &[("m", Tensor::from_vec(vec![2, 7], mv))]);
    // bool → f32 and f32 → i64 (truncation).
    let mut b = builder("cast2");
    let x = input(&mut b, "x", DType::Bool, &[5]);
    let y = b.node(Op::Cast { to: DType::F32 }, "c", &[x]);
    run_check(
        b,
        y,
        &[(
            "x",
            Tensor::from_vec(vec![5], vec![true, false, true, true, false]),
        )],
    );
    let mut b = builder("cast3");
    let x = input(&mut b, "x", DType::F32, &[6]);
    let y = b.node(Op::Cast { to: DType::I64 }, "c", &[x]);
    let xv = vec![-2.7f32, -0.5, 0.0, 0.9, 3.5, 1e6];
    run_check(b, y, &[("x", Tensor::from_vec(vec![6], xv))]);
}

#[test]
fn layer_norm_last_axis_and_trailing_axes() {
    let mut r = rng(2);
    for (shape, axis, beta) in [
        (vec![5usize, 37], -1i64, true),
        (vec![3, 4, 5], 1, false),
        (vec![2, 128, 384], -1, true),
    ] {
        let mut b = builder("ln");
        let x = input(&mut b, "x", DType::F32, &shape);
        let ax = if axis < 0 {
            shape.len() - 1
        } else {
            axis as usize
        };
        let cols: Vec<usize> = shape[ax..].to_vec();
        let gamma = b.randn("gamma", &cols, 1.0, 0.3);
        let mut ins = vec![x, gamma];
        if beta {
            ins.push(b.randn("beta", &cols, 0.0, 0.3));
        }
        let op = Op::LayerNormalization {
            axis,
            epsilon: 1e-5,
        };
        let y = b.node_n(
            op,
            "ln",
            &ins.iter().map(|v| Some(*v)).collect::<Vec<_>>(),
            1,
        )[0];
        run_check(b, y, &[("x", rand_tensor(&mut r, &shape, -3.0, 5.0))]);
    }
}

#[test]
fn softmax_rows_of_odd_lengths() {
    let mut r = rng(3);
    for shape in [
        vec![7usize, 129],
        vec![2, 3, 1],
        vec![1, 12, 128, 128],
        vec![3, 17],
    ] {
        let mut b = builder("sm");
        let x = input(&mut b, "x", DType::F32, &shape);
        let op = Op::Softmax {
            axis: -1,
            coerce_2d: false,
        };
        let y = b.node(op, "sm", &[x]);
        run_check(b, y, &[("x", rand_tensor(&mut r, &shape, -20.0, 20.0))]);
    }
    // Opset < 13 (coerce_2d) over axis 1 of [2, 3, 5].
    let mut b = builder("sm2d");
    let x = input(&mut b, "x", DType::F32, &[2, 3, 5]);
    let op = Op::Softmax {
        axis: 1,
        coerce_2d: true,
    };
    let y = b.node(op, "sm", &[x]);
    run_check(b, y, &[("x", rand_tensor(&mut r, &[2, 3, 5], -4.0, 4.0))]);
}

#[test]
fn transposes_of_every_kind() {
    let mut r = rng(4);
    for (shape, perm) in [
        (vec![2usize, 5, 3, 7], Some(vec![0usize, 2, 1, 3])),
        (vec![2, 5, 3, 7], Some(vec![0, 2, 3, 1])),
        (vec![3, 4, 5], Some(vec![2, 0, 1])),
        (vec![6, 9], None),
    ] {
        let mut b = builder("tr");
        let x = input(&mut b, "x", DType::F32, &shape);
        let y = b.node(Op::Transpose { perm }, "t", &[x]);
        run_check(b, y, &[("x", rand_tensor(&mut r, &shape, -1.0, 1.0))]);
    }
    // i64 data moves as well.
    let mut b = builder("tr64");
    let x = input(&mut b, "x", DType::I64, &[3, 2]);
    let y = b.node(Op::Transpose { perm: None }, "t", &[x]);
    run_check(
        b,
        y,
        &[("x", Tensor::from_vec(vec![3, 2], vec![1i64, 2, 3, 4, 5, 6]))],
    );
}

#[test]
fn slices_with_steps_and_negative_bounds() {
    let mut r = rng(5);
    // (starts, ends, axes, steps)
    type Case<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a [i64]);
    let cases: [Case; 3] = [
        (&[1, 0], &[100, -1], &[0, 2], &[1, 1]),
        (&[-1], &[-100], &[1], &[-2]),
        (&[0, 1], &[3, 6], &[2, 1], &[2, 3]),
    ];
    for (starts, ends, axes, steps) in cases {
        let mut b = builder("slice");
        let x = input(&mut b, "x", DType::F32, &[4, 7, 5]);
        let s = b.ints("starts", starts);
        let e = b.ints("ends", ends);
        let a = b.ints("axes", axes);
        let st = b.ints("steps", steps);
        let y = b.node(Op::Slice, "s", &[x, s, e, a, st]);
        run_check(b, y, &[("x", rand_tensor(&mut r, &[4, 7, 5], -1.0, 1.0))]);
    }
}

#[test]
fn concat_expand_and_views() {
    let mut r = rng(6);
    let mut b = builder("concat");
    let x = input(&mut b, "x", DType::F32, &[2, 3, 4]);
    let c = b.randn("c", &[2, 1, 4], 0.0, 1.0);
    let y = b.node(Op::Concat { axis: 1 }, "cat", &[x, c, x]);
    run_check(b, y, &[("x", rand_tensor(&mut r, &[2, 3, 4], -1.0, 1.0))]);

    let mut b = builder("expand");
    let x = input(&mut b, "x", DType::F32, &[3, 1]);
    let shape = b.ints("shape", &[2, 3, 5]);
    let y = b.node(Op::Expand, "e", &[x, shape]);
    run_check(b, y, &[("x", rand_tensor(&mut r, &[3, 1], -1.0, 1.0))]);

    // Unsqueeze → Reshape → Squeeze chain around a computed value.
    let mut b = builder("views");
    let x = input(&mut b, "x", DType::F32, &[4, 6]);
    let e = b.node(Op::Unary(whittle_ir::UnaryOp::Exp), "exp", &[x]);
    let ax = b.ints("ax", &[0]);
    let u = b.node(Op::Unsqueeze, "u", &[e, ax]);
    let shape = b.ints("shape", &[1, 0, 3, 2]);
    let rsh = b.node(Op::Reshape { allowzero: false }, "r", &[u, shape]);
    let sq = b.node(Op::Squeeze, "sq", &[rsh, ax]);
    let y = b.node(
        Op::Transpose {
            perm: Some(vec![1, 0, 2]),
        },
        "t",
        &[sq],
    );
    run_check(b, y, &[("x", rand_tensor(&mut r, &[4, 6], -1.0, 1.0))]);
}

#[test]
fn reduce_sum_and_mean_over_trailing_axes() {
    let mut r = rng(7);
    for (op, axes, keep) in [
        (ReduceOp::Mean, vec![-1i64], true),
        (ReduceOp::Sum, vec![-1], false),
        (ReduceOp::Mean, vec![1, 2], false),
    ] {
        let mut b = builder("reduce");
        let x = input(&mut b, "x", DType::F32, &[3, 5, 19]);
        let a = b.ints("axes", &axes);
        let rop = Op::Reduce {
            op,
            keepdims: keep,
            noop_with_empty_axes: false,
        };
        let y = b.node(rop, "red", &[x, a]);
        run_check(b, y, &[("x", rand_tensor(&mut r, &[3, 5, 19], -1.0, 1.0))]);
    }
}

#[test]
fn constant_subgraphs_are_folded_at_compile_time() {
    // An i64 Sub on constants (no i64 kernel exists) feeds a Gather's indices.
    let mut b = builder("fold");
    let x = input(&mut b, "x", DType::F32, &[6, 2]);
    let i = b.ints("i", &[5, 4, 3]);
    let one = b.ints("one", &[1]);
    let idx = b.node(Op::Binary(whittle_ir::BinaryOp::Sub), "sub", &[i, one]);
    let y = b.node(Op::Gather { axis: 0 }, "g", &[x, idx]);
    let mut r = rng(8);
    run_check(b, y, &[("x", rand_tensor(&mut r, &[6, 2], -1.0, 1.0))]);
}
