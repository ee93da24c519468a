//! Graph-level inference: `infer_graph` (types of every node output, merged with what was
//! declared) and `specialize` (bind input shapes, re-infer, fold shape computations and
//! small constant subgraphs into constants, drop dead nodes).

use super::dims::{fresh_index, Ins, SymGen};
use super::infer_node_vals;
use super::shape_ops::shape_range;
use super::values::{self, SymElem};
use crate::{DType, Dim, Graph, IrError, NodeId, Op, Tensor, TensorType, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Largest tensor (in elements) that `specialize` computes and stores as a constant.
/// Bigger constant subgraphs (weight transforms) are left for a constant-folding pass.
pub const FOLD_MAX_ELEMENTS: usize = 64 * 1024;

/// Infers the type of every node output in topological order. A declared type is kept
/// where it is more specific than the inferred one (a known dim beats a symbol, a user
/// symbol beats an invented `unk_<n>`); a certain conflict (dtype, rank or known sizes
/// that differ) is an error naming the node.
pub fn infer_graph(g: &mut Graph) -> Result<(), IrError> {
    let mut cx = Cx::new(g);
    for id in g.topo_order()? {
        infer_one(g, id, &mut cx)?;
    }
    Ok(())
}

/// Fixes the shapes of the named graph inputs, re-infers the graph, then folds: `Shape` /
/// `Size` of values whose (needed) dims are known, and nodes whose inputs are all
/// constants and whose outputs are small (≤ [`FOLD_MAX_ELEMENTS`]), become constants.
/// Nodes that no graph output depends on are removed.
pub fn specialize(g: &mut Graph, input_shapes: &[(&str, Vec<usize>)]) -> Result<(), IrError> {
    let mut bindings: HashMap<String, usize> = HashMap::new();
    let mut fixed: Vec<(NodeId, TensorType)> = Vec::new();
    for (name, shape) in input_shapes {
        let i = (0..g.inputs().len())
            .find(|&i| g.input_name(i) == *name)
            .ok_or_else(|| IrError::Input {
                name: name.to_string(),
                msg: "the model has no input of this name".into(),
            })?;
        let ty = g.input_type(i).clone();
        let err = |msg: String| IrError::Input {
            name: name.to_string(),
            msg,
        };
        if let Some(dims) = &ty.shape {
            if dims.len() != shape.len() {
                return Err(err(format!(
                    "declared as {ty} (rank {}) but given shape {shape:?}",
                    dims.len()
                )));
            }
            for (axis, (d, &n)) in dims.iter().zip(shape).enumerate() {
                match d {
                    Dim::Known(k) if *k != n => {
                        return Err(err(format!(
                            "declared as {ty} but given shape {shape:?} (dimension {axis})"
                        )))
                    }
                    Dim::Sym(s) => {
                        let prev = *bindings.entry(s.clone()).or_insert(n);
                        if prev != n {
                            return Err(err(format!(
                                "dimension '{s}' is {prev} elsewhere but {n} here"
                            )));
                        }
                    }
                    Dim::Known(_) => {}
                }
            }
        }
        crate::limits::byte_size(shape, ty.dtype.size_of()).map_err(err)?;
        fixed.push((g.inputs()[i], TensorType::fixed(ty.dtype, shape)));
    }
    // Bound symbols become known everywhere (declared value types included).
    let ids: Vec<NodeId> = g.node_ids().collect();
    for &id in &ids {
        for vi in &mut g.node_mut(id).outputs {
            if let Some(dims) = &mut vi.ty.shape {
                for d in dims.iter_mut() {
                    if let Dim::Sym(s) = d {
                        if let Some(&n) = bindings.get(s.as_str()) {
                            *d = Dim::Known(n);
                        }
                    }
                }
            }
        }
    }
    for (id, ty) in fixed {
        if let Some(vi) = g.node_mut(id).outputs.first_mut() {
            vi.ty = ty;
        }
    }
    // Control flow that became static (a constant `If` condition, a constant trip count)
    // is replaced by its body; the copies are typed and folded by another walk.
    for _ in 0..16 {
        let mut cx = Cx::new(g);
        let mut changed = false;
        for id in g.topo_order()? {
            if !g.contains(id) {
                continue;
            }
            infer_one(g, id, &mut cx)?;
            if let Some(consts) = try_fold(g, id) {
                replace_with_constants(g, id, consts);
            } else if crate::control::make_static(g, id)? {
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    remove_dead_nodes(g);
    Ok(())
}

/// A symbol generator that continues after every `unk_<n>` already in the graph.
fn graph_symgen(g: &Graph) -> SymGen {
    let mut next = 0;
    for id in g.node_ids() {
        for vi in &g.node(id).outputs {
            for d in vi.ty.shape.iter().flatten() {
                if let Some(n) = fresh_index(d) {
                    next = next.max(n + 1);
                }
            }
        }
    }
    SymGen::starting_at(next)
}

fn infer_err(g: &Graph, id: NodeId, msg: String) -> IrError {
    let n = g.node(id);
    IrError::Infer {
        node: n.name.clone(),
        op: n.op.kind_name(),
        msg,
    }
}

/// Types and constant tensors of a node's inputs (`Err` for an edge from a missing port).
#[allow(clippy::type_complexity)]
pub(crate) fn input_info(
    g: &Graph,
    id: NodeId,
) -> Result<(Vec<Option<TensorType>>, Vec<Option<Arc<Tensor>>>), String> {
    let mut types = Vec::new();
    let mut consts = Vec::new();
    for (port, v) in g.node_inputs(id).into_iter().enumerate() {
        match v {
            None => {
                types.push(None);
                consts.push(None);
            }
            Some(v) => {
                let producer = g.node(v.node);
                let vi = producer.outputs.get(v.port).ok_or_else(|| {
                    format!(
                        "input {port} reads output {} of '{}', which has {} outputs",
                        v.port,
                        producer.name,
                        producer.outputs.len()
                    )
                })?;
                types.push(Some(vi.ty.clone()));
                consts.push(if v.port == 0 {
                    producer.op.as_constant().cloned()
                } else {
                    None
                });
            }
        }
    }
    Ok((types, consts))
}

/// Inference state over one graph walk: the symbol generator and the symbolic values of
/// the shape computations seen so far.
struct Cx {
    gen: SymGen,
    vals: HashMap<Value, Vec<SymElem>>,
}

impl Cx {
    fn new(g: &Graph) -> Cx {
        Cx {
            gen: graph_symgen(g),
            vals: HashMap::new(),
        }
    }
}

/// Infers one node, merges the result into its declared output types and records the
/// symbolic value of its output when it is a shape computation.
fn infer_one(g: &mut Graph, id: NodeId, cx: &mut Cx) -> Result<(), IrError> {
    if let Op::Input(_) = g.node(id).op {
        return Ok(());
    }
    let (types, consts) = input_info(g, id).map_err(|m| infer_err(g, id, m))?;
    let type_refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    let const_refs: Vec<Option<&Tensor>> = consts.iter().map(|c| c.as_deref()).collect();
    let vals: Vec<Option<Vec<SymElem>>> = g
        .node_inputs(id)
        .iter()
        .map(|v| v.and_then(|v| cx.vals.get(&v).cloned()))
        .collect();
    let node = g.node(id);
    let inferred = infer_node_vals(
        &mut cx.gen,
        &node.op,
        &type_refs,
        &const_refs,
        &vals,
        node.outputs.len(),
    )
    .map_err(|m| infer_err(g, id, m))?;
    let mut merged = Vec::with_capacity(inferred.len());
    for (p, (t, vi)) in inferred.iter().zip(&node.outputs).enumerate() {
        let m = merge_types(&vi.ty, t)
            .map_err(|m| infer_err(g, id, format!("output {p} ('{}'): {m}", vi.name)))?;
        if let Some(dims) = m.concrete_shape() {
            crate::limits::byte_size(&dims, m.dtype.size_of())
                .map_err(|e| infer_err(g, id, format!("output {p} ('{}'): {e}", vi.name)))?;
        }
        merged.push(m);
    }
    let ins = Ins {
        types: &type_refs,
        consts: &const_refs,
        vals: &vals,
    };
    if let Some(v) = values::propagate(&node.op, &ins, &mut cx.gen) {
        cx.vals.insert(Value::new(id, 0), v);
    }
    for (vi, t) in g.node_mut(id).outputs.iter_mut().zip(merged) {
        vi.ty = t;
    }
    Ok(())
}

/// The more specific of a declared and an inferred type, or why they conflict.
pub fn merge_types(declared: &TensorType, inferred: &TensorType) -> Result<TensorType, String> {
    if declared.dtype != inferred.dtype {
        return Err(format!(
            "declared as {declared} but inferred as {inferred} (dtype)"
        ));
    }
    let shape = match (&declared.shape, &inferred.shape) {
        (None, s) | (s, None) => s.clone(),
        (Some(a), Some(b)) => {
            if a.len() != b.len() {
                return Err(format!(
                    "declared as {declared} but inferred as {inferred} (rank)"
                ));
            }
            let mut out = Vec::with_capacity(a.len());
            for (x, y) in a.iter().zip(b) {
                out.push(match (x, y) {
                    (Dim::Known(p), Dim::Known(q)) if p != q => {
                        return Err(format!("declared as {declared} but inferred as {inferred}"));
                    }
                    (Dim::Known(_), _) => x.clone(),
                    (Dim::Sym(_), Dim::Known(_)) => y.clone(),
                    (Dim::Sym(_), Dim::Sym(_))
                        if fresh_index(x).is_some() && fresh_index(y).is_none() =>
                    {
                        y.clone()
                    }
                    (Dim::Sym(_), Dim::Sym(_)) => x.clone(),
                });
            }
            Some(out)
        }
    };
    Ok(TensorType {
        dtype: declared.dtype,
        shape,
    })
}

/// [`merge_types`] for a type a model *declares* (graph outputs, `value_info`): a hint. A
/// dtype conflict is still an error; where the shapes conflict, the inferred type wins and
/// the second value says why, for a warning (onnxruntime runs such models, and exporters
/// write them: Paddle2ONNX declares outputs with an empty shape).
pub fn merge_declared(
    declared: &TensorType,
    inferred: &TensorType,
) -> Result<(TensorType, Option<String>), String> {
    if declared.dtype != inferred.dtype {
        return Err(format!(
            "declared as {declared} but inferred as {inferred} (dtype)"
        ));
    }
    match merge_types(declared, inferred) {
        Ok(t) => Ok((t, None)),
        Err(why) => Ok((inferred.clone(), Some(why))),
    }
}

/// The constant outputs of node `id` if it can be folded now.
fn try_fold(g: &Graph, id: NodeId) -> Option<Vec<Tensor>> {
    let node = g.node(id);
    let ins = g.node_inputs(id);
    let input_ty = |i: usize| -> Option<&TensorType> {
        let v = ins.get(i).copied().flatten()?;
        g.node(v.node).outputs.get(v.port).map(|vi| &vi.ty)
    };
    let outs = match &node.op {
        Op::Input(_) | Op::Constant(_) => return None,
        Op::Shape { start, end } => {
            let dims = input_ty(0)?.shape.as_ref()?;
            let (s, e) = shape_range(*start, *end, dims.len());
            let vals: Option<Vec<i64>> = dims[s..e]
                .iter()
                .map(|d| d.known().map(|n| n as i64))
                .collect();
            let vals = vals?;
            vec![Tensor::from_i64(DType::I64, vec![vals.len()], &vals)]
        }
        Op::Size => {
            let shape = input_ty(0)?.concrete_shape()?;
            vec![Tensor::scalar(shape.iter().product::<usize>() as i64)]
        }
        _ => {
            let connected: Vec<Value> = ins.iter().flatten().copied().collect();
            if connected.is_empty() {
                return None;
            }
            let args: Vec<Option<&Tensor>> = ins
                .iter()
                .map(|v| v.and_then(|v| g.const_tensor(v)))
                .collect();
            if connected.iter().any(|&v| g.const_tensor(v).is_none()) {
                return None;
            }
            // Known-big outputs are not worth computing here; unknown ones are checked after.
            for vi in &node.outputs {
                if let Some(s) = vi.ty.concrete_shape() {
                    if s.iter().product::<usize>() > FOLD_MAX_ELEMENTS {
                        return None;
                    }
                }
            }
            let in_elems: usize = args.iter().flatten().map(|t| t.len()).sum();
            if node
                .outputs
                .iter()
                .any(|vi| vi.ty.concrete_shape().is_none())
                && in_elems > FOLD_MAX_ELEMENTS
            {
                return None;
            }
            return eval_fold(node, &args, FOLD_MAX_ELEMENTS);
        }
    };
    check_fold(node, outs, FOLD_MAX_ELEMENTS)
}

/// Evaluates `node` on constant `args` for folding: `None` when the evaluator fails (op not
/// implemented, bad values) or an output has more than `limit` elements or disagrees with
/// the node's declared type. Shared by `specialize` and the const-fold pass.
pub fn eval_fold(
    node: &crate::Node,
    args: &[Option<&Tensor>],
    limit: usize,
) -> Option<Vec<Tensor>> {
    // Outputs known to be bigger than `limit` are not computed at all (within it they are
    // far below any memory budget); where inference cannot tell, the kernels' checks apply.
    if let Some(tys) = crate::eval::inferred_outputs(&node.op, args, node.outputs.len()) {
        let too_big = |t: &TensorType| {
            t.concrete_shape()
                .is_some_and(|s| crate::limits::numel(&s).is_none_or(|n| n > limit))
        };
        if tys.iter().any(too_big) {
            return None;
        }
    }
    let outs = crate::eval::eval_op(&node.op, args, node.outputs.len()).ok()?;
    check_fold(node, outs, limit)
}

fn check_fold(node: &crate::Node, outs: Vec<Tensor>, limit: usize) -> Option<Vec<Tensor>> {
    if outs.len() < node.outputs.len() {
        return None;
    }
    for (t, vi) in outs.iter().zip(&node.outputs) {
        if t.len() > limit || !vi.ty.admits(t) {
            return None;
        }
    }
    Some(outs)
}

/// Replaces every output of `id` by a constant node (named like the value) and removes `id`.
fn replace_with_constants(g: &mut Graph, id: NodeId, consts: Vec<Tensor>) {
    let names: Vec<String> = g
        .node(id)
        .outputs
        .iter()
        .map(|vi| vi.name.clone())
        .collect();
    for (p, (t, name)) in consts.into_iter().zip(names).enumerate() {
        let old = Value::new(id, p);
        if g.consumers(old).is_empty() && !g.is_output(old) {
            continue;
        }
        let new = g.add_const(name, t);
        g.replace_all_uses(old, new);
    }
    g.remove_node(id);
}

/// Removes every node that no graph output depends on (graph inputs stay).
pub fn remove_dead_nodes(g: &mut Graph) {
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = g
        .outputs()
        .iter()
        .map(|o| o.value.node)
        .filter(|&n| g.contains(n))
        .collect();
    while let Some(n) = stack.pop() {
        if !live.insert(n) {
            continue;
        }
        for v in g.node_inputs(n).into_iter().flatten() {
            if !live.contains(&v.node) {
                stack.push(v.node);
            }
        }
    }
    let dead: Vec<NodeId> = g
        .node_ids()
        .filter(|n| !live.contains(n) && !g.inputs().contains(n))
        .collect();
    for n in dead {
        g.remove_node(n);
    }
}
