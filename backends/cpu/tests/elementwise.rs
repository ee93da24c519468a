//! Fused elementwise kernels vs the reference evaluator: every lowered op on random shapes
//! with broadcasting, odd sizes, size-1 and empty dimensions, and multi-op fused chains.

mod common;
use common::*;
use rand::Rng;
use whittle_cpu::CpuExecutable;
use whittle_ir::{BinaryOp, DType, GeluApprox, Graph, Op, Tensor, TensorType, UnaryOp, VariadicOp};

const SHAPES: &[&[usize]] = &[
    &[],
    &[1],
    &[3],
    &[4],
    &[7],
    &[2, 5],
    &[3, 1, 9],
    &[2, 3, 4],
    &[1, 17],
    &[0, 3],
    &[2, 0, 5],
    &[5, 8, 13],
];

fn unary_ops() -> Vec<(Op, f32, f32)> {
    use UnaryOp::*;
    let mut v: Vec<(Op, f32, f32)> = [
        Neg, Abs, Exp, Erf, Tanh, Sigmoid, Relu, Floor, Ceil, Round, Sign, HardSwish,
    ]
    .into_iter()
    .map(|u| (Op::Unary(u), -6.0, 6.0))
    .collect();
    v.push((Op::Unary(Sqrt), 0.0, 10.0));
    v.push((Op::Unary(Reciprocal), 0.5, 4.0));
    v.push((Op::LeakyRelu { alpha: 0.1 }, -3.0, 3.0));
    v.push((
        Op::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        -4.0,
        4.0,
    ));
    v.push((
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        -6.0,
        6.0,
    ));
    v.push((
        Op::Gelu {
            approximate: GeluApprox::Tanh,
        },
        -6.0,
        6.0,
    ));
    v
}

#[test]
fn every_unary_op_on_every_shape() {
    let mut r = rng(1);
    for (op, lo, hi) in unary_ops() {
        for shape in SHAPES {
            let mut g = Graph::new("u");
            let x = g.add_input("x", TensorType::fixed(DType::F32, shape));
            let y = node(&mut g, op.clone(), "y", &[Some(x)], shape);
            g.add_output(y, "y");
            let xt = rand_tensor(&mut r, shape, lo, hi);
            check(&g, &[("x", xt)], 1e-5, 1e-6);
        }
    }
}

#[test]
fn binary_ops_with_random_broadcasting() {
    let mut r = rng(2);
    for case in 0..200 {
        let rank = r.random_range(0..5usize);
        let out: Vec<usize> = (0..rank)
            .map(|_| [0usize, 1, 1, 2, 3, 4, 5, 7, 9][r.random_range(0..9)])
            .collect();
        let out = if case % 10 == 0 {
            out
        } else {
            out.into_iter().map(|d| d.max(1)).collect()
        };
        let pick = |r: &mut rand::rngs::StdRng| -> Vec<usize> {
            let drop = r.random_range(0..=out.len());
            out[drop..]
                .iter()
                .map(|&d| if r.random_bool(0.3) { 1 } else { d })
                .collect()
        };
        let (sa, sb) = (pick(&mut r), pick(&mut r));
        let so = bshape(&sa, &sb);
        let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div][case % 4];
        let mut g = Graph::new("b");
        let a = g.add_input("a", TensorType::fixed(DType::F32, &sa));
        let b = g.add_input("b", TensorType::fixed(DType::F32, &sb));
        let y = node(&mut g, Op::Binary(op), "y", &[Some(a), Some(b)], &so);
        g.add_output(y, "y");
        let at = rand_tensor(&mut r, &sa, -3.0, 3.0);
        let bt = rand_tensor(&mut r, &sb, 0.5, 3.0);
        check(&g, &[("a", at), ("b", bt)], 1e-5, 1e-6);
    }
}

/// Builds `y = gelu(tanh(a·s + b) - exp(c)/2)` clipped, with broadcast b, c.
fn chain_graph(sa: &[usize], sb: &[usize], sc: &[usize]) -> Graph {
    let so = bshape(&bshape(sa, sb), sc);
    let mut g = Graph::new("chain");
    let a = g.add_input("a", TensorType::fixed(DType::F32, sa));
    let b = g.add_input("b", TensorType::fixed(DType::F32, sb));
    let c = g.add_input("c", TensorType::fixed(DType::F32, sc));
    let s = g.add_const("s", Tensor::scalar(0.75f32));
    let half = g.add_const("half", Tensor::from_vec(vec![1], vec![0.5f32]));
    let lo = g.add_const("lo", Tensor::scalar(-0.4f32));
    let as_ = node(
        &mut g,
        Op::Binary(BinaryOp::Mul),
        "as",
        &[Some(a), Some(s)],
        sa,
    );
    let ab = node(
        &mut g,
        Op::Binary(BinaryOp::Add),
        "ab",
        &[Some(as_), Some(b)],
        &bshape(sa, sb),
    );
    let t = node(
        &mut g,
        Op::Unary(UnaryOp::Tanh),
        "t",
        &[Some(ab)],
        &bshape(sa, sb),
    );
    let e = node(&mut g, Op::Unary(UnaryOp::Exp), "e", &[Some(c)], sc);
    let eh = node(
        &mut g,
        Op::Binary(BinaryOp::Mul),
        "eh",
        &[Some(e), Some(half)],
        sc,
    );
    let d = node(
        &mut g,
        Op::Binary(BinaryOp::Sub),
        "d",
        &[Some(t), Some(eh)],
        &so,
    );
    let ge = node(
        &mut g,
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        "ge",
        &[Some(d)],
        &so,
    );
    let y = node(&mut g, Op::Clip, "y", &[Some(ge), Some(lo), None], &so);
    g.add_output(y, "y");
    g
}

