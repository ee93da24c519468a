//! The loader: ONNX `ModelProto` bytes → [`Model`] (IR graph + the metadata the exporter
//! needs). Initializers and graph inputs that are also initializers become constants,
//! nodes go through the op registry, value names are kept.

use crate::ops::{elementwise::densify, In, NodeCtx};
use crate::proto::{GraphProto, ModelProto, NodeProto};
use crate::registry::{lookup, opset_for};
use crate::tensor::tensor_from_proto;
use crate::types::{symgen_after, tensor_type_from_proto};
use crate::FrontendError;
use prost::Message;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use whittle_ir::infer::{infer_node_with, merge_declared, SymGen};
use whittle_ir::{DType, Graph, Tensor, TensorType, Value, ValueInfo};

mod control;

/// A loaded model: the IR graph plus what is needed to write it back as ONNX.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    pub ir_version: i64,
    /// `(domain, version)` pairs as imported by the model.
    pub opset_imports: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub graph_doc_string: String,
    pub metadata_props: Vec<(String, String)>,
    /// The external data files the model's initializers were read from (by
    /// [`load_model`]), so that a writer can refuse to overwrite them.
    pub external_files: Vec<std::path::PathBuf>,
    /// What the loader noticed but accepted, one line each: declared shapes (graph outputs,
    /// `value_info`) that inference disproved and replaced. Callers print them as warnings.
    pub warnings: Vec<String>,
}

impl Model {
    /// Wraps a graph with default metadata (for graphs built in code).
    pub fn from_graph(graph: Graph) -> Model {
        Model {
            graph,
            ir_version: 8,
            opset_imports: Vec::new(),
            producer_name: "whittle".to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            domain: String::new(),
            model_version: 0,
            doc_string: String::new(),
            graph_doc_string: String::new(),
            metadata_props: Vec::new(),
            external_files: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Reads and loads an ONNX model file; external data is resolved next to it.
pub fn load_model(path: &Path) -> Result<Model, FrontendError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Streamed (never the whole file next to the proto), and each initializer's bytes are
    // freed as soon as its tensor is built: about one copy of the weights at a time.
    let mut proto = crate::stream::decode_file(path)?;
    let mut files = Vec::new();
    let inits = match proto.graph.as_mut() {
        Some(gp) => {
            let mut v = Vec::with_capacity(gp.initializer.len());
            for t in std::mem::take(&mut gp.initializer) {
                v.push((t.name().to_string(), tensor_from_proto(&t, Some(&dir))?));
                let loc = t.external_data.iter().find(|kv| kv.key() == "location");
                if let Some(kv) = loc {
                    let f = dir.join(kv.value());
                    if !files.contains(&f) {
                        files.push(f);
                    }
                }
            }
            Some(v)
        }
        None => None,
    };
    let mut m = model_from_proto_with(&proto, Some(&dir), inits)?;
    m.external_files = files;
    Ok(m)
}

/// Loads a serialized ONNX model. `base_dir` is where external data files live.
pub fn load_model_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Model, FrontendError> {
    if bytes.is_empty() {
        return Err(FrontendError::Decode("the model is empty (0 bytes)".into()));
    }
    let proto = ModelProto::decode(bytes).map_err(|e| FrontendError::Decode(e.to_string()))?;
    model_from_proto(&proto, base_dir)
}

/// Loads an already decoded ONNX model.
pub fn model_from_proto(
    proto: &ModelProto,
    base_dir: Option<&Path>,
) -> Result<Model, FrontendError> {
    model_from_proto_with(proto, base_dir, None)
}

/// [`model_from_proto`] with the graph's initializers already converted (`inits`, in file
/// order; the proto's own list is then ignored).
fn model_from_proto_with(
    proto: &ModelProto,
    base_dir: Option<&Path>,
    inits: Option<Vec<(String, Tensor)>>,
) -> Result<Model, FrontendError> {
    let gp = proto
        .graph
        .as_ref()
        .ok_or_else(|| FrontendError::BadModel("the model has no graph".into()))?;
    let (graph, hints) = build_graph(proto, gp, base_dir, inits, None)?;
    let warnings = match hints.as_slice() {
        [] => Vec::new(),
        [one] => vec![format!(
            "a declared shape disagrees with inference; using the inferred one: {one}"
        )],
        [first, rest @ ..] => vec![format!(
            "{} declared shapes disagree with inference; using the inferred ones (first: {first})",
            rest.len() + 1
        )],
    };
    Ok(Model {
        graph,
        ir_version: proto.ir_version(),
        opset_imports: proto
            .opset_import
            .iter()
            .map(|o| (o.domain().to_string(), o.version()))
            .collect(),
        producer_name: proto.producer_name().to_string(),
        producer_version: proto.producer_version().to_string(),
        domain: proto.domain().to_string(),
        model_version: proto.model_version(),
        doc_string: proto.doc_string().to_string(),
        graph_doc_string: gp.doc_string().to_string(),
        metadata_props: proto
            .metadata_props
            .iter()
            .map(|p| (p.key().to_string(), p.value().to_string()))
            .collect(),
        external_files: Vec::new(),
        warnings,
    })
}

/// Graph construction state.
struct Builder<'a> {
    g: Graph,
    names: HashMap<String, Value>,
    /// Every name in use (values and nodes), for making fresh names.
    used: HashSet<String>,
    base_dir: Option<&'a Path>,
    /// Fresh symbols for anonymous dims and for sizes shape inference cannot know.
    syms: SymGen,
    /// Declared shapes that inference disproved (the inferred ones were kept).
    hints: Vec<String>,
}

impl Builder<'_> {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    fn define(&mut self, name: &str, v: Value) -> Result<(), FrontendError> {
        if self.names.insert(name.to_string(), v).is_some() {
            return Err(FrontendError::BadModel(format!(
                "value '{name}' is defined more than once"
            )));
        }
        self.used.insert(name.to_string());
        Ok(())
    }
}

