//! Tests of `scatter.rs`, `rearrange.rs` and `norm_extra.rs` through `eval_op`, and of their
//! shape inference.

use crate::eval::eval_op;
use crate::{infer, DType, Dim, Op, ScatterKind, ScatterReduction, Tensor, TensorType, Window};

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn run(op: Op, ins: &[&Tensor], outs: usize) -> Result<Vec<Tensor>, String> {
    let args: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
    eval_op(&op, &args, outs)
}

fn run1(op: Op, ins: &[&Tensor]) -> Tensor {
    run(op, ins, 1).unwrap().remove(0)
}

fn scatter(kind: ScatterKind, reduction: ScatterReduction) -> Op {
    Op::Scatter { kind, reduction }
}

#[test]
fn scatter_elements_duplicates_negative_and_bad_indices() {
    let data = f32s(&[1, 5], &[1., 2., 3., 4., 5.]);
    let ind = i64s(&[1, 2], &[1, -4]);
    let upd = f32s(&[1, 2], &[1.1, 2.1]);
    let add = scatter(ScatterKind::Elements { axis: 1 }, ScatterReduction::Add);
    let y = run1(add.clone(), &[&data, &ind, &upd]);
    assert_eq!(y.to_f64_vec()[1], (2.0f32 + 1.1 + 2.1) as f64);
    let bad = i64s(&[1, 2], &[1, 5]);
    let e = run(add.clone(), &[&data, &bad, &upd], 1).unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    let short = f32s(&[1, 1], &[1.0]);
    assert!(run(add, &[&data, &ind, &short], 1).is_err());
}

#[test]
fn scatter_nd_slices_and_integer_reductions() {
    let data = Tensor::from_vec(vec![2, 2], vec![1i32, 2, 3, 4]);
    let ind = i64s(&[1, 1], &[1]);
    let upd = Tensor::from_vec(vec![1, 2], vec![i32::MAX, 10]);
    let op = scatter(ScatterKind::Nd, ScatterReduction::Add);
    let y = run1(op.clone(), &[&data, &ind, &upd]);
    assert_eq!(
        y.as_slice::<i32>().unwrap(),
        &[1, 2, 3i32.wrapping_add(i32::MAX), 14]
    );
    let wrong = Tensor::from_vec(vec![2], vec![1i32, 2]);
    let e = run(op, &[&data, &ind, &wrong], 1).unwrap_err();
    assert!(e.contains("updates shape"), "{e}");
}

#[test]
fn tensor_scatter_linear_and_circular() {
    let past = f32s(&[1, 3, 1], &[0., 0., 0.]);
    let upd = f32s(&[1, 2, 1], &[7., 8.]);
    let w = i64s(&[1], &[2]);
    let lin = scatter(
        ScatterKind::Tensor {
            axis: 1,
            circular: false,
        },
        ScatterReduction::None,
    );
    assert!(run(lin, &[&past, &upd, &w], 1).is_err());
    let circ = scatter(
        ScatterKind::Tensor {
            axis: 1,
            circular: true,
        },
        ScatterReduction::None,
    );
    let y = run1(circ, &[&past, &upd, &w]);
    assert_eq!(y.to_f64_vec(), vec![8., 0., 7.]);
}

