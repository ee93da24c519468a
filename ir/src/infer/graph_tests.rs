//! Unit tests of graph-level inference: `infer_graph` (with symbolic shape values),
//! `specialize` (shape-chain folding) and type merging.

use super::*;
use crate::{Graph, IrError, UnaryOp, ValueInfo};

fn k(n: usize) -> Dim {
    Dim::Known(n)
}
fn s(n: &str) -> Dim {
    Dim::Sym(n.into())
}
fn f32t(dims: Vec<Dim>) -> TensorType {
    TensorType::new(DType::F32, dims)
}
fn i64c(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec())
}

/// Builds a BERT-like graph: x [batch, seq, 768] → Shape → Gather(0), Gather(1) →
/// Unsqueeze → Concat with [12, 64] → Reshape(x).
fn bert_like() -> (Graph, crate::Value) {
    let mut g = Graph::new("bert");
    let x = g.add_input("x", f32t(vec![s("batch"), s("seq"), k(768)]));
    let vi = |name: &str, ty: TensorType| {
        vec![ValueInfo {
            name: name.into(),
            ty,
        }]
    };
    let unk = |name: &str| vi(name, TensorType::unknown_rank(DType::I64));
    let sh = g.add_node(
        Op::Shape {
            start: 0,
            end: None,
        },
        "shape",
        &[Some(x)],
        unk("shape_out"),
    );
    let i0 = g.add_const("i0", Tensor::scalar(0i64));
    let i1 = g.add_const("i1", Tensor::scalar(1i64));
    let ax = g.add_const("ax", i64c(&[0]));
    let g0 = g.add_node(
        Op::Gather { axis: 0 },
        "g0",
        &[Some(crate::Value::new(sh, 0)), Some(i0)],
        unk("g0_out"),
    );
    let g1 = g.add_node(
        Op::Gather { axis: 0 },
        "g1",
        &[Some(crate::Value::new(sh, 0)), Some(i1)],
        unk("g1_out"),
    );
    let u0 = g.add_node(
        Op::Unsqueeze,
        "u0",
        &[Some(crate::Value::new(g0, 0)), Some(ax)],
        unk("u0_out"),
    );
    let u1 = g.add_node(
        Op::Unsqueeze,
        "u1",
        &[Some(crate::Value::new(g1, 0)), Some(ax)],
        unk("u1_out"),
    );
    let heads = g.add_const("heads", i64c(&[12, 64]));
    let cat = g.add_node(
        Op::Concat { axis: 0 },
        "cat",
        &[
            Some(crate::Value::new(u0, 0)),
            Some(crate::Value::new(u1, 0)),
            Some(heads),
        ],
        unk("cat_out"),
    );
    let rs = g.add_node(
        Op::Reshape { allowzero: false },
        "reshape",
        &[Some(x), Some(crate::Value::new(cat, 0))],
        vi("rs_out", TensorType::unknown_rank(DType::F32)),
    );
    let y = crate::Value::new(rs, 0);
    let act = g.add_node(
        Op::Unary(UnaryOp::Relu),
        "relu",
        &[Some(y)],
        vi("y", TensorType::unknown_rank(DType::F32)),
    );
    let out = crate::Value::new(act, 0);
    g.add_output(out, "y");
    (g, out)
}

#[test]
fn infer_graph_types_every_value() {
    let (mut g, out) = bert_like();
    infer_graph(&mut g).unwrap();
    // Shape → Gather → Unsqueeze → Concat is tracked symbolically.
    assert_eq!(
        g.value_type(out),
        &f32t(vec![s("batch"), s("seq"), k(12), k(64)])
    );
    g.verify().unwrap();
    // Running it again is stable.
    let before = g.value_type(out).clone();
    infer_graph(&mut g).unwrap();
    assert_eq!(g.value_type(out), &before);
}