/// Builds the IR graph of `gp`: the model's main graph (`scope` = `None`) or a control-flow
/// body, whose formal inputs may take their types from the node (`Scope::formal`) and which
/// reads the outer values it names through trailing inputs (`Scope::captures`).
fn build_graph(
    proto: &ModelProto,
    gp: &GraphProto,
    base_dir: Option<&Path>,
    pre: Option<Vec<(String, Tensor)>>,
    scope: Option<&control::Scope>,
) -> Result<(Graph, Vec<String>), FrontendError> {
    let syms = symgen_after(gp.input.iter().chain(&gp.value_info).chain(&gp.output));
    let mut b = Builder {
        g: Graph::new(gp.name()),
        names: HashMap::new(),
        used: HashSet::new(),
        base_dir,
        syms,
        hints: Vec::new(),
    };
    // Reserve every name in the file so that made-up names never collide with later ones.
    for n in &gp.node {
        b.used.extend(n.output.iter().cloned());
        b.used.insert(n.name().to_string());
    }
    b.used
        .extend(gp.initializer.iter().map(|t| t.name().to_string()));
    if let Some(pre) = &pre {
        b.used.extend(pre.iter().map(|(n, _)| n.clone()));
    }
    b.used.extend(gp.input.iter().map(|i| i.name().to_string()));

    // Declared types of intermediate values and outputs.
    let mut declared: HashMap<&str, TensorType> = HashMap::new();
    for vi in gp.value_info.iter().chain(&gp.output) {
        if let Some(t) = tensor_type_from_proto(vi, &mut b.syms)? {
            declared.insert(vi.name(), t);
        }
    }

    // Initializers first: a graph input that is also an initializer is a constant.
    let mut inits = match pre {
        Some(pre) => pre,
        None => {
            let mut v = Vec::with_capacity(gp.initializer.len());
            for t in &gp.initializer {
                v.push((t.name().to_string(), tensor_from_proto(t, base_dir)?));
            }
            v
        }
    };
    for sp in &gp.sparse_initializer {
        let name = sp
            .values
            .as_ref()
            .map(|v| v.name().to_string())
            .unwrap_or_default();
        inits.push((name, densify(sp, base_dir)?));
    }
    let init_names: HashSet<&str> = inits.iter().map(|(n, _)| n.as_str()).collect();
    for (i, vi) in gp.input.iter().enumerate() {
        if init_names.contains(vi.name()) && scope.is_none() {
            continue;
        }
        let declared = tensor_type_from_proto(vi, &mut b.syms)?;
        let given = scope.and_then(|s| s.formal.get(i).cloned().flatten());
        let ty = control::input_type(vi.name(), declared, given)?;
        let v = b.g.add_input(vi.name(), ty);
        b.define(vi.name(), v)?;
    }
    for (name, ty) in scope.iter().flat_map(|s| &s.captures) {
        let v = b.g.add_input(name.clone(), ty.clone());
        b.define(name, v)?;
    }
    for (name, t) in inits {
        if name.is_empty() {
            return Err(FrontendError::BadModel("an initializer has no name".into()));
        }
        let v = b.g.add_const(name.clone(), t);
        b.define(&name, v)?;
    }

    let order = node_order(gp, &b.names)?;
    for (idx, i) in order.into_iter().enumerate() {
        add_node(proto, &mut b, &gp.node[i], idx, &declared)?;
    }

    for o in &gp.output {
        let v = *b
            .names
            .get(o.name())
            .ok_or_else(|| FrontendError::DanglingOutput(o.name().to_string()))?;
        b.g.add_output(v, o.name());
    }
    // Node-by-node inference above sees no shape computations; graph inference tracks
    // their symbolic values (Shape → Gather → Slice ends), so a dim the model names keeps
    // its one symbol instead of a fresh `unk_N` per use. Weights are shared, so the copy
    // is cheap; should the second walk disagree, the first one's types stand.
    let mut g = b.g;
    let mut refined = g.clone();
    if whittle_ir::infer::infer_graph(&mut refined).is_ok() {
        g = refined;
    }
    Ok((g, b.hints))
}