#[test]
fn compress_and_unique() {
    let x = f32s(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let c = Tensor::from_vec(vec![2], vec![false, true]);
    let y = run1(Op::Compress { axis: Some(0) }, &[&x, &c]);
    assert_eq!(
        (y.shape(), y.to_f64_vec()),
        (&[1usize, 2][..], vec![3., 4.])
    );
    let y = run1(Op::Compress { axis: None }, &[&x, &c]);
    assert_eq!(y.to_f64_vec(), vec![2.]);
    let long = Tensor::from_vec(vec![4], vec![false, false, false, true]);
    assert!(run(Op::Compress { axis: Some(0) }, &[&x, &long], 1).is_err());

    let x = f32s(&[6], &[2., 1., 1., 3., 4., 3.]);
    let op = Op::Unique {
        axis: None,
        sorted: false,
    };
    let o = run(op, &[&x], 4).unwrap();
    assert_eq!(o[0].to_f64_vec(), vec![2., 1., 3., 4.]);
    assert_eq!(o[1].to_i64_vec(), vec![0, 1, 3, 4]);
    assert_eq!(o[2].to_i64_vec(), vec![0, 1, 1, 2, 3, 2]);
    assert_eq!(o[3].to_i64_vec(), vec![1, 2, 2, 1]);
}

#[test]
fn reverse_sequence_checks_lengths() {
    let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let op = Op::ReverseSequence {
        batch_axis: 0,
        time_axis: 1,
    };
    let y = run1(op.clone(), &[&x, &i64s(&[2], &[3, 2])]);
    assert_eq!(y.to_f64_vec(), vec![3., 2., 1., 5., 4., 6.]);
    assert!(run(op.clone(), &[&x, &i64s(&[2], &[4, 1])], 1).is_err());
    assert!(run(op, &[&x, &i64s(&[1], &[1])], 1).is_err());
}

#[test]
fn depth_space_round_trip() {
    let v: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let x = f32s(&[1, 8, 2, 2], &v);
    for crd in [false, true] {
        let d = run1(Op::DepthToSpace { blocksize: 2, crd }, &[&x]);
        assert_eq!(d.shape(), &[1, 2, 4, 4]);
        let back = run1(Op::SpaceToDepth { blocksize: 2, crd }, &[&d]);
        assert_eq!(back, x);
    }
    assert!(run(
        Op::DepthToSpace {
            blocksize: 3,
            crd: false
        },
        &[&x],
        1
    )
    .is_err());
}

#[test]
fn center_crop_pad_crops_and_pads() {
    let x = f32s(&[1, 4], &[1., 2., 3., 4.]);
    let op = Op::CenterCropPad {
        axes: Some(vec![-1]),
    };
    let y = run1(op.clone(), &[&x, &i64s(&[1], &[2])]);
    assert_eq!(y.to_f64_vec(), vec![2., 3.]);
    let y = run1(op.clone(), &[&x, &i64s(&[1], &[7])]);
    assert_eq!(y.to_f64_vec(), vec![0., 1., 2., 3., 4., 0., 0.]);
    assert!(run(op, &[&x, &i64s(&[2], &[1, 1])], 1).is_err());
}

#[test]
fn col2im_sums_overlaps_and_checks_geometry() {
    // 1-D image of 3, block 2, stride 1: blocks [0,1] and [1,2].
    let x = f32s(&[1, 2, 2], &[1., 2., 10., 20.]);
    let op = Op::Col2Im {
        dilations: vec![],
        pads: vec![],
        strides: vec![],
    };
    let y = run1(op.clone(), &[&x, &i64s(&[1], &[3]), &i64s(&[1], &[2])]);
    assert_eq!(
        (y.shape(), y.to_f64_vec()),
        (&[1usize, 1, 3][..], vec![1., 12., 20.])
    );
    assert!(run(op, &[&x, &i64s(&[1], &[4]), &i64s(&[1], &[2])], 1).is_err());
}

#[test]
fn max_unpool_rejects_bad_indices() {
    let w = Window {
        auto_pad: crate::AutoPad::NotSet,
        kernel_shape: vec![2],
        strides: vec![2],
        dilations: vec![],
        pads: vec![],
    };
    let x = f32s(&[1, 1, 2], &[5., 6.]);
    let op = Op::MaxUnpool { window: w };
    let y = run1(op.clone(), &[&x, &i64s(&[1, 1, 2], &[1, 2])]);
    assert_eq!(y.to_f64_vec(), vec![0., 5., 6., 0.]);
    assert!(run(op, &[&x, &i64s(&[1, 1, 2], &[1, 4])], 1).is_err());
}

#[test]
fn norms_and_det() {
    let x = f32s(&[1, 2], &[0., 0.]);
    let y = run1(Op::LpNormalization { axis: -1, p: 2 }, &[&x]);
    assert_eq!(y.to_f64_vec(), vec![0., 0.]);
    let m = f32s(&[2, 2, 2], &[1., 2., 3., 4., 0., 1., 1., 0.]);
    let d = run1(Op::Det, &[&m]);
    assert_eq!(d.to_f64_vec(), vec![-2., -1.]);
    assert!(run(Op::Det, &[&f32s(&[2, 3], &[0.; 6])], 1).is_err());
    let g = Op::GroupNormalization {
        epsilon: 0.0,
        num_groups: 3,
        per_group_affine: false,
    };
    let x = f32s(&[1, 2, 1], &[1., 2.]);
    let s = f32s(&[2], &[1., 1.]);
    assert!(run(g, &[&x, &s, &s], 1).is_err());
}

#[test]
fn inference_uses_constant_inputs() {
    let x = TensorType::fixed(DType::F32, &[3, 2]);
    let c = Tensor::from_vec(vec![3], vec![true, false, true]);
    let ct = TensorType::fixed(DType::Bool, &[3]);
    let out = infer::infer_node(
        &Op::Compress { axis: Some(0) },
        &[Some(&x), Some(&ct)],
        &[None, Some(&c)],
        1,
    )
    .unwrap();
    assert_eq!(out[0], TensorType::fixed(DType::F32, &[2, 2]));
    let out = infer::infer_node(
        &Op::Unique {
            axis: Some(1),
            sorted: true,
        },
        &[Some(&x)],
        &[None],
        4,
    )
    .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[2].shape, Some(vec![Dim::Known(2)]));
    assert_eq!(
        out[0].shape.as_ref().unwrap()[1],
        out[1].shape.as_ref().unwrap()[0]
    );
    let sh = Tensor::from_vec(vec![1], vec![5i64]);
    let st = TensorType::fixed(DType::I64, &[1]);
    let out = infer::infer_node(
        &Op::CenterCropPad {
            axes: Some(vec![0]),
        },
        &[Some(&x), Some(&st)],
        &[None, Some(&sh)],
        1,
    )
    .unwrap();
    assert_eq!(out[0], TensorType::fixed(DType::F32, &[5, 2]));
    let bad = infer::infer_node(
        &Op::DepthToSpace {
            blocksize: 2,
            crd: false,
        },
        &[Some(&x)],
        &[None],
        1,
    );
    assert!(bad.is_err());
}
