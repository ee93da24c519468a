//! More generic host kernels against `ir::eval`: ConvTranspose, Einsum, MatMul on f64 and
//! integers, quantization (QuantizeLinear / DequantizeLinear per tensor, per axis and
//! blocked, DynamicQuantizeLinear, MatMulInteger, QLinearMatMul), and Dropout's mask.

mod common;

use common::*;
use rand::Rng;
use whittle_ir::{AutoPad, DType, Op, Tensor, TensorType, Value, Window};
use whittle_passes::testing::Builder;

fn builder(name: &str) -> Builder {
    Builder::new(name, DType::F32, 13)
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

fn bytes<T: whittle_ir::Element>(
    r: &mut rand::rngs::StdRng,
    shape: &[usize],
    lo: i64,
    hi: i64,
) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<T> = (0..n)
        .map(|_| T::from_i64(r.random_range(lo..hi)))
        .collect();
    Tensor::from_vec(shape.to_vec(), v)
}

#[test]
fn conv_transpose_strided_padded_grouped() {
    let mut r = rng(1);
    // (x, w, group, strides, pads, output_padding)
    type Case<'a> = (
        &'a [usize],
        &'a [usize],
        usize,
        &'a [usize],
        &'a [usize],
        &'a [usize],
    );
    let cases: &[Case] = &[
        (&[1, 2, 3, 3], &[2, 3, 3, 3], 1, &[1, 1], &[], &[]),
        (
            &[2, 4, 3, 5],
            &[4, 1, 2, 3],
            2,
            &[2, 1],
            &[1, 0, 0, 1],
            &[1, 0],
        ),
        (&[1, 3, 7], &[3, 2, 4], 1, &[3], &[1, 2], &[]),
    ];
    for &(sx, sw, group, strides, pads, opad) in cases {
        let mut b = builder("convt");
        let x = input(&mut b, "x", DType::F32, sx);
        let w = b.randn("w", sw, 0.0, 0.5);
        let bias = b.randn("b", &[sw[1] * group], 0.0, 0.5);
        let window = Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: vec![],
            strides: strides.to_vec(),
            dilations: vec![],
            pads: pads.to_vec(),
        };
        let op = Op::ConvTranspose {
            window,
            group,
            output_padding: opad.to_vec(),
            output_shape: vec![],
        };
        let y = b.node(op, "y", &[x, w, bias]);
        run_outs(b, &[y], &[("x", rand_tensor(&mut r, sx, -1.0, 1.0))]);
    }
}

#[test]
fn einsum_equations() {
    let mut r = rng(2);
    let cases: &[(&str, &[&[usize]])] = &[
        ("ij,jk->ik", &[&[3, 4], &[4, 5]]),
        ("bij,bjk->bik", &[&[2, 3, 4], &[2, 4, 1]]),
        ("ii->i", &[&[4, 4]]),
        ("...ii->...i", &[&[2, 3, 3]]),
        ("ij->", &[&[3, 5]]),
        ("i,i", &[&[6], &[6]]),
        ("ij,k", &[&[2, 3], &[4]]),
        ("ba", &[&[2, 3]]),
    ];
    for &(eq, shapes) in cases {
        let mut b = builder("einsum");
        let mut ins = Vec::new();
        let mut feeds = Vec::new();
        for (i, s) in shapes.iter().enumerate() {
            let name = format!("x{i}");
            ins.push(input(&mut b, &name, DType::F32, s));
            feeds.push((name, rand_tensor(&mut r, s, -1.0, 1.0)));
        }
        let y = b.node(
            Op::Einsum {
                equation: eq.into(),
            },
            "y",
            &ins,
        );
        let feeds: Vec<(&str, Tensor)> =
            feeds.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        run_outs(b, &[y], &feeds);
    }
}

#[test]
fn matmul_on_f64_and_integers() {
    let mut r = rng(3);
    let mut b = builder("mm_f64");
    let x = input(&mut b, "a", DType::F64, &[2, 3, 4]);
    let w = input(&mut b, "b", DType::F64, &[4, 5]);
    let y = b.node(Op::MatMul, "y", &[x, w]);
    let a = rand_tensor(&mut r, &[2, 3, 4], -1.0, 1.0).cast(DType::F64);
    let bb = rand_tensor(&mut r, &[4, 5], -1.0, 1.0).cast(DType::F64);
    run_outs(b, &[y], &[("a", a), ("b", bb)]);
    let mut b = builder("mm_i32");
    let x = input(&mut b, "a", DType::I32, &[3, 4]);
    let w = input(&mut b, "b", DType::I32, &[4]);
    let y = b.node(Op::MatMul, "y", &[x, w]);
    let ins = [
        ("a", bytes::<i32>(&mut r, &[3, 4], -50, 50)),
        ("b", bytes::<i32>(&mut r, &[4], -50, 50)),
    ];
    run_outs(b, &[y], &ins);
}

