//! `whittle inspect`: a model summary — ops, parameters, inputs/outputs, opsets, and the
//! unsupported ops with the nodes that use them.

use super::CliResult;
use std::collections::BTreeMap;
use std::path::Path;
use whittle::frontend::FrontendError;
use whittle::ir::{Graph, Op};

pub fn run(model: &Path, print_ir: bool) -> CliResult {
    let m = match whittle::frontend::load_model(model) {
        Ok(m) => {
            super::print_warnings(model, &m);
            m
        }
        Err(FrontendError::UnsupportedOp { .. }) => return report_unsupported(model),
        Err(e) => return Err(e.to_string()),
    };
    println!("model: {}", model.display());
    if !m.producer_name.is_empty() {
        println!(
            "producer: {} {} (IR version {})",
            m.producer_name, m.producer_version, m.ir_version
        );
    }
    let opsets: Vec<String> = m
        .opset_imports
        .iter()
        .map(|(d, v)| format!("{} {v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    println!("opsets: {}", opsets.join(", "));
    summarize(&m.graph);
    println!("unsupported ops: none");
    if print_ir {
        println!("\n{}", m.graph);
    }
    Ok(())
}

/// Prints inputs, outputs, parameters and the op histogram of a graph.
pub fn summarize(g: &Graph) {
    println!("inputs:");
    for i in 0..g.inputs().len() {
        println!("  {}: {}", g.input_name(i), g.input_type(i));
    }
    println!("outputs:");
    for o in g.outputs() {
        println!("  {}: {}", o.name, g.value_type(o.value));
    }
    let (mut params, mut bytes, mut consts) = (0usize, 0usize, 0usize);
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for id in g.node_ids() {
        match &g.node(id).op {
            Op::Input(_) => {}
            Op::Constant(t) => {
                consts += 1;
                params += t.len();
                bytes += t.len() * t.dtype().size_of();
            }
            op => *hist.entry(op.kind_name()).or_default() += 1,
        }
    }
    println!(
        "parameters: {params} ({:.2} MB) in {consts} constants",
        bytes as f64 / 1e6
    );
    let mut ops: Vec<(String, usize)> = hist.into_iter().collect();
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "ops ({} op nodes besides inputs and constants):",
        ops.iter().map(|o| o.1).sum::<usize>()
    );
    for (op, n) in ops {
        println!("  {op:<24} {n}");
    }
}

fn report_unsupported(model: &Path) -> CliResult {
    let bytes =
        std::fs::read(model).map_err(|e| format!("cannot read '{}': {e}", model.display()))?;
    let nodes = whittle::frontend::unsupported_ops(&bytes).map_err(|e| e.to_string())?;
    println!("model: {}", model.display());
    println!("unsupported ops ({} nodes):", nodes.len());
    for (node, op_type, domain, opset) in &nodes {
        let domain = if domain.is_empty() {
            "ai.onnx"
        } else {
            domain.as_str()
        };
        println!("  node '{node}': {domain}::{op_type} (opset {opset})");
    }
    Err(format!(
        "the model uses {} unsupported op nodes; see the list above",
        nodes.len()
    ))
}
