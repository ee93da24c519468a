//! The exporter: IR [`Model`] → ONNX `ModelProto` (ops in their newest form, constants as
//! initializers), and [`save_model`], which can move big initializers to an external file.

mod act;
mod attention;
mod contrib;
mod control;
mod decompose;
mod fused;
mod index_norm;
mod ops;
mod seq;
mod signal_vision;

use crate::proto::{
    tensor_proto::DataLocation, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto,
};
use crate::tensor::tensor_to_proto;
use crate::types::value_info;
use crate::{FrontendError, Model};
use ops::{attr_i, attr_t, min_opset, onnx_form};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use whittle_ir::{Graph, NodeId, Op, Value};

/// Above this many bytes of weights, [`save_model`] writes external data even unasked
/// (protobuf messages cannot exceed 2 GiB).
pub const EXTERNAL_DATA_THRESHOLD: usize = 1_800_000_000;
/// Initializers smaller than this stay inline when writing external data.
const EXTERNAL_MIN_BYTES: usize = 1024;

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Write initializers of 1 KiB or more to this file, next to the model ([`save_model`]
    /// only). A plain file name, e.g. `model.onnx.data`.
    pub external_data: Option<String>,
    /// The default-domain opset to declare; `None` picks the lowest that every op's form
    /// needs (at least 13), or the source model's opset if that is higher. A value below
    /// what the ops need is an error.
    pub opset: Option<i64>,
}

/// Converts a model to an ONNX `ModelProto`, every initializer inline.
pub fn export_model(model: &Model, opts: &ExportOptions) -> Result<ModelProto, FrontendError> {
    let g = &model.graph;
    let order = g.topo_order()?;
    let source = model
        .opset_imports
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map_or(0, |(_, v)| *v);
    // With an opset asked for, compound ops it lacks are decomposed (`decompose.rs`).
    let need = |id| match opts.opset {
        Some(_) => decomposed_min_opset(g, id),
        None => min_opset(g, id),
    };
    let needed =
        order
            .iter()
            .map(|&id| need(id))
            .max()
            .unwrap_or(13)
            .max(if opts.opset.is_some() {
                13
            } else {
                source.min(crate::MAX_OPSET)
            });
    let opset = match opts.opset {
        Some(o) if o < needed => {
            return Err(FrontendError::Export(format!(
                "opset {o} was asked for, but the graph needs {needed}"
            )))
        }
        Some(o) => o,
        None => needed,
    };
    let graph = export_graph(g, &order, &model.graph_doc_string, opset)?;
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(opset),
    }];
    // Keep the other domains the model imported (the default one is replaced).
    for (d, v) in &model.opset_imports {
        if !d.is_empty() && d != "ai.onnx" {
            opset_import.push(OperatorSetIdProto {
                domain: Some(d.clone()),
                version: Some(*v),
            });
        }
    }
    // Contrib nodes need their domain imported, also in a model that did not import it.
    let ms = contrib::MS_DOMAIN;
    if graph.node.iter().any(|n| n.domain() == ms) && !opset_import.iter().any(|o| o.domain() == ms)
    {
        opset_import.push(OperatorSetIdProto {
            domain: Some(ms.into()),
            version: Some(1),
        });
    }
    Ok(ModelProto {
        // IR version 8 is read by every onnxruntime 1.1x+; opset 21+ needs IR 10.
        ir_version: Some(if opset >= 21 { 10 } else { 8 }),
        opset_import,
        producer_name: Some(model.producer_name.clone()),
        producer_version: Some(model.producer_version.clone()),
        domain: Some(model.domain.clone()),
        model_version: Some(model.model_version),
        doc_string: Some(model.doc_string.clone()),
        graph: Some(graph),
        metadata_props: model
            .metadata_props
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
        ..Default::default()
    })
}

/// Names every value uniquely (keeping IR names where they are unique and non-empty).
struct Namer {
    names: HashMap<Value, String>,
    used: HashSet<String>,
}

impl Namer {
    fn fresh(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "v" } else { base };
        let mut name = base.to_string();
        let mut k = 0;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn name(&self, v: Value) -> Result<&str, FrontendError> {
        self.names
            .get(&v)
            .map(String::as_str)
            .ok_or_else(|| FrontendError::Export(format!("value {v:?} has no producer")))
    }
}

