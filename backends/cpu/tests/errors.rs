//! Compile errors: ops the backend does not lower, unsupported dtypes and symbolic shapes are
//! `RuntimeError::Unsupported` naming the node. An op without a kernel of its own runs on
//! the reference path (the evaluator's code), never silently as something else.

mod common;
use common::*;
use whittle_cpu::CpuBackend;
use whittle_ir::{DType, Graph, Op, Tensor, TensorType, UnaryOp};
use whittle_runtime::{Backend, RuntimeError};

fn unsupported_node(g: &Graph) -> (String, String, String) {
    match CpuBackend::default().compile(g) {
        Err(RuntimeError::Unsupported {
            backend, node, op, ..
        }) => (backend, node, op),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("compiled"),
    }
}

/// `y = OneHot(i, depth, [0, 1])` on `i: i64[3]`, node `my_onehot`, declared `f32[3, 4]`.
fn one_hot(depth: Tensor) -> Graph {
    let mut g = Graph::new("onehot");
    let i = g.add_input("i", TensorType::fixed(DType::I64, &[3]));
    let depth = g.add_const("depth", depth);
    let values = g.add_const("values", Tensor::from_vec(vec![2], vec![0f32, 1.0]));
    let id = g.add_node(
        Op::OneHot { axis: -1 },
        "my_onehot",
        &[Some(i), Some(depth), Some(values)],
        vec![whittle_ir::ValueInfo {
            name: "y".into(),
            ty: TensorType::fixed(DType::F32, &[3, 4]),
        }],
    );
    g.add_output(whittle_ir::Value::new(id, 0), "y");
    g
}

#[test]
fn an_op_without_a_kernel_runs_on_the_reference_path() {
    // OneHot has no kernel of its own: it runs as a reference step and agrees with eval.
    let g = one_hot(Tensor::scalar(4i64));
    let x = Tensor::from_vec(vec![3], vec![2i64, -1, 7]);
    let want = whittle_ir::eval::run(&g, &[("i", x.clone())]).unwrap();
    let exe = CpuBackend::default().compile(&g).unwrap();
    let got = exe.run(&[("i", x)]).unwrap();
    assert_eq!(got[0].1, want[0].1);
}

#[test]
fn a_node_the_evaluator_refuses_names_the_node() {
    // OneHot's depth must be a scalar: refused at compile time, naming the node.
    let g = one_hot(Tensor::from_vec(vec![2], vec![4i64, 4]));
    let err = CpuBackend::default().compile(&g).err().expect("compiled");
    assert!(err.to_string().contains("'my_onehot'"), "{err}");
}

#[test]
fn unlowered_unary_and_non_f32_are_errors() {
    let mut g = Graph::new("not");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[4]));
    let e = node(&mut g, Op::Unary(UnaryOp::Exp), "e", &[Some(x)], &[4]);
    let y = node(&mut g, Op::Unary(UnaryOp::Not), "the_not", &[Some(e)], &[4]);
    g.add_output(y, "y");
    assert_eq!(unsupported_node(&g).1, "the_not");

    let mut g = Graph::new("i64");
    let x = g.add_input("x", TensorType::fixed(DType::I64, &[4]));
    // Sin is not defined on integers.
    let id = g.add_node(
        Op::Unary(UnaryOp::Sin),
        "sin_i64",
        &[Some(x)],
        vec![whittle_ir::ValueInfo {
            name: "y".into(),
            ty: TensorType::fixed(DType::I64, &[4]),
        }],
    );
    g.add_output(whittle_ir::Value::new(id, 0), "y");
    assert_eq!(unsupported_node(&g).1, "sin_i64");
}

#[test]
fn wrong_input_shape_at_run_time_is_an_error() {
    let mut g = Graph::new("r");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[3]));
    let y = node(&mut g, Op::Unary(UnaryOp::Relu), "y", &[Some(x)], &[3]);
    g.add_output(y, "y");
    let exe = CpuBackend::default().compile(&g).unwrap();
    assert!(exe
        .run(&[("x", Tensor::from_vec(vec![4], vec![0f32; 4]))])
        .is_err());
    assert!(exe.run(&[]).is_err());
}
