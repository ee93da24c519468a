//! The CLI on bad input: every problem is one line on stderr naming it, a non-zero exit
//! code, and never a panic. Also the happy path of `run` and `inspect`.

use prost::Message;
use std::path::{Path, PathBuf};
use whittle::frontend::{proto, save_model, ExportOptions, Model};
use whittle::ir::{DType, Graph, Op, Tensor, TensorType, UnaryOp, Value, ValueInfo};
use whittle::runtime::npy::write_npy;

mod common;
use common::{fails_with, tmp, whittle};

/// x: f32[2,3] → Relu → y
fn relu_model(dir: &Path) -> PathBuf {
    let mut g = Graph::new("relu");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
    let ty = TensorType::fixed(DType::F32, &[2, 3]);
    let id = g.add_node(
        Op::Unary(UnaryOp::Relu),
        "relu",
        &[Some(x)],
        vec![ValueInfo {
            name: "y".into(),
            ty,
        }],
    );
    g.add_output(Value::new(id, 0), "y");
    let p = dir.join("relu.onnx");
    save_model(&Model::from_graph(g), &p, &ExportOptions::default()).unwrap();
    p
}

fn relu_proto(op_type: &str, input: &str) -> Vec<u8> {
    use proto::*;
    let vi = |name: &str| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(tensor_proto::DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: vec![tensor_shape_proto::Dimension {
                        denotation: None,
                        value: Some(tensor_shape_proto::dimension::Value::DimValue(2)),
                    }],
                }),
            })),
        }),
        ..Default::default()
    };
    let node = NodeProto {
        op_type: Some(op_type.into()),
        name: Some("the_node".into()),
        input: vec![input.into()],
        output: vec!["y".into()],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![node],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn run_and_inspect_work() {
    let d = tmp("ok");
    let m = relu_model(&d);
    let x = d.join("x.npy");
    write_npy(
        &x,
        &Tensor::from_vec(vec![2, 3], vec![-1.0f32, 2.0, -3.0, 4.0, 0.0, 6.0]),
    )
    .unwrap();
    let out = d.join("out");
    let (code, stdout, err) = whittle(&[
        "run",
        m.to_str().unwrap(),
        "--input",
        &format!("x={}", x.display()),
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("y: f32[2, 3]"), "{stdout}");
    let y = whittle::runtime::npy::read_npy(&out.join("y.npy")).unwrap();
    assert_eq!(
        y.as_slice::<f32>().unwrap(),
        &[0.0, 2.0, 0.0, 4.0, 0.0, 6.0]
    );
    let (code, stdout, _) = whittle(&["inspect", m.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("x: f32[2,3]")
            && stdout.contains("Relu")
            && stdout.contains("unsupported ops: none"),
        "{stdout}"
    );
}

#[test]
fn bad_model_files() {
    let d = tmp("models");
    let missing = d.join("nope.onnx");
    fails_with(&["inspect", missing.to_str().unwrap()], "nope.onnx");

    let empty = d.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    fails_with(&["inspect", empty.to_str().unwrap()], "the model is empty");

    let random = d.join("random.onnx");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    fails_with(
        &["inspect", random.to_str().unwrap()],
        "malformed ONNX protobuf",
    );

    let good = std::fs::read(relu_model(&d)).unwrap();
    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    fails_with(
        &["inspect", truncated.to_str().unwrap()],
        "malformed ONNX protobuf",
    );

    let unknown = d.join("unknown.onnx");
    std::fs::write(&unknown, relu_proto("FancyRelu", "x")).unwrap();
    fails_with(
        &[
            "run",
            unknown.to_str().unwrap(),
            "--output-dir",
            d.to_str().unwrap(),
        ],
        "node 'the_node' is ai.onnx::FancyRelu at opset 17",
    );
    let (code, stdout, _) = whittle(&["inspect", unknown.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stdout.contains("node 'the_node': ai.onnx::FancyRelu (opset 17)"),
        "{stdout}"
    );

    let dangling = d.join("dangling.onnx");
    std::fs::write(&dangling, relu_proto("Relu", "ghost")).unwrap();
    fails_with(
        &["inspect", dangling.to_str().unwrap()],
        "node 'the_node' reads value 'ghost'",
    );
}

#[test]
fn bad_inputs_at_run_time() {
    let d = tmp("inputs");
    let m = relu_model(&d);
    let m = m.to_str().unwrap();
    let out = d.join("out");
    let out = out.to_str().unwrap();
    let npy = |name: &str, t: Tensor| {
        let p = d.join(name);
        write_npy(&p, &t).unwrap();
        p.display().to_string()
    };
    fails_with(&["run", m, "--output-dir", out], "input 'x': missing");
    let wrong_shape = npy("shape.npy", Tensor::from_vec(vec![3, 2], vec![0f32; 6]));
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={wrong_shape}"),
            "--output-dir",
            out,
        ],
        "expected shape f32[2,3] but got [3, 2]",
    );
    let wrong_dtype = npy("dtype.npy", Tensor::from_vec(vec![2, 3], vec![0f64; 6]));
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={wrong_dtype}"),
            "--output-dir",
            out,
        ],
        "expected dtype f32 but got f64",
    );
    let ok = npy("ok.npy", Tensor::from_vec(vec![2, 3], vec![0f32; 6]));
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={ok}"),
            "--input",
            &format!("z={ok}"),
            "--output-dir",
            out,
        ],
        "input 'z': the model has no input of this name",
    );
    let text = d.join("x.npy");
    std::fs::write(&text, b"1,2,3\n4,5,6\n").unwrap();
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={}", text.display()),
            "--output-dir",
            out,
        ],
        "not a valid .npy file",
    );
    fails_with(
        &["run", m, "--input", "x=data.csv", "--output-dir", out],
        "is not a .npy file",
    );
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={}", d.join("absent.npy").display()),
            "--output-dir",
            out,
        ],
        "absent.npy",
    );
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={ok}"),
            "--output-dir",
            out,
            "--backend",
            "gpu9000",
        ],
        "unknown backend 'gpu9000'",
    );
    fails_with(
        &[
            "run",
            m,
            "--input",
            &format!("x={ok}"),
            "--output-dir",
            out,
            "--passes",
            "magic",
        ],
        "unknown pass 'magic'",
    );
}

/// The README's quick start: `whittle demo` runs the whole job on the embedded model and
/// passes its own checks (round trip, exact pipeline, cpu backend, padding-free).
#[test]
fn demo_passes() {
    let (code, out, err) = whittle(&["demo"]);
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    for want in ["cpu backend", "padding-free", "demo PASSED"] {
        assert!(out.contains(want), "'{want}' missing from:\n{out}");
    }
}