/// The opset a node needs when compound ops may be decomposed into opset-13 primitives
/// (a LayerNormalization whose Mean / InvStdDev outputs are read cannot be).
fn decomposed_min_opset(g: &Graph, id: NodeId) -> i64 {
    let stats_read = || {
        (1..g.node(id).outputs.len()).any(|p| {
            let v = Value::new(id, p);
            g.is_output(v) || !g.consumers(v).is_empty()
        })
    };
    match &g.node(id).op {
        Op::LayerNormalization { .. } if stats_read() => min_opset(g, id),
        Op::LayerNormalization { .. }
        | Op::RmsNormalization { .. }
        | Op::Gelu { .. }
        | Op::Unary(whittle_ir::UnaryOp::HardSwish)
        | Op::FusedMatMul { .. }
        | Op::AddNorm { .. } => 13,
        _ => min_opset(g, id),
    }
}

fn export_graph(
    g: &Graph,
    order: &[NodeId],
    doc: &str,
    opset: i64,
) -> Result<GraphProto, FrontendError> {
    let mut nm = Namer {
        names: HashMap::new(),
        used: HashSet::new(),
    };
    for &id in order {
        for (p, vi) in g.node(id).outputs.iter().enumerate() {
            let n = nm.fresh(&vi.name);
            nm.names.insert(Value::new(id, p), n);
        }
    }
    let mut gp = GraphProto {
        name: Some(g.name.clone()),
        doc_string: Some(doc.to_string()),
        ..Default::default()
    };
    for &id in g.inputs() {
        let v = Value::new(id, 0);
        gp.input.push(value_info(nm.name(v)?, g.value_type(v)));
    }
    for &id in order {
        let node = g.node(id);
        let out_names: Vec<String> = (0..node.outputs.len())
            .map(|p| nm.name(Value::new(id, p)).map(str::to_string))
            .collect::<Result<_, _>>()?;
        let mut in_names = Vec::new();
        for v in g.node_inputs(id) {
            in_names.push(match v {
                Some(v) => nm.name(v)?.to_string(),
                None => String::new(),
            });
        }
        while in_names.last().is_some_and(|s| s.is_empty()) {
            in_names.pop();
        }
        match &node.op {
            Op::Input(_) => {}
            Op::Constant(t) => {
                let vname = &out_names[0];
                if node.name == *vname {
                    gp.initializer.push(tensor_to_proto(vname, t));
                } else {
                    gp.node.push(NodeProto {
                        name: Some(node.name.clone()),
                        op_type: Some("Constant".into()),
                        output: vec![vname.clone()],
                        attribute: vec![attr_t("value", t)],
                        ..Default::default()
                    });
                }
            }
            Op::Softmax {
                axis,
                coerce_2d: true,
            }
            | Op::LogSoftmax {
                axis,
                coerce_2d: true,
            }
            | Op::Hardmax {
                axis,
                coerce_2d: true,
            } => {
                let ty = match node.op {
                    Op::Softmax { .. } => "Softmax",
                    Op::Hardmax { .. } => "Hardmax",
                    _ => "LogSoftmax",
                };
                expand_coerced_softmax(
                    &mut gp, &mut nm, &node.name, ty, *axis, &in_names, &out_names,
                );
            }
            Op::FusedMatMul { activation } => {
                let dtype = g.value_type(Value::new(id, 0)).dtype;
                fused::expand_fused_matmul(
                    &mut gp,
                    &mut nm,
                    &node.name,
                    *activation,
                    dtype,
                    &in_names,
                    &out_names[0],
                    opset,
                );
            }
            Op::LayerNormalization { axis, epsilon } | Op::RmsNormalization { axis, epsilon }
                if opset < min_opset(g, id) =>
            {
                let rms = matches!(node.op, Op::RmsNormalization { .. });
                let x = g.value_type(Value::new(id, 0));
                let rank = x.rank().unwrap_or(0);
                let mut e = fused::Emitter::new(&mut gp, &mut nm, &node.name);
                decompose::norm(
                    &mut e,
                    rms,
                    *axis,
                    *epsilon,
                    rank,
                    x.dtype,
                    &in_names,
                    &out_names[0],
                    opset,
                );
            }
            Op::Gelu { approximate } if opset < decompose::GELU => {
                let dtype = g.value_type(Value::new(id, 0)).dtype;
                let mut e = fused::Emitter::new(&mut gp, &mut nm, &node.name);
                decompose::gelu(
                    &mut e,
                    *approximate,
                    dtype,
                    &in_names[0],
                    Some(&out_names[0]),
                );
            }
            Op::Unary(whittle_ir::UnaryOp::HardSwish) if opset < decompose::HARD_SWISH => {
                let mut e = fused::Emitter::new(&mut gp, &mut nm, &node.name);
                decompose::hard_swish(&mut e, &in_names[0], &out_names[0]);
            }
            Op::AddNorm { rms, epsilon } => {
                let x = g.value_type(Value::new(id, 0));
                fused::expand_add_norm(
                    &mut gp,
                    &mut nm,
                    &node.name,
                    *rms,
                    *epsilon,
                    (x.rank().unwrap_or(0), x.dtype),
                    &in_names,
                    &out_names,
                    opset,
                );
            }
            Op::Attention { num_heads, scale } => {
                let dtype = g.value_type(Value::new(id, 0)).dtype;
                fused::expand_attention(
                    &mut gp,
                    &mut nm,
                    &node.name,
                    *num_heads,
                    *scale,
                    dtype,
                    &in_names,
                    &out_names[0],
                );
            }
            op @ (Op::If { .. } | Op::Loop { .. } | Op::Scan(_)) => {
                control::export(&mut gp, &node.name, op, &in_names, &out_names, opset)?;
            }
            Op::RotaryEmbedding {
                interleaved,
                rotary_dim,
                num_heads,
            } if contrib_rotary(g, id, *num_heads) => {
                let at = (*interleaved, *rotary_dim, *num_heads);
                contrib::rotary(&mut gp, &node.name, at, &in_names, &out_names);
            }
            op if contrib::handles(op) => {
                let dtype = g.value_type(Value::new(id, 0)).dtype;
                contrib::export(
                    &mut gp, &mut nm, &node.name, op, dtype, &in_names, &out_names, opset,
                );
            }
            op => {
                let split_sizes = matches!(op, Op::Split { .. }) && g.input(id, 1).is_some();
                let (ty, attrs) = onnx_form(op, split_sizes).ok_or_else(|| {
                    FrontendError::Export(format!(
                        "node '{}': {} has no standard ONNX form (run the passes that make it \
                         only where the model is executed, not before exporting)",
                        node.name,
                        op.kind_name()
                    ))
                })?;
                gp.node.push(NodeProto {
                    name: Some(node.name.clone()),
                    op_type: Some(ty.into()),
                    input: in_names,
                    output: out_names.clone(),
                    attribute: attrs,
                    ..Default::default()
                });
            }
        }
        // Declare the type of every computed value, so a reload gets the same types back.
        if !matches!(node.op, Op::Input(_) | Op::Constant(_)) {
            for (p, vi) in node.outputs.iter().enumerate() {
                if !g.is_output(Value::new(id, p)) {
                    gp.value_info.push(value_info(&out_names[p], &vi.ty));
                }
            }
        }
    }
    let mut output_names = HashSet::new();
    for o in g.outputs() {
        let vname = nm.name(o.value)?.to_string();
        let is_input = matches!(g.node(o.value.node).op, Op::Input(_));
        let name = if o.name == vname && !is_input && output_names.insert(vname.clone()) {
            vname
        } else {
            // ONNX names an output by its value: route renamed/duplicated outputs through Identity.
            let out = if nm.used.contains(&o.name) {
                nm.fresh(&o.name)
            } else {
                o.name.clone()
            };
            nm.used.insert(out.clone());
            gp.node.push(NodeProto {
                name: Some(nm.fresh(&format!("{out}_identity"))),
                op_type: Some("Identity".into()),
                input: vec![vname],
                output: vec![out.clone()],
                ..Default::default()
            });
            output_names.insert(out.clone());
            out
        };
        gp.output.push(value_info(&name, g.value_type(o.value)));
    }
    Ok(gp)
}

