//! Unit tests of per-op shape inference (`infer_node`), with hand-checked shapes.
#![allow(clippy::cloned_ref_to_slice_refs)]

use super::*;
use crate::{AutoPad, ReduceOp, Window};
use std::sync::Arc;

fn k(n: usize) -> Dim {
    Dim::Known(n)
}
fn s(n: &str) -> Dim {
    Dim::Sym(n.into())
}
fn f32t(dims: Vec<Dim>) -> TensorType {
    TensorType::new(DType::F32, dims)
}
fn i64c(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec())
}

/// Infers `op` on typed inputs, some of which are constants.
fn run(
    op: Op,
    types: &[TensorType],
    consts: &[Option<Tensor>],
    n_out: usize,
) -> Result<Vec<TensorType>, String> {
    let tys: Vec<Option<&TensorType>> = types.iter().map(Some).collect();
    let cs: Vec<Option<&Tensor>> = (0..types.len())
        .map(|i| consts.get(i).and_then(|c| c.as_ref()))
        .collect();
    infer_node(&op, &tys, &cs, n_out)
}

fn one(op: Op, types: &[TensorType], consts: &[Option<Tensor>]) -> TensorType {
    run(op, types, consts, 1).unwrap().remove(0)
}

fn const_ty(t: &Tensor) -> TensorType {
    TensorType::fixed(t.dtype(), t.shape())
}

fn window(kernel: &[usize], strides: &[usize], pads: &[usize], auto_pad: AutoPad) -> Window {
    Window {
        auto_pad,
        kernel_shape: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: vec![],
        pads: pads.to_vec(),
    }
}

#[test]
fn broadcasting_keeps_symbols() {
    let a = f32t(vec![s("batch"), s("seq"), k(768)]);
    let b = f32t(vec![k(768)]);
    assert_eq!(one(Op::Binary(BinaryOp::Add), &[a.clone(), b], &[]), a);
    let m = f32t(vec![s("batch"), k(1), k(1), s("seq")]);
    let sc = f32t(vec![s("batch"), k(12), s("seq"), s("seq")]);
    assert_eq!(one(Op::Binary(BinaryOp::Add), &[sc.clone(), m], &[]), sc);
    let cmp = one(
        Op::Binary(BinaryOp::Less),
        &[f32t(vec![k(2), k(1)]), f32t(vec![k(3)])],
        &[],
    );
    assert_eq!(cmp, TensorType::fixed(DType::Bool, &[2, 3]));
    let err = run(
        Op::Binary(BinaryOp::Add),
        &[f32t(vec![k(2), k(3)]), f32t(vec![k(4), k(3)])],
        &[],
        1,
    )
    .unwrap_err();
    assert!(err.contains("[2,3], [4,3]"), "{err}");
    let dt = run(
        Op::Binary(BinaryOp::Add),
        &[f32t(vec![k(2)]), TensorType::fixed(DType::I64, &[2])],
        &[],
        1,
    );
    assert!(dt.is_err());
    let w = one(
        Op::Where,
        &[
            TensorType::fixed(DType::Bool, &[2, 1]),
            f32t(vec![k(3)]),
            f32t(vec![]),
        ],
        &[],
    );
    assert_eq!(w, TensorType::fixed(DType::F32, &[2, 3]));
}

#[test]
fn matmul_shapes_and_errors() {
    let a = f32t(vec![s("b"), s("seq"), k(768)]);
    let w = TensorType::fixed(DType::F32, &[768, 3072]);
    assert_eq!(
        one(Op::MatMul, &[a, w], &[]),
        f32t(vec![s("b"), s("seq"), k(3072)])
    );
    let v = one(
        Op::MatMul,
        &[f32t(vec![k(4)]), f32t(vec![k(2), k(4), k(5)])],
        &[],
    );
    assert_eq!(v, TensorType::fixed(DType::F32, &[2, 5]));
    let err = run(
        Op::MatMul,
        &[f32t(vec![k(2), k(3)]), f32t(vec![k(4), k(5)])],
        &[],
        1,
    )
    .unwrap_err();
    assert!(err.contains("3 vs 4"), "{err}");
    let g = one(
        Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        },
        &[
            f32t(vec![s("n"), k(8)]),
            f32t(vec![k(16), k(8)]),
            f32t(vec![k(16)]),
        ],
        &[],
    );
    assert_eq!(g, f32t(vec![s("n"), k(16)]));
    let ei = one(
        Op::Einsum {
            equation: "bij,bjk->bik".into(),
        },
        &[f32t(vec![k(2), k(3), k(4)]), f32t(vec![k(2), k(4), k(5)])],
        &[],
    );
    assert_eq!(ei, TensorType::fixed(DType::F32, &[2, 3, 5]));
    let implicit = one(
        Op::Einsum {
            equation: "...ij,jk".into(),
        },
        &[f32t(vec![k(7), k(3), k(4)]), f32t(vec![k(4), k(5)])],
        &[],
    );
    assert_eq!(implicit, TensorType::fixed(DType::F32, &[7, 3, 5]));
    let q = one(
        Op::MatMulInteger,
        &[
            TensorType::fixed(DType::U8, &[3, 4]),
            TensorType::fixed(DType::I8, &[4, 2]),
        ],
        &[],
    );
    assert_eq!(q, TensorType::fixed(DType::I32, &[3, 2]));
}

