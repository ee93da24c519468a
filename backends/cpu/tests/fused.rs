//! The compiler-made fused ops on the cpu backend vs the reference evaluator: `FusedMatMul`
//! with every activation, with and without bias and residual, batched, constant and
//! run-time B; `Attention` with padding-style and full masks, odd lengths and head sizes.

mod common;
use common::*;
use whittle_ir::{Activation, DType, GeluApprox, Graph, Op, TensorType};

#[test]
fn fused_matmul_epilogues_match_reference() {
    let mut r = rng(21);
    let acts = [
        Activation::Linear,
        Activation::Relu,
        Activation::Gelu(GeluApprox::None),
        Activation::Gelu(GeluApprox::Tanh),
        Activation::Silu,
    ];
    let shapes: &[(&[usize], &[usize], &[usize])] = &[
        (&[3, 4], &[4, 5], &[3, 5]),
        (&[2, 7, 33], &[33, 19], &[2, 7, 19]),
        (&[1, 128, 64], &[64, 96], &[1, 128, 96]),
        (&[2, 3, 5, 8], &[2, 3, 8, 6], &[2, 3, 5, 6]),
        // More than one MC row block and several NC column blocks, ragged at both ends.
        (&[1, 130, 70], &[70, 801], &[1, 130, 801]),
        // Wider than tall with a ragged last strip: threads split the columns.
        (&[1, 40, 50], &[50, 200], &[1, 40, 200]),
    ];
    for act in acts {
        for &(sa, sb, so) in shapes {
            for (bias, res, const_b) in [
                (true, true, true),
                (true, false, false),
                (false, true, true),
            ] {
                let n = *so.last().unwrap();
                let mut g = Graph::new("fmm");
                let a = g.add_input("a", TensorType::fixed(DType::F32, sa));
                let mut ins = vec![("a", rand_tensor(&mut r, sa, -2.0, 2.0))];
                let bt = rand_tensor(&mut r, sb, -0.5, 0.5);
                let b = if const_b {
                    g.add_const("b", bt)
                } else {
                    ins.push(("b", bt));
                    g.add_input("b", TensorType::fixed(DType::F32, sb))
                };
                let c = bias.then(|| g.add_const("c", rand_tensor(&mut r, &[n], -1.0, 1.0)));
                let res_v = res.then(|| g.add_input("r", TensorType::fixed(DType::F32, so)));
                if res {
                    ins.push(("r", rand_tensor(&mut r, so, -1.0, 1.0)));
                }
                let y = node(
                    &mut g,
                    Op::FusedMatMul { activation: act },
                    "y",
                    &[Some(a), Some(b), c, res_v],
                    so,
                );
                g.add_output(y, "y");
                // 1 thread; 2 and 3 split C by columns or rows depending on its shape.
                for threads in [1, 2, 3] {
                    let e = rel_l2_threads(threads, &g, &ins);
                    assert!(
                        e <= 1e-5,
                        "{act:?} {sa:?}x{sb:?} bias={bias} res={res} threads={threads}: {e:e}"
                    );
                }
            }
        }
    }
}

/// (batch, q_len, k_len, heads, head, v_head, mask shape)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    Option<&'static [usize]>,
);

#[test]
fn attention_matches_reference() {
    let mut r = rng(22);
    let cases: &[Case] = &[
        (1, 128, 128, 12, 32, 32, Some(&[1, 1, 1, 128])),
        (2, 79, 79, 2, 64, 64, Some(&[2, 1, 1, 79])),
        (1, 81, 81, 1, 128, 128, Some(&[81, 81])),
        (1, 257, 257, 1, 64, 64, Some(&[1, 1, 1, 257])),
        (1, 385, 383, 1, 128, 128, None),
        (1, 255, 255, 2, 128, 128, Some(&[1, 1, 255, 255])),
        (1, 1025, 1023, 1, 64, 64, Some(&[1, 1, 1, 1023])),
        (1, 1023, 1025, 1, 128, 128, None),
        (2, 5, 9, 3, 4, 2, None),
        (1, 33, 17, 4, 8, 8, Some(&[1, 4, 33, 17])),
    ];
    for &(b, lq, lk, h, d, dv, mask) in cases {
        let mut g = Graph::new("attn");
        let (sq, sk, sv) = ([b, lq, h * d], [b, lk, h * d], [b, lk, h * dv]);
        let q = g.add_input("q", TensorType::fixed(DType::F32, &sq));
        let k = g.add_input("k", TensorType::fixed(DType::F32, &sk));
        let v = g.add_input("v", TensorType::fixed(DType::F32, &sv));
        let mut ins = vec![
            ("q", rand_tensor(&mut r, &sq, -2.0, 2.0)),
            ("k", rand_tensor(&mut r, &sk, -2.0, 2.0)),
            ("v", rand_tensor(&mut r, &sv, -2.0, 2.0)),
        ];
        let m = mask.map(|s| {
            ins.push(("m", rand_tensor(&mut r, s, -3.0, 0.0)));
            g.add_input("m", TensorType::fixed(DType::F32, s))
        });
        let op = Op::Attention {
            num_heads: h,
            scale: 1.0 / (d as f32).sqrt(),
        };
        let y = node(
            &mut g,
            op,
            "y",
            &[Some(q), Some(k), Some(v), m],
            &[b, lq, h * dv],
        );
        g.add_output(y, "y");
        let e = rel_l2(&g, &ins);
        assert!(e <= 1e-5, "b{b} lq{lq} lk{lk} h{h} d{d}: rel L2 {e:e}");
    }
}