#[test]
fn specialize_folds_the_shape_chain() {
    let (mut g, out) = bert_like();
    infer_graph(&mut g).unwrap();
    specialize(&mut g, &[("x", vec![2, 5, 768])]).unwrap();
    assert_eq!(
        g.value_type(out),
        &TensorType::fixed(DType::F32, &[2, 5, 12, 64])
    );
    // The reshape now reads a constant [2, 5, 12, 64]; the Shape/Gather/Concat nodes are gone.
    let rs = g
        .node_ids()
        .find(|&n| matches!(g.node(n).op, Op::Reshape { .. }))
        .unwrap();
    let shape_in = g.input(rs, 1).unwrap();
    assert_eq!(
        g.const_tensor(shape_in).unwrap().to_i64_vec(),
        vec![2, 5, 12, 64]
    );
    assert!(!g.node_ids().any(|n| matches!(
        g.node(n).op,
        Op::Shape { .. } | Op::Gather { .. } | Op::Concat { .. }
    )));
    // x, the shape constant, reshape, relu.
    assert_eq!(g.node_count(), 4);
    g.verify().unwrap();
    let res = crate::eval::run(&g, &[("x", Tensor::zeros(DType::F32, vec![2, 5, 768]))]);
    if let Ok(r) = res {
        assert_eq!(r[0].1.shape(), &[2, 5, 12, 64]);
    }
}

#[test]
fn specialize_rejects_bad_shapes() {
    let (mut g, _) = bert_like();
    let e = specialize(&mut g, &[("x", vec![2, 5, 769])]).unwrap_err();
    assert!(matches!(e, IrError::Input { .. }), "{e}");
    let e = specialize(&mut g, &[("x", vec![2, 5])]).unwrap_err();
    assert!(matches!(e, IrError::Input { .. }), "{e}");
    let e = specialize(&mut g, &[("nope", vec![1])]).unwrap_err();
    assert!(matches!(e, IrError::Input { .. }), "{e}");
}

#[test]
fn infer_graph_reports_conflicts() {
    let mut g = Graph::new("bad");
    let a = g.add_input("a", TensorType::fixed(DType::F32, &[2, 3]));
    let b = g.add_input("b", TensorType::fixed(DType::F32, &[4, 3]));
    let n = g.add_node(
        Op::MatMul,
        "mm",
        &[Some(a), Some(b)],
        vec![ValueInfo {
            name: "c".into(),
            ty: TensorType::unknown_rank(DType::F32),
        }],
    );
    g.add_output(crate::Value::new(n, 0), "c");
    match infer_graph(&mut g).unwrap_err() {
        IrError::Infer { node, msg, .. } => {
            assert_eq!(node, "mm");
            assert!(msg.contains("3 vs 4"), "{msg}");
        }
        e => panic!("unexpected {e}"),
    }
    // A declared type that is more specific is kept; a conflicting one is an error.
    let declared = f32t(vec![k(2), s("unk_9")]);
    let inferred = f32t(vec![s("n"), k(5)]);
    assert_eq!(
        merge_types(&declared, &inferred).unwrap(),
        f32t(vec![k(2), k(5)])
    );
    assert!(merge_types(&f32t(vec![k(3)]), &f32t(vec![k(4)])).is_err());
    assert!(merge_types(&f32t(vec![k(3)]), &TensorType::fixed(DType::I64, &[3])).is_err());
}

