//! Hand-checked tests of the movement ops.

use super::*;
use crate::PadMode;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v)
}

fn i64s(v: &[i64]) -> Tensor {
    t(&[v.len()], v.to_vec())
}

#[test]
fn slice_negative_steps_and_clamping() {
    // x = [0..10); x[8:1:-3] = [8, 5, 2]
    let x = t(&[10], (0..10).map(|v| v as f32).collect());
    let y = slice(&[
        Some(&x),
        Some(&i64s(&[8])),
        Some(&i64s(&[1])),
        None,
        Some(&i64s(&[-3])),
    ])
    .unwrap();
    assert_eq!(y[0].as_slice::<f32>().unwrap(), &[8.0, 5.0, 2.0]);
    // x[-1:INT_MIN:-1] is the whole array reversed.
    let y = slice(&[
        Some(&x),
        Some(&i64s(&[-1])),
        Some(&i64s(&[i64::MIN])),
        None,
        Some(&i64s(&[-1])),
    ])
    .unwrap();
    assert_eq!(
        y[0].as_slice::<f32>().unwrap(),
        &[9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    );
    // 2-D, axes given, start past the end clamps to an empty result.
    let m = t(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
    let y = slice(&[
        Some(&m),
        Some(&i64s(&[1])),
        Some(&i64s(&[i64::MAX])),
        Some(&i64s(&[-1])),
        None,
    ])
    .unwrap();
    assert_eq!(y[0].shape(), &[2, 2]);
    assert_eq!(y[0].as_slice::<i32>().unwrap(), &[2, 3, 5, 6]);
    let y = slice(&[
        Some(&m),
        Some(&i64s(&[5])),
        Some(&i64s(&[9])),
        Some(&i64s(&[1])),
        None,
    ])
    .unwrap();
    assert_eq!(y[0].shape(), &[2, 0]);
}

#[test]
fn pad_modes() {
    let x = t(&[1, 3], vec![1.0f32, 2.0, 3.0]);
    let pads = i64s(&[0, 2, 0, 2]);
    let run = |m| {
        pad(m, &[Some(&x), Some(&pads), None, None]).unwrap()[0]
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    };
    assert_eq!(
        run(PadMode::Reflect),
        vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    );
    assert_eq!(run(PadMode::Edge), vec![1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
    assert_eq!(run(PadMode::Wrap), vec![2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0]);
    assert_eq!(
        run(PadMode::Constant),
        vec![0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0]
    );
    // Constant value and axes inputs; negative pads crop.
    let cv = Tensor::scalar(9.0f32);
    let y = pad(
        PadMode::Constant,
        &[
            Some(&x),
            Some(&i64s(&[-1, 1])),
            Some(&cv),
            Some(&i64s(&[-1])),
        ],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 3]);
    assert_eq!(y[0].as_slice::<f32>().unwrap(), &[2.0, 3.0, 9.0]);
}

#[test]
fn reshape_transpose_squeeze() {
    let x = t(&[2, 3], vec![1u8, 2, 3, 4, 5, 6]);
    let y = reshape(false, &[Some(&x), Some(&i64s(&[0, -1, 1]))]).unwrap();
    assert_eq!(y[0].shape(), &[2, 3, 1]);
    assert!(reshape(false, &[Some(&x), Some(&i64s(&[-1, -1]))]).is_err());
    let y = transpose(None, &[Some(&x)]).unwrap();
    assert_eq!(y[0].shape(), &[3, 2]);
    assert_eq!(y[0].as_slice::<u8>().unwrap(), &[1, 4, 2, 5, 3, 6]);
    let z = t(&[1, 3, 1], vec![true, false, true]);
    assert_eq!(squeeze(&[Some(&z), None]).unwrap()[0].shape(), &[3]);
    assert_eq!(
        squeeze(&[Some(&z), Some(&i64s(&[-1]))]).unwrap()[0].shape(),
        &[1, 3]
    );
    assert!(squeeze(&[Some(&z), Some(&i64s(&[1]))]).is_err());
    assert_eq!(
        unsqueeze(&[Some(&x), Some(&i64s(&[-1, 0]))]).unwrap()[0].shape(),
        &[1, 2, 3, 1]
    );
    assert_eq!(flatten(-1, &[Some(&z)]).unwrap()[0].shape(), &[3, 1]);
}

#[test]
fn concat_split_tile_expand() {
    let a = t(&[2, 1], vec![1i64, 2]);
    let b = t(&[2, 2], vec![3i64, 4, 5, 6]);
    let y = concat(-1, &[Some(&a), Some(&b)]).unwrap();
    assert_eq!(y[0].as_slice::<i64>().unwrap(), &[1, 3, 4, 2, 5, 6]);
    let x = t(&[5], vec![1.0f64, 2.0, 3.0, 4.0, 5.0]);
    let parts = split(0, 2, &[Some(&x), None]).unwrap();
    assert_eq!(parts[0].as_slice::<f64>().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(parts[1].as_slice::<f64>().unwrap(), &[4.0, 5.0]);
    let parts = split(0, 2, &[Some(&x), Some(&i64s(&[1, 4]))]).unwrap();
    assert_eq!(parts[1].shape(), &[4]);
    // 5 into 4: parts of ceil(5 / 4) = 2 clamped to what is left, as the ONNX reference's
    // numpy slices (shape inference gives the same sizes).
    let parts = split(0, 4, &[Some(&x), None]).unwrap();
    let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[0]).collect();
    assert_eq!(sizes, [2, 2, 1, 0]);
    assert_eq!(parts[2].as_slice::<f64>().unwrap(), &[5.0]);
    let y = tile(&[Some(&a), Some(&i64s(&[1, 2]))]).unwrap();
    assert_eq!(y[0].as_slice::<i64>().unwrap(), &[1, 1, 2, 2]);
    let y = expand(&[Some(&a), Some(&i64s(&[2, 1, 3]))]).unwrap();
    assert_eq!(y[0].shape(), &[2, 2, 3]);
}

#[test]
fn shape_range_trilu_nonzero() {
    let x = Tensor::zeros(crate::DType::F32, vec![2, 3, 4]);
    let y = shape(-2, None, &[Some(&x)]).unwrap();
    assert_eq!(y[0].as_slice::<i64>().unwrap(), &[3, 4]);
    let y = shape(0, Some(-5), &[Some(&x)]).unwrap();
    assert_eq!(y[0].shape(), &[0]);
    let y = range(&[
        Some(&Tensor::scalar(10i32)),
        Some(&Tensor::scalar(4i32)),
        Some(&Tensor::scalar(-3i32)),
    ])
    .unwrap();
    assert_eq!(y[0].as_slice::<i32>().unwrap(), &[10, 7]);
    let y = range(&[
        Some(&Tensor::scalar(1.0f32)),
        Some(&Tensor::scalar(2.0f32)),
        Some(&Tensor::scalar(0.3f32)),
    ])
    .unwrap();
    assert_eq!(y[0].len(), 4);
    let m = t(&[3, 3], (1..=9).map(|v| v as f32).collect());
    let y = trilu(true, &[Some(&m), Some(&Tensor::scalar(1i64))]).unwrap();
    assert_eq!(
        y[0].as_slice::<f32>().unwrap(),
        &[0.0, 2.0, 3.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0]
    );
    let y = trilu(false, &[Some(&m), None]).unwrap();
    assert_eq!(
        y[0].as_slice::<f32>().unwrap(),
        &[1.0, 0.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0, 9.0]
    );
    let z = t(&[2, 2], vec![1i32, 0, 0, 3]);
    let y = non_zero(&[Some(&z)]).unwrap();
    assert_eq!(y[0].shape(), &[2, 2]);
    assert_eq!(y[0].as_slice::<i64>().unwrap(), &[0, 1, 0, 1]);
    let v = t(&[1], vec![7u8]);
    let y = constant_of_shape(&v, &[Some(&t(&[0], Vec::<i64>::new()))]).unwrap();
    assert_eq!(y[0].shape(), &[] as &[usize]);
    assert_eq!(y[0].as_slice::<u8>().unwrap(), &[7]);
}

#[test]
fn gathers_and_one_hot() {
    let x = t(&[3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = gather(0, &[Some(&x), Some(&t(&[2], vec![-1i32, 0]))]).unwrap();
    assert_eq!(y[0].as_slice::<f32>().unwrap(), &[5.0, 6.0, 1.0, 2.0]);
    assert!(gather(0, &[Some(&x), Some(&t(&[1], vec![3i64]))]).is_err());
    let y = gather_elements(1, &[Some(&x), Some(&t(&[3, 1], vec![1i64, 0, -1]))]).unwrap();
    assert_eq!(y[0].as_slice::<f32>().unwrap(), &[2.0, 3.0, 6.0]);
    // batch_dims = 1: data [2,2,2], indices [2,1] picks row indices[b] of batch b.
    let d = t(&[2, 2, 2], (0..8).collect::<Vec<i64>>());
    let y = gather_nd(1, &[Some(&d), Some(&t(&[2, 1], vec![1i64, 0]))]).unwrap();
    assert_eq!(y[0].shape(), &[2, 2]);
    assert_eq!(y[0].as_slice::<i64>().unwrap(), &[2, 3, 4, 5]);
    let vals = t(&[2], vec![0.0f32, 5.0]);
    let y = one_hot(
        0,
        &[
            Some(&t(&[2], vec![-1i64, 1])),
            Some(&Tensor::scalar(3i64)),
            Some(&vals),
        ],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[3, 2]);
    assert_eq!(
        y[0].as_slice::<f32>().unwrap(),
        &[0.0, 0.0, 0.0, 5.0, 5.0, 0.0]
    );
}
