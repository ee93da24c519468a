//! Loader tests on hand-built ONNX models: old-opset normalisations, Constant node forms,
//! external data, types, and every kind of bad input.

mod common;
use common::*;
use prost::Message;
use whittle_frontend::proto::tensor_proto::{DataLocation, DataType};
use whittle_frontend::proto::{StringStringEntryProto, TensorProto};
use whittle_frontend::{load_model, load_model_bytes, unsupported_ops, FrontendError};
use whittle_ir::{BinaryOp, CoordTransform, Dim, NearestMode, Op, ReduceOp, Tensor};

fn one_node(opset: i64, n: common_node::N) -> whittle_frontend::Model {
    let m = model(opset, graph(vec![n.node], n.inputs, &["y"], n.inits));
    load(&m).unwrap_or_else(|e| panic!("{e}"))
}

mod common_node {
    use whittle_frontend::proto::{NodeProto, TensorProto, ValueInfoProto};
    pub struct N {
        pub node: NodeProto,
        pub inputs: Vec<ValueInfoProto>,
        pub inits: Vec<TensorProto>,
    }
}
use common_node::N;

fn x(dims: &[i64]) -> Vec<whittle_frontend::proto::ValueInfoProto> {
    vec![vi("x", DataType::Float, dims)]
}

#[test]
fn slice_1_attributes_become_inputs() {
    let attrs = vec![
        a_ints("starts", &[1]),
        a_ints("ends", &[3]),
        a_ints("axes", &[1]),
    ];
    let m = one_node(
        9,
        N {
            node: node("Slice", "s", &["x"], &["y"], attrs),
            inputs: x(&[2, 4]),
            inits: vec![],
        },
    );
    let g = &m.graph;
    let (id, n) = find(g, "s");
    assert_eq!(n.op, Op::Slice);
    assert_eq!(const_input(g, id, 1).unwrap().to_i64_vec(), vec![1]);
    assert_eq!(const_input(g, id, 2).unwrap().to_i64_vec(), vec![3]);
    assert_eq!(const_input(g, id, 3).unwrap().to_i64_vec(), vec![1]);
    assert_eq!(
        g.value_type(g.outputs()[0].value).concrete_shape(),
        Some(vec![2, 2])
    );
}

#[test]
fn old_reduce_squeeze_split_pad_clip_topk() {
    let m = one_node(
        11,
        N {
            node: node(
                "ReduceSum",
                "r",
                &["x"],
                &["y"],
                vec![a_ints("axes", &[0]), a_i("keepdims", 0)],
            ),
            inputs: x(&[2, 3]),
            inits: vec![],
        },
    );
    let (id, n) = find(&m.graph, "r");
    assert_eq!(
        n.op,
        Op::Reduce {
            op: ReduceOp::Sum,
            keepdims: false,
            noop_with_empty_axes: false
        }
    );
    assert_eq!(const_input(&m.graph, id, 1).unwrap().to_i64_vec(), vec![0]);

    let m = one_node(
        11,
        N {
            node: node("Squeeze", "q", &["x"], &["y"], vec![a_ints("axes", &[0])]),
            inputs: x(&[1, 3]),
            inits: vec![],
        },
    );
    let (id, _) = find(&m.graph, "q");
    assert_eq!(const_input(&m.graph, id, 1).unwrap().to_i64_vec(), vec![0]);

    let mut n = node(
        "Split",
        "sp",
        &["x"],
        &["y", "z"],
        vec![a_ints("split", &[1, 3]), a_i("axis", 1)],
    );
    n.output = vec!["y".into(), "z".into()];
    let m = load(&model(11, graph(vec![n], x(&[2, 4]), &["y", "z"], vec![]))).unwrap();
    let (id, n) = find(&m.graph, "sp");
    assert_eq!(
        n.op,
        Op::Split {
            axis: 1,
            num_outputs: 2
        }
    );
    assert_eq!(
        const_input(&m.graph, id, 1).unwrap().to_i64_vec(),
        vec![1, 3]
    );

    let m = one_node(
        10,
        N {
            node: node(
                "Pad",
                "p",
                &["x"],
                &["y"],
                vec![a_ints("pads", &[0, 1, 0, 1]), a_f("value", 2.0)],
            ),
            inputs: x(&[2, 2]),
            inits: vec![],
        },
    );
    let (id, _) = find(&m.graph, "p");
    assert_eq!(
        const_input(&m.graph, id, 1).unwrap().to_i64_vec(),
        vec![0, 1, 0, 1]
    );
    assert_eq!(
        const_input(&m.graph, id, 2).unwrap(),
        Tensor::scalar(2.0f32)
    );

    let m = one_node(
        6 + 3,
        N {
            node: node("Clip", "c", &["x"], &["y"], vec![a_f("max", 6.0)]),
            inputs: x(&[3]),
            inits: vec![],
        },
    );
    let (id, n) = find(&m.graph, "c");
    assert_eq!(n.op, Op::Clip);
    assert!(g_input_absent(&m.graph, id, 1));
    assert_eq!(
        const_input(&m.graph, id, 2).unwrap(),
        Tensor::scalar(6.0f32)
    );

    let mut n = node("TopK", "t", &["x"], &["y", "i"], vec![a_i("k", 2)]);
    n.output = vec!["y".into(), "i".into()];
    let m = load(&model(9, graph(vec![n], x(&[5]), &["y", "i"], vec![]))).unwrap();
    let (id, n) = find(&m.graph, "t");
    assert_eq!(
        n.op,
        Op::TopK {
            axis: -1,
            largest: true,
            sorted: true
        }
    );
    assert_eq!(const_input(&m.graph, id, 1).unwrap().to_i64_vec(), vec![2]);
}