#[test]
fn conv_and_pool_sizes() {
    let x = f32t(vec![s("n"), k(3), k(224), k(224)]);
    let w = TensorType::fixed(DType::F32, &[64, 3, 7, 7]);
    let conv = Op::Conv {
        window: window(&[], &[2, 2], &[3, 3, 3, 3], AutoPad::NotSet),
        group: 1,
    };
    assert_eq!(
        one(conv, &[x.clone(), w.clone()], &[]),
        f32t(vec![s("n"), k(64), k(112), k(112)])
    );
    // SAME_UPPER, stride 2 on 5: ceil(5 / 2) = 3.
    let x5 = TensorType::fixed(DType::F32, &[1, 1, 5, 5]);
    let w3 = TensorType::fixed(DType::F32, &[1, 1, 3, 3]);
    let same = Op::Conv {
        window: window(&[3, 3], &[2, 2], &[], AutoPad::SameUpper),
        group: 1,
    };
    assert_eq!(
        one(same, &[x5.clone(), w3.clone()], &[]),
        TensorType::fixed(DType::F32, &[1, 1, 3, 3])
    );
    // Symbolic spatial dims pass through SAME with stride 1.
    let xs = f32t(vec![k(1), k(1), s("h"), s("w")]);
    let same1 = Op::Conv {
        window: window(&[3, 3], &[], &[], AutoPad::SameLower),
        group: 1,
    };
    assert_eq!(
        one(same1, &[xs, w3.clone()], &[]),
        f32t(vec![k(1), k(1), s("h"), s("w")])
    );
    // Channel mismatch is certain.
    let bad = Op::Conv {
        window: window(&[], &[], &[], AutoPad::NotSet),
        group: 1,
    };
    assert!(run(
        bad,
        &[x, TensorType::fixed(DType::F32, &[8, 4, 3, 3])],
        &[],
        1
    )
    .is_err());
    // maxpool_2d_ceil: 4x4, k 3, s 2, ceil → 2x2; indices output is i64.
    let mp = Op::MaxPool {
        window: window(&[3, 3], &[2, 2], &[], AutoPad::NotSet),
        ceil_mode: true,
        storage_order: 0,
    };
    let outs = run(mp, &[TensorType::fixed(DType::F32, &[1, 1, 4, 4])], &[], 2).unwrap();
    assert_eq!(outs[0], TensorType::fixed(DType::F32, &[1, 1, 2, 2]));
    assert_eq!(outs[1], TensorType::fixed(DType::I64, &[1, 1, 2, 2]));
    let ap = Op::AveragePool {
        window: window(&[2], &[2], &[], AutoPad::Valid),
        ceil_mode: false,
        count_include_pad: false,
    };
    assert_eq!(
        one(ap, &[TensorType::fixed(DType::F32, &[1, 3, 5])], &[]),
        TensorType::fixed(DType::F32, &[1, 3, 2])
    );
    // ConvTranspose: 3 * (3 - 1) + 1 + 3 - 0 = 10 with output_padding 1; [in, out/group, k].
    let ct = Op::ConvTranspose {
        window: window(&[], &[3, 2], &[], AutoPad::NotSet),
        group: 1,
        output_padding: vec![1, 1],
        output_shape: vec![],
    };
    let wt = TensorType::fixed(DType::F32, &[1, 2, 3, 3]);
    let xt = TensorType::fixed(DType::F32, &[1, 1, 3, 3]);
    assert_eq!(
        one(ct, &[xt.clone(), wt.clone()], &[]),
        TensorType::fixed(DType::F32, &[1, 2, 10, 8])
    );
    let ct_shape = Op::ConvTranspose {
        window: window(&[], &[3, 2], &[], AutoPad::NotSet),
        group: 1,
        output_padding: vec![],
        output_shape: vec![10, 8],
    };
    assert_eq!(
        one(ct_shape, &[xt.clone(), wt.clone()], &[]),
        TensorType::fixed(DType::F32, &[1, 2, 10, 8])
    );
    let ct_same = Op::ConvTranspose {
        window: window(&[], &[2, 2], &[], AutoPad::SameUpper),
        group: 1,
        output_padding: vec![],
        output_shape: vec![],
    };
    assert_eq!(
        one(ct_same, &[xt, wt], &[]),
        TensorType::fixed(DType::F32, &[1, 2, 6, 6])
    );
    let gp = one(Op::GlobalAveragePool, &[x5], &[]);
    assert_eq!(gp, TensorType::fixed(DType::F32, &[1, 1, 1, 1]));
}