/// Opset-13+ spelling of the opset < 13 (coerced to 2-D) Softmax/LogSoftmax:
/// `Reshape(Softmax(Flatten(x, axis), axis=1), Shape(x))`.
fn expand_coerced_softmax(
    gp: &mut GraphProto,
    nm: &mut Namer,
    name: &str,
    ty: &str,
    axis: i64,
    ins: &[String],
    outs: &[String],
) {
    let x = ins.first().cloned().unwrap_or_default();
    let y = outs.first().cloned().unwrap_or_default();
    let (shape, flat, soft) = (
        nm.fresh(&format!("{y}_shape")),
        nm.fresh(&format!("{y}_2d")),
        nm.fresh(&format!("{y}_sm")),
    );
    let node = |n: String, t: &str, i: Vec<String>, o: String, a| NodeProto {
        name: Some(n),
        op_type: Some(t.into()),
        input: i,
        output: vec![o],
        attribute: a,
        ..Default::default()
    };
    gp.node.push(node(
        nm.fresh(&format!("{name}_shape")),
        "Shape",
        vec![x.clone()],
        shape.clone(),
        vec![],
    ));
    gp.node.push(node(
        nm.fresh(&format!("{name}_flatten")),
        "Flatten",
        vec![x],
        flat.clone(),
        vec![attr_i("axis", axis)],
    ));
    gp.node.push(node(
        name.to_string(),
        ty,
        vec![flat],
        soft.clone(),
        vec![attr_i("axis", 1)],
    ));
    gp.node.push(node(
        nm.fresh(&format!("{name}_reshape")),
        "Reshape",
        vec![soft, shape],
        y,
        vec![],
    ));
}

