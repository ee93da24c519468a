//! Exporter tests: load → export → load gives an equal graph; external data; opset choice;
//! the opset < 13 Softmax expansion.

mod common;
use common::*;
use prost::Message;
use whittle_frontend::proto::tensor_proto::DataType;
use whittle_frontend::{
    export_model, load_model, load_model_bytes, save_model, ExportOptions, Model,
};
use whittle_ir::{Graph, Op, Tensor};

/// A comparable description of a graph: per node (topological order) its name, op, output
/// names and types, and input value names; plus inputs and outputs.
fn describe(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for id in g.topo_order().unwrap() {
        let n = g.node(id);
        let ins: Vec<String> = g
            .node_inputs(id)
            .iter()
            .map(|v| v.map(|v| g.value_info(v).name.clone()).unwrap_or_default())
            .collect();
        let outs: Vec<String> = n
            .outputs
            .iter()
            .map(|o| format!("{}:{}", o.name, o.ty))
            .collect();
        out.push(format!("{} {:?} {:?} <- {:?}", n.name, n.op, outs, ins));
    }
    for o in g.outputs() {
        out.push(format!(
            "output {} = {}",
            o.name,
            g.value_info(o.value).name
        ));
    }
    out.sort();
    out
}

fn reload(m: &Model) -> Model {
    let p = export_model(m, &ExportOptions::default()).unwrap();
    load_model_bytes(&p.encode_to_vec(), None).unwrap_or_else(|e| panic!("{e}"))
}

fn sample() -> whittle_frontend::proto::ModelProto {
    let w = Tensor::from_vec(vec![4, 1, 3, 3], (0..36).map(|i| i as f32 / 36.0).collect());
    let fc = Tensor::from_vec(vec![4, 5], (0..20).map(|i| i as f32).collect());
    let nodes = vec![
        node(
            "Conv",
            "conv",
            &["x", "w"],
            &["c"],
            vec![
                a_ints("pads", &[1, 1, 1, 1]),
                a_ints("kernel_shape", &[3, 3]),
            ],
        ),
        node("Relu", "relu", &["c"], &["r"], vec![]),
        node("GlobalAveragePool", "gap", &["r"], &["p"], vec![]),
        node(
            "Constant",
            "shape_const",
            &[],
            &["shape"],
            vec![a_ints("value_ints", &[-1, 4])],
        ),
        node("Reshape", "reshape", &["p", "shape"], &["flat"], vec![]),
        node("Gemm", "fc", &["flat", "fc_w"], &["logits"], vec![]),
        node("Softmax", "sm", &["logits"], &["probs"], vec![]),
        node(
            "Split",
            "split",
            &["probs"],
            &["a", "b"],
            vec![a_i("axis", 1), a_i("num_outputs", 2)],
        ),
        node(
            "Resize",
            "rs",
            &["x", "", "scales"],
            &["big"],
            vec![a_s("mode", "linear")],
        ),
    ];
    let inputs = vec![vi_sym("x", DataType::Float, &["batch", "c", "h", "w"])];
    let inits = vec![
        init("w", &w),
        init("fc_w", &fc),
        init(
            "scales",
            &Tensor::from_vec(vec![4], vec![1f32, 1.0, 2.0, 2.0]),
        ),
    ];
    let mut g = graph(nodes, inputs, &["a", "b", "big"], inits);
    // x: [batch, 1, 4, 4]
    g.input[0] = {
        let mut v = vi_sym("x", DataType::Float, &["batch", "c", "h", "w"]);
        if let Some(whittle_frontend::proto::TypeProto {
            value: Some(whittle_frontend::proto::type_proto::Value::TensorType(t)),
            ..
        }) = &mut v.r#type
        {
            let dims = &mut t.shape.as_mut().unwrap().dim;
            for (d, n) in dims.iter_mut().skip(1).zip([1i64, 4, 4]) {
                d.value = Some(
                    whittle_frontend::proto::tensor_shape_proto::dimension::Value::DimValue(n),
                );
            }
        }
        v
    };
    model(18, g)
}

#[test]
fn load_export_load_is_identity() {
    let m = load(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let again = reload(&m);
    assert_eq!(describe(&m.graph), describe(&again.graph));
    let third = reload(&again);
    assert_eq!(describe(&again.graph), describe(&third.graph));
}

#[test]
fn old_opset_model_exports_in_new_forms() {
    let attrs = vec![
        a_ints("starts", &[1]),
        a_ints("ends", &[3]),
        a_ints("axes", &[1]),
    ];
    let nodes = vec![
        node("Slice", "s", &["x"], &["t"], attrs),
        node("Softmax", "sm", &["t"], &["y"], vec![a_i("axis", 1)]),
    ];
    let m = load(&model(
        9,
        graph(
            nodes,
            vec![vi("x", DataType::Float, &[2, 4, 3])],
            &["y"],
            vec![],
        ),
    ))
    .unwrap();
    let p = export_model(&m, &ExportOptions::default()).unwrap();
    // Opset 9 cannot spell Slice's input form or per-axis Softmax: 13 is the lowest that can.
    assert_eq!(p.opset_import[0].version, Some(13));
    let ops: Vec<&str> = p
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type())
        .collect();
    assert_eq!(ops, vec!["Slice", "Shape", "Flatten", "Softmax", "Reshape"]);
    let back = load_model_bytes(&p.encode_to_vec(), None).unwrap();
    let y = back.graph.outputs()[0].value;
    assert_eq!(back.graph.value_type(y).dtype, whittle_ir::DType::F32);
    assert!(matches!(
        find(&back.graph, "sm").1.op,
        Op::Softmax {
            axis: 1,
            coerce_2d: false
        }
    ));
}

