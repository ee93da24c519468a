//! MatMul and Gemm vs the reference evaluator (relative L2 ≤ 1e-5): batched and broadcast
//! batch dims, 1-D promotion, constant (pre-packed) and run-time B, transposes, bias
//! broadcasts, odd and empty sizes.

mod common;
use common::*;
use rand::Rng;
use whittle_cpu::CpuExecutable;
use whittle_ir::{DType, Graph, Op, Tensor, TensorType};

fn mm_out(sa: &[usize], sb: &[usize]) -> Vec<usize> {
    let (al, bl) = (sa.len().saturating_sub(2), sb.len().saturating_sub(2));
    let mut o = bshape(
        if sa.len() > 1 { &sa[..al] } else { &[] },
        if sb.len() > 1 { &sb[..bl] } else { &[] },
    );
    if sa.len() > 1 {
        o.push(sa[sa.len() - 2]);
    }
    if sb.len() > 1 {
        o.push(sb[sb.len() - 1]);
    }
    o
}

#[test]
fn matmul_batched_broadcast_const_and_runtime_b() {
    let mut r = rng(10);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[2, 7, 9], &[9, 33]),
        (&[2, 1, 5, 8], &[3, 8, 6]),
        (&[17, 300], &[300, 40]),
        (&[4], &[4, 3]),
        (&[2, 5, 4], &[4]),
        (&[6], &[6]),
        (&[0, 4], &[4, 3]),
        (&[3, 0], &[0, 5]),
        (&[1, 9, 64], &[64, 1]),
    ];
    for &(sa, sb) in cases {
        for const_b in [false, true] {
            let so = mm_out(sa, sb);
            let mut g = Graph::new("mm");
            let a = g.add_input("a", TensorType::fixed(DType::F32, sa));
            let bt = rand_tensor(&mut r, sb, -1.0, 1.0);
            let mut ins = vec![("a", rand_tensor(&mut r, sa, -1.0, 1.0))];
            let b = if const_b {
                g.add_const("b", bt)
            } else {
                ins.push(("b", bt));
                g.add_input("b", TensorType::fixed(DType::F32, sb))
            };
            let y = node(&mut g, Op::MatMul, "y", &[Some(a), Some(b)], &so);
            g.add_output(y, "y");
            let e = rel_l2(&g, &ins);
            assert!(e <= 1e-5, "{sa:?} x {sb:?} const_b={const_b}: rel L2 {e:e}");
        }
    }
}

#[test]
fn gemm_transposes_alpha_beta_and_bias_broadcasts() {
    let mut r = rng(11);
    for case in 0..48 {
        let (m, k, n) = (
            [1, 5, 9, 33][case % 4],
            [1, 7, 40][case % 3],
            [1, 6, 35][(case / 3) % 3],
        );
        let (ta, tb) = (case % 2 == 1, (case / 2) % 2 == 1);
        let bias_shape: Vec<usize> = match case % 6 {
            0 => vec![],
            1 => vec![n],
            2 => vec![1, n],
            3 => vec![m, 1],
            4 => vec![m, n],
            _ => vec![1],
        };
        let sa = if ta { vec![k, m] } else { vec![m, k] };
        let sb = if tb { vec![n, k] } else { vec![k, n] };
        let (alpha, beta) = (r.random_range(0.5..2.0f32), [0.0f32, 1.0, -0.5][case % 3]);
        let mut g = Graph::new("gemm");
        let a = g.add_input("a", TensorType::fixed(DType::F32, &sa));
        let b = g.add_const("b", rand_tensor(&mut r, &sb, -1.0, 1.0));
        let c = g.add_input("c", TensorType::fixed(DType::F32, &bias_shape));
        let op = Op::Gemm {
            alpha,
            beta,
            trans_a: ta,
            trans_b: tb,
        };
        let y = node(&mut g, op, "y", &[Some(a), Some(b), Some(c)], &[m, n]);
        g.add_output(y, "y");
        let ins = [
            ("a", rand_tensor(&mut r, &sa, -1.0, 1.0)),
            ("c", rand_tensor(&mut r, &bias_shape, -1.0, 1.0)),
        ];
        let e = rel_l2(&g, &ins);
        assert!(
            e <= 1e-5,
            "case {case}: m{m} k{k} n{n} ta{ta} tb{tb} bias {bias_shape:?}: rel L2 {e:e}"
        );
    }
}

#[test]
fn mlp_block_plans_a_smaller_arena_than_the_sum_of_its_tensors() {
    // x·W1 + b1 → gelu → ·W2 + b2 → tanh, with views in between.
    let mut r = rng(12);
    let mut g = Graph::new("mlp");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 16, 24]));
    let w1 = g.add_const("w1", rand_tensor(&mut r, &[24, 64], -0.3, 0.3));
    let b1 = g.add_const("b1", rand_tensor(&mut r, &[64], -0.3, 0.3));
    let w2 = g.add_const("w2", rand_tensor(&mut r, &[64, 24], -0.3, 0.3));
    let b2 = g.add_const("b2", rand_tensor(&mut r, &[24], -0.3, 0.3));
    let shape = g.add_const("shape", Tensor::from_vec(vec![2], vec![32i64, 24]));
    let h = node(&mut g, Op::MatMul, "h", &[Some(x), Some(w1)], &[2, 16, 64]);
    let hb = node(
        &mut g,
        Op::Binary(whittle_ir::BinaryOp::Add),
        "hb",
        &[Some(h), Some(b1)],
        &[2, 16, 64],
    );
    let act = node(
        &mut g,
        Op::Gelu {
            approximate: whittle_ir::GeluApprox::Tanh,
        },
        "act",
        &[Some(hb)],
        &[2, 16, 64],
    );
    let o = node(
        &mut g,
        Op::MatMul,
        "o",
        &[Some(act), Some(w2)],
        &[2, 16, 24],
    );
    let ob = node(
        &mut g,
        Op::Binary(whittle_ir::BinaryOp::Add),
        "ob",
        &[Some(o), Some(b2)],
        &[2, 16, 24],
    );
    let res = node(
        &mut g,
        Op::Binary(whittle_ir::BinaryOp::Add),
        "res",
        &[Some(ob), Some(x)],
        &[2, 16, 24],
    );
    let flat = node(
        &mut g,
        Op::Reshape { allowzero: false },
        "flat",
        &[Some(res), Some(shape)],
        &[32, 24],
    );
    let y = node(
        &mut g,
        Op::Unary(whittle_ir::UnaryOp::Tanh),
        "y",
        &[Some(flat)],
        &[32, 24],
    );
    g.add_output(y, "y");
    let ins = [("x", rand_tensor(&mut r, &[2, 16, 24], -1.0, 1.0))];
    check(&g, &ins, 1e-4, 1e-5);
    let s = CpuExecutable::compile(&g).unwrap().stats().expect("plan");
    assert_eq!((s.gemm_calls, s.fused_kernels), (2, 3), "{s:?}");
    assert!(s.arena_bytes < s.unplanned_bytes, "{s:?}");
}
