//! The generic host kernels (`lower/ops_ext.rs`, `ops_conv.rs`, `ops_resize.rs`) against
//! `ir::eval` on random shapes with broadcasting, odd sizes, size-1 and empty dims: integer
//! and bool elementwise ops, comparisons, Where, Clip with run-time bounds, Pow/Log/Sin/Cos,
//! reductions over any axes, ArgMax/ArgMin, Softmax/LogSoftmax on any axis, CumSum, TopK,
//! Split, Trilu, Tile, Pad, GatherElements, Shape, norms, Conv, pools, Resize, and inputs
//! bound by value (axes fed at run time).

mod common;

use common::*;
use rand::Rng;
use whittle_ir::{
    AutoPad, BinaryOp, CoordTransform, DType, Op, PadMode, ReduceOp, ResizeAttrs, ResizeMode,
    Tensor, TensorType, UnaryOp, Value, Window,
};
use whittle_passes::testing::Builder;

fn builder(name: &str) -> Builder {
    Builder::new(name, DType::F32, 11)
}

fn input(b: &mut Builder, name: &str, dtype: DType, shape: &[usize]) -> Value {
    b.g.add_input(name, TensorType::fixed(dtype, shape))
}

fn run_outs(b: Builder, ys: &[Value], inputs: &[(&str, Tensor)]) {
    let mut g = b.g;
    for (i, &y) in ys.iter().enumerate() {
        g.add_output(y, format!("y{i}"));
    }
    check(&g, inputs, 1e-5, 1e-6);
}

fn ints(r: &mut rand::rngs::StdRng, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|_| r.random_range(lo..hi)).collect::<Vec<i64>>(),
    )
}

const SHAPE_PAIRS: &[(&[usize], &[usize])] = &[
    (&[3, 5], &[5]),
    (&[2, 1, 7], &[4, 1]),
    (&[1], &[6, 3]),
    (&[0, 3], &[3]),
    (&[], &[2, 2]),
];

#[test]
fn integer_arithmetic_comparisons_and_logic_broadcast() {
    let mut r = rng(1);
    for (i, &(sa, sb)) in SHAPE_PAIRS.iter().enumerate() {
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Mod,
            BinaryOp::Less,
            BinaryOp::GreaterOrEqual,
            BinaryOp::Equal,
        ] {
            let mut b = builder("int");
            let x = input(&mut b, "a", DType::I64, sa);
            let y = input(&mut b, "b", DType::I64, sb);
            let z = b.node(Op::Binary(op), "z", &[x, y]);
            let bv = ints(&mut r, sb, 1, 9);
            run_outs(b, &[z], &[("a", ints(&mut r, sa, -20, 20)), ("b", bv)]);
        }
        // f32 comparisons, And/Or/Not and Where on the result.
        let mut b = builder("cmp");
        let x = input(&mut b, "a", DType::F32, sa);
        let y = input(&mut b, "b", DType::F32, sb);
        let lt = b.node(Op::Binary(BinaryOp::Less), "lt", &[x, y]);
        let gt = b.node(Op::Binary(BinaryOp::Greater), "gt", &[x, y]);
        let or = b.node(Op::Binary(BinaryOp::Or), "or", &[lt, gt]);
        let not = b.node(Op::Unary(UnaryOp::Not), "not", &[or]);
        let and = b.node(Op::Binary(BinaryOp::And), "and", &[not, lt]);
        let w = b.node(Op::Where, "w", &[lt, x, y]);
        let ins = [
            ("a", rand_tensor(&mut r, sa, -1.0, 1.0)),
            ("b", rand_tensor(&mut r, sb, -1.0, 1.0)),
        ];
        run_outs(b, &[not, and, w], &ins);
        let _ = i;
    }
}

