//! The compiler-made fused ops export as standard ONNX ops: `FusedMatMul` (every
//! activation, with and without bias and residual) and `Attention` (with and without a
//! mask) are decomposed, the reloaded graph has no fused op left, and it computes the same
//! values under the reference evaluator.

use prost::Message;
use whittle_frontend::{export_model, load_model_bytes, ExportOptions, Model};
use whittle_ir::{Activation, DType, GeluApprox, Graph, Op, Tensor, TensorType, ValueInfo};

fn f32_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f64 / 250.0) - 2.0)
        .collect();
    Tensor::from_f64(DType::F32, shape.to_vec(), &v)
}

fn out(name: &str, shape: &[usize]) -> Vec<ValueInfo> {
    vec![ValueInfo {
        name: name.into(),
        ty: TensorType::fixed(DType::F32, shape),
    }]
}

/// `y = Attention(FusedMatMul(x, wq, bq), FusedMatMul(x, wk), x, mask)`, then an epilogue
/// chain with `act` and a residual.
fn graph(act: Activation, with_mask: bool) -> Graph {
    let mut g = Graph::new("fused");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3, 4]));
    let mask = with_mask.then(|| g.add_input("mask", TensorType::fixed(DType::F32, &[2, 1, 1, 3])));
    let wq = g.add_const("wq", f32_tensor(&[4, 4], 1));
    let bq = g.add_const("bq", f32_tensor(&[4], 2));
    let wk = g.add_const("wk", f32_tensor(&[4, 4], 3));
    let fm = |activation| Op::FusedMatMul { activation };
    let qid = g.add_node(
        fm(Activation::Linear),
        "q",
        &[Some(x), Some(wq), Some(bq)],
        out("q", &[2, 3, 4]),
    );
    let kid = g.add_node(
        fm(Activation::Relu),
        "k",
        &[Some(x), Some(wk)],
        out("k", &[2, 3, 4]),
    );
    let (q, k) = (
        whittle_ir::Value::new(qid, 0),
        whittle_ir::Value::new(kid, 0),
    );
    let att = Op::Attention {
        num_heads: 2,
        scale: 0.7,
    };
    let aid = g.add_node(
        att,
        "att",
        &[Some(q), Some(k), Some(x), mask],
        out("a", &[2, 3, 4]),
    );
    let a = whittle_ir::Value::new(aid, 0);
    let w2 = g.add_const("w2", f32_tensor(&[4, 4], 4));
    let b2 = g.add_const("b2", f32_tensor(&[4], 5));
    let yid = g.add_node(
        fm(act),
        "y",
        &[Some(a), Some(w2), Some(b2), Some(x)],
        out("y", &[2, 3, 4]),
    );
    g.add_output(whittle_ir::Value::new(yid, 0), "y");
    g
}

#[test]
fn fused_ops_decompose_and_keep_their_values() {
    for act in [
        Activation::Linear,
        Activation::Relu,
        Activation::Gelu(GeluApprox::None),
        Activation::Gelu(GeluApprox::Tanh),
        Activation::Silu,
    ] {
        for with_mask in [true, false] {
            let g = graph(act, with_mask);
            let proto = export_model(&Model::from_graph(g.clone()), &ExportOptions::default())
                .unwrap_or_else(|e| panic!("{act:?}: {e}"));
            let back = load_model_bytes(&proto.encode_to_vec(), None)
                .unwrap()
                .graph;
            let fused_left = back
                .node_ids()
                .filter(|&id| {
                    matches!(
                        back.node(id).op,
                        Op::FusedMatMul { .. } | Op::Attention { .. }
                    )
                })
                .count();
            assert_eq!(fused_left, 0);
            let mut ins = vec![("x", f32_tensor(&[2, 3, 4], 9))];
            if with_mask {
                ins.push(("mask", f32_tensor(&[2, 1, 1, 3], 10)));
            }
            let want = whittle_ir::eval::run(&g, &ins).unwrap();
            let got = whittle_ir::eval::run(&back, &ins).unwrap();
            let (w, o) = (want[0].1.to_f64_vec(), got[0].1.to_f64_vec());
            let scale = w.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
            for (a, b) in w.iter().zip(&o) {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{act:?} mask={with_mask}: {a} vs {b}"
                );
            }
        }
    }
}

