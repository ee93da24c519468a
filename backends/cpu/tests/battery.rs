//! Property-test battery, part 1: every elementwise, reduction, normalization and linear
//! algebra op the cpu backend lowers, compared with `ir::eval` on random shapes (rank 0..=4,
//! dims from {0,1,2,3,5,7,16,17,33}: odd, size-1 and empty dims) with numpy broadcasting.
//! Data inputs are graph inputs so the run-time kernels run (constants would be folded).
//! Movement, gather, pad, conv and pool ops are in `battery_ops2.rs`.
//!
//! Every generated case must compile; a compile error fails the case (and must name the
//! node). `Softplus` is not an IR op, so it has no property.

mod common;

use common::battery::*;
use proptest::prelude::*;
use proptest::sample::select;
use rand::Rng;
use whittle_ir::{
    Activation, BinaryOp, DType, GeluApprox, Op, ReduceOp, Tensor, UnaryOp, Value, VariadicOp,
};

// ---- elementwise ----

#[rustfmt::skip]
const UNARY_F32: [UnaryOp; 17] = [
    UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sqrt, UnaryOp::Reciprocal, UnaryOp::Exp, UnaryOp::Log,
    UnaryOp::Erf, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Relu, UnaryOp::Sin, UnaryOp::Cos,
    UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Round, UnaryOp::Sign, UnaryOp::HardSwish,
];

#[rustfmt::skip]
const ARITH: [BinaryOp; 7] = [
    BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Mod,
    BinaryOp::FMod,
];

#[rustfmt::skip]
const CMP: [BinaryOp; 5] = [
    BinaryOp::Equal, BinaryOp::Less, BinaryOp::LessOrEqual, BinaryOp::Greater,
    BinaryOp::GreaterOrEqual,
];

const INTS: [DType; 2] = [DType::I64, DType::I32];