#[test]
fn opset_follows_the_ops() {
    let n = node("Gelu", "g", &["x"], &["y"], vec![]);
    let m = load(&model(
        20,
        graph(
            vec![n],
            vec![vi("x", DataType::Float, &[2])],
            &["y"],
            vec![],
        ),
    ))
    .unwrap();
    assert_eq!(
        export_model(&m, &ExportOptions::default())
            .unwrap()
            .opset_import[0]
            .version,
        Some(20)
    );
    // An older opset gets Gelu as primitive ops (Div, Erf, Add, Mul), not an error.
    let old = export_model(
        &m,
        &ExportOptions {
            opset: Some(18),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(old.opset_import[0].version, Some(18));
    let types: Vec<&str> = old
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type())
        .collect();
    assert!(
        !types.contains(&"Gelu") && types.contains(&"Erf"),
        "{types:?}"
    );
    let inputs = vec![
        vi("x", DataType::Float, &[2, 3]),
        vi("s", DataType::Float, &[3]),
    ];
    // A model comes back at its own opset when that can express it (17 here), and at the
    // lowest opset its ops need when it has no source opset.
    let n = node("Relu", "r", &["x"], &["y"], vec![]);
    let mut m = load(&model(
        17,
        graph(vec![n], inputs[..1].to_vec(), &["y"], vec![]),
    ))
    .unwrap();
    let version = |m: &whittle_frontend::Model| {
        export_model(m, &ExportOptions::default())
            .unwrap()
            .opset_import[0]
            .version
    };
    assert_eq!(version(&m), Some(17));
    m.opset_imports.clear();
    assert_eq!(version(&m), Some(13));
    let n = node("RMSNormalization", "n", &["x", "s"], &["y"], vec![]);
    let m = load(&model(23, graph(vec![n], inputs, &["y"], vec![]))).unwrap();
    assert_eq!(
        export_model(&m, &ExportOptions::default())
            .unwrap()
            .opset_import[0]
            .version,
        Some(23)
    );
}

#[test]
fn save_with_external_data_and_reload() {
    let dir = std::env::temp_dir().join(format!("whittle_frontend_save_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = load(&sample()).unwrap();
    let path = dir.join("model.onnx");
    let opts = ExportOptions {
        external_data: Some("model.onnx.data".into()),
        ..Default::default()
    };
    save_model(&m, &path, &opts).unwrap();
    assert!(dir.join("model.onnx.data").exists());
    let back = load_model(&path).unwrap();
    assert_eq!(describe(&m.graph), describe(&back.graph));
    let bad = ExportOptions {
        external_data: Some("../x.data".into()),
        ..Default::default()
    };
    assert!(save_model(&m, &path, &bad).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn renamed_outputs_go_through_identity() {
    let mut g = Graph::new("g");
    let x = g.add_input(
        "x",
        whittle_ir::TensorType::fixed(whittle_ir::DType::F32, &[2]),
    );
    g.add_output(x, "out");
    let p = export_model(&Model::from_graph(g), &ExportOptions::default()).unwrap();
    let gp = p.graph.as_ref().unwrap();
    assert_eq!(gp.node[0].op_type(), "Identity");
    assert_eq!(gp.output[0].name(), "out");
    let back = load_model_bytes(&p.encode_to_vec(), None).unwrap();
    assert_eq!(back.graph.outputs()[0].name, "out");
}

/// Writes the sample model where `WHITTLE_EXPORT_DIR` says, for checking with onnx/onnxruntime.
#[test]
fn write_sample_for_external_check() {
    if let Ok(dir) = std::env::var("WHITTLE_EXPORT_DIR") {
        let m = load(&sample()).unwrap();
        save_model(
            &m,
            &std::path::Path::new(&dir).join("sample.onnx"),
            &ExportOptions::default(),
        )
        .unwrap();
        let attrs = vec![
            a_ints("starts", &[1]),
            a_ints("ends", &[3]),
            a_ints("axes", &[1]),
        ];
        let nodes = vec![
            node("Slice", "s", &["x"], &["t"], attrs),
            node("Softmax", "sm", &["t"], &["y"], vec![]),
        ];
        let m = load(&model(
            9,
            graph(
                nodes,
                vec![vi("x", DataType::Float, &[2, 4, 3])],
                &["y"],
                vec![],
            ),
        ))
        .unwrap();
        save_model(
            &m,
            &std::path::Path::new(&dir).join("old.onnx"),
            &ExportOptions::default(),
        )
        .unwrap();
    }
}