#[test]
fn float_math_pow_and_clip_with_run_time_bounds() {
    let mut r = rng(2);
    for &(sa, sb) in SHAPE_PAIRS {
        let mut b = builder("math");
        let x = input(&mut b, "a", DType::F32, sa);
        let e = input(&mut b, "b", DType::F32, sb);
        let p = b.node(Op::Binary(BinaryOp::Pow), "p", &[x, e]);
        let l = b.node(Op::Unary(UnaryOp::Log), "l", &[x]);
        let s = b.node(Op::Unary(UnaryOp::Sin), "s", &[x]);
        let c = b.node(Op::Unary(UnaryOp::Cos), "c", &[s]);
        let ins = [
            ("a", rand_tensor(&mut r, sa, 0.1, 3.0)),
            ("b", rand_tensor(&mut r, sb, -2.0, 2.0)),
        ];
        run_outs(b, &[p, l, c], &ins);
    }
    let mut b = builder("clip");
    let x = input(&mut b, "x", DType::F32, &[4, 5]);
    let lo = input(&mut b, "lo", DType::F32, &[]);
    let hi = input(&mut b, "hi", DType::F32, &[]);
    let y = b.node(Op::Clip, "y", &[x, lo, hi]);
    let ins = [
        ("x", rand_tensor(&mut r, &[4, 5], -2.0, 2.0)),
        ("lo", Tensor::from_vec(vec![], vec![-0.5f32])),
        ("hi", Tensor::from_vec(vec![], vec![0.7f32])),
    ];
    run_outs(b, &[y], &ins);
    let mut b = builder("clip_i");
    let x = input(&mut b, "x", DType::I32, &[7]);
    let lo = b.g.add_const("lo", Tensor::from_vec(vec![], vec![-3i32]));
    let y = b.node_n(Op::Clip, "y", &[Some(x), Some(lo), None], 1)[0];
    let xv = Tensor::from_vec(vec![7], vec![-9i32, -3, -2, 0, 5, 9, 100]);
    run_outs(b, &[y], &[("x", xv)]);
}

