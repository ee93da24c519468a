//! Hand-checked tests of Conv and ConvTranspose.

use super::*;

fn win(auto_pad: AutoPad, strides: &[usize], dilations: &[usize], pads: &[usize]) -> Window {
    Window {
        auto_pad,
        kernel_shape: vec![],
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads: pads.to_vec(),
    }
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32s(shape, &(0..n).map(|v| v as f32).collect::<Vec<_>>())
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn conv_1d_padding_stride_dilation_bias() {
    // Kernel extent (3-1)*2+1 = 5 over the padded length 9 with stride 2: 3 outputs.
    // o=0 reads x[-1] (pad), x[1], x[3]: 2*10 + 4*100 = 420, plus bias 0.5.
    let x = f32s(&[1, 1, 7], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let w = f32s(&[1, 1, 3], &[1.0, 10.0, 100.0]);
    let b = f32s(&[1], &[0.5]);
    let y = conv(
        &win(AutoPad::NotSet, &[2], &[2], &[1, 1]),
        1,
        &[Some(&x), Some(&w), Some(&b)],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 1, 3]);
    assert_eq!(vals(&y[0]), vec![420.5, 642.5, 64.5]);
}

#[test]
fn conv_2d_matches_onnx_examples() {
    let x = ramp(&[1, 1, 5, 5]);
    let w = f32s(&[1, 1, 3, 3], &[1.0; 9]);
    let y = conv(
        &win(AutoPad::NotSet, &[], &[], &[1, 1, 1, 1]),
        1,
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(&vals(&y[0])[..5], &[12.0, 21.0, 27.0, 33.0, 24.0]);
    let expect = vec![12.0, 27.0, 24.0, 63.0, 108.0, 81.0, 72.0, 117.0, 84.0];
    let y = conv(
        &win(AutoPad::NotSet, &[2, 2], &[], &[1, 1, 1, 1]),
        1,
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(vals(&y[0]), expect);
    let y = conv(
        &win(AutoPad::SameLower, &[2, 2], &[], &[]),
        1,
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(vals(&y[0]), expect);
}

#[test]
fn conv_grouped() {
    // Two groups of one channel each: [1,1] sums pairs, [1,-1] takes differences.
    let x = f32s(&[1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let w = f32s(&[2, 1, 2], &[1.0, 1.0, 1.0, -1.0]);
    let y = conv(
        &win(AutoPad::NotSet, &[], &[], &[]),
        2,
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 2]);
    assert_eq!(vals(&y[0]), vec![3.0, 5.0, -1.0, -1.0]);
    assert!(conv(
        &win(AutoPad::NotSet, &[], &[], &[]),
        3,
        &[Some(&x), Some(&w)]
    )
    .is_err());
}

#[test]
fn conv_transpose_output_padding_and_pads() {
    // Full output: 2*(2-1) + 1 + 2 = 5 positions; x[i] scatters to 2i (w=1) and 2i+1 (w=10).
    let x = f32s(&[1, 1, 2], &[1.0, 2.0]);
    let w = f32s(&[1, 1, 2], &[1.0, 10.0]);
    let y = conv_transpose(
        &win(AutoPad::NotSet, &[2], &[], &[]),
        1,
        &[1],
        &[],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(vals(&y[0]), vec![1.0, 10.0, 2.0, 20.0, 0.0]);
    let y = conv_transpose(
        &win(AutoPad::NotSet, &[2], &[], &[1, 0]),
        1,
        &[1],
        &[],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(vals(&y[0]), vec![10.0, 2.0, 20.0, 0.0]);
    // An output_shape larger than the full output leaves zeros at the end.
    let y = conv_transpose(
        &win(AutoPad::NotSet, &[2], &[], &[]),
        1,
        &[],
        &[6],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(vals(&y[0]), vec![1.0, 10.0, 2.0, 20.0, 0.0, 0.0]);
}

#[test]
fn conv_transpose_onnx_examples() {
    let x = ramp(&[1, 1, 3]);
    let w = f32s(&[1, 2, 3], &[1.0; 6]);
    let y = conv_transpose(
        &win(AutoPad::NotSet, &[], &[], &[]),
        1,
        &[],
        &[],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(
        vals(&y[0]),
        vec![0.0, 1.0, 3.0, 3.0, 2.0, 0.0, 1.0, 3.0, 3.0, 2.0]
    );
    // SAME_UPPER, stride 2: output 6x6; its first row only sees x's first row.
    let x = ramp(&[1, 1, 3, 3]);
    let w = f32s(&[1, 2, 3, 3], &[1.0; 18]);
    let y = conv_transpose(
        &win(AutoPad::SameUpper, &[2, 2], &[], &[]),
        1,
        &[],
        &[],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 6, 6]);
    assert_eq!(
        &vals(&y[0])[..12],
        &[0.0, 0.0, 1.0, 1.0, 3.0, 2.0, 0.0, 0.0, 1.0, 1.0, 3.0, 2.0]
    );
    // Two groups: each input channel feeds its own output channel.
    let x = ramp(&[1, 2, 3, 3]);
    let w = f32s(&[2, 1, 3, 3], &[1.0; 18]);
    let y = conv_transpose(
        &win(AutoPad::NotSet, &[], &[], &[]),
        2,
        &[],
        &[],
        &[Some(&x), Some(&w)],
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 5, 5]);
    assert_eq!(&vals(&y[0])[..5], &[0.0, 1.0, 3.0, 3.0, 2.0]);
    assert_eq!(&vals(&y[0])[25..30], &[9.0, 19.0, 30.0, 21.0, 11.0]);
}
