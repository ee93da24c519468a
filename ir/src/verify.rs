//! The graph verifier (`Graph::verify`): structural invariants (ports, arity, acyclicity,
//! inputs, constants, outputs, unique names) and agreement of every node's output types
//! with shape inference. Errors name the node.

use crate::infer::{infer_node, input_info};
use crate::{Edge, Graph, IrError, NodeId, Op, TensorType};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;
use std::collections::{BTreeSet, HashMap};

impl Graph {
    /// Checks the graph's invariants; the first violation is returned, naming its node.
    pub fn verify(&self) -> Result<(), IrError> {
        self.verify_inputs()?;
        for id in self.node_ids() {
            self.verify_node(id)?;
        }
        self.verify_names()?;
        self.verify_outputs()?;
        self.verify_acyclic()?;
        for id in self.node_ids() {
            self.verify_types(id)?;
        }
        Ok(())
    }

    fn verr(&self, id: NodeId, msg: impl Into<String>) -> IrError {
        let n = self.node(id);
        IrError::Verify {
            node: n.name.clone(),
            op: n.op.kind_name(),
            msg: msg.into(),
        }
    }

    fn verify_inputs(&self) -> Result<(), IrError> {
        for (i, &id) in self.inputs().iter().enumerate() {
            if !self.contains(id) {
                return Err(IrError::Verify {
                    node: format!("input #{i}"),
                    op: "Input".into(),
                    msg: "graph input refers to a node that does not exist".into(),
                });
            }
            match self.node(id).op {
                Op::Input(j) if j == i => {}
                _ => {
                    return Err(
                        self.verr(id, format!("graph input #{i} is not an `Input({i})` node"))
                    )
                }
            }
        }
        Ok(())
    }