#[test]
fn value_dependent_shapes() {
    let x = f32t(vec![s("b"), s("seq"), k(768)]);
    let shape = i64c(&[0, 0, 12, 64]);
    let r = one(
        Op::Reshape { allowzero: false },
        &[x.clone(), const_ty(&shape)],
        &[None, Some(shape)],
    );
    assert_eq!(r, f32t(vec![s("b"), s("seq"), k(12), k(64)]));
    let back = i64c(&[0, 0, -1]);
    let r2 = one(
        Op::Reshape { allowzero: false },
        &[r.clone(), const_ty(&back)],
        &[None, Some(back)],
    );
    assert_eq!(r2, x);
    let flat = i64c(&[-1, 768]);
    let r3 = one(
        Op::Reshape { allowzero: false },
        &[x.clone(), const_ty(&flat)],
        &[None, Some(flat)],
    );
    assert_eq!(r3, f32t(vec![s("unk_0"), k(768)]));
    let bad = i64c(&[5, -1]);
    let e = run(
        Op::Reshape { allowzero: false },
        &[TensorType::fixed(DType::F32, &[2, 3]), const_ty(&bad)],
        &[None, Some(bad)],
        1,
    );
    assert!(e.is_err());
    // Reshape with an unknown shape of known length: rank known, sizes fresh.
    let dyn_shape = TensorType::fixed(DType::I64, &[3]);
    assert_eq!(
        one(
            Op::Reshape { allowzero: false },
            &[x.clone(), dyn_shape],
            &[]
        )
        .rank(),
        Some(3)
    );

    let starts = i64c(&[1]);
    let ends = i64c(&[i64::MAX]);
    let axes = i64c(&[2]);
    let steps = i64c(&[2]);
    let sl = one(
        Op::Slice,
        &[
            x.clone(),
            const_ty(&starts),
            const_ty(&ends),
            const_ty(&axes),
            const_ty(&steps),
        ],
        &[None, Some(starts), Some(ends), Some(axes), Some(steps)],
    );
    assert_eq!(sl, f32t(vec![s("b"), s("seq"), k(384)]));
    assert_eq!(movement::slice_len(10, -1, i64::MIN, -1).unwrap(), 10);
    assert_eq!(movement::slice_len(10, 8, 1, -3).unwrap(), 3);
    assert_eq!(movement::slice_len(4, 5, 10, 1).unwrap(), 0);

    let ax = i64c(&[0, 3]);
    let un = one(
        Op::Unsqueeze,
        &[x.clone(), const_ty(&ax)],
        &[None, Some(ax)],
    );
    assert_eq!(un, f32t(vec![k(1), s("b"), s("seq"), k(1), k(768)]));
    let sq_ax = i64c(&[-2]);
    let sq = one(
        Op::Squeeze,
        &[un.clone(), const_ty(&sq_ax)],
        &[None, Some(sq_ax)],
    );
    assert_eq!(sq, f32t(vec![k(1), s("b"), s("seq"), k(768)]));
    let bad_sq = i64c(&[4]);
    assert!(run(
        Op::Squeeze,
        &[un, const_ty(&bad_sq)],
        &[None, Some(bad_sq)],
        1
    )
    .is_err());

    let red_axes = i64c(&[-1]);
    let red = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    assert_eq!(
        one(
            red,
            &[x.clone(), const_ty(&red_axes)],
            &[None, Some(red_axes)]
        ),
        f32t(vec![s("b"), s("seq"), k(1)])
    );
    let red_all = Op::Reduce {
        op: ReduceOp::Sum,
        keepdims: false,
        noop_with_empty_axes: false,
    };
    assert_eq!(one(red_all, &[x.clone()], &[]), f32t(vec![]));

    let split = i64c(&[256, 512]);
    let parts = run(
        Op::Split {
            axis: -1,
            num_outputs: 2,
        },
        &[x.clone(), const_ty(&split)],
        &[None, Some(split)],
        2,
    )
    .unwrap();
    assert_eq!(parts[1], f32t(vec![s("b"), s("seq"), k(512)]));
    let uneven = run(
        Op::Split {
            axis: 0,
            num_outputs: 3,
        },
        &[TensorType::fixed(DType::F32, &[7])],
        &[],
        3,
    )
    .unwrap();
    assert_eq!(
        uneven
            .iter()
            .map(|t| t.concrete_shape().unwrap()[0])
            .collect::<Vec<_>>(),
        vec![3, 3, 1]
    );

    let kk = i64c(&[5]);
    let tk = run(
        Op::TopK {
            axis: -1,
            largest: true,
            sorted: true,
        },
        &[x.clone(), const_ty(&kk)],
        &[None, Some(kk)],
        2,
    )
    .unwrap();
    assert_eq!(
        tk[1],
        TensorType::new(DType::I64, vec![s("b"), s("seq"), k(5)])
    );

    let (st, li, de) = (
        Tensor::scalar(1i64),
        Tensor::scalar(10i64),
        Tensor::scalar(3i64),
    );
    let rg = one(
        Op::Range,
        &[const_ty(&st), const_ty(&li), const_ty(&de)],
        &[Some(st), Some(li), Some(de)],
    );
    assert_eq!(rg, TensorType::fixed(DType::I64, &[3]));
    let (st, li, de) = (
        Tensor::scalar(10.0f32),
        Tensor::scalar(4.0f32),
        Tensor::scalar(-2.5f32),
    );
    let rg = one(
        Op::Range,
        &[const_ty(&st), const_ty(&li), const_ty(&de)],
        &[Some(st), Some(li), Some(de)],
    );
    assert_eq!(rg, TensorType::fixed(DType::F32, &[3]));

    let shp = i64c(&[2, 3]);
    let cos = Op::ConstantOfShape {
        value: Arc::new(Tensor::from_vec(vec![1], vec![1i32])),
    };
    assert_eq!(
        one(cos, &[const_ty(&shp)], &[Some(shp)]),
        TensorType::fixed(DType::I32, &[2, 3])
    );

    let ex = i64c(&[4, 1, 768]);
    assert_eq!(
        one(
            Op::Expand,
            &[f32t(vec![k(1), s("seq"), k(1)]), const_ty(&ex)],
            &[None, Some(ex)]
        ),
        f32t(vec![k(4), s("seq"), k(768)])
    );
    let reps = i64c(&[2, 1, 3]);
    assert_eq!(
        one(Op::Tile, &[x.clone(), const_ty(&reps)], &[None, Some(reps)]),
        f32t(vec![s("unk_0"), s("seq"), k(2304)])
    );
    let pads = i64c(&[0, 1, -2, 0, 2, 0]);
    let padded = one(
        Op::Pad {
            mode: crate::PadMode::Constant,
        },
        &[x.clone(), const_ty(&pads)],
        &[None, Some(pads)],
    );
    assert_eq!(padded, f32t(vec![s("b"), s("unk_0"), k(766)]));

    let sh = one(
        Op::Shape {
            start: 1,
            end: None,
        },
        &[x.clone()],
        &[],
    );
    assert_eq!(sh, TensorType::fixed(DType::I64, &[2]));
    assert_eq!(
        one(
            Op::Shape {
                start: -10,
                end: Some(-1)
            },
            &[x.clone()],
            &[]
        ),
        TensorType::fixed(DType::I64, &[2])
    );
    assert_eq!(
        one(Op::Size, &[x.clone()], &[]),
        TensorType::fixed(DType::I64, &[])
    );

    let depth = Tensor::scalar(10i64);
    let vals = Tensor::from_vec(vec![2], vec![0.0f32, 1.0]);
    let oh = one(
        Op::OneHot { axis: -1 },
        &[
            TensorType::fixed(DType::I64, &[2, 3]),
            const_ty(&depth),
            const_ty(&vals),
        ],
        &[None, Some(depth), Some(vals)],
    );
    assert_eq!(oh, TensorType::fixed(DType::F32, &[2, 3, 10]));
}

