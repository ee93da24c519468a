//! Compile errors: ops the backend does not lower, non-f32 data and symbolic shapes are
//! `RuntimeError::Unsupported` naming the node — never a silent fallback.

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

#[test]
fn an_unlowered_op_names_the_node() {
    let mut g = Graph::new("sm");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
    let e = node(&mut g, Op::Unary(UnaryOp::Exp), "e", &[Some(x)], &[2, 3]);
    let y = node(
        &mut g,
        Op::LogSoftmax {
            axis: -1,
            coerce_2d: false,
        },
        "my_softmax",
        &[Some(e)],
        &[2, 3],
    );
    g.add_output(y, "y");
    assert_eq!(
        unsupported_node(&g),
        ("cpu".into(), "my_softmax".into(), "LogSoftmax".into())
    );
}

#[test]
fn unlowered_unary_and_non_f32_are_errors() {
    let mut g = Graph::new("log");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[4]));
    let y = node(&mut g, Op::Unary(UnaryOp::Log), "the_log", &[Some(x)], &[4]);
    g.add_output(y, "y");
    assert_eq!(unsupported_node(&g).1, "the_log");

    let mut g = Graph::new("i64");
    let x = g.add_input("x", TensorType::fixed(DType::I64, &[4]));
    let id = g.add_node(
        Op::Unary(UnaryOp::Neg),
        "neg_i64",
        &[Some(x)],
        vec![whittle_ir::ValueInfo {
            name: "y".into(),
            ty: TensorType::fixed(DType::I64, &[4]),
        }],
    );
    g.add_output(whittle_ir::Value::new(id, 0), "y");
    assert_eq!(unsupported_node(&g).1, "neg_i64");
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
