//! Tests of the embedding API: a tiny hand-checked model (`relu(x @ W + b)`) on both
//! targets, fixed and symbolic shapes, the ONNX round trip, every input error, threads.

use super::*;
use whittle_ir::{Op, TensorType, UnaryOp, Value, ValueInfo};

/// `y = relu(x @ W + b)` with `x: f32[batch, 3]` (`batch` symbolic unless `fixed_batch`),
/// W = [[1, 0], [0, 1], [1, -1]], b = [0.5, -0.5].
pub(crate) fn tiny_graph(fixed_batch: Option<usize>) -> Graph {
    let mut g = Graph::new("tiny");
    let batch = match fixed_batch {
        Some(n) => Dim::Known(n),
        None => Dim::Sym("batch".into()),
    };
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![batch.clone(), Dim::Known(3)]),
    );
    let w = g.add_const(
        "W",
        Tensor::from_vec(vec![3, 2], vec![1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0]),
    );
    let b = g.add_const("b", Tensor::from_vec(vec![2], vec![0.5f32, -0.5]));
    let ty = TensorType::new(DType::F32, vec![batch, Dim::Known(2)]);
    let node = |g: &mut Graph, op: Op, name: &str, ins: &[Value]| {
        let ins: Vec<Option<Value>> = ins.iter().copied().map(Some).collect();
        let out = ValueInfo {
            name: name.into(),
            ty: ty.clone(),
        };
        Value::new(g.add_node(op, name, &ins, vec![out]), 0)
    };
    let mm = node(&mut g, Op::MatMul, "mm", &[x, w]);
    let add = node(
        &mut g,
        Op::Binary(whittle_ir::BinaryOp::Add),
        "add",
        &[mm, b],
    );
    let y = node(&mut g, Op::Unary(UnaryOp::Relu), "y", &[add]);
    g.add_output(y, "y");
    g
}

const X: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
// Row 0: [1+3, 2-3] + b = [4.5, -1.5] → [4.5, 0]; row 1: [0, -1] + b = [0.5, -1.5] → [0.5, 0].
const Y: [f32; 4] = [4.5, 0.0, 0.5, 0.0];

fn targets() -> [Target; 2] {
    [Target::Reference, Target::Cpu { threads: Some(2) }]
}

