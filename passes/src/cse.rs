//! Common-subexpression elimination: two nodes with the same op (attributes included) and
//! the same inputs compute the same values, so readers of the second read the first.
//! Constants with identical dtype, shape and data are merged the same way.
//!
//! ```text
//! %a = Unary(Exp) %x : f32[4]            %a = Unary(Exp) %x : f32[4]
//! %b = Unary(Exp) %x : f32[4]      →     %c = Binary(Add) %a, %a : f32[4]
//! %c = Binary(Add) %a, %b : f32[4]
//! ```
//! Classic value numbering (Cocke 1970; "global value numbering" in every compiler text).
//! Nodes are visited in topological order, so chains of duplicates merge in one run. A
//! duplicate whose value is a graph output is kept (the output keeps its own name).
//! Exactness E0.

use crate::{Changed, PassContext};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use whittle_ir::{Graph, IrError, NodeId, Op, Value};

#[derive(Hash, PartialEq, Eq)]
enum Key {
    /// dtype, shape, hash of the raw little-endian bytes (equal keys are then compared
    /// byte for byte).
    Const(String, Vec<usize>, u64),
    /// op text, inputs, output types.
    Node(String, Vec<Option<Value>>, Vec<String>),
}

fn key(g: &Graph, id: NodeId) -> Option<Key> {
    let n = g.node(id);
    match &n.op {
        Op::Input(_) => None,
        Op::Constant(t) => {
            let mut h = DefaultHasher::new();
            t.to_le_bytes().hash(&mut h);
            Some(Key::Const(
                t.dtype().to_string(),
                t.shape().to_vec(),
                h.finish(),
            ))
        }
        op => Some(Key::Node(
            format!("{op:?}"),
            g.node_inputs(id),
            n.outputs.iter().map(|o| o.ty.to_string()).collect(),
        )),
    }
}

/// Merges duplicate nodes and constants.
pub fn cse(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut seen: HashMap<Key, NodeId> = HashMap::new();
    let mut merged = 0;
    for id in g.topo_order()? {
        let Some(k) = key(g, id) else { continue };
        let Some(&first) = seen.get(&k) else {
            seen.insert(k, id);
            continue;
        };
        if let (Op::Constant(a), Op::Constant(b)) = (&g.node(first).op, &g.node(id).op) {
            if a.to_le_bytes() != b.to_le_bytes() {
                continue; // a hash collision
            }
        }
        let n_out = g.node(id).outputs.len();
        if (0..n_out).any(|p| g.is_output(Value::new(id, p))) {
            continue;
        }
        for p in 0..n_out {
            g.replace_all_uses(Value::new(id, p), Value::new(first, p));
        }
        g.remove_node(id);
        merged += 1;
    }
    if merged == 0 {
        return Ok(Changed::No);
    }
    cx.explain("cse", format!("merged {merged} duplicate nodes"));
    Ok(Changed::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    #[test]
    fn merges_chains_and_constants() {
        let src = r#"graph "g" {
  input %x: f32[2]
  %c1 = const f32[2] [1.0, 2.0]
  %c2 = const f32[2] [1.0, 2.0]
  %a = Binary(Add) %x, %c1 : f32[2]
  %b = Binary(Add) %x, %c2 : f32[2]
  %ea = Unary(Exp) %a : f32[2]
  %eb = Unary(Exp) %b : f32[2]
  %s = Binary(Sub) %ea, %eb : f32[2]
  output %s
}
"#;
        let mut g = parse_graph(src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(cse(&mut g, &mut cx).unwrap(), Changed::Yes);
        let out = print_graph(&g).unwrap();
        assert_eq!(
            out,
            "graph \"g\" {\n  input %x: f32[2]\n  %c1 = const f32[2] [1.0, 2.0]\n  %a = Binary(Add) %x, %c1 : f32[2]\n  %ea = Unary(Exp) %a : f32[2]\n  %s = Binary(Sub) %ea, %ea : f32[2]\n  output %s\n}\n"
        );
        assert_eq!(cse(&mut g, &mut cx).unwrap(), Changed::No);
    }

    #[test]
    fn different_attributes_stay_apart() {
        let src = r#"graph "g" {
  input %x: f32[2,3]
  %a = Softmax(axis:-1,coerce_2d:false) %x : f32[2,3]
  %b = Softmax(axis:0,coerce_2d:false) %x : f32[2,3]
  %s = Binary(Add) %a, %b : f32[2,3]
  output %s
}
"#;
        let mut g = parse_graph(src).unwrap();
        assert_eq!(
            cse(&mut g, &mut PassContext::default()).unwrap(),
            Changed::No
        );
    }
}
