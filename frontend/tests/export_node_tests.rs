//! Export round trip of every op on the ONNX node-test models (skipped when the generated
//! test data, tests/conformance/data, is absent): every case whose model loads exports,
//! loads back, and the reloaded graph evaluates to the same outputs on the case's inputs
//! (bit for bit: the exporter writes ops back, or decomposes them into standard ops that
//! compute the same thing). With `WHITTLE_EXPORT_DIR` set, the exported models are written
//! there for an outside check (`onnx.checker`). A coerced (opset < 13) Hardmax exports as
//! Flatten → Hardmax → Reshape with the same values.

use prost::Message;
use std::path::{Path, PathBuf};
use whittle_frontend::{
    export_model, load_model, load_model_bytes, read_tensor_pb, ExportOptions, Model,
};
use whittle_ir::{DType, Graph, Op, Tensor, TensorType, Value, ValueInfo};

fn ops(g: &Graph) -> Vec<Op> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .map(|id| g.node(id).op.clone())
        .filter(|op| !matches!(op, Op::Input(_) | Op::Constant(_)))
        .collect()
}

/// The inputs of a case's first data set, named after the graph inputs.
fn inputs(case: &Path, g: &Graph) -> Option<Vec<(String, Tensor)>> {
    let set = case.join("test_data_set_0");
    let mut out = Vec::new();
    for i in 0.. {
        let p = set.join(format!("input_{i}.pb"));
        if !p.exists() {
            break;
        }
        let (name, t) = read_tensor_pb(&p).ok()?;
        let name = if name.is_empty() {
            g.input_name(i).to_string()
        } else {
            name
        };
        out.push((name, t));
    }
    Some(out)
}

#[test]
fn every_node_test_model_round_trips() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/data");
    round_trip_all(&data, false, 1500);
}

/// The contrib-op cases (tests/conformance/contrib.py): written back as com.microsoft nodes,
/// they load to the same ops, and evaluate to the same values bit for bit.
#[test]
fn every_contrib_case_round_trips() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/contrib");
    round_trip_all(&data, true, 24);
}

/// Exports every case model under `data` and loads it back; evaluates both where the ops
/// differ (or always, with `always_eval`). At least `min_seen` models must load.
fn round_trip_all(data: &Path, always_eval: bool, min_seen: usize) {
    let Ok(entries) = std::fs::read_dir(data) else {
        eprintln!("no case data in {}; skipped", data.display());
        return;
    };
    let out_dir = std::env::var_os("WHITTLE_EXPORT_DIR").map(PathBuf::from);
    let (mut seen, mut evaluated) = (0, 0);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Ok(m) = load_model(&e.path().join("model.onnx")) else {
            continue; // out of the op set: the conformance runner reports it
        };
        let p =
            export_model(&m, &ExportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = p.encode_to_vec();
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.onnx")), &bytes).unwrap();
        }
        let back = load_model_bytes(&bytes, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
        if ops(&m.graph) == ops(&back.graph) && !always_eval {
            continue;
        }
        // Decomposed on export: the values must agree.
        let Some(ins) = inputs(&e.path(), &m.graph) else {
            continue;
        };
        let named: Vec<(&str, Tensor)> = ins.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let want = match whittle_ir::eval::run(&m.graph, &named) {
            Ok(w) => w,
            Err(e) if always_eval => panic!("{name}: {e}"),
            Err(_) => continue,
        };
        let got = whittle_ir::eval::run(&back.graph, &named)
            .unwrap_or_else(|e| panic!("{name}: the exported model fails: {e}"));
        assert_eq!(want.len(), got.len(), "{name}");
        for ((n, a), (_, b)) in want.iter().zip(&got) {
            assert!(
                a.to_le_bytes() == b.to_le_bytes() && a.shape() == b.shape(),
                "{name}: output '{n}' differs after export"
            );
        }
        evaluated += 1;
    }
    eprintln!(
        "{seen} node-test models round-tripped, {evaluated} of them decomposed and evaluated"
    );
    assert!(seen >= min_seen, "only {seen} models loaded");
}

#[test]
fn coerced_hardmax_exports_as_flatten_hardmax_reshape() {
    for axis in [0, 1, 2, -1] {
        let mut g = Graph::new("hardmax");
        let ty = TensorType::fixed(DType::F32, &[2, 3, 4]);
        let x = g.add_input("x", ty.clone());
        let id = g.add_node(
            Op::Hardmax {
                axis,
                coerce_2d: true,
            },
            "hm",
            &[Some(x)],
            vec![ValueInfo {
                name: "y".into(),
                ty,
            }],
        );
        g.add_output(Value::new(id, 0), "y");
        let proto = export_model(&Model::from_graph(g.clone()), &ExportOptions::default())
            .unwrap_or_else(|e| panic!("axis {axis}: {e}"));
        let back = load_model_bytes(&proto.encode_to_vec(), None)
            .unwrap()
            .graph;
        assert!(ops(&back).contains(&Op::Hardmax {
            axis: 1,
            coerce_2d: false
        }));
        let v: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64).collect();
        let ins = [("x", Tensor::from_f64(DType::F32, vec![2, 3, 4], &v))];
        let want = whittle_ir::eval::run(&g, &ins).unwrap();
        let got = whittle_ir::eval::run(&back, &ins).unwrap();
        assert_eq!(want[0].1, got[0].1, "axis {axis}");
    }
}