/// `AddNorm` (LayerNorm with β and bias, and RMSNorm with its sum output read) exports as
/// `Add`s and a `LayerNormalization` / `RMSNormalization` and reloads to the same values
/// (bit-identical: the same ops in the same order).
#[test]
fn add_norm_decomposes_and_keeps_its_values() {
    for (rms, with_sum) in [(false, false), (false, true), (true, true), (true, false)] {
        let mut g = Graph::new("addnorm");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3, 4]));
        let r = g.add_input("r", TensorType::fixed(DType::F32, &[2, 3, 4]));
        let gamma = g.add_const("gamma", f32_tensor(&[4], 1));
        let beta = (!rms).then(|| g.add_const("beta", f32_tensor(&[4], 2)));
        let bias = g.add_const("bias", f32_tensor(&[4], 3));
        let mut outs = out("y", &[2, 3, 4]);
        if with_sum {
            outs.extend(out("s", &[2, 3, 4]));
        }
        let id = g.add_node(
            Op::AddNorm { rms, epsilon: 1e-5 },
            "an",
            &[Some(x), Some(r), Some(gamma), beta, Some(bias)],
            outs,
        );
        g.add_output(whittle_ir::Value::new(id, 0), "y");
        if with_sum {
            g.add_output(whittle_ir::Value::new(id, 1), "s");
        }
        let proto = export_model(&Model::from_graph(g.clone()), &ExportOptions::default())
            .unwrap_or_else(|e| panic!("rms={rms}: {e}"));
        let back = load_model_bytes(&proto.encode_to_vec(), None)
            .unwrap()
            .graph;
        assert!(back
            .node_ids()
            .all(|id| !matches!(back.node(id).op, Op::AddNorm { .. })));
        let ins = [
            ("x", f32_tensor(&[2, 3, 4], 9)),
            ("r", f32_tensor(&[2, 3, 4], 11)),
        ];
        let want = whittle_ir::eval::run(&g, &ins).unwrap();
        let got = whittle_ir::eval::run(&back, &ins).unwrap();
        assert_eq!(want.len(), got.len());
        for ((wn, w), (gn, o)) in want.iter().zip(&got) {
            assert_eq!(wn, gn);
            assert_eq!(
                w.to_f64_vec(),
                o.to_f64_vec(),
                "rms={rms} sum={with_sum}: {wn}"
            );
        }
    }
}

/// Exporting to an opset that lacks a compound op writes it as primitive ops:
/// LayerNormalization (17), RMSNormalization (23), Gelu (20, erf and tanh), HardSwish (14),
/// and the same inside FusedMatMul / AddNorm. The file declares the opset asked for, holds
/// none of those ops, and reloads to the same values (within 1e-5; the primitives round in
/// f32 where ir::eval's compound ops accumulate in f64).
#[test]
fn compound_ops_decompose_for_older_opsets() {
    use whittle_ir::UnaryOp;
    let mut g = Graph::new("compound");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3, 4]));
    let r = g.add_input("r", TensorType::fixed(DType::F32, &[2, 3, 4]));
    let gamma = g.add_const("gamma", f32_tensor(&[4], 1));
    let beta = g.add_const("beta", f32_tensor(&[4], 2));
    let w = g.add_const("w", f32_tensor(&[4, 4], 3));
    let add = |g: &mut Graph, op: Op, name: &str, ins: &[Option<whittle_ir::Value>]| {
        whittle_ir::Value::new(g.add_node(op, name, ins, out(name, &[2, 3, 4])), 0)
    };
    let ln = add(
        &mut g,
        Op::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        },
        "ln",
        &[Some(x), Some(gamma), Some(beta)],
    );
    let rms = add(
        &mut g,
        Op::RmsNormalization {
            axis: 1,
            epsilon: 1e-6,
        },
        "rms",
        &[Some(ln), Some(gamma)],
    );
    let ge = add(
        &mut g,
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        "ge",
        &[Some(rms)],
    );
    let gt = add(
        &mut g,
        Op::Gelu {
            approximate: GeluApprox::Tanh,
        },
        "gt",
        &[Some(ge)],
    );
    let hs = add(&mut g, Op::Unary(UnaryOp::HardSwish), "hs", &[Some(gt)]);
    let fm = add(
        &mut g,
        Op::FusedMatMul {
            activation: Activation::Gelu(GeluApprox::Tanh),
        },
        "fm",
        &[Some(hs), Some(w)],
    );
    let an = add(
        &mut g,
        Op::AddNorm {
            rms: false,
            epsilon: 1e-5,
        },
        "an",
        &[Some(fm), Some(r), Some(gamma), Some(beta)],
    );
    let an2 = add(
        &mut g,
        Op::AddNorm {
            rms: true,
            epsilon: 1e-5,
        },
        "an2",
        &[Some(an), Some(x), Some(gamma)],
    );
    g.add_output(an2, "y");
    let ins = [
        ("x", f32_tensor(&[2, 3, 4], 9)),
        ("r", f32_tensor(&[2, 3, 4], 12)),
    ];
    let want = whittle_ir::eval::run(&g, &ins).unwrap()[0].1.to_f64_vec();
    for opset in [13, 14, 17, 20] {
        let opts = ExportOptions {
            opset: Some(opset),
            ..Default::default()
        };
        let proto = export_model(&Model::from_graph(g.clone()), &opts)
            .unwrap_or_else(|e| panic!("opset {opset}: {e}"));
        let declared = proto
            .opset_import
            .iter()
            .find(|o| o.domain() == "")
            .unwrap();
        assert_eq!(declared.version(), opset);
        let types: Vec<&str> = proto
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type())
            .collect();
        for (ty, first) in [
            ("LayerNormalization", 17),
            ("RMSNormalization", 23),
            ("Gelu", 20),
            ("HardSwish", 14),
        ] {
            assert_eq!(
                types.contains(&ty),
                opset >= first,
                "opset {opset}: {ty} in {types:?}"
            );
        }
        let back = load_model_bytes(&proto.encode_to_vec(), None)
            .unwrap()
            .graph;
        let got = whittle_ir::eval::run(&back, &ins).unwrap()[0]
            .1
            .to_f64_vec();
        let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() <= 1e-5 * scale, "opset {opset}: {a} vs {b}");
        }
    }
    // Below what a non-decomposable op needs is still an error.
    let opts = ExportOptions {
        opset: Some(12),
        ..Default::default()
    };
    assert!(export_model(&Model::from_graph(g), &opts).is_err());
}