fn g_input_absent(g: &whittle_ir::Graph, id: whittle_ir::NodeId, port: usize) -> bool {
    g.input(id, port).is_none()
}

#[test]
fn softmax_forms_and_mod() {
    let m = one_node(
        11,
        N {
            node: node("Softmax", "s", &["x"], &["y"], vec![]),
            inputs: x(&[2, 3]),
            inits: vec![],
        },
    );
    assert_eq!(
        find(&m.graph, "s").1.op,
        Op::Softmax {
            axis: 1,
            coerce_2d: true
        }
    );
    let m = one_node(
        13,
        N {
            node: node("LogSoftmax", "s", &["x"], &["y"], vec![]),
            inputs: x(&[2, 3]),
            inits: vec![],
        },
    );
    assert_eq!(
        find(&m.graph, "s").1.op,
        Op::LogSoftmax {
            axis: -1,
            coerce_2d: false
        }
    );
    let inputs = vec![
        vi("x", DataType::Float, &[2]),
        vi("w", DataType::Float, &[2]),
    ];
    let m = one_node(
        13,
        N {
            node: node("Mod", "m", &["x", "w"], &["y"], vec![a_i("fmod", 1)]),
            inputs,
            inits: vec![],
        },
    );
    assert_eq!(find(&m.graph, "m").1.op, Op::Binary(BinaryOp::FMod));
}

#[test]
fn upsample_becomes_resize() {
    let m = one_node(
        7,
        N {
            node: node(
                "Upsample",
                "u",
                &["x"],
                &["y"],
                vec![a_floats("scales", &[1.0, 2.0])],
            ),
            inputs: x(&[2, 2]),
            inits: vec![],
        },
    );
    let (id, n) = find(&m.graph, "u");
    let Op::Resize(r) = &n.op else {
        panic!("{:?}", n.op)
    };
    assert_eq!(
        (r.coord, r.nearest),
        (CoordTransform::Asymmetric, NearestMode::Floor)
    );
    assert!(g_input_absent(&m.graph, id, 1));
    assert_eq!(
        const_input(&m.graph, id, 2).unwrap().to_f64_vec(),
        vec![1.0, 2.0]
    );
}

