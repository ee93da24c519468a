//! Control flow through the frontend: `If` / `Loop` bodies that read names of enclosing
//! scopes (two levels up) load as captured inputs, run, export back to subgraphs that read
//! those names again, and load back to the same results; a loop that cannot stop and a body
//! that reads an undefined name are one-line load errors.

mod common;
use common::*;
use prost::Message;
use whittle_frontend::proto::attribute_proto::AttributeType;
use whittle_frontend::proto::tensor_proto::DataType;
use whittle_frontend::proto::{AttributeProto, GraphProto, ModelProto, TensorProto};
use whittle_frontend::{export_model, ExportOptions, Model};
use whittle_ir::{Op, Tensor};

fn a_g(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

fn body(
    name: &str,
    nodes: Vec<whittle_frontend::proto::NodeProto>,
    inputs: Vec<whittle_frontend::proto::ValueInfoProto>,
    outputs: &[&str],
) -> GraphProto {
    GraphProto {
        name: Some(name.into()),
        ..graph(nodes, inputs, outputs, vec![])
    }
}

/// `y = c ? x + one : Loop(3 times: v *= two)(x)`; `one` and `two` are outer initializers,
/// and the loop body reads `two` from two scopes up.
fn nested_model() -> ModelProto {
    let loop_body = body(
        "loop_body",
        vec![
            node("Identity", "cond_pass", &["cond_in"], &["cond_out"], vec![]),
            node("Mul", "double", &["v_in", "two"], &["v_out"], vec![]),
        ],
        vec![
            vi("i", DataType::Int64, &[]),
            vi("cond_in", DataType::Bool, &[]),
            vi("v_in", DataType::Float, &[3]),
        ],
        &["cond_out", "v_out"],
    );
    let then_b = body(
        "then",
        vec![node("Add", "plus", &["x", "one"], &["t"], vec![])],
        vec![],
        &["t"],
    );
    let else_b = body(
        "else",
        vec![node(
            "Loop",
            "times_three",
            &["m", "", "x"],
            &["e"],
            vec![a_g("body", loop_body)],
        )],
        vec![],
        &["e"],
    );
    let inits = vec![
        init("one", &Tensor::from_vec(vec![1], vec![1.0f32])),
        init("two", &Tensor::from_vec(vec![1], vec![2.0f32])),
        init("m", &Tensor::scalar(3i64)),
    ];
    if_model(then_b, else_b, inits)
}

/// `y = If(c: bool, then_b, else_b)` over inputs `c` and `x: f32[3]`.
fn if_model(then_b: GraphProto, else_b: GraphProto, inits: Vec<TensorProto>) -> ModelProto {
    let g = graph(
        vec![node(
            "If",
            "choose",
            &["c"],
            &["y"],
            vec![a_g("then_branch", then_b), a_g("else_branch", else_b)],
        )],
        vec![vi("c", DataType::Bool, &[]), vi("x", DataType::Float, &[3])],
        &["y"],
        inits,
    );
    model(17, g)
}

fn run(m: &Model, c: bool) -> Vec<f32> {
    let x = Tensor::from_vec(vec![3], vec![1.0f32, -2.0, 0.5]);
    let out = whittle_ir::eval::run(&m.graph, &[("c", Tensor::scalar(c)), ("x", x)]).unwrap();
    out[0].1.as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn nested_bodies_capture_outer_names_and_round_trip() {
    let m = load(&nested_model()).unwrap();
    let ifs: Vec<_> = m
        .graph
        .node_ids()
        .filter(|&n| matches!(m.graph.node(n).op, Op::If { .. }))
        .collect();
    assert_eq!(ifs.len(), 1);
    // cond plus the captured x, one, two, m.
    assert_eq!(m.graph.node(ifs[0]).num_inputs, 5);
    assert_eq!(run(&m, true), vec![2.0, -1.0, 1.5]);
    assert_eq!(run(&m, false), vec![8.0, -16.0, 4.0]);

    let p = export_model(&m, &ExportOptions::default()).unwrap();
    let back = whittle_frontend::load_model_bytes(&p.encode_to_vec(), None).unwrap();
    assert_eq!(run(&back, true), vec![2.0, -1.0, 1.5]);
    assert_eq!(run(&back, false), vec![8.0, -16.0, 4.0]);
    // The exported If reads only its condition; its bodies read the outer names again.
    let gp = p.graph.as_ref().unwrap();
    let if_node = gp
        .node
        .iter()
        .find(|n| n.op_type.as_deref() == Some("If"))
        .unwrap();
    assert_eq!(if_node.input.len(), 1);
}

#[test]
fn a_loop_that_cannot_stop_is_a_load_error() {
    let b = body(
        "forever",
        vec![
            node("Identity", "cond_pass", &["cond_in"], &["cond_out"], vec![]),
            node("Identity", "same", &["v_in"], &["v_out"], vec![]),
        ],
        vec![
            vi("i", DataType::Int64, &[]),
            vi("cond_in", DataType::Bool, &[]),
            vi("v_in", DataType::Float, &[1]),
        ],
        &["cond_out", "v_out"],
    );
    let g = graph(
        vec![node(
            "Loop",
            "spin",
            &["", "", "x"],
            &["y"],
            vec![a_g("body", b)],
        )],
        vec![vi("x", DataType::Float, &[1])],
        &["y"],
        vec![],
    );
    let e = load(&model(17, g)).unwrap_err().to_string();
    assert!(e.contains("never stops") && !e.contains('\n'), "{e}");
}

#[test]
fn a_body_reading_an_undefined_name_is_a_load_error() {
    let then_b = body(
        "then",
        vec![node("Add", "plus", &["x", "nowhere"], &["t"], vec![])],
        vec![],
        &["t"],
    );
    let else_b = body(
        "else",
        vec![node("Identity", "same", &["x"], &["e"], vec![])],
        vec![],
        &["e"],
    );
    let e = load(&if_model(then_b, else_b, vec![]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nowhere") && !e.contains('\n'), "{e}");
}