/// Node indices in a topological order (the file order when it already is one). Fails on
/// inputs that nothing produces and on cycles.
fn node_order(
    gp: &GraphProto,
    defined: &HashMap<String, Value>,
) -> Result<Vec<usize>, FrontendError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in gp.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains_key(o.as_str()) || producer.insert(o.as_str(), i).is_some() {
                return Err(FrontendError::BadModel(format!(
                    "value '{o}' is defined more than once"
                )));
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); gp.node.len()];
    let mut indeg = vec![0usize; gp.node.len()];
    for (i, n) in gp.node.iter().enumerate() {
        let free = control::node_free_names(n);
        for inp in n.input.iter().chain(&free).filter(|s| !s.is_empty()) {
            if defined.contains_key(inp.as_str()) {
                continue;
            }
            match producer.get(inp.as_str()) {
                Some(&p) => {
                    if !deps[p].contains(&i) {
                        deps[p].push(i);
                        indeg[i] += 1;
                    }
                }
                None => {
                    let node = if n.name().is_empty() {
                        format!("{}_{i}", n.op_type())
                    } else {
                        n.name().to_string()
                    };
                    return Err(FrontendError::DanglingValue {
                        node,
                        value: inp.clone(),
                    });
                }
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..gp.node.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(gp.node.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &deps[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() != gp.node.len() {
        return Err(FrontendError::BadModel("the graph has a cycle".into()));
    }
    Ok(order)
}

fn add_node(
    proto: &ModelProto,
    b: &mut Builder,
    node: &NodeProto,
    idx: usize,
    declared: &HashMap<&str, TensorType>,
) -> Result<(), FrontendError> {
    let name = if node.name().is_empty() {
        b.fresh(&format!("{}_{idx}", node.op_type()))
    } else {
        node.name().to_string()
    };
    let domain = node.domain();
    let opset = opset_for(proto, domain).unwrap_or(0);
    let unsupported = || FrontendError::UnsupportedOp {
        node: name.clone(),
        op_type: node.op_type().to_string(),
        domain: domain.to_string(),
        opset,
    };
    if control::is_control(domain, node.op_type()) {
        let (op, inputs, n_out) = control::build(proto, b, node, &name, opset)?;
        return finish_node(b, node, name, op, inputs, n_out, None, declared);
    }
    let entry = lookup(domain, node.op_type(), opset).ok_or_else(unsupported)?;

    let onnx_inputs: Vec<Option<Value>> = node
        .input
        .iter()
        .map(|s| {
            if s.is_empty() {
                None
            } else {
                b.names.get(s.as_str()).copied()
            }
        })
        .collect();
    let input_dtypes: Vec<Option<DType>> = onnx_inputs
        .iter()
        .map(|v| v.map(|v| b.g.value_type(v).dtype))
        .collect();
    // Builders report errors under the node's (possibly generated) name.
    let mut named = node.clone();
    named.name = Some(name.clone());
    let cx = NodeCtx {
        node: &named,
        opset,
        base_dir: b.base_dir,
        input_dtypes,
    };
    let lowered = (entry.build)(&cx)?;

    let mut inputs = Vec::with_capacity(lowered.inputs.len());
    for (k, inp) in lowered.inputs.into_iter().enumerate() {
        inputs.push(match inp {
            In::Onnx(i) => onnx_inputs.get(i).copied().flatten(),
            In::Absent => None,
            In::Const(t) => {
                let cname = b.fresh(&format!("{name}_const{k}"));
                Some(b.g.add_const(cname, t))
            }
        });
    }
    while inputs.last() == Some(&None) {
        inputs.pop();
    }

    // The ONNX output of each IR output port: the same index, unless the op says otherwise.
    let ports = crate::ops::contrib::output_ports(domain, node.op_type());
    let n_out = match ports {
        None => cx.num_outputs().max(1),
        Some(p) => p
            .iter()
            .rposition(|&o| node.output.get(o).is_some_and(|s| !s.is_empty()))
            .map_or(1, |i| i + 1),
    };
    finish_node(b, node, name, lowered.op, inputs, n_out, ports, declared)
}

/// Types, names and adds a node whose op and inputs are built: output `port` is ONNX
/// output `ports[port]` (the same index without `ports`).
#[allow(clippy::too_many_arguments)]
fn finish_node(
    b: &mut Builder,
    node: &NodeProto,
    name: String,
    op: whittle_ir::Op,
    inputs: Vec<Option<Value>>,
    n_out: usize,
    ports: Option<&[usize]>,
    declared: &HashMap<&str, TensorType>,
) -> Result<(), FrontendError> {
    let onnx_out = |port: usize| ports.map_or(port, |p| p[port]);
    let types = output_types(b, &name, node.op_type(), &op, &inputs, n_out)?;
    let mut outputs = Vec::with_capacity(n_out);
    for (port, inferred) in types.into_iter().enumerate() {
        let oname = match node.output.get(onnx_out(port)) {
            Some(s) if !s.is_empty() => s.clone(),
            _ => b.fresh(&format!("{name}_out{port}")),
        };
        // A type the model declares is kept where it is more specific than the inferred
        // one; a declared shape is a hint, and where inference disproves it, inference wins.
        let ty = match declared.get(oname.as_str()) {
            Some(d) => {
                let (ty, hint) =
                    merge_declared(d, &inferred).map_err(|why| FrontendError::BadNode {
                        node: name.clone(),
                        op_type: node.op_type().to_string(),
                        why: format!("output '{oname}': {why}"),
                    })?;
                if let Some(why) = hint {
                    b.hints
                        .push(format!("node '{name}' output '{oname}': {why}"));
                }
                ty
            }
            None => inferred,
        };
        outputs.push(ValueInfo { name: oname, ty });
    }
    let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
    b.used.insert(name.clone());
    let id = b.g.add_node(op, name, &inputs, outputs);
    for (port, oname) in names.iter().enumerate() {
        b.define(oname, Value::new(id, port))?;
    }
    Ok(())
}

/// The inferred types of a new node's outputs (IR shape inference, node by node as the
/// graph is built, so every input already has its type).
fn output_types(
    b: &mut Builder,
    node: &str,
    op_type: &str,
    op: &whittle_ir::Op,
    inputs: &[Option<Value>],
    n_out: usize,
) -> Result<Vec<TensorType>, FrontendError> {
    let types: Vec<Option<&TensorType>> = inputs
        .iter()
        .map(|v| v.map(|v| b.g.value_type(v)))
        .collect();
    let consts: Vec<Option<&Tensor>> = inputs
        .iter()
        .map(|v| v.and_then(|v| b.g.const_tensor(v)))
        .collect();
    let out = infer_node_with(&mut b.syms, op, &types, &consts, n_out).map_err(|why| {
        FrontendError::BadNode {
            node: node.to_string(),
            op_type: op_type.to_string(),
            why: format!("shape inference: {why}"),
        }
    })?;
    let mut out = out;
    out.truncate(n_out);
    if out.len() != n_out {
        return Err(FrontendError::BadNode {
            node: node.to_string(),
            op_type: op_type.to_string(),
            why: format!("has {n_out} outputs, but the op makes {}", out.len()),
        });
    }
    Ok(out)
}
