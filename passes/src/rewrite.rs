//! Shared matching and rewriting helpers for passes: reading producers, consumers and
//! constants without mutating, and the few mutations passes need (fresh constants and
//! nodes with unique names, replacing a value while keeping graph-output names, removing
//! the dead remains of a matched subgraph). Passes use these instead of editing edges.

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;
use whittle_ir::{BinaryOp, DType, Graph, Node, NodeId, Op, Tensor, TensorType, Value, ValueInfo};

/// The node that produces `v`.
pub fn producer(g: &Graph, v: Value) -> &Node {
    g.node(v.node)
}

/// The op that produces `v`.
pub fn producer_op(g: &Graph, v: Value) -> &Op {
    &g.node(v.node).op
}

/// The only reader of `v` (node and input port), if `v` has exactly one reader and is not
/// a graph output.
pub fn single_consumer(g: &Graph, v: Value) -> Option<(NodeId, usize)> {
    if g.is_output(v) {
        return None;
    }
    match g.consumers(v).as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Whether every reader of `v` is one of `inside` (and `v` is not a graph output).
pub fn consumed_only_by(g: &Graph, v: Value, inside: &[NodeId]) -> bool {
    !g.is_output(v) && g.consumers(v).iter().all(|(n, _)| inside.contains(n))
}

/// The constant behind `v`, if any.
pub fn const_tensor(g: &Graph, v: Value) -> Option<&Tensor> {
    g.const_tensor(v)
}

/// The constant behind `v` as f64 values with its shape.
pub fn const_f64(g: &Graph, v: Value) -> Option<(Vec<usize>, Vec<f64>)> {
    let t = g.const_tensor(v)?;
    Some((t.shape().to_vec(), t.to_f64_vec()))
}

/// The value of a one-element floating-point constant.
pub fn scalar_const(g: &Graph, v: Value) -> Option<f64> {
    let t = g.const_tensor(v)?;
    (t.len() == 1 && t.dtype().is_float()).then(|| t.get_f64(0))
}

/// Constant integer values behind `v` (for axes, shapes, pads).
pub fn const_i64(g: &Graph, v: Value) -> Option<Vec<i64>> {
    let t = g.const_tensor(v)?;
    t.dtype().is_int().then(|| t.to_i64_vec())
}

/// Connected inputs `0` and `1` of a two-input node.
pub fn two_inputs(g: &Graph, id: NodeId) -> Option<(Value, Value)> {
    Some((g.input(id, 0)?, g.input(id, 1)?))
}

/// For a two-input node with one one-element constant operand: `(constant, other input,
/// whether the constant is input 0)`.
pub fn scalar_operand(g: &Graph, id: NodeId) -> Option<(f64, Value, bool)> {
    let (a, b) = two_inputs(g, id)?;
    if let Some(c) = scalar_const(g, b) {
        return Some((c, a, false));
    }
    scalar_const(g, a).map(|c| (c, b, true))
}

/// The other operand of a `Binary(op)` node `id` that reads `v` on exactly one side.
pub fn other_operand(g: &Graph, id: NodeId, op: BinaryOp, v: Value) -> Option<Value> {
    if g.node(id).op != Op::Binary(op) {
        return None;
    }
    let (x, y) = (g.input(id, 0)?, g.input(id, 1)?);
    match (x == v, y == v) {
        (true, false) => Some(y),
        (false, true) => Some(x),
        _ => None,
    }
}

/// Relative closeness for matching constants written in f32.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-30)
}

/// Whether `t` has the same dtype and (fully known or symbolic) shape as `u`.
pub fn same_type(t: &TensorType, u: &TensorType) -> bool {
    t == u
}

/// The static dims of `v` if all are known.
pub fn static_shape(g: &Graph, v: Value) -> Option<Vec<usize>> {
    g.value_type(v).concrete_shape()
}

/// Gives out value/node names that are not yet used in the graph.
pub struct Namer {
    used: HashSet<String>,
}