/// Attention reading Q, K and V as the column blocks of one fused QKV GEMM's output (a
/// last-axis `Split` the attention absorbs) matches the reference; so does the same graph
/// when one of the Split's outputs is also a graph output (the Split is then a real copy).
#[test]
fn attention_on_a_fused_qkv_split_matches_reference() {
    let mut r = rng(23);
    for (b, s, kdim, h, d, dv, also_output) in [
        (1, 128, 64, 4, 16, 16, false),
        (2, 9, 33, 3, 8, 4, false),
        (1, 17, 16, 2, 8, 8, true),
    ] {
        let (e, ev) = (h * d, h * dv);
        let mut g = Graph::new("qkv");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[b, s, kdim]));
        let w = g.add_const("w", rand_tensor(&mut r, &[kdim, 2 * e + ev], -0.5, 0.5));
        let c = g.add_const("c", rand_tensor(&mut r, &[2 * e + ev], -0.5, 0.5));
        let qkv = node(
            &mut g,
            Op::FusedMatMul {
                activation: Activation::Linear,
            },
            "qkv",
            &[Some(x), Some(w), Some(c)],
            &[b, s, 2 * e + ev],
        );
        let sizes = g.add_const(
            "sizes",
            whittle_ir::Tensor::from_vec(vec![3], vec![e as i64, e as i64, ev as i64]),
        );
        let infos = [("q", e), ("k", e), ("v", ev)]
            .iter()
            .flat_map(|&(n, w)| f32_info(n, &[b, s, w]))
            .collect();
        let split = g.add_node(
            Op::Split {
                axis: -1,
                num_outputs: 3,
            },
            "split",
            &[Some(qkv), Some(sizes)],
            infos,
        );
        let v = |p| Some(whittle_ir::Value::new(split, p));
        let op = Op::Attention {
            num_heads: h,
            scale: 1.0 / (d as f32).sqrt(),
        };
        let y = node(&mut g, op, "y", &[v(0), v(1), v(2)], &[b, s, ev]);
        g.add_output(y, "y");
        if also_output {
            g.add_output(whittle_ir::Value::new(split, 1), "k");
        }
        let ins = [("x", rand_tensor(&mut r, &[b, s, kdim], -2.0, 2.0))];
        let e = rel_l2(&g, &ins);
        assert!(e <= 1e-5, "b{b} s{s} h{h} d{d} dv{dv}: rel L2 {e:e}");
    }
}

/// `AddNorm` (LayerNorm and RMSNorm flavours, with and without β, bias and the sum output)
/// matches the reference on odd row lengths, at 1 and 2 threads.
#[test]
fn add_norm_matches_reference() {
    let mut r = rng(24);
    for (shape, rms, beta, bias, sum) in [
        (&[2usize, 3, 384][..], false, true, true, false),
        (&[1, 130, 33], false, false, true, true),
        (&[5, 17], true, false, false, true),
        (&[64, 576], true, false, true, false),
        (&[1, 1, 1], false, true, false, false),
    ] {
        let n = *shape.last().unwrap();
        let mut g = Graph::new("addnorm");
        let x = g.add_input("x", TensorType::fixed(DType::F32, shape));
        let res = g.add_input("r", TensorType::fixed(DType::F32, shape));
        let gamma = g.add_const("gamma", rand_tensor(&mut r, &[n], -2.0, 2.0));
        let b = beta.then(|| g.add_const("beta", rand_tensor(&mut r, &[n], -1.0, 1.0)));
        let c = bias.then(|| g.add_const("bias", rand_tensor(&mut r, &[n], -1.0, 1.0)));
        let mut outs = f32_info("y", shape);
        if sum {
            outs.extend(f32_info("s", shape));
        }
        let id = g.add_node(
            Op::AddNorm { rms, epsilon: 1e-5 },
            "an",
            &[Some(x), Some(res), Some(gamma), b, c],
            outs,
        );
        // With the sum, the checked output is y·s (both outputs feed it).
        let y = whittle_ir::Value::new(id, 0);
        let out = if sum {
            let s = whittle_ir::Value::new(id, 1);
            node(
                &mut g,
                Op::Binary(whittle_ir::BinaryOp::Mul),
                "ys",
                &[Some(y), Some(s)],
                shape,
            )
        } else {
            y
        };
        g.add_output(out, "out");
        let ins = [
            ("x", rand_tensor(&mut r, shape, -3.0, 3.0)),
            ("r", rand_tensor(&mut r, shape, -3.0, 3.0)),
        ];
        for threads in [1, 2] {
            let e = rel_l2_threads(threads, &g, &ins);
            assert!(
                e <= 1e-5,
                "{shape:?} rms={rms} beta={beta} bias={bias} sum={sum}: {e:e}"
            );
        }
    }
}