/// `Range(0, seq, 1)` and `table[:seq]` with `seq` read from an input's shape keep the
/// model's symbol (exporters build position ids, masks and rotary tables so).
#[test]
fn range_and_prefix_slice_to_a_shape_value_keep_the_symbol() {
    let (mut g, _) = bert_like();
    let g1 = g.node_ids().find(|&id| g.node(id).name == "g1").unwrap();
    let u1 = g.node_ids().find(|&id| g.node(id).name == "u1").unwrap();
    let seq = crate::Value::new(g1, 0);
    let unk = |name: &str, dt: DType| {
        vec![ValueInfo {
            name: name.into(),
            ty: TensorType::unknown_rank(dt),
        }]
    };
    let zero = g.add_const("zero", Tensor::scalar(0i64));
    let one = g.add_const("one", Tensor::scalar(1i64));
    let r = g.add_node(
        Op::Range,
        "range",
        &[Some(zero), Some(seq), Some(one)],
        unk("r", DType::I64),
    );
    let table = g.add_const("table", Tensor::from_vec(vec![512, 4], vec![0f32; 2048]));
    let starts = g.add_const("starts", i64c(&[0]));
    let sl = g.add_node(
        Op::Slice,
        "slice",
        &[
            Some(table),
            Some(starts),
            Some(crate::Value::new(u1, 0)),
            Some(starts),
        ],
        unk("sl", DType::F32),
    );
    // A step other than 1 is not a prefix: a fresh size.
    let two = g.add_const("two", i64c(&[2]));
    let st = g.add_node(
        Op::Slice,
        "strided",
        &[
            Some(table),
            Some(starts),
            Some(crate::Value::new(u1, 0)),
            Some(starts),
            Some(two),
        ],
        unk("st", DType::F32),
    );
    for id in [r, sl, st] {
        g.add_output(crate::Value::new(id, 0), &g.node(id).name.clone());
    }
    infer_graph(&mut g).unwrap();
    let ty = |id| g.value_type(crate::Value::new(id, 0)).clone();
    assert_eq!(ty(r), TensorType::new(DType::I64, vec![s("seq")]));
    assert_eq!(ty(sl), f32t(vec![s("seq"), k(4)]));
    let strided = ty(st);
    assert!(strided.shape.as_ref().unwrap()[0] != s("seq"), "{strided}");
}

/// Torch's `expand` export, `Expand(x, Where(Equal(s, -1·ones), ones, s))` with
/// `s = Reshape(Concat(Shape(x)...), [-1])`, keeps the model's symbols.
#[test]
fn torch_expand_shape_pattern_keeps_the_symbols() {
    let mut g = Graph::new("expand");
    let x = g.add_input("x", f32t(vec![s("batch"), s("seq")]));
    let unk = |name: &str, dt: DType| {
        vec![ValueInfo {
            name: name.into(),
            ty: TensorType::unknown_rank(dt),
        }]
    };
    let v = |id| crate::Value::new(id, 0);
    let sh = g.add_node(
        Op::Shape {
            start: 0,
            end: None,
        },
        "shape",
        &[Some(x)],
        unk("sh", DType::I64),
    );
    let flat = g.add_const("flat", i64c(&[-1]));
    let rs = g.add_node(
        Op::Reshape { allowzero: false },
        "rs",
        &[Some(v(sh)), Some(flat)],
        unk("rs", DType::I64),
    );
    let sh2 = g.add_node(
        Op::Shape {
            start: 0,
            end: None,
        },
        "shape2",
        &[Some(v(rs))],
        unk("sh2", DType::I64),
    );
    let ones = g.add_node(
        Op::ConstantOfShape {
            value: std::sync::Arc::new(Tensor::from_vec(vec![1], vec![1i64])),
        },
        "ones",
        &[Some(v(sh2))],
        unk("ones", DType::I64),
    );
    let m1 = g.add_const("m1", Tensor::scalar(-1i64));
    let neg = g.add_node(
        Op::Binary(crate::BinaryOp::Mul),
        "neg",
        &[Some(v(ones)), Some(m1)],
        unk("neg", DType::I64),
    );
    let eq = g.add_node(
        Op::Binary(crate::BinaryOp::Equal),
        "eq",
        &[Some(v(rs)), Some(v(neg))],
        unk("eq", DType::Bool),
    );
    let wh = g.add_node(
        Op::Where,
        "where",
        &[Some(v(eq)), Some(v(ones)), Some(v(rs))],
        unk("wh", DType::I64),
    );
    let one = g.add_const("one", Tensor::from_vec(vec![1, 1], vec![1f32]));
    let ex = g.add_node(
        Op::Expand,
        "expand",
        &[Some(one), Some(v(wh))],
        unk("ex", DType::F32),
    );
    g.add_output(v(ex), "ex");
    infer_graph(&mut g).unwrap();
    assert_eq!(
        g.value_type(v(ex)).clone(),
        f32t(vec![s("batch"), s("seq")])
    );
}
