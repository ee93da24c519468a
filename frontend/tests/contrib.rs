//! onnxruntime contrib ops (com.microsoft): each one, loaded and evaluated by `ir::eval`,
//! equals a composition of standard ONNX ops on random inputs; they survive export →
//! load; and bad models are refused with an error, never a panic.

mod common;

use common::*;
use prost::Message;
use whittle_frontend::proto::tensor_proto::DataType;
use whittle_frontend::proto::{
    AttributeProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use whittle_frontend::{export_model, load_model_bytes, ExportOptions};
use whittle_ir::{Op, Tensor};

const MS: &str = "com.microsoft";

/// A small deterministic generator (xorshift), values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn t(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next() as f32).collect();
        Tensor::from_vec(shape.to_vec(), v)
    }

    fn ints(&mut self, shape: &[usize], below: i32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<i32> = (0..n)
            .map(|_| ((self.next() + 1.0) * 0.5 * below as f64) as i32 % below)
            .collect();
        Tensor::from_vec(shape.to_vec(), v)
    }
}

fn ms(n: NodeProto) -> NodeProto {
    NodeProto {
        domain: Some(MS.into()),
        ..n
    }
}

/// A model importing the default domain at `opset` and com.microsoft 1.
fn model_ms(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outs: &[&str],
    inits: Vec<TensorProto>,
) -> ModelProto {
    let mut m = model(opset, graph(nodes, inputs, outs, inits));
    m.opset_import.push(OperatorSetIdProto {
        domain: Some(MS.into()),
        version: Some(1),
    });
    m
}

fn eval(m: &ModelProto, feeds: &[(&str, Tensor)]) -> Vec<Tensor> {
    let model = load(m).unwrap_or_else(|e| panic!("load: {e}"));
    model
        .graph
        .verify()
        .unwrap_or_else(|e| panic!("verify: {e}"));
    whittle_ir::eval::run(&model.graph, feeds)
        .unwrap_or_else(|e| panic!("eval: {e}"))
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn assert_close(got: &[Tensor], want: &[Tensor], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "{what}: output {i} shape");
        assert_eq!(g.dtype(), w.dtype(), "{what}: output {i} dtype");
        let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
        let err: f64 = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = w.iter().map(|b| b * b).sum::<f64>().sqrt().max(1e-30);
        assert!(
            err / norm <= 1e-6,
            "{what}: output {i} rel L2 error {:.2e}",
            err / norm
        );
    }
    // Also exported and reloaded, the contrib model gives the same ops back.
}

