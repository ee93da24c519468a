//! ONNX `If`, `Loop` and `Scan` → the IR's control-flow ops. Each subgraph attribute
//! becomes a [`Body`] built by the same loader; every outer-scope name the subgraph reads
//! (directly or from a nested subgraph) becomes a trailing input of the body and of the
//! node ("captured"), so the IR graph shows every dependency as an edge.

use super::{build_graph, Builder};
use crate::proto::{GraphProto, ModelProto, NodeProto};
use crate::FrontendError;
use std::collections::HashSet;
use whittle_ir::{Body, DType, Dim, Op, ScanAttrs, TensorType, Value};

/// What a body is built with besides its own proto.
pub(super) struct Scope {
    /// Types for the formal inputs, by position, where the node knows them.
    pub formal: Vec<Option<TensorType>>,
    /// The outer values the body reads, by name, appended as inputs.
    pub captures: Vec<(String, TensorType)>,
}

pub(super) fn is_control(domain: &str, op_type: &str) -> bool {
    (domain.is_empty() || domain == "ai.onnx") && matches!(op_type, "If" | "Loop" | "Scan")
}

/// The type of a body input: the declared one, or the node's where the declaration says
/// less (no type, or no shape); the dtypes must agree.
pub(super) fn input_type(
    name: &str,
    declared: Option<TensorType>,
    given: Option<TensorType>,
) -> Result<TensorType, FrontendError> {
    match (declared, given) {
        (Some(d), Some(g)) if d.dtype != g.dtype => Err(FrontendError::BadModel(format!(
            "body input '{name}' is declared {d} but receives {g}"
        ))),
        (Some(d), Some(g)) if d.shape.is_none() => Ok(g),
        (Some(d), _) => Ok(d),
        (None, Some(g)) => Ok(g),
        (None, None) => Err(FrontendError::BadModel(format!(
            "graph input '{name}' has no type"
        ))),
    }
}

fn graphs(node: &NodeProto) -> impl Iterator<Item = &GraphProto> {
    node.attribute
        .iter()
        .flat_map(|a| a.g.iter().chain(a.graphs.iter()))
}

/// Names a subgraph reads but does not define, through nested subgraphs, in first-use
/// order.
fn free_names(gp: &GraphProto, out: &mut Vec<String>) {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(gp.input.iter().map(|i| i.name()));
    defined.extend(gp.initializer.iter().map(|t| t.name()));
    defined.extend(
        gp.sparse_initializer
            .iter()
            .filter_map(|s| s.values.as_ref().map(|v| v.name())),
    );
    for n in &gp.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut reads: Vec<String> = Vec::new();
    for n in &gp.node {
        reads.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for sub in graphs(n) {
            free_names(sub, &mut reads);
        }
    }
    reads.extend(gp.output.iter().map(|o| o.name().to_string()));
    for r in reads {
        if !defined.contains(r.as_str()) && !out.contains(&r) {
            out.push(r);
        }
    }
}

/// The outer names the subgraphs of `node` read (empty for a node without subgraphs).
pub(super) fn node_free_names(node: &NodeProto) -> Vec<String> {
    let mut out = Vec::new();
    for g in graphs(node) {
        free_names(g, &mut out);
    }
    out
}

fn bad(name: &str, op: &str, why: impl Into<String>) -> FrontendError {
    FrontendError::BadNode {
        node: name.to_string(),
        op_type: op.to_string(),
        why: why.into(),
    }
}

fn graph_attr<'a>(
    node: &'a NodeProto,
    key: &str,
    name: &str,
) -> Result<&'a GraphProto, FrontendError> {
    node.attribute
        .iter()
        .find(|a| a.name() == key)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| {
            bad(
                name,
                node.op_type(),
                format!("missing graph attribute '{key}'"),
            )
        })
}

fn ints_attr(node: &NodeProto, key: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name() == key)
        .map(|a| a.ints.clone())
}

/// Builds `gp` as a body reading `captures` (outer values) after its formal inputs.
fn body(
    proto: &ModelProto,
    b: &mut Builder,
    gp: &GraphProto,
    formal: Vec<Option<TensorType>>,
    captures: &[(String, Value)],
) -> Result<Body, FrontendError> {
    let scope = Scope {
        formal,
        captures: captures
            .iter()
            .map(|(n, v)| (n.clone(), b.g.value_type(*v).clone()))
            .collect(),
    };
    let (g, hints) = build_graph(proto, gp, b.base_dir, None, Some(&scope))?;
    b.hints.extend(hints);
    Ok(Body::new(g))
}

/// The outer values the node's subgraphs read, resolved in the builder's scope.
fn captured(
    b: &Builder,
    node: &NodeProto,
    name: &str,
) -> Result<Vec<(String, Value)>, FrontendError> {
    node_free_names(node)
        .into_iter()
        .map(|n| {
            let v =
                b.names
                    .get(n.as_str())
                    .copied()
                    .ok_or_else(|| FrontendError::DanglingValue {
                        node: name.to_string(),
                        value: n.clone(),
                    })?;
            Ok((n, v))
        })
        .collect()
}

fn onnx_input(b: &Builder, node: &NodeProto, i: usize) -> Option<Value> {
    node.input
        .get(i)
        .filter(|s| !s.is_empty())
        .and_then(|s| b.names.get(s.as_str()).copied())
}

