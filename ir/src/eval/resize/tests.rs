//! Hand-checked tests of Resize.

use super::*;

fn attrs(mode: ResizeMode, coord: CoordTransform) -> ResizeAttrs {
    ResizeAttrs::with_defaults(mode, coord)
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec())
}

fn grid4() -> Tensor {
    f32s(
        &[1, 1, 4, 4],
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
    )
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-4 * y.abs().max(1.0))
}

fn run(
    a: &ResizeAttrs,
    x: &Tensor,
    roi: Option<&Tensor>,
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
) -> Tensor {
    let sc = scales.map(|s| f32s(&[s.len()], s));
    let sz = sizes.map(|s| Tensor::from_vec(vec![s.len()], s.to_vec()));
    resize(a, &[Some(x), roi, sc.as_ref(), sz.as_ref()])
        .unwrap()
        .remove(0)
}

#[test]
fn linear_half_pixel_upsample() {
    // 1-D [1,2] upsampled 2x: source coords -0.25, 0.25, 0.75, 1.25 (edges clamp).
    let x = f32s(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = run(
        &attrs(ResizeMode::Linear, CoordTransform::HalfPixel),
        &x,
        None,
        Some(&[1.0, 1.0, 2.0, 2.0]),
        None,
    );
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    assert_eq!(
        &y.as_slice::<f32>().unwrap()[..8],
        &[1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5]
    );
}

#[test]
fn nearest_modes() {
    let x = f32s(&[1, 1, 1, 2], &[1.0, 2.0]);
    let y = run(
        &attrs(ResizeMode::Nearest, CoordTransform::HalfPixel),
        &x,
        None,
        Some(&[1.0, 1.0, 1.0, 3.0]),
        None,
    );
    assert_eq!(
        y.as_slice::<f32>().unwrap(),
        &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    // asymmetric + floor: sources 0, 0.5, 1, 1.5 → 0, 0, 1, 1.
    let mut a = attrs(ResizeMode::Nearest, CoordTransform::Asymmetric);
    a.nearest = NearestMode::Floor;
    let y = run(&a, &x, None, None, Some(&[1, 1, 1, 4]));
    assert_eq!(y.as_slice::<f32>().unwrap(), &[1.0, 1.0, 2.0, 2.0]);
    a.nearest = NearestMode::Ceil;
    let y = run(&a, &x, None, None, Some(&[1, 1, 1, 4]));
    assert_eq!(y.as_slice::<f32>().unwrap(), &[1.0, 2.0, 2.0, 2.0]);
}

#[test]
fn cubic_matches_onnx_example() {
    let y = run(
        &attrs(ResizeMode::Cubic, CoordTransform::HalfPixel),
        &grid4(),
        None,
        Some(&[1.0, 1.0, 2.0, 2.0]),
        None,
    );
    // The ONNX example's first row, in 256ths (0.47265625, 0.76953125, ...).
    let first = [121.0f32, 197.0, 319.0, 480.0, 584.0, 745.0, 867.0, 943.0].map(|v| v / 256.0);
    assert!(close(&y.as_slice::<f32>().unwrap()[..8], &first));
}

#[test]
fn tf_crop_and_resize_with_extrapolation() {
    let roi = f32s(&[8], &[0.0, 0.0, 0.4, 0.6, 1.0, 1.0, 0.6, 0.8]);
    let a = attrs(ResizeMode::Linear, CoordTransform::TfCropAndResize);
    let y = run(&a, &grid4(), Some(&roi), None, Some(&[1, 1, 3, 3]));
    // Rows sample 1.2, 1.5, 1.8; columns 1.8, 2.1, 2.4: value = 1 + 4·row + col.
    assert!(close(
        y.as_slice::<f32>().unwrap(),
        &[7.6, 7.9, 8.2, 8.8, 9.1, 9.4, 10.0, 10.3, 10.6]
    ));
    // A roi reaching past the input extrapolates.
    let roi = f32s(&[4], &[0.5, 0.5, 1.5, 1.5]);
    let mut a = a.clone();
    a.extrapolation_value = 10.0;
    a.axes = Some(vec![2, 3]);
    let y = run(&a, &grid4(), Some(&roi), None, Some(&[2, 2]));
    // Rows and columns sample 1.5 and 4.5 (outside).
    assert!(close(
        y.as_slice::<f32>().unwrap(),
        &[8.5, 10.0, 10.0, 10.0]
    ));
}

#[test]
fn linear_antialias_downsample() {
    let mut a = attrs(ResizeMode::Linear, CoordTransform::HalfPixel);
    a.antialias = true;
    let y = run(&a, &grid4(), None, Some(&[1.0, 1.0, 0.6, 0.6]), None);
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert!(close(
        y.as_slice::<f32>().unwrap(),
        &[2.875, 4.5, 9.375, 11.0]
    ));
}

#[test]
fn sizes_with_aspect_policy_and_int_rounding() {
    let mut a = attrs(ResizeMode::Nearest, CoordTransform::HalfPixel);
    a.axes = Some(vec![-2, -1]);
    a.aspect = AspectPolicy::NotLarger;
    // Scales 7/2 and 8/2: not_larger keeps 3.5 for both axes → 7x7.
    let x = f32s(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        run(&a, &x, None, None, Some(&[7, 8])).shape(),
        &[1, 1, 7, 7]
    );
    // Integer data rounds half to even: linear between 1 and 2 at 0.25/0.75 → 1.25, 1.75.
    let xi = Tensor::from_vec(vec![1, 2], vec![1u8, 2]);
    let a = attrs(ResizeMode::Linear, CoordTransform::HalfPixel);
    let y = resize(&a, &[Some(&xi), None, Some(&f32s(&[2], &[1.0, 2.0])), None]).unwrap();
    assert_eq!(y[0].as_slice::<u8>().unwrap(), &[1, 1, 2, 2]);
}
