//! The graph (`Graph`): nodes with ops and typed outputs on a petgraph `StableDiGraph`,
//! plus the small query/rewrite helpers that passes and backends share.

use crate::{IrError, Op, Tensor, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::HashMap;

pub type NodeId = NodeIndex<u32>;

/// One output of one node: the unit of data flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub node: NodeId,
    pub port: usize,
}

impl Value {
    pub fn new(node: NodeId, port: usize) -> Value {
        Value { node, port }
    }
}

/// Name and static type of a node output.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub ty: TensorType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    /// The node's name (from ONNX when it had one), used in error messages.
    pub name: String,
    /// Number of input ports, including absent optional ones.
    pub num_inputs: usize,
    pub outputs: Vec<ValueInfo>,
}

/// Edge payload: which output of the producer feeds which input port of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from_output: usize,
    pub to_input: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub value: Value,
    pub name: String,
}

/// A dataflow graph. Inputs are `Op::Input` nodes and weights are `Op::Constant` nodes.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    g: StableDiGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    outputs: Vec<GraphOutput>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Adds a graph input; returns its value.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> Value {
        let name = name.into();
        let idx = self.inputs.len();
        let id = self.g.add_node(Node {
            op: Op::Input(idx),
            name: name.clone(),
            num_inputs: 0,
            outputs: vec![ValueInfo { name, ty }],
        });
        self.inputs.push(id);
        Value::new(id, 0)
    }

    /// Adds a constant node holding `t`; returns its value.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> Value {
        let name = name.into();
        let ty = TensorType::fixed(t.dtype(), t.shape());
        let id = self.g.add_node(Node {
            op: Op::Constant(std::sync::Arc::new(t)),
            name: name.clone(),
            num_inputs: 0,
            outputs: vec![ValueInfo { name, ty }],
        });
        Value::new(id, 0)
    }

    /// Adds a node; `inputs[i] == None` leaves optional port `i` empty.
    pub fn add_node(
        &mut self,
        op: Op,
        name: impl Into<String>,
        inputs: &[Option<Value>],
        outputs: Vec<ValueInfo>,
    ) -> NodeId {
        let id = self.g.add_node(Node {
            op,
            name: name.into(),
            num_inputs: inputs.len(),
            outputs,
        });
        for (port, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node,
                    id,
                    Edge {
                        from_output: v.port,
                        to_input: port,
                    },
                );
            }
        }
        id
    }

    pub fn add_output(&mut self, value: Value, name: impl Into<String>) {
        self.outputs.push(GraphOutput {
            value,
            name: name.into(),
        });
    }

    pub fn set_outputs(&mut self, outputs: Vec<GraphOutput>) {
        self.outputs = outputs;
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    /// Graph inputs (`Op::Input` nodes) in order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[GraphOutput] {
        &self.outputs
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// The raw petgraph, for algorithms (read-only).
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.g
    }

    /// Input ports of `id`, in order; `None` for an absent optional input.
    pub fn node_inputs(&self, id: NodeId) -> Vec<Option<Value>> {
        let mut ins = vec![None; self.g[id].num_inputs];
        for e in self.g.edges_directed(id, Direction::Incoming) {
            let w = e.weight();
            if w.to_input >= ins.len() {
                ins.resize(w.to_input + 1, None);
            }
            ins[w.to_input] = Some(Value::new(e.source(), w.from_output));
        }
        ins
    }

    /// Input `port` of `id`, if connected.
    pub fn input(&self, id: NodeId, port: usize) -> Option<Value> {
        self.g
            .edges_directed(id, Direction::Incoming)
            .find(|e| e.weight().to_input == port)
            .map(|e| Value::new(e.source(), e.weight().from_output))
    }

    /// Nodes (and their input ports) that read `v`.
    pub fn consumers(&self, v: Value) -> Vec<(NodeId, usize)> {
        let mut out: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_output == v.port)
            .map(|e| (e.target(), e.weight().to_input))
            .collect();
        out.sort();
        out
    }

    /// Whether `v` is one of the graph outputs.
    pub fn is_output(&self, v: Value) -> bool {
        self.outputs.iter().any(|o| o.value == v)
    }

    pub fn value_info(&self, v: Value) -> &ValueInfo {
        &self.g[v.node].outputs[v.port]
    }

    pub fn value_type(&self, v: Value) -> &TensorType {
        &self.value_info(v).ty
    }

    pub fn set_value_type(&mut self, v: Value, ty: TensorType) {
        self.g[v.node].outputs[v.port].ty = ty;
    }

    /// The tensor behind `v` if it is produced by a constant node.
    pub fn const_tensor(&self, v: Value) -> Option<&Tensor> {
        match &self.g[v.node].op {
            Op::Constant(t) if v.port == 0 => Some(t),
            _ => None,
        }
    }

    /// Connects (or disconnects, with `None`) input `port` of `id`.
    pub fn set_input(&mut self, id: NodeId, port: usize, v: Option<Value>) {
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| e.weight().to_input == port)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        if let Some(v) = v {
            self.g.add_edge(
                v.node,
                id,
                Edge {
                    from_output: v.port,
                    to_input: port,
                },
            );
        }
        let n = &mut self.g[id];
        n.num_inputs = n.num_inputs.max(port + 1);
    }

    /// Makes every reader of `old` (and any graph output that is `old`) read `new` instead.
    pub fn replace_all_uses(&mut self, old: Value, new: Value) {
        for (id, port) in self.consumers(old) {
            self.set_input(id, port, Some(new));
        }
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    /// Removes a node and its edges. Graph inputs cannot be removed this way.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        if self.inputs.contains(&id) {
            return None;
        }
        self.g.remove_node(id)
    }

    /// Nodes in a topological order (producers before consumers), ties broken by id so the
    /// order is deterministic.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        let mut indeg: HashMap<NodeId, usize> = HashMap::new();
        for id in self.g.node_indices() {
            indeg.insert(id, 0);
        }
        for e in self.g.edge_indices() {
            let (_, t) = self.g.edge_endpoints(e).unwrap();
            *indeg.get_mut(&t).unwrap() += 1;
        }
        let mut ready: std::collections::BTreeSet<NodeId> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).unwrap();
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        if order.len() != indeg.len() {
            let stuck = indeg
                .iter()
                .filter(|(n, _)| !order.contains(n))
                .map(|(&n, _)| self.g[n].name.clone())
                .next()
                .unwrap_or_default();
            return Err(IrError::Graph(format!(
                "the graph has a cycle (through node '{stuck}')"
            )));
        }
        Ok(order)
    }

    /// Map from value name to value, for every node output.
    pub fn values_by_name(&self) -> HashMap<String, Value> {
        let mut m = HashMap::new();
        for id in self.g.node_indices() {
            for (p, vi) in self.g[id].outputs.iter().enumerate() {
                m.insert(vi.name.clone(), Value::new(id, p));
            }
        }
        m
    }

    /// Name of graph input `i`.
    pub fn input_name(&self, i: usize) -> &str {
        &self.g[self.inputs[i]].outputs[0].name
    }

    /// Type of graph input `i`.
    pub fn input_type(&self, i: usize) -> &TensorType {
        &self.g[self.inputs[i]].outputs[0].ty
    }
}
