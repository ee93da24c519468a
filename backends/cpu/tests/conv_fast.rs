//! Conv fast paths against `ir::eval`: the AVX-512 depthwise kernel (kernels 3/5, strides
//! 1/2 in each axis, pads, dilations, channel counts not a multiple of 16, widths around
//! the 16-lane vector) and the activations a Conv absorbs from its single consumer (Relu,
//! HardSwish, HardSigmoid, Clip) on both the depthwise and the GEMM paths.

mod common;

use common::*;
use rand::Rng;
use whittle_ir::{AutoPad, DType, Op, Tensor, TensorType, UnaryOp, Value, Window};
use whittle_passes::testing::Builder;

#[derive(Clone, Copy, Debug)]
enum Act {
    None,
    Relu,
    HardSwish,
    HardSigmoid,
    Clip,
    /// Two consumers: the activation is not absorbed.
    Shared,
    /// HardSwish inlined into a following Add's fused kernel: not absorbed either (it would
    /// be applied twice).
    Inlined,
}

/// `y = act(conv(x, w, b))` on the cpu backend against the reference.
#[allow(clippy::too_many_arguments)]
fn conv_case(
    seed: u64,
    sx: &[usize],
    m: usize,
    group: usize,
    k: [usize; 2],
    strides: [usize; 2],
    dil: [usize; 2],
    pads: [usize; 4],
    act: Act,
) {
    let mut r = rng(seed);
    let mut b = Builder::new("conv", DType::F32, 13);
    let x: Value = b.g.add_input("x", TensorType::fixed(DType::F32, sx));
    let w = b.randn("w", &[m, sx[1] / group, k[0], k[1]], 0.0, 0.5);
    let bias = b.randn("b", &[m], 0.0, 0.5);
    let window = Window {
        auto_pad: AutoPad::NotSet,
        kernel_shape: vec![],
        strides: strides.to_vec(),
        dilations: dil.to_vec(),
        pads: pads.to_vec(),
    };
    let y = b.node(Op::Conv { window, group }, "c", &[x, w, bias]);
    let outs = match act {
        Act::None => vec![y],
        Act::Relu => vec![b.node(Op::Unary(UnaryOp::Relu), "a", &[y])],
        Act::HardSwish => vec![b.node(Op::Unary(UnaryOp::HardSwish), "a", &[y])],
        Act::HardSigmoid => vec![b.node(
            Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            "a",
            &[y],
        )],
        Act::Clip => {
            let lo = b.konst("lo", &[], &[0.0]);
            let hi = b.konst("hi", &[], &[0.5]);
            vec![b.node(Op::Clip, "a", &[y, lo, hi])]
        }
        Act::Shared => {
            let a = b.node(Op::Unary(UnaryOp::Relu), "a", &[y]);
            let n = b.node(Op::Unary(UnaryOp::Neg), "n", &[y]);
            vec![a, n]
        }
        Act::Inlined => {
            let a = b.node(Op::Unary(UnaryOp::HardSwish), "a", &[y]);
            let k = b.konst("k", &[], &[0.25]);
            vec![b.node(Op::Binary(whittle_ir::BinaryOp::Add), "s", &[a, k])]
        }
    };
    let mut g = b.g;
    for (i, &o) in outs.iter().enumerate() {
        g.add_output(o, format!("y{i}"));
    }
    let xin = rand_tensor(&mut r, sx, -1.0, 1.0);
    check(&g, &[("x", xin)], 1e-5, 1e-5);
}

#[test]
fn depthwise_fast_path_matches_reference() {
    let mut r = rng(7);
    let acts = [
        Act::None,
        Act::Relu,
        Act::HardSwish,
        Act::HardSigmoid,
        Act::Clip,
        Act::Shared,
        Act::Inlined,
    ];
    let mut case = 0u64;
    for &k in &[3usize, 5] {
        for &(sh, sw) in &[(1usize, 1usize), (2, 1), (1, 2), (2, 2)] {
            for &(h, w) in &[(6usize, 48usize), (5, 17), (3, 33), (7, 9), (4, 64)] {
                let c = [3usize, 20, 33][r.random_range(0..3)];
                let p = r.random_range(0..=k / 2);
                let pe = r.random_range(0..=k / 2);
                let act = acts[(case as usize) % acts.len()];
                conv_case(
                    case,
                    &[1, c, h + k, w],
                    c,
                    c,
                    [k, k],
                    [sh, sw],
                    [1, 1],
                    [p, pe, pe, p],
                    act,
                );
                case += 1;
            }
        }
    }
    // Dilation, batch 2, a non-square kernel.
    conv_case(
        100,
        &[2, 18, 9, 40],
        18,
        18,
        [3, 3],
        [1, 1],
        [2, 2],
        [2, 2, 2, 2],
        Act::Relu,
    );
    conv_case(
        101,
        &[1, 17, 8, 31],
        17,
        17,
        [3, 5],
        [2, 1],
        [1, 1],
        [1, 2, 1, 2],
        Act::HardSwish,
    );
}

#[test]
fn gemm_conv_absorbs_activations() {
    let acts = [
        Act::Relu,
        Act::HardSwish,
        Act::HardSigmoid,
        Act::Clip,
        Act::Shared,
        Act::Inlined,
    ];
    for (i, &act) in acts.iter().enumerate() {
        let s = i as u64;
        // 1×1 pointwise (direct GEMM), squeeze-excite shape (1×1 spatial), 3×3 im2col.
        conv_case(
            s,
            &[1, 24, 6, 48],
            40,
            1,
            [1, 1],
            [1, 1],
            [1, 1],
            [0; 4],
            act,
        );
        conv_case(
            s + 10,
            &[1, 50, 1, 1],
            13,
            1,
            [1, 1],
            [1, 1],
            [1, 1],
            [0; 4],
            act,
        );
        conv_case(
            s + 20,
            &[1, 3, 11, 19],
            8,
            1,
            [3, 3],
            [2, 2],
            [1, 1],
            [1; 4],
            act,
        );
        conv_case(
            s + 30,
            &[1, 8, 7, 9],
            6,
            2,
            [3, 3],
            [1, 1],
            [1, 1],
            [1; 4],
            act,
        );
    }
}

#[test]
fn relu_nan_passes_through_fused_conv() {
    // Reference Relu keeps NaN; the fused epilogue must as well.
    let mut b = Builder::new("nan", DType::F32, 13);
    let x: Value =
        b.g.add_input("x", TensorType::fixed(DType::F32, &[1, 2, 3, 20]));
    let w = b.konst("w", &[2, 1, 1, 1], &[1.0, 1.0]);
    let y = b.node(
        Op::Conv {
            window: Window {
                auto_pad: AutoPad::NotSet,
                kernel_shape: vec![],
                strides: vec![],
                dilations: vec![],
                pads: vec![],
            },
            group: 2,
        },
        "c",
        &[x, w],
    );
    let a = b.node(Op::Unary(UnaryOp::Relu), "a", &[y]);
    let mut g = b.g;
    g.add_output(a, "y");
    let mut v = vec![-1.0f32; 120];
    v[5] = f32::NAN;
    v[7] = 2.0;
    let xin = Tensor::from_vec(vec![1, 2, 3, 20], v);
    check(&g, &[("x", xin)], 0.0, 0.0);
}