fn run_y(c: &CompiledModel, x: &[f32], shape: &[usize]) -> Vec<f32> {
    let out = c.run(&[("x", TensorView::f32(x, shape))]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "y");
    assert_eq!(out[0].1.shape(), &[shape[0], 2]);
    out[0].1.as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn fixed_shape_model_runs_on_every_target() {
    let m = Model::from_graph(tiny_graph(Some(2))).unwrap();
    for t in targets() {
        let c = m.compile(t).unwrap();
        assert_eq!(c.target(), t);
        assert_eq!(run_y(&c, &X, &[2, 3]), Y, "{t:?}");
    }
}

#[test]
fn symbolic_batch_runs_with_several_batch_sizes() {
    let m = Model::from_graph(tiny_graph(None)).unwrap();
    for t in targets() {
        let c = m.compile(t).unwrap();
        assert_eq!(run_y(&c, &X, &[2, 3]), Y, "{t:?}");
        assert_eq!(run_y(&c, &X[..3], &[1, 3]), Y[..2], "{t:?}");
        // Back to a cached shape.
        assert_eq!(run_y(&c, &X, &[2, 3]), Y, "{t:?}");
    }
}

#[test]
fn metadata_lists_names_dtypes_and_symbolic_dims() {
    let m = Model::from_graph(tiny_graph(None)).unwrap();
    let ins = m.inputs();
    assert_eq!(ins.len(), 1);
    assert_eq!(ins[0].name, "x");
    assert_eq!(ins[0].dtype, DType::F32);
    assert_eq!(
        ins[0].shape,
        Some(vec![Dim::Sym("batch".into()), Dim::Known(3)])
    );
    assert_eq!(ins[0].to_string(), "x: f32[batch, 3]");
    assert_eq!(m.outputs()[0].to_string(), "y: f32[batch, 2]");
    let c = m.compile(Target::Reference).unwrap();
    assert_eq!(c.inputs(), &ins[..]);
    assert_eq!(c.outputs()[0].name, "y");
}

#[test]
fn onnx_file_and_bytes_round_trip() {
    let dir = std::env::temp_dir().join(format!("whittle-api-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.onnx");
    let src = Model::from_graph(tiny_graph(None)).unwrap();
    whittle_frontend::save_model(src.onnx_model(), &path, &Default::default()).unwrap();
    let from_file = Model::load(&path).unwrap();
    let from_bytes = Model::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    for m in [from_file, from_bytes] {
        assert_eq!(m.inputs()[0].to_string(), "x: f32[batch, 3]");
        let m = m.optimize_exact().unwrap();
        let c = m.compile(Target::Cpu { threads: None }).unwrap();
        assert_eq!(run_y(&c, &X, &[2, 3]), Y);
    }
}

#[test]
fn load_errors_are_typed() {
    let err = Model::load("/nonexistent/whittle/model.onnx").unwrap_err();
    assert!(matches!(err, Error::Load(_)), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/whittle/model.onnx"),
        "{err}"
    );
    let err = Model::from_bytes(b"definitely not a protobuf \xff\xff").unwrap_err();
    assert!(matches!(err, Error::Load(_)), "{err:?}");
    let err = Model::from_bytes(&[]).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn pipelines_run_and_unknown_passes_are_errors() {
    let err = Pipeline::parse("no-such-pass").err().unwrap();
    assert!(err.to_string().contains("no-such-pass"));
    let p = Pipeline::parse("const-fold,dce").unwrap();
    let m = Model::from_graph(tiny_graph(Some(2)))
        .unwrap()
        .optimize(&p)
        .unwrap();
    let c = m.compile(Target::Reference).unwrap();
    assert_eq!(run_y(&c, &X, &[2, 3]), Y);
}

#[test]
fn input_errors_name_the_input_and_what_is_wrong() {
    let m = Model::from_graph(tiny_graph(Some(2))).unwrap();
    for t in targets() {
        let c = m.compile(t).unwrap();
        let e = c.run(&[("z", TensorView::f32(&X, &[2, 3]))]).unwrap_err();
        assert!(
            matches!(&e, Error::UnknownInput { name, .. } if name == "z"),
            "{e:?}"
        );
        assert!(e.to_string().contains("inputs are: x"), "{e}");

        let e = c.run(&[]).unwrap_err();
        assert!(
            matches!(&e, Error::BadInputSet { why: "missing", .. }),
            "{e:?}"
        );

        let v = TensorView::f32(&X, &[2, 3]);
        let e = c.run(&[("x", v), ("x", v)]).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");

        let xi = [1i64; 6];
        let e = c.run(&[("x", TensorView::i64(&xi, &[2, 3]))]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::DTypeMismatch {
                    expected: DType::F32,
                    got: DType::I64,
                    ..
                }
            ),
            "{e:?}"
        );

        let e = c.run(&[("x", TensorView::f32(&X, &[3, 2]))]).unwrap_err();
        assert!(matches!(&e, Error::ShapeMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("dim 0 must be 2, got 3"), "{e}");

        let e = c.run(&[("x", TensorView::f32(&X, &[6]))]).unwrap_err();
        assert!(e.to_string().contains("expected rank 2, got rank 1"), "{e}");

        let e = c
            .run(&[("x", TensorView::f32(&X[..5], &[2, 3]))])
            .unwrap_err();
        assert!(e.to_string().contains("needs 6 elements"), "{e}");

        let e = c.run_positional(&[]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
}

#[test]
fn zero_threads_is_rejected() {
    let m = Model::from_graph(tiny_graph(Some(2))).unwrap();
    let e = m.compile(Target::Cpu { threads: Some(0) }).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn compiled_models_run_from_several_threads_at_once() {
    for fixed in [Some(2), None] {
        let m = Model::from_graph(tiny_graph(fixed)).unwrap();
        for t in targets() {
            let c = m.compile(t).unwrap();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..20 {
                            assert_eq!(run_y(&c, &X, &[2, 3]), Y);
                        }
                    });
                }
            });
        }
    }
}

#[test]
fn demo_model_matches_the_reference_evaluator() {
    let g = crate::demo::build_demo_graph();
    let inputs = crate::demo::demo_inputs();
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let want = whittle_ir::eval::run(&g, &named).unwrap();
    let c = Model::from_graph(g)
        .unwrap()
        .compile(Target::Reference)
        .unwrap();
    let views: Vec<(&str, TensorView)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), TensorView::tensor(t)))
        .collect();
    assert_eq!(c.run(&views).unwrap(), want);
}
