//! Exports `If`, `Loop` and `Scan`: each body becomes a subgraph attribute whose captured
//! inputs are dropped again and read by their outer names (ONNX outer-scope references).

use super::ops::{attr_i, attr_ints};
use super::{export_graph, min_opset};
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, GraphProto, NodeProto};
use crate::FrontendError;
use whittle_ir::{Body, Graph, Op};

/// The opset the bodies need (ONNX 13 for the ops themselves).
pub(crate) fn bodies_min_opset(op: &Op) -> i64 {
    let of = |b: &Body| -> i64 {
        let g = b.graph();
        g.node_ids().map(|id| min_opset(g, id)).max().unwrap_or(13)
    };
    match op {
        Op::If {
            then_branch,
            else_branch,
        } => of(then_branch).max(of(else_branch)),
        Op::Loop { body, .. } => of(body),
        Op::Scan(a) => of(&a.body),
        _ => 13,
    }
    .max(13)
}

/// Renames value `from` to `to` where `gp` (and its nested subgraphs) read it.
fn rename(gp: &mut GraphProto, from: &str, to: &str) {
    for n in &mut gp.node {
        for i in n.input.iter_mut().filter(|i| *i == from) {
            *i = to.to_string();
        }
        for a in &mut n.attribute {
            for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rename(g, from, to);
            }
        }
    }
}

/// `body` as a subgraph attribute `key`: inputs from `formal` on are the captured ones,
/// read as `outer[j]`.
fn body_attr(
    key: &str,
    body: &Graph,
    formal: usize,
    outer: &[String],
    opset: i64,
) -> Result<AttributeProto, FrontendError> {
    let order = body.topo_order()?;
    let mut gp = export_graph(body, &order, "", opset)?;
    let caps: Vec<String> = gp
        .input
        .drain(formal.min(gp.input.len())..)
        .map(|i| i.name().to_string())
        .collect();
    if caps.len() != outer.len() {
        return Err(FrontendError::Export(format!(
            "body '{}' captures {} values but its node passes {}",
            body.name,
            caps.len(),
            outer.len()
        )));
    }
    for (c, o) in caps.iter().zip(outer) {
        if c != o {
            rename(&mut gp, c, o);
        }
    }
    Ok(AttributeProto {
        name: Some(key.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(gp),
        ..Default::default()
    })
}

/// Appends the ONNX node for a control-flow op.
pub(crate) fn export(
    gp: &mut GraphProto,
    name: &str,
    op: &Op,
    in_names: &[String],
    out_names: &[String],
    opset: i64,
) -> Result<(), FrontendError> {
    let port = |i: usize| in_names.get(i).cloned().unwrap_or_default();
    let (ty, formal_ports, attrs) = match op {
        Op::If {
            then_branch,
            else_branch,
        } => {
            let outer: Vec<String> = (1..in_names.len()).map(port).collect();
            let t = body_attr("then_branch", then_branch.graph(), 0, &outer, opset)?;
            let e = body_attr("else_branch", else_branch.graph(), 0, &outer, opset)?;
            ("If", 1, vec![t, e])
        }
        Op::Loop { body, carried } => {
            let f = 2 + carried;
            let outer: Vec<String> = (f..in_names.len()).map(port).collect();
            (
                "Loop",
                f,
                vec![body_attr("body", body.graph(), f, &outer, opset)?],
            )
        }
        Op::Scan(a) => {
            let f = a.num_state + a.num_scan_inputs;
            let outer: Vec<String> = (f..in_names.len()).map(port).collect();
            let dirs = |v: &[bool]| v.iter().map(|&r| r as i64).collect::<Vec<_>>();
            let attrs = vec![
                body_attr("body", a.body.graph(), f, &outer, opset)?,
                attr_i("num_scan_inputs", a.num_scan_inputs as i64),
                attr_ints("scan_input_axes", a.input_axes.iter().copied()),
                attr_ints("scan_input_directions", dirs(&a.input_reverse)),
                attr_ints("scan_output_axes", a.output_axes.iter().copied()),
                attr_ints("scan_output_directions", dirs(&a.output_reverse)),
            ];
            ("Scan", f, attrs)
        }
        _ => {
            return Err(FrontendError::Export(format!(
                "node '{name}' is not control flow"
            )))
        }
    };
    let mut input: Vec<String> = (0..formal_ports).map(port).collect();
    while input.last().is_some_and(|s| s.is_empty()) {
        input.pop();
    }
    gp.node.push(NodeProto {
        name: Some(name.to_string()),
        op_type: Some(ty.into()),
        input,
        output: out_names.to_vec(),
        attribute: attrs,
        ..Default::default()
    });
    Ok(())
}
