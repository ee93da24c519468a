//! Declared shapes are hints: a graph output or `value_info` whose declared shape inference
//! disproves loads with the inferred shape and one warning; a dtype conflict is an error.

mod common;
use common::*;
use whittle_frontend::proto::tensor_proto::DataType;
use whittle_ir::{Dim, Tensor};

/// `y = Add(x, x)` on x: f32[N, 2], with `y` declared as given.
fn add_model(
    y_decl: whittle_frontend::proto::ValueInfoProto,
) -> whittle_frontend::proto::ModelProto {
    let mut g = graph(
        vec![node("Add", "add", &["x", "x"], &["y"], vec![])],
        vec![vi("x", DataType::Float, &[-1, 2])],
        &["y"],
        vec![],
    );
    g.output = vec![y_decl];
    model(17, g)
}

#[test]
fn an_output_declared_with_an_empty_shape_loads_with_one_warning() {
    // Paddle2ONNX writes graph outputs with an empty shape: `f32[]`, which is rank 0.
    let m = load(&add_model(vi("y", DataType::Float, &[]))).unwrap();
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("'y'"), "{}", m.warnings[0]);
    let out = m.graph.outputs()[0].value;
    let ty = m.graph.value_type(out);
    assert_eq!(ty.rank(), Some(2), "{ty}");
    assert_eq!(ty.shape.as_ref().unwrap()[1], Dim::Known(2));
    // It runs: the reference evaluator gives the inferred shape.
    let x = Tensor::from_vec(vec![3, 2], vec![1f32, 2., 3., 4., 5., 6.]);
    let y = whittle_ir::eval::run(&m.graph, &[("x", x)]).unwrap();
    assert_eq!(y[0].1.shape(), &[3, 2]);
}

#[test]
fn conflicting_value_info_shapes_make_one_warning_for_all() {
    let mut p = add_model(vi("y", DataType::Float, &[7, 7]));
    let g = p.graph.as_mut().unwrap();
    g.node.push(node("Neg", "neg", &["y"], &["z"], vec![]));
    g.output.push(vi("z", DataType::Float, &[5]));
    let m = load(&p).unwrap();
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].starts_with("2 declared shapes"),
        "{}",
        m.warnings[0]
    );
    let z = m.graph.outputs()[1].value;
    assert_eq!(m.graph.value_type(z).rank(), Some(2));
}

#[test]
fn a_more_specific_declared_shape_is_kept_without_a_warning() {
    let m = load(&add_model(vi("y", DataType::Float, &[4, 2]))).unwrap();
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let out = m.graph.outputs()[0].value;
    assert_eq!(m.graph.value_type(out).concrete_shape(), Some(vec![4, 2]));
}

#[test]
fn a_declared_dtype_conflict_is_an_error() {
    let e = load(&add_model(vi("y", DataType::Int64, &[-1, 2]))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("dtype"), "{msg}");
}
