//! Property test: random Conv → BatchNormalization → activation networks (random channels,
//! kernel sizes, groups including depthwise, pads, strides, ConvTranspose, a following
//! BN → unpadded Conv) keep their outputs within 1e-5 relative after `fold-bn`, and every
//! BN disappears.

use proptest::prelude::*;
use whittle_ir::eval::run;
use whittle_ir::{
    infer::infer_graph, AutoPad, Graph, Op, Tensor, TensorType, UnaryOp, Value, Window,
};
use whittle_passes::{PassContext, Pipeline};

fn tensor(shape: Vec<usize>, vals: &mut impl Iterator<Item = f64>) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f64> = vals.take(n).collect();
    Tensor::from_f64(whittle_ir::DType::F32, shape, &v)
}

fn window(k: usize, pad: usize, stride: usize) -> Window {
    Window {
        auto_pad: AutoPad::NotSet,
        kernel_shape: vec![k, k],
        strides: vec![stride, stride],
        dilations: vec![],
        pads: vec![pad; 4],
    }
}

#[derive(Debug, Clone)]
struct Net {
    cin: usize,
    groups: usize,
    per_group_out: usize,
    k: usize,
    pad: usize,
    stride: usize,
    transpose: bool,
    depthwise: bool,
    following: bool,
    seed: u64,
}

