//! RMSNormalization on the cpu backend against `ir::eval` (rel tol 1e-5): the f32 fast row
//! kernel (one scale per normalized element, LLaMA-style) and the generic path (a scale
//! that broadcasts over the normalized axes), odd row lengths included.

mod common;

use common::*;
use whittle_ir::{DType, Op, TensorType};
use whittle_passes::testing::Builder;

fn rms_case(shape: &[usize], axis: i64, scale_shape: &[usize], seed: u64) {
    let mut r = rng(seed);
    let mut b = Builder::new("rms", DType::F32, 7);
    let x = b.g.add_input("x", TensorType::fixed(DType::F32, shape));
    let scale = b.randn("scale", scale_shape, 1.0, 0.3);
    let op = Op::RmsNormalization {
        axis,
        epsilon: 1e-5,
    };
    let y = b.node_n(op, "rms", &[Some(x), Some(scale)], 1)[0];
    let mut g = b.g;
    g.add_output(y, "y");
    check(
        &g,
        &[("x", rand_tensor(&mut r, shape, -3.0, 5.0))],
        1e-5,
        1e-6,
    );
}

#[test]
fn rms_norm_fast_path_rows() {
    // SmolLM2's shape, and rows whose length is not a multiple of the 16 lanes.
    rms_case(&[1, 64, 576], -1, &[576], 1);
    rms_case(&[7, 37], -1, &[37], 2);
    rms_case(&[3, 1], -1, &[1], 3);
}

#[test]
fn rms_norm_generic_path() {
    // Normalized over the last two axes, scale broadcast along the middle one.
    rms_case(&[2, 3, 5], 1, &[1, 5], 4);
    // A scale of shape [1] broadcast over 9 columns.
    rms_case(&[4, 9], -1, &[1], 5);
}