/// Writes `model` to `path`. With `opts.external_data` (or when the weights exceed
/// [`EXTERNAL_DATA_THRESHOLD`]), initializers of 1 KiB or more go to a data file next to it.
pub fn save_model(model: &Model, path: &Path, opts: &ExportOptions) -> Result<(), FrontendError> {
    let mut proto = export_model(model, opts)?;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| FrontendError::Export("no graph".into()))?;
    let total: usize = graph
        .initializer
        .iter()
        .map(|t| t.raw_data.as_ref().map_or(0, Vec::len))
        .sum();
    let file_name = match &opts.external_data {
        Some(f) => Some(f.clone()),
        None if total > EXTERNAL_DATA_THRESHOLD => {
            let stem = path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into());
            Some(format!("{stem}.data"))
        }
        None => None,
    };
    if let Some(f) = file_name {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        write_external(&mut graph.initializer, dir, &f)?;
    }
    let bytes = proto.encode_to_vec();
    std::fs::write(path, bytes).map_err(|e| FrontendError::io(path, e))
}

/// Moves the raw data of large initializers into `dir/file_name` (64-byte aligned offsets).
fn write_external(
    inits: &mut [TensorProto],
    dir: &Path,
    file_name: &str,
) -> Result<(), FrontendError> {
    let plain = Path::new(file_name)
        .file_name()
        .is_some_and(|f| f == std::ffi::OsStr::new(file_name));
    if !plain {
        return Err(FrontendError::Export(format!(
            "external data file '{file_name}' must be a plain file name"
        )));
    }
    let data_path = dir.join(file_name);
    let mut f = std::fs::File::create(&data_path).map_err(|e| FrontendError::io(&data_path, e))?;
    let mut offset = 0usize;
    for t in inits.iter_mut() {
        let Some(raw) = t.raw_data.take_if(|r| r.len() >= EXTERNAL_MIN_BYTES) else {
            continue;
        };
        let pad = (64 - offset % 64) % 64;
        f.write_all(&vec![0u8; pad])
            .map_err(|e| FrontendError::io(&data_path, e))?;
        offset += pad;
        f.write_all(&raw)
            .map_err(|e| FrontendError::io(&data_path, e))?;
        let kv = |k: &str, v: String| StringStringEntryProto {
            key: Some(k.into()),
            value: Some(v),
        };
        t.external_data = vec![
            kv("location", file_name.to_string()),
            kv("offset", offset.to_string()),
            kv("length", raw.len().to_string()),
        ];
        t.data_location = Some(DataLocation::External as i32);
        offset += raw.len();
    }
    Ok(())
}

/// Whether RotaryEmbedding `id` needs com.microsoft's form: a one-element start position,
/// or a 3-D input without num_heads (the standard op needs `[B,S]` ids and num_heads).
fn contrib_rotary(g: &Graph, id: whittle_ir::NodeId, num_heads: usize) -> bool {
    let rank = |p: usize| g.input(id, p).and_then(|v| g.value_type(v).rank());
    rank(3) == Some(1) || (rank(0) == Some(3) && num_heads == 0)
}