#[test]
fn fused_chains_with_broadcasting() {
    let mut r = rng(3);
    for (sa, sb, sc) in [
        (vec![4, 9], vec![9], vec![4, 9]),
        (vec![2, 3, 5], vec![3, 1], vec![2, 3, 5]),
        (vec![1], vec![6], vec![6]),
        (vec![3, 0], vec![1], vec![3, 0]),
        (vec![8, 33], vec![8, 33], vec![8, 33]),
    ] {
        let g = chain_graph(&sa, &sb, &sc);
        let ins = [
            ("a", rand_tensor(&mut r, &sa, -2.0, 2.0)),
            ("b", rand_tensor(&mut r, &sb, -2.0, 2.0)),
            ("c", rand_tensor(&mut r, &sc, -2.0, 2.0)),
        ];
        check(&g, &ins, 1e-5, 1e-6);
    }
}

#[test]
fn a_chain_becomes_few_kernels() {
    // Same-size intermediates with one consumer fuse; the [9] exp(c) branch is a separate kernel
    // only when its size differs from the output.
    let g = chain_graph(&[4, 9], &[9], &[4, 9]);
    let exe = CpuExecutable::compile(&g).unwrap();
    assert_eq!(
        exe.stats().expect("plan").fused_kernels,
        1,
        "{:?}",
        exe.stats()
    );
    let g = chain_graph(&[4, 9], &[9], &[9]);
    let exe = CpuExecutable::compile(&g).unwrap();
    assert_eq!(
        exe.stats().expect("plan").fused_kernels,
        2,
        "{:?}",
        exe.stats()
    );
}

#[test]
fn variadic_min_max_sum_mean_and_nan() {
    let mut r = rng(4);
    for op in [
        VariadicOp::Min,
        VariadicOp::Max,
        VariadicOp::Sum,
        VariadicOp::Mean,
    ] {
        let (s0, s1, s2) = (vec![3, 5], vec![5], vec![3, 1]);
        let mut g = Graph::new("v");
        let a = g.add_input("a", TensorType::fixed(DType::F32, &s0));
        let b = g.add_input("b", TensorType::fixed(DType::F32, &s1));
        let c = g.add_input("c", TensorType::fixed(DType::F32, &s2));
        let y = node(
            &mut g,
            Op::Variadic(op),
            "y",
            &[Some(a), Some(b), Some(c)],
            &s0,
        );
        g.add_output(y, "y");
        let mut at = rand_tensor(&mut r, &s0, -3.0, 3.0)
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        at[4] = f32::NAN;
        let ins = [
            ("a", Tensor::from_vec(s0.clone(), at)),
            ("b", rand_tensor(&mut r, &s1, -3.0, 3.0)),
            ("c", rand_tensor(&mut r, &s2, -3.0, 3.0)),
        ];
        check(&g, &ins, 1e-6, 1e-6);
    }
}

#[test]
fn special_values_pass_through_like_the_reference() {
    let vals = vec![
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-30,
        -1e-30,
        100.0,
        -100.0,
        3.0,
        -3.0,
        0.5,
    ];
    let n = vals.len();
    for op in [
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
        UnaryOp::Relu,
        UnaryOp::Abs,
        UnaryOp::Neg,
    ] {
        let mut g = Graph::new("s");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[n]));
        let y = node(&mut g, Op::Unary(op), "y", &[Some(x)], &[n]);
        g.add_output(y, "y");
        check(
            &g,
            &[("x", Tensor::from_vec(vec![n], vals.clone()))],
            2e-7,
            0.0,
        );
    }
}

/// Fused chains big enough to be split into blocks of outermost rows run in parallel (with
/// a shorter tail block, broadcast leaves and a single merged dimension) give the same
/// values at 1, 2 and 3 threads.
#[test]
fn big_fused_chains_split_over_threads() {
    let mut r = rng(4);
    for (sa, sb, sc) in [
        (vec![3, 300, 129], vec![300, 1], vec![129]),
        (vec![100_003], vec![1], vec![100_003]),
        (vec![7, 20_000], vec![20_000], vec![7, 1]),
    ] {
        let g = chain_graph(&sa, &sb, &sc);
        let ins = [
            ("a", rand_tensor(&mut r, &sa, -2.0, 2.0)),
            ("b", rand_tensor(&mut r, &sb, -2.0, 2.0)),
            ("c", rand_tensor(&mut r, &sc, -2.0, 2.0)),
        ];
        for threads in [1, 2, 3] {
            let e = rel_l2_threads(threads, &g, &ins);
            assert!(
                e <= 1e-6,
                "{sa:?} {sb:?} {sc:?} at {threads} threads: rel L2 {e:e}"
            );
        }
    }
}