#[test]
fn reductions_over_any_axes_and_dtypes() {
    let mut r = rng(3);
    let shape = [3usize, 1, 4, 5];
    for axes in [vec![0i64], vec![2], vec![0, 2], vec![-1, 1], vec![]] {
        for op in [
            ReduceOp::Max,
            ReduceOp::Min,
            ReduceOp::Prod,
            ReduceOp::L2,
            ReduceOp::LogSumExp,
            ReduceOp::Sum,
            ReduceOp::Mean,
        ] {
            for keepdims in [true, false] {
                let mut b = builder("red");
                let x = input(&mut b, "x", DType::F32, &shape);
                let ax = b.ints("axes", &axes);
                let red = Op::Reduce {
                    op,
                    keepdims,
                    noop_with_empty_axes: false,
                };
                let y = b.node(red, "y", &[x, ax]);
                run_outs(b, &[y], &[("x", rand_tensor(&mut r, &shape, 0.5, 1.5))]);
            }
        }
        let mut b = builder("red_i");
        let x = input(&mut b, "x", DType::I64, &shape);
        let ax = b.ints("axes", &axes);
        let red = Op::Reduce {
            op: ReduceOp::Sum,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        let y = b.node(red, "y", &[x, ax]);
        run_outs(b, &[y], &[("x", ints(&mut r, &shape, -9, 9))]);
    }
}

#[test]
fn axes_fed_at_run_time_are_bound_per_value() {
    let mut r = rng(4);
    let mut b = builder("bound");
    let x = input(&mut b, "x", DType::F32, &[2, 3, 4]);
    let ax = input(&mut b, "axes", DType::I64, &[1]);
    let red = Op::Reduce {
        op: ReduceOp::Sum,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    let y = b.node_n(red, "y", &[Some(x), Some(ax)], 1)[0];
    let mut g = b.g;
    g.add_output(y, "y");
    for a in [1i64, 0, 2] {
        let xs = rand_tensor(&mut r, &[2, 3, 4], -1.0, 1.0);
        check(
            &g,
            &[("x", xs), ("axes", Tensor::from_vec(vec![1], vec![a]))],
            1e-5,
            1e-6,
        );
    }
}

#[test]
fn arg_softmax_cumsum_topk_on_any_axis() {
    let mut r = rng(5);
    let shape = [3usize, 6, 4];
    for axis in [0i64, 1, -1] {
        let mut b = builder("axis");
        let x = input(&mut b, "x", DType::F32, &shape);
        let am = Op::ArgMax {
            axis,
            keepdims: false,
            select_last_index: true,
        };
        let a = b.node(am, "am", &[x]);
        let an = Op::ArgMin {
            axis,
            keepdims: true,
            select_last_index: false,
        };
        let a2 = b.node(an, "an", &[x]);
        let sm = b.node(
            Op::Softmax {
                axis,
                coerce_2d: false,
            },
            "sm",
            &[x],
        );
        let lsm = b.node(
            Op::LogSoftmax {
                axis,
                coerce_2d: false,
            },
            "lsm",
            &[x],
        );
        let ax = b.ints("ax", &[axis]);
        let cs = Op::CumSum {
            exclusive: axis == 1,
            reverse: axis == 0,
        };
        let c = b.node(cs, "cs", &[x, ax]);
        let k = b.ints("k", &[2]);
        let tk = Op::TopK {
            axis,
            largest: axis != 1,
            sorted: true,
        };
        let t = b.node_n(tk, "tk", &[Some(x), Some(k)], 2);
        let ins = [("x", rand_tensor(&mut r, &shape, -3.0, 3.0))];
        run_outs(b, &[a, a2, sm, lsm, c, t[0], t[1]], &ins);
    }
}

#[test]
fn split_trilu_tile_pad_gather_elements_shape() {
    let mut r = rng(6);
    let mut b = builder("move");
    let x = input(&mut b, "x", DType::F32, &[4, 5]);
    let sp = b.ints("split", &[1, 3, 1]);
    let s = b.node_n(
        Op::Split {
            axis: 1,
            num_outputs: 0,
        },
        "s",
        &[Some(x), Some(sp)],
        3,
    );
    let k = b.ints("k", &[1]);
    let tu = b.node(Op::Trilu { upper: true }, "tu", &[x, k]);
    let tl = b.node_n(Op::Trilu { upper: false }, "tl", &[Some(x), None], 1)[0];
    let reps = b.ints("reps", &[2, 1]);
    let ti = b.node(Op::Tile, "ti", &[x, reps]);
    let mut outs = vec![s[0], s[1], s[2], tu, tl, ti];
    for mode in [
        PadMode::Constant,
        PadMode::Reflect,
        PadMode::Edge,
        PadMode::Wrap,
    ] {
        let pads = b.ints("pads", &[1, 2, 2, 3]);
        let cv = b.konst("cv", &[], &[1.5]);
        let p = b.node(Op::Pad { mode }, "p", &[x, pads, cv]);
        outs.push(p);
    }
    let idx = b.g.add_const(
        "idx",
        Tensor::from_vec(
            vec![3, 5],
            (0..15).map(|i| (i * 7 % 8) as i64 - 4).collect(),
        ),
    );
    let ge = b.node(Op::GatherElements { axis: 0 }, "ge", &[x, idx]);
    let sh = b.node(
        Op::Shape {
            start: 0,
            end: None,
        },
        "sh",
        &[x],
    );
    outs.extend([ge, sh]);
    let ins = [("x", rand_tensor(&mut r, &[4, 5], -1.0, 1.0))];
    run_outs(b, &outs, &ins);
}

#[test]
fn layer_norm_statistics_rms_norm_and_batch_norm() {
    let mut r = rng(7);
    let mut b = builder("norms");
    let x = input(&mut b, "x", DType::F32, &[2, 3, 6]);
    let sc = b.randn("sc", &[6], 1.0, 0.1);
    let bi = b.randn("bi", &[1, 6], 0.0, 0.1);
    let ln = Op::LayerNormalization {
        axis: -1,
        epsilon: 1e-5,
    };
    let l = b.node_n(ln, "ln", &[Some(x), Some(sc), Some(bi)], 3);
    let sc2 = b.randn("sc2", &[3, 6], 1.0, 0.1);
    let rms = Op::RmsNormalization {
        axis: 1,
        epsilon: 1e-5,
    };
    let rm = b.node(rms, "rms", &[x, sc2]);
    let p: Vec<Value> = (0..4)
        .map(|i| b.uniform(&format!("p{i}"), &[3], 0.5, 1.5))
        .collect();
    let bn = b.node(
        Op::BatchNormalization { epsilon: 1e-5 },
        "bn",
        &[x, p[0], p[1], p[2], p[3]],
    );
    let ins = [("x", rand_tensor(&mut r, &[2, 3, 6], -2.0, 2.0))];
    run_outs(b, &[l[0], l[1], l[2], rm, bn], &ins);
}

fn win(kernel: &[usize], strides: &[usize], pads: &[usize], auto_pad: AutoPad) -> Window {
    Window {
        auto_pad,
        kernel_shape: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: vec![],
        pads: pads.to_vec(),
    }
}

#[test]
fn convolutions_general_grouped_depthwise() {
    let mut r = rng(8);
    // (x shape, w shape, group, strides, pads, auto_pad)
    type Case<'a> = (
        &'a [usize],
        &'a [usize],
        usize,
        &'a [usize],
        &'a [usize],
        AutoPad,
    );
    let cases: &[Case] = &[
        (
            &[1, 3, 7, 9],
            &[5, 3, 3, 3],
            1,
            &[1, 1],
            &[1, 1, 1, 1],
            AutoPad::NotSet,
        ),
        (
            &[2, 4, 8, 5],
            &[6, 2, 3, 2],
            2,
            &[2, 1],
            &[0, 1, 1, 0],
            AutoPad::NotSet,
        ),
        (
            &[1, 6, 9, 9],
            &[6, 1, 3, 3],
            6,
            &[2, 2],
            &[],
            AutoPad::SameUpper,
        ),
        (&[2, 5, 11], &[5, 1, 5], 5, &[1], &[2, 2], AutoPad::NotSet),
        (
            &[1, 3, 5, 5],
            &[4, 3, 1, 1],
            1,
            &[1, 1],
            &[],
            AutoPad::Valid,
        ),
    ];
    for &(sx, sw, group, strides, pads, auto_pad) in cases {
        let mut b = builder("conv");
        let x = input(&mut b, "x", DType::F32, sx);
        let w = b.randn("w", sw, 0.0, 0.5);
        let bias = b.randn("b", &[sw[0]], 0.0, 0.5);
        let mut wd = win(&sw[2..], strides, pads, auto_pad);
        wd.kernel_shape = vec![];
        let y = b.node(Op::Conv { window: wd, group }, "y", &[x, w, bias]);
        let ins = [("x", rand_tensor(&mut r, sx, -1.0, 1.0))];
        run_outs(b, &[y], &ins);
    }
}

#[test]
fn max_and_average_pools() {
    let mut r = rng(9);
    let sx = [2usize, 3, 7, 6];
    for (k, s, p, ceil) in [
        (vec![3, 3], vec![2, 2], vec![1, 1, 1, 1], false),
        (vec![2, 3], vec![2, 1], vec![0, 0, 0, 0], true),
        (vec![3, 2], vec![1, 2], vec![1, 0, 1, 1], true),
    ] {
        let mut b = builder("pool");
        let x = input(&mut b, "x", DType::F32, &sx);
        let mp = Op::MaxPool {
            window: win(&k, &s, &p, AutoPad::NotSet),
            ceil_mode: ceil,
            storage_order: 0,
        };
        let m = b.node_n(mp, "mp", &[Some(x)], 2);
        for cip in [false, true] {
            let ap = Op::AveragePool {
                window: win(&k, &s, &p, AutoPad::NotSet),
                ceil_mode: ceil,
                count_include_pad: cip,
            };
            let a = b.node(ap, "ap", &[x]);
            b.g.add_output(a, format!("ap{cip}"));
        }
        let ga = b.node(Op::GlobalAveragePool, "ga", &[x]);
        let gm = b.node(Op::GlobalMaxPool, "gm", &[x]);
        let ins = [("x", rand_tensor(&mut r, &sx, -1.0, 1.0))];
        run_outs(b, &[m[0], m[1], ga, gm], &ins);
    }
}

#[test]
fn resize_nearest_and_linear() {
    let mut r = rng(10);
    for (mode, coord, scales) in [
        (
            ResizeMode::Nearest,
            CoordTransform::Asymmetric,
            [1.0, 1.0, 2.0, 3.0],
        ),
        (
            ResizeMode::Linear,
            CoordTransform::HalfPixel,
            [1.0, 1.0, 0.6, 1.7],
        ),
        (
            ResizeMode::Linear,
            CoordTransform::AlignCorners,
            [1.0, 1.0, 2.0, 2.0],
        ),
        (
            ResizeMode::Cubic,
            CoordTransform::HalfPixel,
            [1.0, 1.0, 1.5, 0.5],
        ),
    ] {
        let mut b = builder("resize");
        let x = input(&mut b, "x", DType::F32, &[1, 2, 4, 6]);
        let sc = b.konst("scales", &[4], &scales);
        let attrs = ResizeAttrs::with_defaults(mode, coord);
        let y = b.node_n(
            Op::Resize(Box::new(attrs)),
            "y",
            &[Some(x), None, Some(sc)],
            1,
        )[0];
        let ins = [("x", rand_tensor(&mut r, &[1, 2, 4, 6], -1.0, 1.0))];
        run_outs(b, &[y], &ins);
    }
}