#[test]
fn resize_sizes_and_scales() {
    let x = TensorType::fixed(DType::F32, &[1, 1, 4, 6]);
    let attrs = |aspect| {
        Box::new(crate::ResizeAttrs {
            mode: crate::ResizeMode::Nearest,
            coord: crate::CoordTransform::HalfPixel,
            nearest: crate::NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: Some(vec![2, 3]),
            aspect,
        })
    };
    let sizes = i64c(&[7, 8]);
    let tys = [
        x.clone(),
        TensorType::fixed(DType::F32, &[0]),
        TensorType::fixed(DType::F32, &[0]),
        const_ty(&sizes),
    ];
    let r = one(
        Op::Resize(attrs(crate::AspectPolicy::Stretch)),
        &tys,
        &[None, None, None, Some(sizes.clone())],
    );
    assert_eq!(r, TensorType::fixed(DType::F32, &[1, 1, 7, 8]));
    // not_larger: scale = min(7/4, 8/6) = 1.333 → [round(5.33), round(8)] = [5, 8].
    let r = one(
        Op::Resize(attrs(crate::AspectPolicy::NotLarger)),
        &tys,
        &[None, None, None, Some(sizes)],
    );
    assert_eq!(r, TensorType::fixed(DType::F32, &[1, 1, 5, 8]));
    let scales = Tensor::from_vec(vec![2], vec![0.6f32, 2.0]);
    let tys = [x, TensorType::fixed(DType::F32, &[0]), const_ty(&scales)];
    let r = one(
        Op::Resize(attrs(crate::AspectPolicy::Stretch)),
        &tys,
        &[None, None, Some(scales)],
    );
    assert_eq!(r, TensorType::fixed(DType::F32, &[1, 1, 2, 12]));
}