/// The contrib model and its standard composition agree; export → load keeps the ops.
fn check(what: &str, contrib: &ModelProto, standard: &ModelProto, feeds: &[(&str, Tensor)]) {
    let got = eval(contrib, feeds);
    let want = eval(standard, feeds);
    assert_close(&got, &want, what);
    let m = load(contrib).unwrap();
    let p = export_model(&m, &ExportOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = load_model_bytes(&p.encode_to_vec(), None).unwrap_or_else(|e| panic!("{what}: {e}"));
    let again: Vec<Tensor> = whittle_ir::eval::run(&back.graph, feeds)
        .unwrap_or_else(|e| panic!("{what}: re-export eval: {e}"))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_close(&again, &want, &format!("{what} (exported)"));
}

const F: DataType = DataType::Float;
const I32: DataType = DataType::Int32;
const B: usize = 2;
const S: usize = 5;
const H: usize = 8;
const BSH: [i64; 3] = [B as i64, S as i64, H as i64];

#[test]
fn skip_layer_norm_is_add_add_layer_norm() {
    let mut r = Rng(7);
    let (g, b, bias) = (r.t(&[H]), r.t(&[H]), r.t(&[H]));
    let inits = || vec![init("g", &g), init("b", &b), init("bias", &bias)];
    let ins = || vec![vi("x", F, &BSH), vi("skip", F, &BSH)];
    let c = model_ms(
        17,
        vec![ms(node(
            "SkipLayerNormalization",
            "sln",
            &["x", "skip", "g", "b", "bias"],
            &["y", "", "", "sum"],
            vec![a_f("epsilon", 1e-5)],
        ))],
        ins(),
        &["y", "sum"],
        inits(),
    );
    let s = model(
        17,
        graph(
            vec![
                node("Add", "a1", &["x", "bias"], &["xb"], vec![]),
                node("Add", "a2", &["xb", "skip"], &["sum"], vec![]),
                node(
                    "LayerNormalization",
                    "ln",
                    &["sum", "g", "b"],
                    &["y"],
                    vec![a_f("epsilon", 1e-5)],
                ),
            ],
            ins(),
            &["y", "sum"],
            inits(),
        ),
    );
    let feeds = [("x", r.t(&[B, S, H])), ("skip", r.t(&[B, S, H]))];
    check("SkipLayerNormalization", &c, &s, &feeds);
    let m = load(&c).unwrap();
    assert!(m
        .graph
        .node_ids()
        .any(|id| matches!(m.graph.node(id).op, Op::AddNorm { rms: false, .. })));

    // The mean / inv_std_var outputs are refused by name.
    let mut bad = c.clone();
    bad.graph.as_mut().unwrap().node[0].output[1] = "mean".into();
    let err = load(&bad).unwrap_err().to_string();
    assert!(err.contains("mean"), "{err}");
}

#[test]
fn skip_simplified_layer_norm_is_add_add_rms_norm() {
    let mut r = Rng(11);
    let (g, bias) = (r.t(&[H]), r.t(&[H]));
    let inits = || vec![init("g", &g), init("bias", &bias)];
    let ins = || vec![vi("x", F, &BSH), vi("skip", F, &BSH)];
    let c = model_ms(
        17,
        vec![ms(node(
            "SkipSimplifiedLayerNormalization",
            "ssln",
            &["x", "skip", "g", "bias"],
            &["y", "", "", "sum"],
            vec![a_f("epsilon", 1e-6)],
        ))],
        ins(),
        &["y", "sum"],
        inits(),
    );
    let s = model(
        23,
        graph(
            vec![
                node("Add", "a1", &["x", "bias"], &["xb"], vec![]),
                node("Add", "a2", &["xb", "skip"], &["sum"], vec![]),
                node(
                    "RMSNormalization",
                    "rms",
                    &["sum", "g"],
                    &["y"],
                    vec![a_f("epsilon", 1e-6)],
                ),
            ],
            ins(),
            &["y", "sum"],
            inits(),
        ),
    );
    let feeds = [("x", r.t(&[B, S, H])), ("skip", r.t(&[B, S, H]))];
    check("SkipSimplifiedLayerNormalization", &c, &s, &feeds);
}

#[test]
fn simplified_layer_norm_in_both_domains_is_rms_norm() {
    let mut r = Rng(13);
    let g = r.t(&[H]);
    let s = model(
        23,
        graph(
            vec![node(
                "RMSNormalization",
                "rms",
                &["x", "g"],
                &["y"],
                vec![a_f("epsilon", 1e-6)],
            )],
            vec![vi("x", F, &BSH)],
            &["y"],
            vec![init("g", &g)],
        ),
    );
    let feeds = [("x", r.t(&[B, S, H]))];
    for domain in ["", MS] {
        let mut n = node(
            "SimplifiedLayerNormalization",
            "sln",
            &["x", "g"],
            &["y"],
            vec![a_f("epsilon", 1e-6)],
        );
        n.domain = Some(domain.into());
        let c = model_ms(
            17,
            vec![n],
            vec![vi("x", F, &BSH)],
            &["y"],
            vec![init("g", &g)],
        );
        check(
            &format!("SimplifiedLayerNormalization '{domain}'"),
            &c,
            &s,
            &feeds,
        );
    }
}

#[test]
fn gelu_family_is_add_and_gelu() {
    let mut r = Rng(17);
    let bias = r.t(&[H]);
    let feeds = [("x", r.t(&[B, S, H]))];
    let one = |op: &str, ins: &[&str], attrs| {
        model_ms(
            17,
            vec![ms(node(op, "n", ins, &["y"], attrs))],
            vec![vi("x", F, &BSH)],
            &["y"],
            vec![init("bias", &bias)],
        )
    };
    let std = |nodes: Vec<NodeProto>| {
        model(
            20,
            graph(
                nodes,
                vec![vi("x", F, &BSH)],
                &["y"],
                vec![init("bias", &bias)],
            ),
        )
    };
    let add = || node("Add", "add", &["x", "bias"], &["xb"], vec![]);
    let tanh = || vec![a_s("approximate", "tanh")];
    let cases = [
        (
            "BiasGelu",
            one("BiasGelu", &["x", "bias"], vec![]),
            std(vec![add(), node("Gelu", "g", &["xb"], &["y"], vec![])]),
        ),
        (
            "FastGelu bias",
            one("FastGelu", &["x", "bias"], vec![]),
            std(vec![add(), node("Gelu", "g", &["xb"], &["y"], tanh())]),
        ),
        (
            "FastGelu",
            one("FastGelu", &["x"], vec![]),
            std(vec![node("Gelu", "g", &["x"], &["y"], tanh())]),
        ),
        (
            "Gelu",
            one("Gelu", &["x"], vec![]),
            std(vec![node("Gelu", "g", &["x"], &["y"], vec![])]),
        ),
    ];
    for (what, c, s) in &cases {
        check(what, c, s, &feeds);
    }
    // QuickGelu: x·sigmoid(alpha·x).
    let alpha = Tensor::scalar(1.3f32);
    let c = one("QuickGelu", &["x"], vec![a_f("alpha", 1.3)]);
    let s = model(
        17,
        graph(
            vec![
                node("Mul", "m1", &["x", "alpha"], &["ax"], vec![]),
                node("Sigmoid", "sg", &["ax"], &["sax"], vec![]),
                node("Mul", "m2", &["x", "sax"], &["y"], vec![]),
            ],
            vec![vi("x", F, &BSH)],
            &["y"],
            vec![init("alpha", &alpha)],
        ),
    );
    check("QuickGelu", &c, &s, &feeds);
}

#[test]
fn fused_matmul_is_transpose_matmul_mul() {
    let mut r = Rng(19);
    // [4, 2, 3] with transBatchA and transA reads as [2, 3, 4]; B is [2, 4, 5].
    let feeds = [("a", r.t(&[4, 2, 3])), ("b", r.t(&[2, 5, 4]))];
    let ins = || vec![vi("a", F, &[4, 2, 3]), vi("b", F, &[2, 5, 4])];
    let attrs = vec![
        a_f("alpha", 0.5),
        a_i("transA", 1),
        a_i("transBatchA", 1),
        a_i("transB", 1),
    ];
    let c = model_ms(
        17,
        vec![ms(node("FusedMatMul", "fm", &["a", "b"], &["y"], attrs))],
        ins(),
        &["y"],
        vec![],
    );
    let half = Tensor::scalar(0.5f32);
    let s = model(
        17,
        graph(
            vec![
                node(
                    "Transpose",
                    "ta",
                    &["a"],
                    &["at"],
                    vec![a_ints("perm", &[1, 2, 0])],
                ),
                node(
                    "Transpose",
                    "tb",
                    &["b"],
                    &["bt"],
                    vec![a_ints("perm", &[0, 2, 1])],
                ),
                node("MatMul", "mm", &["at", "bt"], &["p"], vec![]),
                node("Mul", "mul", &["p", "half"], &["y"], vec![]),
            ],
            ins(),
            &["y"],
            vec![init("half", &half)],
        ),
    );
    check("FusedMatMul", &c, &s, &feeds);
    // Plain FusedMatMul is MatMul.
    let plain = model_ms(
        17,
        vec![ms(node("FusedMatMul", "fm", &["a", "b"], &["y"], vec![]))],
        vec![vi("a", F, &[3, 4]), vi("b", F, &[4, 5])],
        &["y"],
        vec![],
    );
    let m = load(&plain).unwrap();
    assert!(m
        .graph
        .node_ids()
        .any(|id| m.graph.node(id).op == Op::MatMul));
}

#[test]
fn embed_layer_norm_is_gathers_and_layer_norm() {
    let mut r = Rng(23);
    let (v, p, nseg) = (11, 7, 2);
    let (we, pe, se, g, b) = (
        r.t(&[v, H]),
        r.t(&[p, H]),
        r.t(&[nseg, H]),
        r.t(&[H]),
        r.t(&[H]),
    );
    let inits = || {
        vec![
            init("we", &we),
            init("pe", &pe),
            init("se", &se),
            init("g", &g),
            init("b", &b),
        ]
    };
    let bs = [B as i64, S as i64];
    let ins = || {
        vec![
            vi("ids", I32, &bs),
            vi("seg", I32, &bs),
            vi("mask", I32, &bs),
            vi("pid", I32, &[1, S as i64]),
        ]
    };
    let c = model_ms(
        17,
        vec![ms(node(
            "EmbedLayerNormalization",
            "eln",
            &["ids", "seg", "we", "pe", "se", "g", "b", "mask", "pid"],
            &["y", "mi", "sum"],
            vec![a_f("epsilon", 1e-5)],
        ))],
        ins(),
        &["y", "mi", "sum"],
        inits(),
    );
    let one = Tensor::scalar(1i32);
    let axes = Tensor::from_vec(vec![1], vec![1i64]);
    let mut std_inits = inits();
    std_inits.extend([init("one", &one), init("axes", &axes)]);
    let s = model(
        17,
        graph(
            vec![
                node("Gather", "gw", &["we", "ids"], &["w"], vec![]),
                node("Gather", "gp", &["pe", "pid"], &["pp"], vec![]),
                node("Gather", "gs", &["se", "seg"], &["ss"], vec![]),
                node("Add", "a1", &["w", "pp"], &["wp"], vec![]),
                node("Add", "a2", &["wp", "ss"], &["sum"], vec![]),
                node(
                    "LayerNormalization",
                    "ln",
                    &["sum", "g", "b"],
                    &["y"],
                    vec![a_f("epsilon", 1e-5)],
                ),
                node("Equal", "eq", &["mask", "one"], &["is1"], vec![]),
                node(
                    "Cast",
                    "c1",
                    &["is1"],
                    &["is1i"],
                    vec![a_i("to", DataType::Int32 as i64)],
                ),
                node(
                    "ReduceSum",
                    "rs",
                    &["is1i", "axes"],
                    &["mi"],
                    vec![a_i("keepdims", 0)],
                ),
            ],
            ins(),
            &["y", "mi", "sum"],
            std_inits,
        ),
    );
    let mask = Tensor::from_vec(vec![B, S], vec![1i32, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    let feeds = [
        ("ids", r.ints(&[B, S], v as i32)),
        ("seg", r.ints(&[B, S], nseg as i32)),
        ("mask", mask),
        ("pid", r.ints(&[1, S], p as i32)),
    ];
    check("EmbedLayerNormalization", &c, &s, &feeds);

    // An id outside the table is an evaluation error, not a panic.
    let mut bad = feeds.clone();
    bad[0].1 = Tensor::from_vec(vec![B, S], vec![0i32, 1, 2, 3, 99, 0, 0, 0, 0, 0]);
    let m = load(&c).unwrap();
    let err = whittle_ir::eval::run(&m.graph, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
}

/// The additive mask the contrib Attention applies for `mask_index` 1-D lengths, and causal.
fn additive_mask(lens: &[i32], causal: bool, filter: f32) -> Tensor {
    let mut v = vec![0f32; B * S * S];
    for b in 0..B {
        for i in 0..S {
            for j in 0..S {
                let k = (b * S + i) * S + j;
                if j as i32 >= lens[b] {
                    v[k] += filter;
                }
                if causal && j > i {
                    v[k] += f32::MIN;
                }
            }
        }
    }
    Tensor::from_vec(vec![B, 1, S, S], v)
}

/// `Attention(input, weights, bias, mask)` as MatMul, Split, head split, scaled QKᵀ,
/// additive mask, Softmax, ·V and head merge.
fn attention_standard(heads: usize, w: &Tensor, bias: &Tensor, scale: f32) -> ModelProto {
    let d = (H / heads) as i64;
    let split = [B as i64, S as i64, heads as i64, d];
    let merged = Tensor::from_vec(vec![3], BSH.to_vec());
    let shape = Tensor::from_vec(vec![4], split.to_vec());
    let sizes = Tensor::from_vec(vec![3], vec![H as i64; 3]);
    let sc = Tensor::scalar(scale);
    let mut nodes = vec![
        node("MatMul", "mm", &["x", "w"], &["xw"], vec![]),
        node("Add", "ab", &["xw", "bias"], &["qkv"], vec![]),
        node(
            "Split",
            "sp",
            &["qkv", "sizes"],
            &["q", "k", "v"],
            vec![a_i("axis", 2)],
        ),
    ];
    for t in ["q", "k", "v"] {
        let perm: &[i64] = if t == "k" {
            &[0, 2, 3, 1]
        } else {
            &[0, 2, 1, 3]
        };
        nodes.push(node(
            "Reshape",
            &format!("r{t}"),
            &[t, "shape"],
            &[&format!("{t}4")],
            vec![],
        ));
        nodes.push(node(
            "Transpose",
            &format!("t{t}"),
            &[&format!("{t}4")],
            &[&format!("{t}h")],
            vec![a_ints("perm", perm)],
        ));
    }
    nodes.extend([
        node("MatMul", "qk", &["qh", "kh"], &["s0"], vec![]),
        node("Mul", "scale", &["s0", "sc"], &["s1"], vec![]),
        node("Add", "mask", &["s1", "am"], &["s2"], vec![]),
        node("Softmax", "sm", &["s2"], &["p"], vec![a_i("axis", -1)]),
        node("MatMul", "pv", &["p", "vh"], &["o4"], vec![]),
        node(
            "Transpose",
            "to",
            &["o4"],
            &["o3"],
            vec![a_ints("perm", &[0, 2, 1, 3])],
        ),
        node("Reshape", "ro", &["o3", "merged"], &["y"], vec![]),
    ]);
    model(
        17,
        graph(
            nodes,
            vec![
                vi("x", F, &BSH),
                vi("am", F, &[B as i64, 1, S as i64, S as i64]),
            ],
            &["y"],
            vec![
                init("w", w),
                init("bias", bias),
                init("sizes", &sizes),
                init("shape", &shape),
                init("merged", &merged),
                init("sc", &sc),
            ],
        ),
    )
}

#[test]
fn attention_is_the_standard_composition() {
    let mut r = Rng(29);
    let heads = 2;
    let (w, bias) = (r.t(&[H, 3 * H]), r.t(&[3 * H]));
    let s = attention_standard(heads, &w, &bias, 1.0 / ((H / heads) as f32).sqrt());
    let lens = [3i32, 5];
    let x = r.t(&[B, S, H]);
    for causal in [false, true] {
        let mut attrs = vec![a_i("num_heads", heads as i64)];
        if causal {
            attrs.push(a_i("unidirectional", 1));
        }
        let c = model_ms(
            17,
            vec![ms(node(
                "Attention",
                "att",
                &["x", "w", "bias", "mi"],
                &["y"],
                attrs,
            ))],
            vec![vi("x", F, &BSH), vi("mi", I32, &[B as i64])],
            &["y"],
            vec![init("w", &w), init("bias", &bias)],
        );
        let got = eval(
            &c,
            &[
                ("x", x.clone()),
                ("mi", Tensor::from_vec(vec![B], lens.to_vec())),
            ],
        );
        let want = eval(
            &s,
            &[
                ("x", x.clone()),
                ("am", additive_mask(&lens, causal, -10000.0)),
            ],
        );
        assert_close(&got, &want, &format!("Attention causal={causal}"));
        let m = load(&c).unwrap();
        let p = export_model(&m, &ExportOptions::default()).unwrap();
        assert!(p
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .any(|n| n.domain() == MS && n.op_type() == "Attention"));
        assert!(p.opset_import.iter().any(|o| o.domain() == MS));
    }
}

#[test]
fn bad_contrib_models_are_refused_without_panics() {
    let mut r = Rng(31);
    let w = r.t(&[H, 3 * H]);
    let att = |attrs, ins: &[&str], outs: &[&str], w: &Tensor| {
        model_ms(
            17,
            vec![ms(node("Attention", "att", ins, outs, attrs))],
            vec![vi("x", F, &BSH), vi("past", F, &[2, B as i64, 2, 1, 4])],
            &["y"],
            vec![init("w", w)],
        )
    };
    let cases = vec![
        ("no num_heads", att(vec![], &["x", "w"], &["y"], &w)),
        (
            "heads do not divide",
            att(vec![a_i("num_heads", 3)], &["x", "w"], &["y"], &w),
        ),
        (
            "past",
            att(
                vec![a_i("num_heads", 2)],
                &["x", "w", "", "", "past"],
                &["y"],
                &w,
            ),
        ),
        (
            "present",
            att(
                vec![a_i("num_heads", 2)],
                &["x", "w"],
                &["y", "present"],
                &w,
            ),
        ),
        (
            "weights rows",
            att(
                vec![a_i("num_heads", 2)],
                &["x", "w"],
                &["y"],
                &r.t(&[H + 1, 3 * H]),
            ),
        ),
        (
            "qkv sizes",
            att(
                vec![a_i("num_heads", 2), a_ints("qkv_hidden_sizes", &[8, 8, 4])],
                &["x", "w"],
                &["y"],
                &w,
            ),
        ),
        (
            "negative qkv sizes",
            att(
                vec![
                    a_i("num_heads", 2),
                    a_ints("qkv_hidden_sizes", &[-8, 8, 24]),
                ],
                &["x", "w"],
                &["y"],
                &w,
            ),
        ),
        (
            "skip shape",
            model_ms(
                17,
                vec![ms(node(
                    "SkipLayerNormalization",
                    "s",
                    &["x", "w", "g"],
                    &["y"],
                    vec![],
                ))],
                vec![vi("x", F, &BSH)],
                &["y"],
                vec![init("w", &w), init("g", &r.t(&[H]))],
            ),
        ),
        (
            "embed ids float",
            model_ms(
                17,
                vec![ms(node(
                    "EmbedLayerNormalization",
                    "e",
                    &["x", "", "w", "w", "", "g", "g"],
                    &["y", "m"],
                    vec![],
                ))],
                vec![vi("x", F, &[B as i64, S as i64])],
                &["y"],
                vec![init("w", &w), init("g", &r.t(&[H]))],
            ),
        ),
        (
            "batch transpose of rank 2",
            model_ms(
                17,
                vec![ms(node(
                    "FusedMatMul",
                    "f",
                    &["x", "w"],
                    &["y"],
                    vec![a_i("transBatchA", 1)],
                ))],
                vec![vi("x", F, &[3, H as i64])],
                &["y"],
                vec![init("w", &w)],
            ),
        ),
    ];
    for (what, m) in cases {
        let res = std::panic::catch_unwind(|| load(&m).map(|_| ()));
        match res {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("{what}: loaded"),
            Err(_) => panic!("{what}: panicked"),
        }
    }
    // Mask shapes the op does not know are run-time errors.
    let c = model_ms(
        17,
        vec![ms(node(
            "Attention",
            "att",
            &["x", "w", "", "mi"],
            &["y"],
            vec![a_i("num_heads", 2)],
        ))],
        vec![vi("x", F, &BSH), vi("mi", I32, &[-1])],
        &["y"],
        vec![init("w", &w)],
    );
    let m = load(&c).unwrap();
    let x = r.t(&[B, S, H]);
    for n in [0usize, 1, 3, 7] {
        let mi = Tensor::from_vec(vec![n], vec![9i32; n]);
        let res = whittle_ir::eval::run(&m.graph, &[("x", x.clone()), ("mi", mi)]);
        assert!(res.is_err(), "mask of {n}");
    }
}

/// MultiHeadAttention, RotaryEmbedding and MatMulNBits (their values are checked against
/// onnxruntime by tests/conformance/contrib.py): what whittle does not support is refused
/// at load with the attribute or input at fault, bad weights at run time.
#[test]
fn new_contrib_ops_refuse_what_they_do_not_support() {
    let mut r = Rng(7);
    let (scales, cache) = (r.t(&[4]), r.t(&[8, 2]));
    let nbits = |attrs: Vec<_>, b: &Tensor| {
        model_ms(
            17,
            vec![ms(node(
                "MatMulNBits",
                "q",
                &["a", "b", "s"],
                &["y"],
                attrs,
            ))],
            vec![vi("a", F, &[2, 32])],
            &["y"],
            vec![init("b", b), init("s", &scales)],
        )
    };
    let packed = Tensor::from_vec(vec![4, 1, 16], vec![0x21u8; 64]);
    let kn = |bits: i64| {
        vec![
            a_i("K", 32),
            a_i("N", 4),
            a_i("bits", bits),
            a_i("block_size", 32),
        ]
    };
    let mha = |attrs: Vec<_>, ins: &[&str]| {
        model_ms(
            17,
            vec![ms(node("MultiHeadAttention", "m", ins, &["y"], attrs))],
            vec![vi("q", F, &BSH), vi("k", F, &BSH), vi("v", F, &BSH)],
            &["y"],
            vec![],
        )
    };
    let rot = |attrs: Vec<_>| {
        model_ms(
            17,
            vec![ms(node(
                "RotaryEmbedding",
                "r",
                &["x", "p", "c", "c"],
                &["y"],
                attrs,
            ))],
            vec![vi("x", F, &BSH), vi("p", DataType::Int64, &[1])],
            &["y"],
            vec![init("c", &cache)],
        )
    };
    let gqa = |mut attrs: Vec<AttributeProto>| {
        attrs.push(a_i("num_heads", 2));
        if !attrs.iter().any(|a| a.name() == "kv_num_heads") {
            attrs.push(a_i("kv_num_heads", 1));
        }
        model_ms(
            17,
            vec![ms(node(
                "GroupQueryAttention",
                "g",
                &["q", "k", "v", "", "", "sl", "tl"],
                &["y"],
                attrs,
            ))],
            vec![
                vi("q", F, &BSH),
                vi("k", F, &BSH),
                vi("v", F, &BSH),
                vi("sl", I32, &[2]),
                vi("tl", I32, &[]),
            ],
            &["y"],
            vec![],
        )
    };
    let cases = vec![
        ("attribute 'bits'", nbits(kn(3), &packed)),
        (
            "attribute 'K': is required",
            nbits(kn(4)[1..].to_vec(), &packed),
        ),
        ("packed QKV", mha(vec![a_i("num_heads", 2)], &["q"])),
        ("attribute 'num_heads'", mha(vec![], &["q", "k", "v"])),
        ("qk", {
            let mut m = mha(vec![a_i("num_heads", 2)], &["q", "k", "v"]);
            let g = m.graph.as_mut().unwrap();
            g.node[0].output = vec!["y".into(), "".into(), "".into(), "qk".into()];
            m
        }),
        (
            "attribute 'scale'",
            rot(vec![a_i("num_heads", 2), a_f("scale", 2.0)]),
        ),
        (
            "attribute 'smooth_softmax'",
            gqa(vec![a_i("smooth_softmax", 1)]),
        ),
        (
            "attribute 'k_quant_type'",
            gqa(vec![a_s("k_quant_type", "PER_TENSOR")]),
        ),
        (
            "attribute 'kv_num_heads'",
            gqa(vec![a_i("kv_num_heads", 3)]),
        ),
        (
            "attribute 'is_packed_batching'",
            rot(vec![a_i("is_packed_batching", 1)]),
        ),
    ];
    for (what, m) in cases {
        match std::panic::catch_unwind(|| load(&m).map(|_| ())) {
            Ok(Err(e)) => assert!(e.to_string().contains(what), "{what}: {e}"),
            Ok(Ok(())) => panic!("{what}: loaded"),
            Err(_) => panic!("{what}: panicked"),
        }
    }
    // B packed for 8 rows of N, not 4: a run-time error naming B.
    let m = load(&nbits(
        kn(4),
        &Tensor::from_vec(vec![8, 1, 16], vec![0u8; 128]),
    ))
    .unwrap();
    let e = whittle_ir::eval::run(&m.graph, &[("a", r.t(&[2, 32]))]).unwrap_err();
    assert!(e.to_string().contains("B must be u8[4, 1, 16]"), "{e}");
}
