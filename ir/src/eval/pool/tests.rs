//! Hand-checked tests of the pooling ops.

use super::*;

fn win(auto_pad: AutoPad, kernel: &[usize], strides: &[usize], pads: &[usize]) -> Window {
    Window {
        auto_pad,
        kernel_shape: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: vec![],
        pads: pads.to_vec(),
    }
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn from1(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32s(shape, &(1..=n).map(|v| v as f32).collect::<Vec<_>>())
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn max_pool_indices_storage_order_and_channel_offset() {
    let x = from1(&[1, 2, 5, 5]);
    let w = win(AutoPad::NotSet, &[2, 2], &[2, 2], &[]);
    let r = max_pool(&w, false, 0, &[Some(&x)], 2).unwrap();
    assert_eq!(&vals(&r[0])[..4], &[7.0, 9.0, 17.0, 19.0]);
    // Second channel: values +25, flat indices +25.
    assert_eq!(
        r[1].as_slice::<i64>().unwrap(),
        &[6, 8, 16, 18, 31, 33, 41, 43]
    );
    let r = max_pool(&w, false, 1, &[Some(&x)], 2).unwrap();
    assert_eq!(&r[1].as_slice::<i64>().unwrap()[..4], &[6, 16, 8, 18]);
}

#[test]
fn max_pool_pads_int8_and_ceil() {
    let x = from1(&[1, 1, 5, 5]);
    let w = win(AutoPad::NotSet, &[5, 5], &[], &[2, 2, 2, 2]);
    let r = max_pool(&w, false, 0, &[Some(&x)], 2).unwrap();
    assert_eq!(&vals(&r[0])[..5], &[13.0, 14.0, 15.0, 15.0, 15.0]);
    assert_eq!(&r[1].as_slice::<i64>().unwrap()[..5], &[12, 13, 14, 14, 14]);
    let xi = Tensor::from_vec(vec![1, 1, 1, 3], vec![-5i8, 7, -1]);
    let r = max_pool(
        &win(AutoPad::NotSet, &[1, 2], &[], &[]),
        false,
        0,
        &[Some(&xi)],
        1,
    )
    .unwrap();
    assert_eq!(r[0].as_slice::<i8>().unwrap(), &[7, 7]);
    // 4x4, kernel 3, stride 2, ceil: the second window hangs past the end.
    let x = from1(&[1, 1, 4, 4]);
    let r = max_pool(
        &win(AutoPad::NotSet, &[3, 3], &[2, 2], &[]),
        true,
        0,
        &[Some(&x)],
        1,
    )
    .unwrap();
    assert_eq!(vals(&r[0]), vec![11.0, 12.0, 15.0, 16.0]);
    // Kernel 1, stride 2 over 2 elements: ceil would give 2 windows, the last starting
    // outside the input, so it is dropped.
    let x = from1(&[1, 1, 2, 2]);
    let r = max_pool(
        &win(AutoPad::NotSet, &[1, 1], &[2, 2], &[]),
        true,
        0,
        &[Some(&x)],
        1,
    )
    .unwrap();
    assert_eq!(vals(&r[0]), vec![1.0]);
}

#[test]
fn average_pool_ceil_mode() {
    let x = from1(&[1, 1, 4, 4]);
    let r = average_pool(
        &win(AutoPad::NotSet, &[3, 3], &[2, 2], &[]),
        true,
        false,
        &[Some(&x)],
    )
    .unwrap();
    assert_eq!(vals(&r[0]), vec![6.0, 7.5, 12.0, 13.5]);
    // The last window starts on the end padding; with count_include_pad the divisor is 9.
    let x = f32s(&[1, 1, 2, 2], &[0.8580, 0.0786, 0.2692, 0.1537]);
    let r = average_pool(
        &win(AutoPad::NotSet, &[3, 3], &[3, 3], &[1, 1, 1, 1]),
        true,
        true,
        &[Some(&x)],
    )
    .unwrap();
    assert_eq!(r[0].shape(), &[1, 1, 1, 1]);
    assert!((vals(&r[0])[0] - 1.3595 / 9.0).abs() < 1e-6);
    // Reference quirk: ceil mode adds 2 extra pads (one at the begin), which shifts the
    // windows: [pad, 1, 2, 3] → 2 and [3, 4] (cut at the input end) → 3.5.
    let x = from1(&[1, 1, 5]);
    let r = average_pool(
        &win(AutoPad::NotSet, &[4], &[3], &[]),
        true,
        false,
        &[Some(&x)],
    )
    .unwrap();
    assert_eq!(vals(&r[0]), vec![2.0, 3.5]);
}

#[test]
fn average_pool_pads_and_same() {
    // 1-D [1,2,3], kernel 3, pads 1: edges average 2 or 3 values unless pads count.
    let x = from1(&[1, 1, 3]);
    let w = win(AutoPad::NotSet, &[3], &[], &[1, 1]);
    assert_eq!(
        vals(&average_pool(&w, false, false, &[Some(&x)]).unwrap()[0]),
        vec![1.5, 2.0, 2.5]
    );
    assert_eq!(
        vals(&average_pool(&w, false, true, &[Some(&x)]).unwrap()[0]),
        vec![1.0, 2.0, 5.0 / 3.0]
    );
    // SAME_UPPER, kernel 2: the pad goes at the end.
    let w = win(AutoPad::SameUpper, &[2], &[], &[]);
    assert_eq!(
        vals(&average_pool(&w, false, false, &[Some(&x)]).unwrap()[0]),
        vec![1.5, 2.5, 3.0]
    );
    let w = win(AutoPad::SameLower, &[2], &[], &[]);
    assert_eq!(
        vals(&average_pool(&w, false, false, &[Some(&x)]).unwrap()[0]),
        vec![1.0, 1.5, 2.5]
    );
}

#[test]
fn global_pools() {
    let x = from1(&[1, 2, 2]);
    assert_eq!(
        vals(&global_pool(false, &[Some(&x)]).unwrap()[0]),
        vec![1.5, 3.5]
    );
    let y = global_pool(true, &[Some(&x)]).unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 1]);
    assert_eq!(vals(&y[0]), vec![2.0, 4.0]);
}

#[test]
fn valid_auto_pad_ignores_ceil_mode() {
    // The ONNX reference: VALID gives ceil((3 - 2 + 1) / 2) = 1 window whatever ceil_mode
    // says (MaxPool ignores it; AveragePool's reference rejects the combination).
    let x = from1(&[1, 1, 3]);
    let w = win(AutoPad::Valid, &[2], &[2], &[]);
    for ceil in [false, true] {
        let r = max_pool(&w, ceil, 0, &[Some(&x)], 1).unwrap();
        assert_eq!(r[0].shape(), &[1, 1, 1]);
        assert_eq!(vals(&r[0]), [2.0]);
        let r = average_pool(&w, ceil, false, &[Some(&x)]).unwrap();
        assert_eq!(r[0].shape(), &[1, 1, 1]);
        assert_eq!(vals(&r[0]), [1.5]);
    }
}