fn build(n: &Net) -> Graph {
    let mut seed = n.seed;
    let mut vals = std::iter::from_fn(move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Some(((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
    });
    let mut g = Graph::new("net");
    let (groups, cin) = if n.depthwise {
        (n.cin, n.cin)
    } else {
        (n.groups, n.cin * n.groups)
    };
    let cout = if n.depthwise {
        n.cin
    } else {
        n.per_group_out * groups
    };
    let f32 = whittle_ir::DType::F32;
    let x = g.add_input("x", TensorType::fixed(f32, &[1, cin, 7, 7]));
    let unk = TensorType::unknown_rank(f32);
    let (op, wshape) = if n.transpose {
        (
            Op::ConvTranspose {
                window: window(n.k, 0, n.stride),
                group: groups,
                output_padding: vec![],
                output_shape: vec![],
            },
            vec![cin, cout / groups, n.k, n.k],
        )
    } else {
        (
            Op::Conv {
                window: window(n.k, n.pad, n.stride),
                group: groups,
            },
            vec![cout, cin / groups, n.k, n.k],
        )
    };
    let w = g.add_const("w", tensor(wshape, &mut vals));
    let b = g.add_const("b", tensor(vec![cout], &mut vals));
    let info = |name: &str| {
        vec![whittle_ir::ValueInfo {
            name: name.into(),
            ty: unk.clone(),
        }]
    };
    let c = g.add_node(op, "conv", &[Some(x), Some(w), Some(b)], info("conv"));
    let bn = |g: &mut Graph,
              vals: &mut dyn Iterator<Item = f64>,
              input: Value,
              ch: usize,
              name: &str| {
        let mut consts = vec![];
        for (i, what) in ["s", "b", "m", "v"].iter().enumerate() {
            let mut t: Vec<f64> = vals.take(ch).collect();
            if i == 3 {
                t.iter_mut().for_each(|v| *v = v.abs() + 0.1);
            }
            let t = Tensor::from_f64(f32, vec![ch], &t);
            consts.push(Some(g.add_const(format!("{name}_{what}"), t)));
        }
        let mut ins = vec![Some(input)];
        ins.extend(consts);
        let id = g.add_node(
            Op::BatchNormalization { epsilon: 1e-5 },
            name,
            &ins,
            info(name),
        );
        Value::new(id, 0)
    };
    let y = bn(&mut g, &mut vals, Value::new(c, 0), cout, "bn");
    let act = g.add_node(
        Op::Unary(UnaryOp::HardSwish),
        "act",
        &[Some(y)],
        info("act"),
    );
    let mut out = Value::new(act, 0);
    if n.following {
        let z = bn(&mut g, &mut vals, out, cout, "bn2");
        let w2 = g.add_const("w2", tensor(vec![3, cout, 1, 1], &mut vals));
        let c2 = g.add_node(
            Op::Conv {
                window: window(1, 0, 1),
                group: 1,
            },
            "conv2",
            &[Some(z), Some(w2), None],
            info("conv2"),
        );
        out = Value::new(c2, 0);
    }
    g.add_output(out, "y");
    infer_graph(&mut g).unwrap();
    g
}

fn net() -> impl Strategy<Value = Net> {
    (
        1usize..4,
        1usize..3,
        1usize..4,
        prop_oneof![Just(1usize), Just(3)],
        0usize..2,
        1usize..3,
    )
        .prop_flat_map(|(cin, groups, per_group_out, k, pad, stride)| {
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
                move |(transpose, depthwise, following, seed)| Net {
                    cin,
                    groups,
                    per_group_out,
                    k,
                    pad,
                    stride,
                    transpose,
                    depthwise: depthwise && !transpose,
                    following,
                    seed,
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn fold_bn_keeps_outputs(n in net()) {
        let g = build(&n);
        let mut h = g.clone();
        Pipeline::parse("fold-bn,dce").unwrap()
            .run(&mut h, &mut PassContext { verify: true, ..Default::default() })
            .unwrap();
        let bns = h.node_ids().filter(|&i| matches!(h.node(i).op, Op::BatchNormalization { .. })).count();
        prop_assert_eq!(bns, 0, "BN left in {:?}", n);
        let cin = g.input_type(0).concrete_shape().unwrap();
        let n_in: usize = cin.iter().product();
        let xs: Vec<f64> = (0..n_in).map(|i| ((i * 7919 % 113) as f64 / 56.0) - 1.0).collect();
        let x = Tensor::from_f64(whittle_ir::DType::F32, cin, &xs);
        let want = run(&g, &[("x", x.clone())]).unwrap();
        let got = run(&h, &[("x", x)]).unwrap();
        let (a, b) = (want[0].1.to_f64_vec(), got[0].1.to_f64_vec());
        let scale = a.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        let err = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max) / scale;
        prop_assert!(err <= 1e-5, "relative error {} for {:?}", err, n);
    }
}

/// PASSES.md §2 test 1: Conv → BN folded into the preceding plain Conv, depthwise Conv and
/// ConvTranspose keeps f32 outputs within 1e-6 relative (max-abs over max |output|).
#[test]
fn conv_bn_fold_is_within_1e6() {
    let base = Net {
        cin: 3,
        groups: 1,
        per_group_out: 4,
        k: 3,
        pad: 1,
        stride: 1,
        transpose: false,
        depthwise: false,
        following: false,
        seed: 42,
    };
    let cases = [
        base.clone(),
        Net {
            depthwise: true,
            seed: 43,
            ..base.clone()
        },
        Net {
            transpose: true,
            stride: 2,
            seed: 44,
            ..base
        },
    ];
    for n in cases {
        let g = build(&n);
        let mut h = g.clone();
        Pipeline::parse("fold-bn,dce")
            .unwrap()
            .run(
                &mut h,
                &mut PassContext {
                    verify: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(!h
            .node_ids()
            .any(|i| matches!(h.node(i).op, Op::BatchNormalization { .. })));
        let cin = g.input_type(0).concrete_shape().unwrap();
        let count: usize = cin.iter().product();
        let xs: Vec<f64> = (0..count)
            .map(|i| ((i * 7919 % 113) as f64 / 56.0) - 1.0)
            .collect();
        let x = Tensor::from_f64(whittle_ir::DType::F32, cin, &xs);
        let want = run(&g, &[("x", x.clone())]).unwrap();
        let got = run(&h, &[("x", x)]).unwrap();
        let (a, b) = (want[0].1.to_f64_vec(), got[0].1.to_f64_vec());
        let scale = a.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
            / scale;
        assert!(err <= 1e-6, "relative error {err:e} for {n:?}");
        eprintln!("{n:?}: relative error {err:e}");
    }
}