#[test]
fn quantize_dequantize_per_tensor_axis_and_blocked() {
    let mut r = rng(4);
    let shape = [3usize, 4];
    for (axis, block, s_shape) in [(1i64, 0usize, vec![]), (0, 0, vec![3]), (1, 2, vec![3, 2])] {
        let mut b = builder("q");
        let x = input(&mut b, "x", DType::F32, &shape);
        let n: usize = s_shape.iter().product();
        let sv: Vec<f32> = (0..n).map(|i| 0.02 + 0.01 * i as f32).collect();
        let s = b.g.add_const("s", Tensor::from_vec(s_shape.clone(), sv));
        let zv: Vec<u8> = (0..n).map(|i| 100 + i as u8).collect();
        let z = b.g.add_const("z", Tensor::from_vec(s_shape.clone(), zv));
        let q = Op::QuantizeLinear {
            axis,
            block_size: block,
            output_dtype: None,
        };
        let qv = b.node(q, "q", &[x, s, z]);
        let dq = Op::DequantizeLinear {
            axis,
            block_size: block,
        };
        let d = b.node(dq, "d", &[qv, s, z]);
        run_outs(
            b,
            &[qv, d],
            &[("x", rand_tensor(&mut r, &shape, -3.0, 3.0))],
        );
    }
    let mut b = builder("dyn");
    let x = input(&mut b, "x", DType::F32, &[2, 5]);
    let ys = b.node_n(Op::DynamicQuantizeLinear, "dq", &[Some(x)], 3);
    run_outs(b, &ys, &[("x", rand_tensor(&mut r, &[2, 5], -2.0, 1.0))]);
}

#[test]
fn integer_matrix_products_with_zero_points() {
    let mut r = rng(5);
    let mut b = builder("mmi");
    let a = input(&mut b, "a", DType::U8, &[2, 3, 4]);
    let w = input(&mut b, "w", DType::U8, &[4, 5]);
    let za =
        b.g.add_const("za", Tensor::from_vec(vec![3], vec![1u8, 2, 3]));
    let zw = b.g.add_const("zw", Tensor::from_vec(vec![], vec![7u8]));
    let y = b.node(Op::MatMulInteger, "y", &[a, w, za, zw]);
    let ins = [
        ("a", bytes::<u8>(&mut r, &[2, 3, 4], 0, 255)),
        ("w", bytes::<u8>(&mut r, &[4, 5], 0, 255)),
    ];
    run_outs(b, &[y], &ins);
    let mut b = builder("qlmm");
    let a = input(&mut b, "a", DType::I8, &[3, 4]);
    let w = input(&mut b, "w", DType::I8, &[4, 2]);
    let sa = b.g.add_const("sa", Tensor::scalar(0.05f32));
    let zaq = b.g.add_const("za", Tensor::scalar(-3i8));
    let sw =
        b.g.add_const("sw", Tensor::from_vec(vec![2], vec![0.02f32, 0.03]));
    let zwq =
        b.g.add_const("zw", Tensor::from_vec(vec![2], vec![1i8, -1]));
    let sy = b.g.add_const("sy", Tensor::scalar(0.1f32));
    let zy = b.g.add_const("zy", Tensor::scalar(5i8));
    let y = b.node(Op::QLinearMatMul, "y", &[a, sa, zaq, w, sw, zwq, sy, zy]);
    let ins = [
        ("a", bytes::<i8>(&mut r, &[3, 4], -128, 127)),
        ("w", bytes::<i8>(&mut r, &[4, 2], -128, 127)),
    ];
    run_outs(b, &[y], &ins);
}

#[test]
fn inference_dropout_mask_is_all_true() {
    let mut r = rng(6);
    let mut b = builder("drop");
    let x = input(&mut b, "x", DType::F32, &[3, 4]);
    let ys = b.node_n(Op::Dropout, "d", &[Some(x)], 2);
    run_outs(b, &ys, &[("x", rand_tensor(&mut r, &[3, 4], -1.0, 1.0))]);
}

#[test]
fn gather_nd_with_and_without_batch_dims() {
    let mut r = rng(7);
    // (data shape, indices shape, batch_dims, data dims the indices address)
    let cases: &[(&[usize], &[usize], usize)] = &[
        (&[3, 4], &[5, 2], 0),
        (&[3, 4, 2], &[2, 1], 0),
        (&[2, 3, 4], &[2, 5, 1], 1),
        (&[2, 3, 4, 2], &[2, 3, 2], 1),
        (&[4, 3], &[0, 2], 0),
    ];
    for &(ds, is, bd) in cases {
        let mut b = builder("gather_nd");
        let x = input(&mut b, "x", DType::F32, ds);
        let idx = input(&mut b, "i", DType::I64, is);
        let y = b.node(Op::GatherNd { batch_dims: bd }, "g", &[x, idx]);
        let k = *is.last().unwrap();
        let n: usize = is.iter().product();
        // Index j of each tuple addresses data dim bd + j; negative indices wrap.
        let iv: Vec<i64> = (0..n)
            .map(|i| {
                let d = ds[bd + i % k] as i64;
                r.random_range(-d..d)
            })
            .collect();
        let xs = bytes::<f32>(&mut r, ds, -50, 50);
        run_outs(
            b,
            &[y],
            &[("x", xs), ("i", Tensor::from_vec(is.to_vec(), iv))],
        );
    }
}