#[test]
fn batchnorm_training_is_rejected() {
    let inputs = vec![vi("x", DataType::Float, &[1, 2, 2])];
    let inits: Vec<_> = ["s", "b", "m", "v"]
        .iter()
        .map(|n| init(n, &Tensor::from_vec(vec![2], vec![1f32, 1.0])))
        .collect();
    let n = node(
        "BatchNormalization",
        "bn",
        &["x", "s", "b", "m", "v"],
        &["y"],
        vec![a_i("training_mode", 1)],
    );
    let e = load(&model(
        15,
        graph(vec![n], inputs.clone(), &["y"], inits.clone()),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("bn") && e.contains("training_mode"), "{e}");
    let n = node(
        "BatchNormalization",
        "bn",
        &["x", "s", "b", "m", "v"],
        &["y"],
        vec![a_i("spatial", 1)],
    );
    let m = load(&model(7, graph(vec![n], inputs, &["y"], inits))).unwrap();
    assert_eq!(
        find(&m.graph, "bn").1.op,
        Op::BatchNormalization { epsilon: 1e-5 }
    );
}

#[test]
fn constant_node_forms() {
    let cases = vec![
        (
            a_t("value", &Tensor::from_vec(vec![2], vec![1i32, 2])),
            Tensor::from_vec(vec![2], vec![1i32, 2]),
        ),
        (a_f("value_float", 2.5), Tensor::scalar(2.5f32)),
        (
            a_floats("value_floats", &[1.0, 2.0]),
            Tensor::from_vec(vec![2], vec![1f32, 2.0]),
        ),
        (a_i("value_int", 7), Tensor::scalar(7i64)),
        (
            a_ints("value_ints", &[3, 4]),
            Tensor::from_vec(vec![2], vec![3i64, 4]),
        ),
    ];
    for (attr, want) in cases {
        let m = load(&model(
            13,
            graph(
                vec![node("Constant", "c", &[], &["y"], vec![attr])],
                vec![],
                &["y"],
                vec![],
            ),
        ))
        .unwrap();
        let (_, n) = find(&m.graph, "c");
        assert_eq!(n.op, Op::Constant(std::sync::Arc::new(want)));
    }
    let e = load(&model(
        13,
        graph(
            vec![node(
                "Constant",
                "c",
                &[],
                &["y"],
                vec![a_s("value_string", "hi")],
            )],
            vec![],
            &["y"],
            vec![],
        ),
    ))
    .unwrap_err();
    assert!(matches!(e, FrontendError::UnsupportedDType { .. }), "{e}");
}

#[test]
fn initializer_inputs_are_constants_and_names_kept() {
    let w = Tensor::from_vec(vec![2], vec![1f32, 2.0]);
    let inputs = vec![
        vi("x", DataType::Float, &[2]),
        vi("w", DataType::Float, &[2]),
    ];
    let m = load(&model(
        13,
        graph(
            vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
            inputs,
            &["y"],
            vec![init("w", &w)],
        ),
    ))
    .unwrap();
    let g = &m.graph;
    assert_eq!(g.inputs().len(), 1);
    let (id, _) = find(g, "add");
    assert_eq!(const_input(g, id, 1).unwrap(), w);
    assert_eq!(g.value_info(g.outputs()[0].value).name, "y");
}

#[test]
fn symbolic_and_anonymous_dims() {
    let mut inputs = vec![vi_sym("x", DataType::Float, &["batch", "seq"])];
    inputs.push(vi("z", DataType::Float, &[-1, 3]));
    let m = load(&model(
        13,
        graph(
            vec![node("Relu", "r", &["x"], &["y"], vec![])],
            inputs,
            &["y"],
            vec![],
        ),
    ))
    .unwrap();
    let g = &m.graph;
    assert_eq!(
        g.input_type(0).shape.as_ref().unwrap()[0],
        Dim::Sym("batch".into())
    );
    assert!(matches!(
        g.input_type(1).shape.as_ref().unwrap()[0],
        Dim::Sym(_)
    ));
    assert_eq!(g.input_type(1).shape.as_ref().unwrap()[1], Dim::Known(3));
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let dir = std::env::temp_dir().join(format!("whittle_frontend_ext_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = Tensor::from_vec(vec![3], vec![1f32, 2.0, 3.0]);
    let mut blob = vec![0u8; 8];
    blob.extend(w.to_le_bytes());
    std::fs::write(dir.join("w.bin"), &blob).unwrap();
    let kv = |k: &str, v: &str| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    };
    let ext = |loc: &str| TensorProto {
        name: Some("w".into()),
        dims: vec![3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![kv("location", loc), kv("offset", "8"), kv("length", "12")],
        ..Default::default()
    };
    let mk = |loc: &str| {
        model(
            13,
            graph(
                vec![node("Identity", "i", &["w"], &["y"], vec![])],
                vec![],
                &["y"],
                vec![ext(loc)],
            ),
        )
    };
    let path = dir.join("m.onnx");
    std::fs::write(&path, mk("w.bin").encode_to_vec()).unwrap();
    let m = load_model(&path).unwrap();
    let (id, _) = find(&m.graph, "i");
    assert_eq!(const_input(&m.graph, id, 0).unwrap(), w);
    // Escaping the directory, and a missing base directory, are errors.
    let e = load_model_bytes(&mk("../w.bin").encode_to_vec(), Some(&dir)).unwrap_err();
    assert!(matches!(e, FrontendError::ExternalData { .. }), "{e}");
    assert!(load_model_bytes(&mk("w.bin").encode_to_vec(), None).is_err());
    // Data shorter than the shape needs.
    std::fs::write(dir.join("short.bin"), [0u8; 10]).unwrap();
    assert!(load_model_bytes(&mk("short.bin").encode_to_vec(), Some(&dir)).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malformed_inputs_are_errors() {
    assert!(matches!(
        load_model_bytes(&[], None),
        Err(FrontendError::Decode(_))
    ));
    let junk: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(load_model_bytes(&junk, None).is_err());
    let m = model(
        13,
        graph(
            vec![node("Relu", "r", &["x"], &["y"], vec![])],
            x(&[2]),
            &["y"],
            vec![],
        ),
    );
    let bytes = m.encode_to_vec();
    for cut in 1..bytes.len() {
        let _ = load_model_bytes(&bytes[..cut], None); // must not panic
    }
    assert!(load_model_bytes(&bytes[..bytes.len() / 2], None).is_err());
    let e = load_model(std::path::Path::new("/nonexistent/m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/m.onnx"), "{e}");
}

#[test]
fn unknown_op_names_node_op_domain_opset() {
    let mut n = node("FancyOp", "f1", &["x"], &["y"], vec![]);
    n.domain = Some("com.example".into());
    let mut m = model(
        13,
        graph(
            vec![
                n,
                node("Relu", "r", &["y"], &["z"], vec![]),
                node("Selu2", "s2", &["z"], &["w"], vec![]),
            ],
            x(&[2]),
            &["w"],
            vec![],
        ),
    );
    m.opset_import
        .push(whittle_frontend::proto::OperatorSetIdProto {
            domain: Some("com.example".into()),
            version: Some(3),
        });
    let e = load(&m).unwrap_err().to_string();
    for part in ["f1", "FancyOp", "com.example", "3"] {
        assert!(e.contains(part), "{e}");
    }
    let all = unsupported_ops(&m.encode_to_vec()).unwrap();
    assert_eq!(
        all,
        vec![
            (
                "f1".to_string(),
                "FancyOp".to_string(),
                "com.example".to_string(),
                3
            ),
            ("s2".to_string(), "Selu2".to_string(), String::new(), 13),
        ]
    );
    // An op outside its opset range.
    let e = load(&model(
        19,
        graph(
            vec![node("Gelu", "g", &["x"], &["y"], vec![])],
            x(&[2]),
            &["y"],
            vec![],
        ),
    ))
    .unwrap_err();
    assert!(
        matches!(e, FrontendError::UnsupportedOp { opset: 19, .. }),
        "{e}"
    );
}

#[test]
fn dangling_edges_and_string_tensors() {
    let e = load(&model(
        13,
        graph(
            vec![node("Add", "add", &["x", "ghost"], &["y"], vec![])],
            x(&[2]),
            &["y"],
            vec![],
        ),
    ))
    .unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(e, FrontendError::DanglingValue { .. })
            && s.contains("add")
            && s.contains("ghost"),
        "{s}"
    );
    let e = load(&model(13, graph(vec![], x(&[2]), &["nothing"], vec![]))).unwrap_err();
    assert!(matches!(e, FrontendError::DanglingOutput(_)), "{e}");
    let st = TensorProto {
        name: Some("words".into()),
        dims: vec![1],
        data_type: Some(DataType::String as i32),
        string_data: vec![b"a".to_vec()],
        ..Default::default()
    };
    let e = load(&model(
        13,
        graph(
            vec![node("Identity", "i", &["words"], &["y"], vec![])],
            vec![],
            &["y"],
            vec![st],
        ),
    ))
    .unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(e, FrontendError::UnsupportedDType { .. }) && s.contains("words"),
        "{s}"
    );
}

#[test]
fn cast_to_unsupported_dtype_is_clear() {
    let n = node(
        "Cast",
        "c",
        &["x"],
        &["y"],
        vec![a_i("to", DataType::Float8e4m3fn as i64)],
    );
    let e = load(&model(19, graph(vec![n], x(&[2]), &["y"], vec![])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("FLOAT8E4M3FN") && e.contains("'c'"), "{e}");
}

#[test]
fn absurd_dims_do_not_allocate() {
    let big = TensorProto {
        name: Some("w".into()),
        dims: vec![1 << 62],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(vec![0; 4]),
        ..Default::default()
    };
    let m = model(
        13,
        graph(
            vec![node("Identity", "i", &["w"], &["y"], vec![])],
            vec![],
            &["y"],
            vec![big],
        ),
    );
    assert!(load(&m).is_err());
    let n = node("Relu", "r", &["x"], &["y"], vec![]);
    let m = model(13, graph(vec![n], x(&[1 << 62, 1 << 62]), &["y"], vec![]));
    let _ = load(&m); // types only: must not allocate or panic
}