proptest! {
    #![proptest_config(cfg(48))]

    #[test]
    fn unary_f32(op in select(UNARY_F32.to_vec()), s in shape(0, 4), seed in any::<u64>(),
                 wide in any::<bool>()) {
        let mut r = common::rng(seed);
        // Sqrt/Log see negatives too (NaN must match NaN); Sin/Cos a wider range.
        let x = match op {
            UnaryOp::Sin | UnaryOp::Cos if wide => f32s(&mut r, &s, -30.0, 30.0),
            UnaryOp::Sqrt | UnaryOp::Log if !wide => f32s(&mut r, &s, 1e-3, 20.0),
            _ => halves(&mut r, &s),
        };
        let mut c = Case::new();
        let xv = c.input("x", x);
        let y = c.op1(Op::Unary(op), &[xv]);
        c.check(&[y], F32)?;
    }

    #[test]
    fn unary_int_and_not(op in select(vec![UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu,
                             UnaryOp::Sign, UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Round,
                             UnaryOp::Not]),
                         dt in select(INTS.to_vec()), s in shape(0, 4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let dt = if op == UnaryOp::Not { DType::Bool } else { dt };
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let y = c.op1(Op::Unary(op), &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn binary_f32(op in select([&ARITH[..], &CMP[..]].concat()), sh in bshapes(2),
                  seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let a = match op {
            BinaryOp::Pow => f32s(&mut r, &sh[0], 0.1, 4.0),
            _ => halves(&mut r, &sh[0]),
        };
        let b = match op {
            BinaryOp::Pow => f32s(&mut r, &sh[1], -3.0, 3.0),
            // Divisors away from zero: x/0 and x mod 0 are covered by the integer test.
            BinaryOp::Div | BinaryOp::Mod | BinaryOp::FMod => {
                let t = f32s(&mut r, &sh[1], 0.25, 4.0);
                let v: Vec<f32> = t.as_slice::<f32>().unwrap().iter()
                    .map(|&v| if r.random_bool(0.5) { -v } else { v }).collect();
                Tensor::from_vec(sh[1].clone(), v)
            }
            _ => halves(&mut r, &sh[1]),
        };
        let mut c = Case::new();
        let (av, bv) = (c.input("a", a), c.input("b", b));
        let y = c.op1(Op::Binary(op), &[av, bv]);
        c.check(&[y], F32)?;
    }

    #[test]
    fn pow_negative_base_and_int_exponent(edt in select(vec![DType::F32, DType::I64, DType::I32]),
                                          sh in bshapes(2), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let av = c.input("a", f32s(&mut r, &sh[0], -3.0, 3.0));
        let e = ints(&mut r, DType::I64, &sh[1], -3, 4).cast(edt);
        let bv = c.input("b", e);
        let y = c.op1(Op::Binary(BinaryOp::Pow), &[av, bv]);
        c.check(&[y], F32)?;
    }

    #[test]
    fn binary_int(op in select([&ARITH[..], &CMP[..]].concat()), dt in select(INTS.to_vec()),
                  sh in bshapes(2), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let av = c.input("a", ints(&mut r, dt, &sh[0], -20, 20));
        // Zero divisors included: integer x/0 and x mod 0 are errors on both backends.
        let (lo, hi) = if op == BinaryOp::Pow { (0, 5) } else { (-6, 6) };
        let bv = c.input("b", ints(&mut r, dt, &sh[1], lo, hi));
        let y = c.op1(Op::Binary(op), &[av, bv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn logic_and_bool_compare(op in select(vec![BinaryOp::And, BinaryOp::Or, BinaryOp::Xor,
                                  BinaryOp::Equal]), sh in bshapes(2), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let av = c.input("a", bools(&mut r, &sh[0]));
        let bv = c.input("b", bools(&mut r, &sh[1]));
        let y = c.op1(Op::Binary(op), &[av, bv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn where_three_way_broadcast(dt in select(vec![DType::F32, DType::I64, DType::Bool]),
                                 sh in bshapes(3), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let cv = c.input("c", bools(&mut r, &sh[0]));
        let xv = c.input("x", data(&mut r, dt, &sh[1]));
        let yv = c.input("y", data(&mut r, dt, &sh[2]));
        let y = c.op1(Op::Where, &[cv, xv, yv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn variadic(op in select(vec![VariadicOp::Min, VariadicOp::Max, VariadicOp::Sum,
                                  VariadicOp::Mean]),
                dt in select(vec![DType::F32, DType::F32, DType::I64, DType::I32]),
                n in 1usize..=4, sh in bshapes(4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let vs: Vec<Value> = (0..n)
            .map(|i| { let t = data(&mut r, dt, &sh[i]); c.input(&format!("x{i}"), t) })
            .collect();
        let y = c.op1(Op::Variadic(op), &vs);
        c.check(&[y], if dt == DType::F32 { F32 } else { EXACT })?;
    }

    #[test]
    fn clip_const_runtime_and_missing_bounds(dt in select(vec![DType::F32, DType::I64, DType::I32]),
                                             lo_kind in 0u8..3, hi_kind in 0u8..3,
                                             s in shape(0, 4), seed in any::<u64>()) {
        // Bound kinds: 0 absent, 1 constant scalar (fused kernel for f32), 2 run-time input.
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let xv = c.input("x", data(&mut r, dt, &s));
        let mut bound = |c: &mut Case, kind: u8, name: &str, lo: i64, hi: i64| {
            let t = ints(&mut r, DType::I64, &[], lo, hi).cast(dt);
            match kind {
                1 => Some(c.konst(name, t)),
                2 => Some(c.input(name, t)),
                _ => None,
            }
        };
        let lo = bound(&mut c, lo_kind, "lo", -3, 0);
        let hi = bound(&mut c, hi_kind, "hi", 0, 3);
        let y = c.op(Op::Clip, &[Some(xv), lo, hi], 1)[0];
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn cast(from in select(vec![DType::F32, DType::I64, DType::I32, DType::Bool]),
            to in select(vec![DType::F32, DType::I64, DType::I32, DType::Bool]),
            s in shape(0, 4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let x = match from {
            DType::F32 => {
                let t = f32s(&mut r, &s, -1000.0, 1000.0);
                let h = halves(&mut r, &s);
                let v: Vec<f32> = t.as_slice::<f32>().unwrap().iter()
                    .zip(h.as_slice::<f32>().unwrap())
                    .map(|(&a, &b)| if r.random_bool(0.5) { a } else { b }).collect();
                Tensor::from_vec(s.clone(), v)
            }
            DType::Bool => bools(&mut r, &s),
            dt => ints(&mut r, dt, &s, -100_000, 100_000),
        };
        let mut c = Case::new();
        let xv = c.input("x", x);
        let y = c.op1(Op::Cast { to }, &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn activations(which in 0u8..8, alpha in select(vec![0.01f32, 0.2, 1.0, 1.7]),
                   beta in select(vec![0.5f32, 0.1]), s in shape(0, 4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let op = match which {
            0 => Op::LeakyRelu { alpha },
            1 => Op::Elu { alpha },
            2 => Op::HardSigmoid { alpha, beta },
            3 => Op::Gelu { approximate: GeluApprox::None },
            4 => Op::Gelu { approximate: GeluApprox::Tanh },
            5 => Op::Unary(UnaryOp::HardSwish),
            6 => Op::Unary(UnaryOp::Sigmoid),
            _ => Op::Unary(UnaryOp::Relu),
        };
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -8.0, 8.0));
        let y = c.op1(op, &[xv]);
        c.check(&[y], F32)?;
    }

    #[test]
    fn is_nan_is_inf(which in 0u8..4, s in shape(0, 4), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -1.5, 3.0e38];
        let n: usize = s.iter().product();
        let v: Vec<f32> = (0..n).map(|_| specials[r.random_range(0..specials.len())]).collect();
        let op = match which {
            0 => Op::IsNaN,
            w => Op::IsInf { detect_negative: w != 1, detect_positive: w != 2 },
        };
        let mut c = Case::new();
        let xv = c.input("x", Tensor::from_vec(s.clone(), v));
        let y = c.op1(op, &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn elementwise_chain_fused(sh in bshapes(3), seed in any::<u64>()) {
        // A chain the JIT fuses into one loop: sigmoid(a·b + c) - tanh(c) with broadcasting.
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let av = c.input("a", halves(&mut r, &sh[0]));
        let bv = c.input("b", halves(&mut r, &sh[1]));
        let cv = c.input("c", halves(&mut r, &sh[2]));
        let m = c.b.node(Op::Binary(BinaryOp::Mul), "m", &[av, bv]);
        let s = c.b.node(Op::Binary(BinaryOp::Add), "s", &[m, cv]);
        let g = c.b.node(Op::Unary(UnaryOp::Sigmoid), "g", &[s]);
        let t = c.b.node(Op::Unary(UnaryOp::Tanh), "t", &[cv]);
        let y = c.op1(Op::Binary(BinaryOp::Sub), &[g, t]);
        c.check(&[y], F32)?;
    }
}

// ---- reductions and normalization ----

#[rustfmt::skip]
const REDUCE: [ReduceOp; 10] = [
    ReduceOp::Mean, ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod,
    ReduceOp::SumSquare, ReduceOp::L1, ReduceOp::L2, ReduceOp::LogSum, ReduceOp::LogSumExp,
];

/// A shape and a subset of its axes (each written positive or negative at random).
fn shape_axes() -> impl Strategy<Value = (Vec<usize>, Vec<i64>)> {
    shape(0, 4).prop_flat_map(|s| {
        let r = s.len();
        (
            Just(s),
            prop::collection::vec((any::<bool>(), any::<bool>()), r),
        )
            .prop_map(move |(s, picks)| {
                let axes = picks
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.0)
                    .map(|(i, p)| if p.1 { i as i64 - r as i64 } else { i as i64 })
                    .collect();
                (s, axes)
            })
    })
}

proptest! {
    #![proptest_config(cfg(48))]

    #[test]
    fn reduce_f32(op in select(REDUCE.to_vec()), (s, axes) in shape_axes(),
                  give_axes in any::<bool>(), keepdims in any::<bool>(),
                  noop in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let x = match op {
            ReduceOp::Prod => f32s(&mut r, &s, 0.7, 1.4),
            ReduceOp::LogSum => f32s(&mut r, &s, 0.01, 2.0),
            _ => f32s(&mut r, &s, -2.0, 2.0),
        };
        let mut c = Case::new();
        let xv = c.input("x", x);
        // axes absent: all axes (or identity with noop_with_empty_axes).
        let av = give_axes.then(|| c.ints("axes", &axes));
        let axes_empty = !give_axes || axes.is_empty();
        // No axes with noop_with_empty_axes reduces nothing but still maps each element
        // (ReduceSumSquare squares, ReduceL1 takes |x|, ...), as the ONNX reference.
        let k: usize = if noop && axes_empty {
            1
        } else if !axes_empty {
            axes.iter().map(|&a| s[pos(a, s.len())]).product()
        } else {
            s.iter().product()
        };
        let y = c.op(Op::Reduce { op, keepdims, noop_with_empty_axes: noop }, &[Some(xv), av], 1)[0];
        c.check(&[y], acc_tol(k, 4.0))?;
    }

    #[test]
    fn reduce_int(op in select(vec![ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min,
                                    ReduceOp::Prod, ReduceOp::Mean, ReduceOp::SumSquare,
                                    ReduceOp::L1]),
                  dt in select(INTS.to_vec()), (s, axes) in shape_axes(),
                  keepdims in any::<bool>(), noop in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let (lo, hi) = if op == ReduceOp::Prod { (-2, 2) } else { (-50, 50) };
        let mut c = Case::new();
        let xv = c.input("x", ints(&mut r, dt, &s, lo, hi));
        let av = c.ints("axes", &axes);
        let y = c.op1(Op::Reduce { op, keepdims, noop_with_empty_axes: noop }, &[xv, av]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn arg_max_min(max in any::<bool>(), (s, axis) in shape_axis(1, 4),
                   dt in select(vec![DType::F32, DType::I64, DType::I32]),
                   keepdims in any::<bool>(), last in any::<bool>(), seed in any::<u64>()) {
        // ArgMax over an empty axis has no answer; everything else (empty other dims too).
        prop_assume!(s[pos(axis, s.len())] > 0);
        let mut r = common::rng(seed);
        // Few distinct values: many ties, so select_last_index matters.
        let x = ints(&mut r, DType::I64, &s, -3, 3).cast(dt);
        let mut c = Case::new();
        let xv = c.input("x", x);
        let op = if max {
            Op::ArgMax { axis, keepdims, select_last_index: last }
        } else {
            Op::ArgMin { axis, keepdims, select_last_index: last }
        };
        let y = c.op1(op, &[xv]);
        c.check(&[y], EXACT)?;
    }

    #[test]
    fn softmax_log_softmax(log in any::<bool>(), (s, axis) in shape_axis(1, 4),
                           coerce_2d in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -6.0, 6.0));
        let op = if log {
            Op::LogSoftmax { axis, coerce_2d }
        } else {
            Op::Softmax { axis, coerce_2d }
        };
        let y = c.op1(op, &[xv]);
        let k: usize = s[pos(axis, s.len())..].iter().product();
        c.check(&[y], acc_tol(k, 1.0))?;
    }

    #[test]
    fn layer_norm(rms in any::<bool>(), (s, axis) in shape_axis(1, 4), bias in any::<bool>(),
                  stats in any::<bool>(), runtime_scale in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let ax = pos(axis, s.len());
        let cols = s[ax..].to_vec();
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -3.0, 5.0));
        let scale = f32s(&mut r, &cols, 0.5, 1.5);
        let sv = if runtime_scale { c.input("scale", scale) } else { c.konst("scale", scale) };
        let k: usize = cols.iter().product();
        let ys = if rms {
            vec![c.op1(Op::RmsNormalization { axis, epsilon: 1e-5 }, &[xv, sv])]
        } else {
            let bv = bias.then(|| {
                let t = f32s(&mut r, &cols, -1.0, 1.0);
                c.input("bias", t)
            });
            let n_out = if stats { 3 } else { 1 };
            c.op(Op::LayerNormalization { axis, epsilon: 1e-5 }, &[Some(xv), Some(sv), bv], n_out)
        };
        c.check(&ys, acc_tol(k, 4.0))?;
    }

    #[test]
    fn add_norm(rms in any::<bool>(),
                lead in prop::collection::vec(select(vec![0usize, 1, 2, 3, 5]), 0..=2),
                cols in select(vec![1usize, 3, 5, 7, 17, 33]), beta in any::<bool>(),
                bias in any::<bool>(), sum_out in any::<bool>(), runtime_params in any::<bool>(),
                epsilon in select(vec![1e-5f32, 1e-6]), seed in any::<u64>()) {
        // x, residual [lead.., cols]; gamma, beta (LayerNorm only), bias [cols].
        let mut r = common::rng(seed);
        let s = [lead, vec![cols]].concat();
        let mut c = Case::new();
        let xv = c.input("x", f32s(&mut r, &s, -3.0, 5.0));
        let rv = c.input("residual", f32s(&mut r, &s, -2.0, 2.0));
        let mut param = |c: &mut Case, name: &str, lo: f32, hi: f32| {
            let t = f32s(&mut r, &[cols], lo, hi);
            if runtime_params { c.input(name, t) } else { c.konst(name, t) }
        };
        let gv = param(&mut c, "gamma", 0.5, 1.5);
        let bv = (beta && !rms).then(|| param(&mut c, "beta", -1.0, 1.0));
        let biasv = bias.then(|| param(&mut c, "bias", -1.0, 1.0));
        let ys = c.op(Op::AddNorm { rms, epsilon }, &[Some(xv), Some(rv), Some(gv), bv, biasv],
                      if sum_out { 2 } else { 1 });
        c.check(&ys, acc_tol(cols, 8.0))?;
    }

    #[test]
    fn cumsum(dt in select(vec![DType::F32, DType::I64, DType::I32]),
              (s, axis) in shape_axis(1, 4), exclusive in any::<bool>(), reverse in any::<bool>(),
              axis_i32 in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let x = if dt == DType::F32 { f32s(&mut r, &s, -2.0, 2.0) } else { data(&mut r, dt, &s) };
        let xv = c.input("x", x);
        let at = if axis_i32 {
            Tensor::scalar(axis as i32)
        } else {
            Tensor::scalar(axis)
        };
        let av = c.konst("axis", at);
        let y = c.op1(Op::CumSum { exclusive, reverse }, &[xv, av]);
        let k = s[pos(axis, s.len())];
        c.check(&[y], if dt == DType::F32 { acc_tol(k, 2.0) } else { EXACT })?;
    }
}

// ---- linear algebra ----

/// MatMul operand shapes: batch dims broadcasting, M/K/N from DIMS, 1-D operands.
fn matmul_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, usize)> {
    (
        bshapes(2),
        select(DIMS.to_vec()),
        select(DIMS.to_vec()),
        select(DIMS.to_vec()),
        any::<bool>(),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(bs, m, k, n, a1, b1, batch_rank)| {
            // At most two batch dims, and a bounded amount of work for the debug evaluator.
            let trim = |s: &Vec<usize>| s[s.len().saturating_sub(batch_rank)..].to_vec();
            let (ba, bb) = (trim(&bs[0]), trim(&bs[1]));
            // Cap the broadcast batch shape, then give each operand its capped dims back.
            let out = capped(common::bshape(&ba, &bb), 12);
            let recap = |s: &[usize]| -> Vec<usize> {
                let off = out.len() - s.len();
                s.iter()
                    .enumerate()
                    .map(|(i, &d)| if d == 1 { 1 } else { out[off + i] })
                    .collect()
            };
            let (ba, bb) = (recap(&ba), recap(&bb));
            let mkn = capped(vec![m, k, n], 4096);
            let (m, k, n) = (mkn[0], mkn[1], mkn[2]);
            let a = if a1 {
                vec![k]
            } else {
                [ba, vec![m, k]].concat()
            };
            let b = if b1 {
                vec![k]
            } else {
                [bb, vec![k, n]].concat()
            };
            (a, b, k)
        })
}

proptest! {
    #![proptest_config(cfg(48))]

    #[test]
    fn matmul((sa, sb, k) in matmul_shapes(),
              dt in select(vec![DType::F32, DType::F32, DType::I64, DType::I32]),
              const_b in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let (a, b) = if dt == DType::F32 {
            (f32s(&mut r, &sa, -1.0, 1.0), f32s(&mut r, &sb, -1.0, 1.0))
        } else {
            (ints(&mut r, dt, &sa, -9, 9), ints(&mut r, dt, &sb, -9, 9))
        };
        let av = c.input("a", a);
        let bv = if const_b { c.konst("b", b) } else { c.input("b", b) };
        let y = c.op1(Op::MatMul, &[av, bv]);
        c.check(&[y], if dt == DType::F32 { acc_tol(k, 1.0) } else { EXACT })?;
    }

    #[test]
    fn gemm(m in select(DIMS.to_vec()), k in select(DIMS.to_vec()), n in select(DIMS.to_vec()),
            trans_a in any::<bool>(), trans_b in any::<bool>(),
            alpha in select(vec![1.0f32, 0.5, -2.0]), beta in select(vec![1.0f32, 0.0, -0.5]),
            c_kind in 0u8..7, const_b in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let mut c = Case::new();
        let sa = if trans_a { vec![k, m] } else { vec![m, k] };
        let sb = if trans_b { vec![n, k] } else { vec![k, n] };
        let av = c.input("a", f32s(&mut r, &sa, -1.0, 1.0));
        let b = f32s(&mut r, &sb, -1.0, 1.0);
        let bv = if const_b { c.konst("b", b) } else { c.input("b", b) };
        // C absent or broadcasting from [], [1], [N], [1,N], [M,1], [M,N].
        let sc: Option<Vec<usize>> = match c_kind {
            0 => None,
            1 => Some(vec![]),
            2 => Some(vec![1]),
            3 => Some(vec![n]),
            4 => Some(vec![1, n]),
            5 => Some(vec![m, 1]),
            _ => Some(vec![m, n]),
        };
        let cv = sc.map(|sc| {
            let t = f32s(&mut r, &sc, -1.0, 1.0);
            c.input("c", t)
        });
        let op = Op::Gemm { alpha, beta, trans_a, trans_b };
        let y = c.op(op, &[Some(av), Some(bv), cv], 1)[0];
        c.check(&[y], acc_tol(k, 2.0))?;
    }

    #[test]
    fn fused_matmul(act in select(vec![Activation::Linear, Activation::Relu,
                        Activation::Gelu(GeluApprox::None), Activation::Gelu(GeluApprox::Tanh),
                        Activation::Silu]),
                    batch in shape(0, 2), m in select(DIMS.to_vec()), k in select(DIMS.to_vec()),
                    n in select(DIMS.to_vec()), batched_b in any::<bool>(), bias in any::<bool>(),
                    residual in any::<bool>(), const_b in any::<bool>(), seed in any::<u64>()) {
        let mut r = common::rng(seed);
        let batch = capped(batch, 8);
        let mkn = capped(vec![m, k, n], 4096);
        let (m, k, n) = (mkn[0], mkn[1], mkn[2]);
        let sa = [batch.clone(), vec![m, k]].concat();
        let sb = if batched_b { [batch.clone(), vec![k, n]].concat() } else { vec![k, n] };
        let so = [batch, vec![m, n]].concat();
        let mut c = Case::new();
        let av = c.input("a", f32s(&mut r, &sa, -2.0, 2.0));
        let b = f32s(&mut r, &sb, -0.5, 0.5);
        let bv = if const_b { c.konst("b", b) } else { c.input("b", b) };
        let biasv = bias.then(|| { let t = f32s(&mut r, &[n], -1.0, 1.0); c.konst("bias", t) });
        let resv = residual.then(|| { let t = f32s(&mut r, &so, -1.0, 1.0); c.input("res", t) });
        let y = c.op(Op::FusedMatMul { activation: act }, &[Some(av), Some(bv), biasv, resv], 1)[0];
        c.check(&[y], acc_tol(k, 1.0))?;
    }
}

/// The mean / inv-std-dev outputs of LayerNormalization over an empty normalized extent:
/// x `[0]`, axis -1 is one row of zero columns, so the statistics have shape `[1]` and are
/// NaN (numpy's mean of nothing in the ONNX reference). `ir::eval` used to panic here.
#[test]
fn layer_norm_stats_of_empty_rows() {
    let mut c = Case::new();
    let xv = c.input("x", Tensor::from_vec(vec![0], Vec::<f32>::new()));
    let sv = c.konst("scale", Tensor::from_vec(vec![0], Vec::<f32>::new()));
    let ys = c.op(
        Op::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        },
        &[Some(xv), Some(sv), None],
        3,
    );
    c.check(&ys, F32).unwrap();
}