    fn verify_node(&self, id: NodeId) -> Result<(), IrError> {
        let node = self.node(id);
        if let Op::Input(j) = node.op {
            if self.inputs().get(j) != Some(&id) {
                return Err(self.verr(id, format!("`Input({j})` is not graph input #{j}")));
            }
        }
        let (min_in, max_in) = node.op.input_arity();
        if node.num_inputs < min_in || max_in.is_some_and(|m| node.num_inputs > m) {
            return Err(self.verr(
                id,
                format!(
                    "has {} input ports, expected {}",
                    node.num_inputs,
                    arity_text(min_in, max_in)
                ),
            ));
        }
        crate::control::check_bodies(&node.op, node.num_inputs, node.outputs.len())
            .map_err(|m| self.verr(id, m))?;
        let (min_out, max_out) = node.op.output_arity();
        let n_out = node.outputs.len();
        if n_out < min_out || n_out > max_out {
            let expected = arity_text(min_out, (max_out != usize::MAX).then_some(max_out));
            return Err(self.verr(id, format!("has {n_out} outputs, expected {expected}")));
        }
        let incoming: Vec<(NodeId, Edge)> = self
            .petgraph()
            .edges_directed(id, Direction::Incoming)
            .map(|e| (e.source(), *e.weight()))
            .collect();
        self.verify_ports(id, &incoming)?;
        if let Op::Constant(t) = &node.op {
            let expected = TensorType::fixed(t.dtype(), t.shape());
            if node.outputs[0].ty != expected {
                return Err(self.verr(
                    id,
                    format!(
                        "output type {} does not match the constant tensor ({expected})",
                        node.outputs[0].ty
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the incoming edges of `id`: ports in range, one edge per port, producer
    /// outputs that exist, every required port connected.
    fn verify_ports(&self, id: NodeId, incoming: &[(NodeId, Edge)]) -> Result<(), IrError> {
        let node = self.node(id);
        let mut connected = BTreeSet::new();
        for (src, w) in incoming {
            if w.to_input >= node.num_inputs {
                return Err(self.verr(
                    id,
                    format!(
                        "an edge feeds input port {} but the node has {} ports",
                        w.to_input, node.num_inputs
                    ),
                ));
            }
            if !connected.insert(w.to_input) {
                return Err(self.verr(
                    id,
                    format!("input port {} has more than one incoming edge", w.to_input),
                ));
            }
            if !self.contains(*src) {
                return Err(self.verr(
                    id,
                    format!("input {} comes from a node that does not exist", w.to_input),
                ));
            }
            let producer = self.node(*src);
            if w.from_output >= producer.outputs.len() {
                return Err(self.verr(
                    id,
                    format!(
                        "input {} reads output {} of '{}', which has {} outputs",
                        w.to_input,
                        w.from_output,
                        producer.name,
                        producer.outputs.len()
                    ),
                ));
            }
        }
        let min_in = node.op.input_arity().0;
        if let Some(p) = (0..min_in).find(|p| !connected.contains(p)) {
            return Err(self.verr(id, format!("required input {p} is not connected")));
        }
        Ok(())
    }

    fn verify_names(&self) -> Result<(), IrError> {
        let mut seen: HashMap<&str, NodeId> = HashMap::new();
        for id in self.node_ids() {
            for vi in &self.node(id).outputs {
                if vi.name.is_empty() {
                    continue;
                }
                if let Some(prev) = seen.insert(&vi.name, id) {
                    return Err(self.verr(
                        id,
                        format!(
                            "value name '{}' is also used by node '{}'",
                            vi.name,
                            self.node(prev).name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn verify_outputs(&self) -> Result<(), IrError> {
        for o in self.outputs() {
            let ok =
                self.contains(o.value.node) && o.value.port < self.node(o.value.node).outputs.len();
            if !ok {
                return Err(IrError::Verify {
                    node: o.name.clone(),
                    op: "output".into(),
                    msg: format!(
                        "graph output '{}' refers to a value that does not exist",
                        o.name
                    ),
                });
            }
        }
        Ok(())
    }

    fn verify_acyclic(&self) -> Result<(), IrError> {
        let pg = self.petgraph();
        let mut indeg: HashMap<NodeId, usize> = self.node_ids().map(|n| (n, 0)).collect();
        for e in pg.edge_references() {
            *indeg.entry(e.target()).or_default() += 1;
        }
        let mut ready: BTreeSet<NodeId> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut done = 0;
        while let Some(n) = ready.pop_first() {
            done += 1;
            for e in pg.edges_directed(n, Direction::Outgoing) {
                if let Some(d) = indeg.get_mut(&e.target()) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(e.target());
                    }
                }
            }
        }
        if done == indeg.len() {
            return Ok(());
        }
        let stuck = indeg.iter().filter(|(_, &d)| d > 0).map(|(&n, _)| n).min();
        match stuck {
            Some(n) => Err(self.verr(n, "is on a cycle")),
            None => Err(IrError::Graph("the graph has a cycle".into())),
        }
    }

    /// Output types must agree with inference wherever both are known.
    fn verify_types(&self, id: NodeId) -> Result<(), IrError> {
        let node = self.node(id);
        if let Op::Input(_) = node.op {
            return Ok(());
        }
        let (types, consts) = input_info(self, id).map_err(|m| self.verr(id, m))?;
        let type_refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
        let const_refs: Vec<Option<&crate::Tensor>> = consts.iter().map(|c| c.as_deref()).collect();
        let inferred = infer_node(&node.op, &type_refs, &const_refs, node.outputs.len())
            .map_err(|m| self.verr(id, format!("shape inference fails: {m}")))?;
        for (p, (t, vi)) in inferred.iter().zip(&node.outputs).enumerate() {
            if !compatible(&vi.ty, t) {
                return Err(self.verr(
                    id,
                    format!(
                        "output {p} ('{}') is declared {} but inferred {t}",
                        vi.name, vi.ty
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn arity_text(min: usize, max: Option<usize>) -> String {
    match max {
        None => format!("at least {min}"),
        Some(m) if m == min => format!("{min}"),
        Some(m) => format!("{min} to {m}"),
    }
}

/// Same dtype; same rank and equal sizes where both are known.
fn compatible(declared: &TensorType, inferred: &TensorType) -> bool {
    if declared.dtype != inferred.dtype {
        return false;
    }
    match (&declared.shape, &inferred.shape) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x.known(), y.known()) {
                    (Some(p), Some(q)) => p == q,
                    _ => true,
                })
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        BinaryOp, DType, Edge, Graph, IrError, NodeId, Op, Tensor, TensorType, UnaryOp, Value,
        ValueInfo,
    };

    fn vi(name: &str, ty: TensorType) -> Vec<ValueInfo> {
        vec![ValueInfo {
            name: name.into(),
            ty,
        }]
    }

    fn f32s(shape: &[usize]) -> TensorType {
        TensorType::fixed(DType::F32, shape)
    }

    /// x [2,3] → relu → y (valid).
    fn small() -> (Graph, Value, NodeId) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32s(&[2, 3]));
        let r = g.add_node(
            Op::Unary(UnaryOp::Relu),
            "relu",
            &[Some(x)],
            vi("y", f32s(&[2, 3])),
        );
        g.add_output(Value::new(r, 0), "y");
        (g, x, r)
    }

    fn fails_with(g: &Graph, node: &str, needle: &str) {
        match g.verify() {
            Err(IrError::Verify { node: n, msg, .. }) => {
                assert_eq!(n, node, "{msg}");
                assert!(msg.contains(needle), "'{msg}' does not contain '{needle}'");
            }
            other => panic!("expected a verifier error, got {other:?}"),
        }
    }

    #[test]
    fn valid_graph_passes() {
        let (g, _, _) = small();
        g.verify().unwrap();
    }

    #[test]
    fn port_errors() {
        // An edge into a port the node does not have.
        let (mut g, x, _) = small();
        let c = g.add_node(
            Op::Concat { axis: 0 },
            "cat",
            &[Some(x), Some(x)],
            vi("c", f32s(&[4, 3])),
        );
        g.node_mut(c).num_inputs = 1;
        fails_with(&g, "cat", "feeds input port 1");
        // Reading an output the producer does not have.
        let (mut g, x, _) = small();
        g.add_node(
            Op::Unary(UnaryOp::Neg),
            "neg",
            &[Some(Value::new(x.node, 5))],
            vi("n", f32s(&[2, 3])),
        );
        fails_with(&g, "neg", "reads output 5");
        // Two edges into one port.
        let (g, x, r) = small();
        let dup = [
            (
                x.node,
                Edge {
                    from_output: 0,
                    to_input: 0,
                },
            ),
            (
                x.node,
                Edge {
                    from_output: 0,
                    to_input: 0,
                },
            ),
        ];
        match g.verify_ports(r, &dup) {
            Err(IrError::Verify { msg, .. }) => {
                assert!(msg.contains("more than one incoming edge"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arity_errors() {
        let (mut g, x, _) = small();
        g.add_node(Op::MatMul, "mm", &[Some(x)], vi("m", f32s(&[2, 3])));
        fails_with(&g, "mm", "has 1 input ports, expected 2");
        let (mut g, x, _) = small();
        g.add_node(
            Op::Binary(BinaryOp::Add),
            "add",
            &[Some(x), None],
            vi("a", f32s(&[2, 3])),
        );
        fails_with(&g, "add", "required input 1 is not connected");
        let (mut g, x, _) = small();
        let k = g.add_const("k", Tensor::from_vec(vec![1], vec![2i64]));
        g.add_node(
            Op::TopK {
                axis: -1,
                largest: true,
                sorted: true,
            },
            "topk",
            &[Some(x), Some(k)],
            vi("v", f32s(&[2, 2])),
        );
        fails_with(&g, "topk", "has 1 outputs, expected 2");
    }

    #[test]
    fn constant_and_input_errors() {
        let (mut g, _, _) = small();
        let c = g.add_const("w", Tensor::from_vec(vec![2], vec![1.0f32, 2.0]));
        g.node_mut(c.node).outputs[0].ty = f32s(&[3]);
        fails_with(&g, "w", "does not match the constant tensor");
        let (mut g, x, _) = small();
        g.node_mut(x.node).op = Op::Input(1);
        fails_with(&g, "x", "graph input #0 is not an `Input(0)` node");
    }

    #[test]
    fn graph_level_errors() {
        // A cycle: relu reads relu2, which reads relu.
        let (mut g, _, r) = small();
        let r2 = g.add_node(
            Op::Unary(UnaryOp::Relu),
            "relu2",
            &[Some(Value::new(r, 0))],
            vi("y2", f32s(&[2, 3])),
        );
        g.set_input(r, 0, Some(Value::new(r2, 0)));
        fails_with(&g, "relu", "is on a cycle");
        // An output whose node is gone.
        let (mut g, x, _) = small();
        let n = g.add_node(
            Op::Unary(UnaryOp::Neg),
            "neg",
            &[Some(x)],
            vi("n", f32s(&[2, 3])),
        );
        g.add_output(Value::new(n, 0), "n");
        g.remove_node(n);
        fails_with(&g, "n", "does not exist");
        // Duplicate value names.
        let (mut g, x, _) = small();
        g.add_node(
            Op::Unary(UnaryOp::Neg),
            "neg",
            &[Some(x)],
            vi("y", f32s(&[2, 3])),
        );
        fails_with(&g, "neg", "value name 'y' is also used");
    }

    #[test]
    fn types_must_match_inference() {
        let (mut g, _, r) = small();
        g.node_mut(r).outputs[0].ty = f32s(&[2, 4]);
        fails_with(&g, "relu", "declared f32[2,4] but inferred f32[2,3]");
        let (mut g, _, r) = small();
        g.node_mut(r).outputs[0].ty = TensorType::fixed(DType::I64, &[2, 3]);
        fails_with(&g, "relu", "inferred");
        // Symbolic or unknown declared dims are fine.
        let (mut g, _, r) = small();
        g.node_mut(r).outputs[0].ty = TensorType::new(
            DType::F32,
            vec![crate::Dim::Sym("n".into()), crate::Dim::Known(3)],
        );
        g.verify().unwrap();
        // A certain inference failure is a verifier error too.
        let (mut g, x, _) = small();
        let w = g.add_input("w", f32s(&[4, 5]));
        g.add_node(
            Op::MatMul,
            "mm",
            &[Some(x), Some(w)],
            vi("m", TensorType::unknown_rank(DType::F32)),
        );
        fails_with(&g, "mm", "3 vs 4");
    }
}