impl Namer {
    pub fn new(g: &Graph) -> Namer {
        let mut used = HashSet::new();
        for id in g.node_ids() {
            let n = g.node(id);
            used.insert(n.name.clone());
            for o in &n.outputs {
                used.insert(o.name.clone());
            }
        }
        for o in g.outputs() {
            used.insert(o.name.clone());
        }
        Namer { used }
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// Adds a constant under a fresh name derived from `base`.
pub fn new_const(g: &mut Graph, namer: &mut Namer, base: &str, t: Tensor) -> Value {
    let name = namer.fresh(base);
    g.add_const(name, t)
}

/// Builds a constant of `dtype` from f64 values (weight arithmetic is done in f64 and cast
/// back here).
pub fn f64_const(
    g: &mut Graph,
    namer: &mut Namer,
    base: &str,
    dtype: DType,
    shape: Vec<usize>,
    v: &[f64],
) -> Value {
    new_const(g, namer, base, Tensor::from_f64(dtype, shape, v))
}

/// Adds a one-output node under a fresh name; returns its output.
pub fn new_node(
    g: &mut Graph,
    namer: &mut Namer,
    base: &str,
    op: Op,
    inputs: &[Option<Value>],
    ty: TensorType,
) -> Value {
    let name = namer.fresh(base);
    let id = g.add_node(
        op,
        name.clone(),
        inputs,
        vec![ValueInfo {
            name: name.clone(),
            ty,
        }],
    );
    Value::new(id, 0)
}

/// Makes every reader of `old` read `new`. When `old` is a graph output, `new` takes over
/// its value name (and `old` gets a fresh one) unless `new` is a graph input or already a
/// graph output, so exported output names do not change.
pub fn replace_value(g: &mut Graph, namer: &mut Namer, old: Value, new: Value) {
    if g.is_output(old)
        && !g.is_output(new)
        && !matches!(g.node(new.node).op, Op::Input(_))
        && !matches!(g.node(new.node).op, Op::Constant(_))
    {
        let name = g.value_info(old).name.clone();
        let spare = namer.fresh(&format!("{name}_replaced"));
        g.node_mut(old.node).outputs[old.port].name = spare;
        let new_node = g.node_mut(new.node);
        if new_node.outputs.first().map(|o| &o.name) == Some(&new_node.name) && new.port == 0 {
            new_node.name = name.clone();
        }
        g.node_mut(new.node).outputs[new.port].name = name;
    }
    g.replace_all_uses(old, new);
}

/// Removes the nodes in `roots` that are dead (no reader, not a graph output), then
/// whichever of their producers became dead in turn. Graph inputs are never removed.
/// Returns how many nodes were removed.
pub fn remove_dead_from(g: &mut Graph, roots: &[NodeId]) -> usize {
    let mut stack: Vec<NodeId> = roots.to_vec();
    let mut removed = 0;
    while let Some(id) = stack.pop() {
        if !g.contains(id) || matches!(g.node(id).op, Op::Input(_)) {
            continue;
        }
        let n_out = g.node(id).outputs.len();
        let live = (0..n_out).any(|p| {
            let v = Value::new(id, p);
            g.is_output(v) || !g.consumers(v).is_empty()
        });
        if live {
            continue;
        }
        let ins: Vec<NodeId> = g
            .node_inputs(id)
            .into_iter()
            .flatten()
            .map(|v| v.node)
            .collect();
        g.remove_node(id);
        removed += 1;
        stack.extend(ins);
    }
    removed
}

/// A text summary of the whole graph that changes whenever anything in it changes: node
/// ids, ops (constants by dtype, shape and storage address: passes replace constants, they
/// never edit one in place), edges, value names and types, and outputs. Cheap enough to
/// check that a pass reporting `Changed::No` left the graph alone.
pub fn fingerprint(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", g.name);
    let mut ids: Vec<NodeId> = g.node_ids().collect();
    ids.sort();
    for id in ids {
        let n = g.node(id);
        let op = match &n.op {
            Op::Constant(t) => {
                format!("const {}{:?} @{:p}", t.dtype(), t.shape(), Arc::as_ptr(t))
            }
            other => format!("{other:?}"),
        };
        let _ = write!(s, "{} {} {op} (", id.index(), n.name);
        for v in g.node_inputs(id) {
            match v {
                Some(v) => {
                    let _ = write!(s, "{}:{},", v.node.index(), v.port);
                }
                None => s.push_str("_,"),
            }
        }
        s.push_str(") ->");
        for o in &n.outputs {
            let _ = write!(s, " {}:{}", o.name, o.ty);
        }
        s.push('\n');
    }
    for o in g.outputs() {
        let _ = writeln!(
            s,
            "out {}:{} {}",
            o.value.node.index(),
            o.value.port,
            o.name
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    const SRC: &str = "graph \"g\" {\n  input %x: f32[4]\n  %c = const f32[] [2.0]\n  %a = Binary(Mul) %x, %c : f32[4]\n  %b = Unary(Relu) %a : f32[4]\n  output %b\n}\n";

    #[test]
    fn queries() {
        let g = parse_graph(SRC).unwrap();
        let names = g.values_by_name();
        let (x, c, a, b) = (names["x"], names["c"], names["a"], names["b"]);
        assert_eq!(scalar_const(&g, c), Some(2.0));
        assert_eq!(scalar_operand(&g, a.node), Some((2.0, x, false)));
        assert_eq!(single_consumer(&g, a), Some((b.node, 0)));
        assert_eq!(
            single_consumer(&g, b),
            None,
            "graph outputs have an outside reader"
        );
        assert!(matches!(producer_op(&g, a), Op::Binary(_)));
        assert!(close(1.0, 1.0 + 1e-7, 1e-6) && !close(1.0, 1.1, 1e-6));
    }

    #[test]
    fn replace_keeps_output_name_and_cleans_up() {
        let mut g = parse_graph(SRC).unwrap();
        let names = g.values_by_name();
        let mut namer = Namer::new(&g);
        let ty = g.value_type(names["b"]).clone();
        let n = new_node(
            &mut g,
            &mut namer,
            "b",
            Op::Unary(whittle_ir::UnaryOp::Exp),
            &[Some(names["x"])],
            ty,
        );
        assert_eq!(g.value_info(n).name, "b_1");
        replace_value(&mut g, &mut namer, names["b"], n);
        assert_eq!(remove_dead_from(&mut g, &[names["b"].node]), 3);
        let out = print_graph(&g).unwrap();
        assert_eq!(
            out,
            "graph \"g\" {\n  input %x: f32[4]\n  %b = Unary(Exp) %x : f32[4]\n  output %b\n}\n"
        );
    }

    #[test]
    fn fingerprint_sees_new_constants() {
        let g = parse_graph(SRC).unwrap();
        let h = parse_graph(&SRC.replace("[2.0]", "[3.0]")).unwrap();
        assert_ne!(fingerprint(&g), fingerprint(&h));
        assert_eq!(fingerprint(&g), fingerprint(&g.clone()));
    }
}