/// Padding-free attention as `remove-padding` builds it (PaddingOffsets on a mask input,
/// packing Gather, fused QKV GEMM + Split, PackedAttention, zero-row Concat + restoring
/// Gather) matches the reference for masks with empty, partial and full rows; each mask is
/// bound per run, so different masks compile different plans.
#[test]
fn packed_attention_on_bound_masks_matches_reference() {
    use whittle_ir::{Dim, Tensor, Value, ValueInfo};
    let mut r = rng(25);
    let (b, s, e, h) = (3usize, 7usize, 16usize, 2usize);
    let sym = |n: &str| Dim::Sym(n.into());
    let ty = |dt: DType, d: Vec<Dim>| TensorType::new(dt, d);
    let info = |n: &str, t: TensorType| ValueInfo {
        name: n.into(),
        ty: t,
    };
    let mut g = Graph::new("packed");
    let x = g.add_input("h", TensorType::fixed(DType::F32, &[b, s, e]));
    let am = g.add_input("am", TensorType::fixed(DType::I64, &[b, s]));
    let po = g.add_node(
        Op::PaddingOffsets,
        "po",
        &[Some(am)],
        vec![
            info("off", ty(DType::I64, vec![sym("T")])),
            info("inv", TensorType::fixed(DType::I64, &[b, s])),
            info("cu", TensorType::fixed(DType::I64, &[b + 1])),
        ],
    );
    let (off, inv, cu) = (Value::new(po, 0), Value::new(po, 1), Value::new(po, 2));
    let flat = node(
        &mut g,
        Op::Flatten { axis: 2 },
        "flat",
        &[Some(x)],
        &[b * s, e],
    );
    let rows = |n: usize| ty(DType::F32, vec![sym("T"), Dim::Known(n)]);
    let pid = g.add_node(
        Op::Gather { axis: 0 },
        "p",
        &[Some(flat), Some(off)],
        vec![info("p", rows(e))],
    );
    let w = g.add_const("w", rand_tensor(&mut r, &[e, 3 * e], -0.5, 0.5));
    let c = g.add_const("c", rand_tensor(&mut r, &[3 * e], -0.5, 0.5));
    let qkv = g.add_node(
        Op::FusedMatMul {
            activation: Activation::Linear,
        },
        "qkv",
        &[Some(Value::new(pid, 0)), Some(w), Some(c)],
        vec![info("qkv", rows(3 * e))],
    );
    let sizes = g.add_const("sizes", Tensor::from_vec(vec![3], vec![e as i64; 3]));
    let split = g.add_node(
        Op::Split {
            axis: -1,
            num_outputs: 3,
        },
        "split",
        &[Some(Value::new(qkv, 0)), Some(sizes)],
        vec![info("q", rows(e)), info("k", rows(e)), info("v", rows(e))],
    );
    let sv = |p| Some(Value::new(split, p));
    let pa = g.add_node(
        Op::PackedAttention {
            num_heads: h,
            scale: 0.35,
        },
        "pa",
        &[sv(0), sv(1), sv(2), Some(cu)],
        vec![info("y", rows(e))],
    );
    let zero = g.add_const(
        "zero",
        Tensor::from_f64(DType::F32, vec![1, e], &vec![0.0; e]),
    );
    let cat = g.add_node(
        Op::Concat { axis: 0 },
        "cat",
        &[Some(zero), Some(Value::new(pa, 0))],
        vec![info("cat", ty(DType::F32, vec![sym("T1"), Dim::Known(e)]))],
    );
    let out = node(
        &mut g,
        Op::Gather { axis: 0 },
        "out",
        &[Some(Value::new(cat, 0)), Some(inv)],
        &[b, s, e],
    );
    g.add_output(out, "out");
    use whittle_runtime::Backend;
    let exe = whittle_cpu::CpuBackend::with_threads(2)
        .compile(&g)
        .expect("compile");
    for lens in [[0usize, 3, 7], [7, 7, 7], [1, 0, 0], [2, 5, 1]] {
        let m: Vec<i64> = lens
            .iter()
            .flat_map(|&l| (0..s).map(move |j| (j < l) as i64))
            .collect();
        let ins = [
            ("h", rand_tensor(&mut r, &[b, s, e], -2.0, 2.0)),
            ("am", Tensor::from_vec(vec![b, s], m)),
        ];
        let got = exe.run(&ins).expect("run")[0].1.to_f64_vec();
        let want = whittle_ir::eval::run(&g, &ins).expect("eval")[0]
            .1
            .to_f64_vec();
        let scale = want.iter().fold(1e-30f64, |a, x| a.max(x.abs()));
        for (i, (o, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (o - w).abs() <= 1e-5 * scale,
                "lens {lens:?} element {i}: {o} vs {w}"
            );
        }
    }
}