#[test]
fn concat_checks_other_axes() {
    let a = f32t(vec![s("b"), k(3)]);
    let b = f32t(vec![s("b"), k(5)]);
    assert_eq!(
        one(Op::Concat { axis: 1 }, &[a.clone(), b.clone()], &[]),
        f32t(vec![s("b"), k(8)])
    );
    assert_eq!(
        one(Op::Concat { axis: 0 }, &[a.clone(), a.clone()], &[]),
        f32t(vec![s("unk_0"), k(3)])
    );
    let err = run(Op::Concat { axis: 0 }, &[a, b], &[], 1).unwrap_err();
    assert!(err.contains("3 vs 5"), "{err}");
    let t = one(
        Op::Transpose {
            perm: Some(vec![1, 0]),
        },
        &[f32t(vec![s("b"), k(3)])],
        &[],
    );
    assert_eq!(t, f32t(vec![k(3), s("b")]));
    let fl = one(
        Op::Flatten { axis: 1 },
        &[f32t(vec![s("n"), k(3), k(4)])],
        &[],
    );
    assert_eq!(fl, f32t(vec![s("n"), k(12)]));
    let g = one(
        Op::Gather { axis: 0 },
        &[
            f32t(vec![k(30522), k(768)]),
            TensorType::new(DType::I64, vec![s("b"), s("seq")]),
        ],
        &[],
    );
    assert_eq!(g, f32t(vec![s("b"), s("seq"), k(768)]));
}

#[test]
fn every_op_has_a_rule() {
    // Quick smoke over ops not covered above: output counts and dtypes.
    let x = f32t(vec![k(2), k(3)]);
    let outs = run(Op::Dropout, &[x.clone()], &[], 2).unwrap();
    assert_eq!(outs[1].dtype, DType::Bool);
    let ln = run(
        Op::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        },
        &[x.clone(), f32t(vec![k(3)])],
        &[],
        3,
    )
    .unwrap();
    assert_eq!(ln[1], f32t(vec![k(2), k(1)]));
    assert_eq!(
        one(Op::Cast { to: DType::F16 }, &[x.clone()], &[]).dtype,
        DType::F16
    );
    assert_eq!(
        one(
            Op::ArgMax {
                axis: 1,
                keepdims: false,
                select_last_index: false
            },
            &[x.clone()],
            &[]
        ),
        TensorType::fixed(DType::I64, &[2])
    );
    let nz = one(Op::NonZero, &[x.clone()], &[]);
    assert_eq!(nz.shape.as_ref().unwrap()[0], k(2));
    let dq = run(Op::DynamicQuantizeLinear, &[x.clone()], &[], 3).unwrap();
    assert_eq!(dq[0].dtype, DType::U8);
    let q = one(
        Op::QuantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: None,
        },
        &[x.clone(), f32t(vec![])],
        &[],
    );
    assert_eq!(q, TensorType::fixed(DType::U8, &[2, 3]));
    let dq = one(
        Op::DequantizeLinear {
            axis: 1,
            block_size: 0,
        },
        &[q, f32t(vec![])],
        &[],
    );
    assert_eq!(dq, x);
    let idx = TensorType::fixed(DType::I64, &[2, 1]);
    assert_eq!(
        one(Op::GatherNd { batch_dims: 0 }, &[x.clone(), idx], &[]),
        f32t(vec![k(2), k(3)])
    );
}
