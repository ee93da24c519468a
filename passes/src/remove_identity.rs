//! Removes `Identity` nodes, `Cast`s to the dtype their input already has (exporters write
//! them around embedding lookups) and inference-mode `Dropout` nodes whose mask is unused,
//! rewiring their readers to the input.
//!
//! ```text
//! %a = Identity %x : f32[4]
//! %b = Unary(Relu) %a : f32[4]   →   %b = Unary(Relu) %x : f32[4]
//! ```
//! A node whose output is a graph output and whose input is a graph input is kept, so the
//! model's input and output names stay distinct.

use crate::{Changed, PassContext};
use whittle_ir::{Graph, IrError, Op, Value};

pub fn remove_identity(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut removed = 0;
    for id in g.topo_order()? {
        let node = g.node(id);
        let removable = match node.op {
            Op::Identity => true,
            Op::Cast { to } => g
                .input(id, 0)
                .is_some_and(|src| g.value_type(src).dtype == to),
            Op::Dropout => (1..node.outputs.len()).all(|p| {
                g.consumers(Value::new(id, p)).is_empty() && !g.is_output(Value::new(id, p))
            }),
            _ => false,
        };
        if !removable {
            continue;
        }
        let (Some(src), out) = (g.input(id, 0), Value::new(id, 0)) else {
            continue;
        };
        if g.is_output(out) && (matches!(g.node(src.node).op, Op::Input(_)) || g.is_output(src)) {
            continue;
        }
        if g.is_output(out) {
            // Keep the output's name: the source value takes it over.
            let name = g.value_info(out).name.clone();
            g.node_mut(src.node).outputs[src.port].name = name;
        }
        g.replace_all_uses(out, src);
        g.remove_node(id);
        removed += 1;
    }
    if removed == 0 {
        return Ok(Changed::No);
    }
    cx.explain(
        "remove-identity",
        format!("removed {removed} Identity/no-op Cast/Dropout nodes"),
    );
    Ok(Changed::Yes)
}
