//! Dead-code elimination: removes every node that no graph output depends on.
//!
//! ```text
//! %a = Relu %x : f32[4]          %a = Relu %x : f32[4]
//! %b = Exp %x : f32[4]      →    output %a
//! output %a
//! ```
//! Graph inputs are kept even when unused: they are part of the model's signature.

use crate::{Changed, PassContext};
use std::collections::HashSet;
use whittle_ir::{Graph, IrError, NodeId, Op};

/// Removes nodes that do not reach a graph output.
pub fn dead_code_elimination(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|o| o.value.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(g.node_inputs(n).into_iter().flatten().map(|v| v.node));
        }
    }
    let dead: Vec<NodeId> = g
        .node_ids()
        .filter(|n| !live.contains(n) && !matches!(g.node(*n).op, Op::Input(_)))
        .collect();
    for &n in &dead {
        g.remove_node(n);
    }
    if dead.is_empty() {
        return Ok(Changed::No);
    }
    cx.explain("dce", format!("removed {} dead nodes", dead.len()));
    Ok(Changed::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    #[test]
    fn removes_unused_nodes_only() {
        let src = "graph \"g\" {\n  input %x: f32[4]\n  %a = Unary(Relu) %x : f32[4]\n  %b = Unary(Exp) %x : f32[4]\n  output %a\n}\n";
        let mut g = parse_graph(src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(
            dead_code_elimination(&mut g, &mut cx).unwrap(),
            Changed::Yes
        );
        let out = print_graph(&g).unwrap();
        assert!(!out.contains("Exp"), "{out}");
        assert!(out.contains("Relu"));
        assert_eq!(dead_code_elimination(&mut g, &mut cx).unwrap(), Changed::No);
    }
}