/// The IR op, its inputs and its number of outputs for a control-flow node.
pub(super) fn build(
    proto: &ModelProto,
    b: &mut Builder,
    node: &NodeProto,
    name: &str,
    opset: i64,
) -> Result<(Op, Vec<Option<Value>>, usize), FrontendError> {
    let caps = captured(b, node, name)?;
    let cap_values = caps.iter().map(|(_, v)| Some(*v));
    let ty_of = |b: &Builder, i: usize| onnx_input(b, node, i).map(|v| b.g.value_type(v).clone());
    match node.op_type() {
        "If" => {
            let cond =
                onnx_input(b, node, 0).ok_or_else(|| bad(name, "If", "missing condition"))?;
            let t = body(
                proto,
                b,
                graph_attr(node, "then_branch", name)?,
                vec![],
                &caps,
            )?;
            let e = body(
                proto,
                b,
                graph_attr(node, "else_branch", name)?,
                vec![],
                &caps,
            )?;
            let n_out = t.graph().outputs().len();
            if e.graph().outputs().len() != n_out {
                return Err(bad(
                    name,
                    "If",
                    "the branches have different numbers of outputs",
                ));
            }
            let mut inputs = vec![Some(cond)];
            inputs.extend(cap_values);
            let op = Op::If {
                then_branch: t,
                else_branch: e,
            };
            Ok((op, inputs, n_out.max(1)))
        }
        "Loop" => {
            let carried = node.input.len().saturating_sub(2);
            let mut formal = vec![
                Some(TensorType::fixed(DType::I64, &[])),
                Some(TensorType::fixed(DType::Bool, &[])),
            ];
            let mut inputs = vec![onnx_input(b, node, 0), onnx_input(b, node, 1)];
            for i in 2..2 + carried {
                let v = onnx_input(b, node, i).ok_or_else(|| {
                    bad(name, "Loop", format!("loop-carried input {i} is missing"))
                })?;
                inputs.push(Some(v));
                formal.push(ty_of(b, i));
            }
            let gp = graph_attr(node, "body", name)?;
            let bd = body(proto, b, gp, formal, &caps)?;
            let outs = bd.graph().outputs().len();
            if outs < 1 + carried || bd.graph().inputs().len() != 2 + carried + caps.len() {
                return Err(bad(
                    name,
                    "Loop",
                    format!(
                        "the body must take 2 + {carried} inputs and give 1 + {carried} or more outputs"
                    ),
                ));
            }
            inputs.extend(cap_values);
            Ok((Op::Loop { body: bd, carried }, inputs, (outs - 1).max(1)))
        }
        _ => {
            if opset < 9 {
                return Err(FrontendError::UnsupportedOp {
                    node: name.to_string(),
                    op_type: "Scan".into(),
                    domain: node.domain().to_string(),
                    opset,
                });
            }
            let m = node
                .attribute
                .iter()
                .find(|a| a.name() == "num_scan_inputs")
                .and_then(|a| a.i)
                .ok_or_else(|| bad(name, "Scan", "missing attribute 'num_scan_inputs'"))?;
            let m = usize::try_from(m)
                .ok()
                .filter(|&m| m >= 1 && m <= node.input.len())
                .ok_or_else(|| {
                    bad(
                        name,
                        "Scan",
                        format!("num_scan_inputs {m} does not fit the inputs"),
                    )
                })?;
            let s = node.input.len() - m;
            let input_axes = ints_attr(node, "scan_input_axes").unwrap_or_else(|| vec![0; m]);
            let dirs = ints_attr(node, "scan_input_directions").unwrap_or_else(|| vec![0; m]);
            if input_axes.len() != m || dirs.len() != m {
                return Err(bad(
                    name,
                    "Scan",
                    "scan_input_axes / directions need one entry per scan input",
                ));
            }
            let mut inputs = Vec::new();
            let mut formal = Vec::new();
            for i in 0..node.input.len() {
                let v = onnx_input(b, node, i)
                    .ok_or_else(|| bad(name, "Scan", format!("input {i} is missing")))?;
                inputs.push(Some(v));
                let ty = b.g.value_type(v).clone();
                formal.push(if i < s {
                    Some(ty)
                } else {
                    Some(slice_type(&ty, input_axes[i - s]))
                });
            }
            let gp = graph_attr(node, "body", name)?;
            let bd = body(proto, b, gp, formal, &caps)?;
            let outs = bd.graph().outputs().len();
            let k = outs.checked_sub(s).ok_or_else(|| {
                bad(
                    name,
                    "Scan",
                    "the body gives fewer outputs than state values",
                )
            })?;
            let output_axes = ints_attr(node, "scan_output_axes").unwrap_or_else(|| vec![0; k]);
            let out_dirs = ints_attr(node, "scan_output_directions").unwrap_or_else(|| vec![0; k]);
            if output_axes.len() != k || out_dirs.len() != k {
                return Err(bad(
                    name,
                    "Scan",
                    "scan_output_axes / directions need one entry per scan output",
                ));
            }
            inputs.extend(cap_values);
            let a = ScanAttrs {
                body: bd,
                num_state: s,
                num_scan_inputs: m,
                input_axes,
                input_reverse: dirs.iter().map(|&d| d != 0).collect(),
                output_axes,
                output_reverse: out_dirs.iter().map(|&d| d != 0).collect(),
            };
            Ok((Op::Scan(Box::new(a)), inputs, outs.max(1)))
        }
    }
}

/// The type of one slice of a scan input along `axis`.
fn slice_type(t: &TensorType, axis: i64) -> TensorType {
    let shape = t.shape.as_ref().and_then(|s| {
        let r = s.len() as i64;
        let ax = if axis < 0 { axis + r } else { axis };
        (0..r).contains(&ax).then(|| {
            let mut s: Vec<Dim> = s.clone();
            s.remove(ax as usize);
            s
        })
    });
    TensorType {
        dtype: t.dtype,
        shape,
    }
}
