//! IR → execution program: checks that every value has a concrete shape, drops what the
//! outputs do not need, resolves views (Reshape, Flatten, Squeeze, Unsqueeze, Identity,
//! Dropout) to their input's storage, groups single-consumer f32 elementwise nodes into
//! fused kernels (generated with Cranelift), and turns MatMul/Gemm into GEMM calls. Any
//! other op is `RuntimeError::Unsupported` naming the node.

pub mod elementwise;
pub mod fused;
pub mod math;
pub mod matmul;
pub mod ops;
pub mod ops_conv;
pub mod ops_einsum;
pub mod ops_ext;
pub mod ops_norm;
pub mod ops_quant;
pub mod ops_ref;
pub mod ops_resize;

pub use whittle_exec::steps::{FusedSplit, InputSpec, OutputSpec, Step};

use crate::jit::Jit;
use crate::kernels::gemm::Ukr;
use crate::plan::{Buf, BufferReq};
use elementwise::{binary_supported, unary_supported, ENode, FusedExpr, LoopNest};
use matmul::{matmul_geometry, pack_const_b, BSource, MatMulStep};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The most IR nodes one fused elementwise kernel computes.
const MAX_FUSED_NODES: usize = 128;
use whittle_ir::{DType, Graph, NodeId, Op, Tensor, Value, VariadicOp};
use whittle_runtime::RuntimeError;

/// Elements per block of a split fused kernel: below twice this, the step runs whole.
const FUSED_SPLIT_MIN: usize = 32 * 1024;

/// The lowered program, before the arena is planned and the JIT finalized.
pub struct Program {
    pub steps: Vec<Step>,
    pub consts: Vec<Arc<Tensor>>,
    pub buffers: Vec<BufferReq>,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
}

pub(crate) fn unsupported(g: &Graph, id: NodeId, msg: impl Into<String>) -> RuntimeError {
    let n = g.node(id);
    RuntimeError::Unsupported {
        backend: "cpu".into(),
        node: n.name.clone(),
        op: n.op.kind_name(),
        msg: msg.into(),
    }
}

/// Input ports whose values the op reads at run time (others are read at compile time from
/// constants, or only describe a shape that the output type already states).
fn data_ports(op: &Op, num_inputs: usize) -> Vec<usize> {
    match op {
        Op::Reshape { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Clip
        | Op::Dropout
        | Op::Slice
        | Op::Expand
        | Op::Reduce { .. } => vec![0],
        _ => (0..num_inputs).collect(),
    }
}

fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Dropout
    )
}

struct Lowerer<'g> {
    g: &'g Graph,
    shapes: HashMap<Value, Vec<usize>>,
    storage: HashMap<Value, Buf>,
    const_ids: HashMap<NodeId, usize>,
    prog: Program,
    jit: &'g mut Jit,
    ukr: Ukr,
}

/// Lowers `g` (all shapes concrete) into a program whose fused kernels are defined in `jit`.
pub fn lower(g: &Graph, jit: &mut Jit, ukr: Ukr) -> Result<Program, RuntimeError> {
    let order = g.topo_order()?;
    // Concrete shapes for every value.
    let mut shapes = HashMap::new();
    for &id in &order {
        for (p, vi) in g.node(id).outputs.iter().enumerate() {
            match vi.ty.concrete_shape() {
                Some(s) => {
                    shapes.insert(Value::new(id, p), s);
                }
                None => {
                    return Err(unsupported(
                        g,
                        id,
                        format!(
                            "output '{}' has type {}; the cpu backend compiles for concrete shapes only \
                             (specialize the graph to input shapes first)",
                            vi.name, vi.ty
                        ),
                    ))
                }
            }
        }
    }
    // Nodes the outputs need.
    let mut needed: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|o| o.value.node).collect();
    while let Some(id) = stack.pop() {
        if !needed.insert(id) {
            continue;
        }
        let n = g.node(id);
        let ins = g.node_inputs(id);
        for p in data_ports(&n.op, ins.len()) {
            if let Some(Some(v)) = ins.get(p) {
                stack.push(v.node);
            }
        }
    }
    let inputs = (0..g.inputs().len())
        .map(|i| InputSpec {
            name: g.input_name(i).to_string(),
            dtype: g.input_type(i).dtype,
            shape: shapes
                .get(&Value::new(g.inputs()[i], 0))
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    let prog = Program {
        steps: Vec::new(),
        consts: Vec::new(),
        buffers: Vec::new(),
        inputs,
        outputs: Vec::new(),
    };
    let mut lw = Lowerer {
        g,
        shapes,
        storage: HashMap::new(),
        const_ids: HashMap::new(),
        prog,
        jit,
        ukr,
    };
    let order: Vec<NodeId> = order.into_iter().filter(|id| needed.contains(id)).collect();
    let inlined = lw.fusion_groups(&order)?;
    for &id in &order {
        if inlined.contains(&id) {
            continue;
        }
        lw.node(id, &inlined)?;
    }
    let end = lw.prog.steps.len();
    for o in g.outputs() {
        let buf = lw.buf(o.value)?;
        if let Buf::Arena(i) = buf {
            lw.prog.buffers[i].last_use = end;
        }
        lw.prog.outputs.push(OutputSpec {
            name: o.name.clone(),
            buf,
            dtype: g.value_type(o.value).dtype,
            shape: lw.shape(o.value),
        });
    }
    Ok(lw.prog)
}

impl Lowerer<'_> {
    fn shape(&self, v: Value) -> Vec<usize> {
        self.shapes.get(&v).cloned().unwrap_or_default()
    }

    fn numel(&self, v: Value) -> usize {
        self.shape(v).iter().product()
    }

    fn dtype(&self, v: Value) -> DType {
        self.g.value_type(v).dtype
    }

    /// Storage of an already lowered value.
    fn buf(&self, v: Value) -> Result<Buf, RuntimeError> {
        self.storage.get(&v).copied().ok_or_else(|| {
            unsupported(
                self.g,
                v.node,
                format!("output {} was not computed by the cpu backend", v.port),
            )
        })
    }

    /// Storage of `v` for a read at the next step (extends its buffer's live range).
    fn read(&mut self, v: Value) -> Result<Buf, RuntimeError> {
        let b = self.buf(v)?;
        if let Buf::Arena(i) = b {
            let step = self.prog.steps.len();
            self.prog.buffers[i].last_use = self.prog.buffers[i].last_use.max(step);
        }
        Ok(b)
    }

    /// A fresh arena buffer for `v`, written by the next step.
    fn alloc(&mut self, v: Value) -> Buf {
        let step = self.prog.steps.len();
        let bytes = self.numel(v) * self.dtype(v).size_of();
        self.prog.buffers.push(BufferReq {
            bytes,
            def: step,
            last_use: step,
        });
        let b = Buf::Arena(self.prog.buffers.len() - 1);
        self.storage.insert(v, b);
        b
    }

    /// Whether `id` is an f32 elementwise node the fused kernels can compute.
    fn fusible(&self, id: NodeId) -> Result<bool, RuntimeError> {
        let n = self.g.node(id);
        let ok_op = match &n.op {
            Op::Unary(u) => unary_supported(*u),
            Op::Binary(b) => binary_supported(*b),
            Op::Variadic(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Gelu { .. }
            | Op::Clip => true,
            _ => false,
        };
        if !ok_op || n.outputs.len() != 1 {
            return Ok(false);
        }
        let ins = self.g.node_inputs(id);
        let all_f32 = data_ports(&n.op, ins.len())
            .iter()
            .filter_map(|&p| ins.get(p).copied().flatten())
            .all(|v| self.dtype(v) == DType::F32);
        // Other dtypes, and Clip with run-time bounds, go to the generic host kernels.
        let const_bounds = !matches!(n.op, Op::Clip)
            || ins.iter().skip(1).flatten().all(|&v| {
                self.const_f32(v).is_some_and(|t| t.len() <= 1)
                    || self.const_of(v).is_some_and(|t| t.is_empty())
            });
        Ok(all_f32 && const_bounds && self.dtype(Value::new(id, 0)) == DType::F32)
    }

    /// Elementwise nodes folded into their single consumer's kernel.
    fn fusion_groups(&self, order: &[NodeId]) -> Result<HashSet<NodeId>, RuntimeError> {
        // Nodes computed from constants only are folded at compile time, never fused.
        let mut constish: HashSet<NodeId> = HashSet::new();
        let mut fus = HashSet::new();
        for &id in order {
            let ins = self.g.node_inputs(id);
            let from_consts = match &self.g.node(id).op {
                Op::Constant(_) => true,
                Op::Input(_) => false,
                _ => {
                    ins.iter().any(|v| v.is_some())
                        && ins.iter().flatten().all(|v| {
                            constish.contains(&v.node)
                                || matches!(self.g.node(v.node).op, Op::Constant(_))
                        })
                }
            };
            if from_consts {
                constish.insert(id);
            } else if self.fusible(id)? {
                fus.insert(id);
            }
        }
        let mut inlined = HashSet::new();
        // Nodes in the expression tree rooted at each node (itself and what it inlines): a
        // tree that reaches MAX_FUSED_NODES becomes a kernel of its own, so one kernel's
        // code, and the time Cranelift spends on it, stay bounded on chains of any length.
        let mut size: HashMap<NodeId, usize> = HashMap::new();
        for &id in order {
            if !fus.contains(&id) {
                continue;
            }
            let own = 1 + self
                .g
                .node_inputs(id)
                .iter()
                .flatten()
                .filter(|v| inlined.contains(&v.node))
                .map(|v| size.get(&v.node).copied().unwrap_or(1))
                .sum::<usize>();
            size.insert(id, own);
            if own >= MAX_FUSED_NODES {
                continue;
            }
            let v = Value::new(id, 0);
            let cons = self.g.consumers(v);
            if cons.len() == 1 && !self.g.is_output(v) {
                let (c, port) = cons[0];
                let reads_data =
                    data_ports(&self.g.node(c).op, self.g.node(c).num_inputs).contains(&port);
                if fus.contains(&c) && reads_data && self.numel(v) == self.numel(Value::new(c, 0)) {
                    inlined.insert(id);
                }
            }
        }
        Ok(inlined)
    }

    fn node(&mut self, id: NodeId, inlined: &HashSet<NodeId>) -> Result<(), RuntimeError> {
        let g = self.g;
        let n = g.node(id);
        let out = Value::new(id, 0);
        match &n.op {
            Op::Input(i) => {
                self.storage.insert(out, Buf::Input(*i));
            }
            Op::Constant(t) => {
                self.prog.consts.push(t.clone());
                let ci = self.prog.consts.len() - 1;
                self.const_ids.insert(id, ci);
                self.storage.insert(out, Buf::Const(ci));
            }
            op if is_view(op) => {
                if matches!(op, Op::Dropout) && !dropout_is_inference(g, id) {
                    return Err(unsupported(
                        g,
                        id,
                        "training-mode Dropout (training_mode not a constant false) is not supported",
                    ));
                }
                if matches!(op, Op::Dropout) && n.outputs.len() > 1 {
                    self.dropout_mask(id); // all true in inference mode (ops_ext)
                }
                let src = g
                    .input(id, 0)
                    .ok_or_else(|| unsupported(g, id, "missing input 0"))?;
                let b = self.buf(src)?;
                self.storage.insert(out, b);
            }
            Op::Split { .. } if self.split_absorbed(id) => {} // read in place by Attention
            _ if self.fold(id)? => {}
            Op::MatMul if self.host_matmul(id)? => {} // non-f32 (ops_ext)
            Op::MatMul | Op::Gemm { .. } | Op::FusedMatMul { .. } => self.matmul(id)?,
            Op::Attention { .. } => self.attention(id)?,
            Op::PackedAttention { .. } => self.packed_attention(id)?,
            _ if self.conv_absorbed(id)? => {} // applied by its Conv (ops_conv)
            _ if self.fusible(id)? => self.fused(id, inlined)?,
            _ if self.host_ext(id)? => {}
            _ if self.host_op(id)? => {}
            _ if self.host_reference(id)? => {}
            _ => {
                return Err(unsupported(
                    g,
                    id,
                    "the cpu backend does not lower this op yet",
                ))
            }
        }
        Ok(())
    }

    /// The constant value of `v`: a graph constant, or a node folded at compile time.
    fn const_of(&self, v: Value) -> Option<Arc<Tensor>> {
        if let Some(Buf::Const(i)) = self.storage.get(&v) {
            return self.prog.consts.get(*i).cloned();
        }
        match &self.g.node(v.node).op {
            Op::Constant(t) if v.port == 0 => Some(t.clone()),
            _ => None,
        }
    }

    fn const_f32(&self, v: Value) -> Option<Arc<Tensor>> {
        self.const_of(v).filter(|t| t.dtype() == DType::F32)
    }

    /// Evaluates a node whose inputs are all constants at compile time (with `ir::eval`);
    /// `Ok(false)` when some input is computed at run time.
    fn fold(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let n = g.node(id);
        let ins = g.node_inputs(id);
        if ins.iter().all(|v| v.is_none()) {
            return Ok(false);
        }
        let mut ts: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(ins.len());
        for v in &ins {
            match v {
                None => ts.push(None),
                Some(v) => match self.const_of(*v) {
                    Some(t) => ts.push(Some(t)),
                    None => return Ok(false),
                },
            }
        }
        let refs: Vec<Option<&Tensor>> = ts.iter().map(|t| t.as_deref()).collect();
        let outs = whittle_ir::eval::eval_op_checked(&n.op, &refs, n.outputs.len())
            .map_err(|e| unsupported(g, id, format!("constant folding failed: {e}")))?;
        for (p, t) in outs.into_iter().enumerate() {
            self.prog.consts.push(Arc::new(t));
            self.storage
                .insert(Value::new(id, p), Buf::Const(self.prog.consts.len() - 1));
        }
        Ok(true)
    }

    /// The node index of operand `v` in `e`: a scalar constant becomes an immediate, a value
    /// computed outside the group a leaf, an inlined node the index it was built at.
    fn operand(
        &self,
        v: Value,
        inlined: &HashSet<NodeId>,
        built: &HashMap<NodeId, usize>,
        e: &mut FusedExpr,
        leaves: &mut Vec<Value>,
    ) -> usize {
        if let Some(t) = self.const_f32(v).filter(|t| t.len() == 1) {
            let x = t
                .as_slice::<f32>()
                .and_then(|s| s.first().copied())
                .unwrap_or(0.0);
            e.nodes.push(ENode::Imm(x));
            return e.nodes.len() - 1;
        }
        if inlined.contains(&v.node) {
            if let Some(&i) = built.get(&v.node) {
                return i;
            }
        }
        let i = leaves.iter().position(|&l| l == v).unwrap_or_else(|| {
            leaves.push(v);
            leaves.len() - 1
        });
        e.nodes.push(ENode::Leaf(i));
        e.nodes.len() - 1
    }

    /// The input ports of `id` that a fused expression reads as operands.
    fn expr_ports(&self, id: NodeId) -> Vec<usize> {
        let ins = self.g.node_inputs(id);
        match &self.g.node(id).op {
            Op::Binary(_) => vec![0, 1],
            Op::Variadic(_) => (0..ins.len()).filter(|&p| ins[p].is_some()).collect(),
            _ => vec![0],
        }
    }

    /// Builds the expression of `root` and the inlined nodes under it into `e`; returns the
    /// root's node index. The walk is iterative (post-order with an explicit stack), so a
    /// chain of any length costs no native stack; every inlined node has one consumer, so
    /// the group is a tree and each node is built once.
    fn node_expr(
        &self,
        root: NodeId,
        inlined: &HashSet<NodeId>,
        e: &mut FusedExpr,
        leaves: &mut Vec<Value>,
    ) -> Result<usize, RuntimeError> {
        let g = self.g;
        let mut order: Vec<NodeId> = Vec::new();
        let mut stack: Vec<(NodeId, bool)> = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            stack.push((id, true));
            let ins = g.node_inputs(id);
            for &p in self.expr_ports(id).iter().rev() {
                let v = ins
                    .get(p)
                    .copied()
                    .flatten()
                    .ok_or_else(|| unsupported(g, id, format!("missing input {p}")))?;
                if inlined.contains(&v.node) && self.const_f32(v).is_none() {
                    stack.push((v.node, false));
                }
            }
        }
        let mut built: HashMap<NodeId, usize> = HashMap::new();
        for id in order {
            let i = self.build_node(id, inlined, &built, e, leaves)?;
            built.insert(id, i);
        }
        built
            .get(&root)
            .copied()
            .ok_or_else(|| unsupported(g, root, "empty fused expression"))
    }

    /// Appends one node of a fused expression; its inlined operands are already built.
    fn build_node(
        &self,
        id: NodeId,
        inlined: &HashSet<NodeId>,
        built: &HashMap<NodeId, usize>,
        e: &mut FusedExpr,
        leaves: &mut Vec<Value>,
    ) -> Result<usize, RuntimeError> {
        let g = self.g;
        let n = g.node(id);
        let ins = g.node_inputs(id);
        let mut arg = |p: usize, e: &mut FusedExpr| -> Result<usize, RuntimeError> {
            let v = ins
                .get(p)
                .copied()
                .flatten()
                .ok_or_else(|| unsupported(g, id, format!("missing input {p}")))?;
            Ok(self.operand(v, inlined, built, e, leaves))
        };
        let node = match &n.op {
            Op::Unary(u) => ENode::Unary(*u, arg(0, e)?),
            Op::Binary(b) => {
                let a = arg(0, e)?;
                ENode::Binary(*b, a, arg(1, e)?)
            }
            Op::LeakyRelu { alpha } => ENode::LeakyRelu(*alpha, arg(0, e)?),
            Op::HardSigmoid { alpha, beta } => ENode::HardSigmoid(*alpha, *beta, arg(0, e)?),
            Op::Gelu { approximate } => ENode::Gelu(*approximate, arg(0, e)?),
            Op::Clip => {
                let bound = |p: usize| -> Result<Option<f32>, RuntimeError> {
                    match ins.get(p).copied().flatten() {
                        None => Ok(None),
                        Some(v) => match self.const_f32(v) {
                            Some(t) if t.is_empty() => Ok(None),
                            Some(t) if t.len() == 1 => {
                                Ok(t.as_slice::<f32>().and_then(|s| s.first().copied()))
                            }
                            _ => Err(unsupported(
                                g,
                                id,
                                "Clip bounds must be f32 scalar constants",
                            )),
                        },
                    }
                };
                let (lo, hi) = (bound(1)?, bound(2)?);
                ENode::Clip(lo, hi, arg(0, e)?)
            }
            Op::Variadic(op) => {
                let ports = self.expr_ports(id);
                let Some((&first, rest)) = ports.split_first() else {
                    return Err(unsupported(g, id, "needs at least one input"));
                };
                let mut acc = arg(first, e)?;
                for &p in rest {
                    let b = arg(p, e)?;
                    e.nodes.push(match op {
                        VariadicOp::Min => ENode::Min(acc, b),
                        VariadicOp::Max => ENode::Max(acc, b),
                        VariadicOp::Sum | VariadicOp::Mean => {
                            ENode::Binary(whittle_ir::BinaryOp::Add, acc, b)
                        }
                    });
                    acc = e.nodes.len() - 1;
                }
                if *op != VariadicOp::Mean {
                    return Ok(acc);
                }
                e.nodes.push(ENode::Imm(ports.len() as f32));
                ENode::Binary(whittle_ir::BinaryOp::Div, acc, e.nodes.len() - 1)
            }
            _ => return Err(unsupported(g, id, "not an elementwise op")),
        };
        e.nodes.push(node);
        Ok(e.nodes.len() - 1)
    }

    fn fused(&mut self, id: NodeId, inlined: &HashSet<NodeId>) -> Result<(), RuntimeError> {
        let g = self.g;
        let mut e = FusedExpr::default();
        let mut leaves = Vec::new();
        self.node_expr(id, inlined, &mut e, &mut leaves)?;
        let out = Value::new(id, 0);
        let leaf_shapes: Vec<Vec<usize>> = leaves.iter().map(|&v| self.shape(v)).collect();
        let nest =
            LoopNest::new(&self.shape(out), &leaf_shapes).map_err(|m| unsupported(g, id, m))?;
        let name = format!("k{}_{}", self.prog.steps.len(), g.node(id).op.kind_name());
        // Big tensors: one kernel per block of outermost rows, run on every block in
        // parallel (a block is at least FUSED_SPLIT_MIN elements; at most 8 blocks).
        let total: usize = nest.dims.iter().product();
        let d0 = nest.dims[0];
        let per_row = total / d0.max(1);
        let blocks = (total / FUSED_SPLIT_MIN).clamp(1, 8).min(d0);
        let (kernel_nest, split) = if blocks >= 2 {
            let mut rows = d0.div_ceil(blocks);
            if nest.dims.len() == 1 {
                rows = rows.div_ceil(16) * 16; // whole vectors per block
            }
            let with_rows = |r: usize| {
                let mut n = nest.clone();
                n.dims[0] = r;
                n
            };
            let rem = d0 % rows;
            let tail = if rem == 0 {
                None
            } else {
                let k = elementwise::emit_kernel(
                    self.jit,
                    &format!("{name}_tail"),
                    &e,
                    &with_rows(rem),
                )
                .map_err(|m| unsupported(g, id, m))?;
                Some(k)
            };
            let mut row_bytes: Vec<usize> = nest.strides.iter().map(|st| st[0] * 4).collect();
            row_bytes.push(per_row * 4);
            let split = FusedSplit {
                rows,
                total: d0,
                tail,
                row_bytes,
            };
            (with_rows(rows), Some(Box::new(split)))
        } else {
            (nest, None)
        };
        let kernel = elementwise::emit_kernel(self.jit, &name, &e, &kernel_nest)
            .map_err(|m| unsupported(g, id, m))?;
        let mut args = Vec::with_capacity(leaves.len() + 1);
        for &v in &leaves {
            args.push(self.read(v)?);
        }
        args.push(self.alloc(out));
        self.prog.steps.push(Step::Fused {
            kernel,
            args,
            name,
            split,
        });
        Ok(())
    }

    fn matmul(&mut self, id: NodeId) -> Result<(), RuntimeError> {
        let g = self.g;
        let ins = g.node_inputs(id);
        let get = |p: usize| ins.get(p).copied().flatten();
        let (a, b) = match (get(0), get(1)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(unsupported(g, id, "needs inputs A and B")),
        };
        let out = Value::new(id, 0);
        for v in [Some(a), Some(b), get(2), Some(out)].into_iter().flatten() {
            if self.dtype(v) != DType::F32 {
                return Err(unsupported(
                    g,
                    id,
                    "only f32 matrix products are lowered so far",
                ));
            }
        }
        let (sa, sb) = (self.shape(a), self.shape(b));
        let (m, k, n, pairs, b_batches, a_rs, a_cs, b_rs, b_cs, alpha, beta, bias_v) =
            match &g.node(id).op {
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                } => {
                    if sa.len() != 2 || sb.len() != 2 {
                        return Err(unsupported(
                            g,
                            id,
                            format!("Gemm needs 2-D A and B, got {sa:?} and {sb:?}"),
                        ));
                    }
                    let (m, k) = if *trans_a {
                        (sa[1], sa[0])
                    } else {
                        (sa[0], sa[1])
                    };
                    let (kb, n) = if *trans_b {
                        (sb[1], sb[0])
                    } else {
                        (sb[0], sb[1])
                    };
                    if k != kb {
                        return Err(unsupported(
                            g,
                            id,
                            format!("inner dimensions differ: {sa:?} × {sb:?}"),
                        ));
                    }
                    let (a_rs, a_cs) = if *trans_a { (1, m) } else { (k, 1) };
                    let (b_rs, b_cs) = if *trans_b { (1, k) } else { (n, 1) };
                    let bias = get(2).filter(|_| *beta != 0.0);
                    (
                        m,
                        k,
                        n,
                        vec![(0, 0)],
                        1,
                        a_rs,
                        a_cs,
                        b_rs,
                        b_cs,
                        *alpha,
                        *beta,
                        bias,
                    )
                }
                _ => {
                    let (m, k, n, pairs, nb) =
                        matmul_geometry(&sa, &sb).map_err(|e| unsupported(g, id, e))?;
                    // FusedMatMul: its bias is input 2 (checked to broadcast below).
                    (m, k, n, pairs, nb, k, 1, n, 1, 1.0, 1.0, get(2))
                }
            };
        let bias = match bias_v {
            None => None,
            Some(c) => {
                let cs = self.shape(c);
                let (rs, cst) = match cs.as_slice() {
                    [] => (0, 0),
                    [x] if *x == n => (0, 1),
                    [1] => (0, 0),
                    [r, c2] if (*r == m || *r == 1) && (*c2 == n || *c2 == 1) => {
                        (if *r == 1 { 0 } else { *c2 }, if *c2 == 1 { 0 } else { 1 })
                    }
                    _ => {
                        return Err(unsupported(
                            g,
                            id,
                            format!("bias of shape {cs:?} does not broadcast to [{m}, {n}]"),
                        ))
                    }
                };
                Some((self.read(c)?, rs, cst))
            }
        };
        let bsrc = match self.const_f32(b) {
            Some(t) => {
                let data = t.as_slice::<f32>().unwrap_or(&[]);
                BSource::Packed(
                    pack_const_b(data, b_batches, k, n, b_rs, b_cs, &self.ukr)
                        .map_err(|e| unsupported(g, id, e))?,
                )
            }
            None => BSource::Runtime {
                buf: self.read(b)?,
                rs: b_rs,
                cs: b_cs,
                batch_offsets: (0..b_batches).map(|i| i * k * n).collect(),
            },
        };
        let (act, residual) = self.matmul_post_ops(id, out)?;
        let a_buf = self.read(a)?;
        let out_buf = self.alloc(out);
        self.prog.steps.push(Step::MatMul(Box::new(MatMulStep {
            m,
            k,
            n,
            a: a_buf,
            a_rs,
            a_cs,
            a_offsets: pairs.iter().map(|&(ia, _)| ia * m * k).collect(),
            b_index: pairs.iter().map(|&(_, ib)| ib).collect(),
            b: bsrc,
            out: out_buf,
            alpha,
            beta,
            bias,
            act,
            residual,
        })));
        Ok(())
    }
}

/// Whether a Dropout node is the identity: no `training_mode` input, or a constant false
/// one, or a constant ratio of 0.
fn dropout_is_inference(g: &Graph, id: NodeId) -> bool {
    let const_scalar = |port: usize| {
        g.input(id, port)
            .and_then(|v| g.const_tensor(v))
            .map(|t| t.to_f64_vec().first().copied().unwrap_or(0.0))
    };
    let training_absent = g.input(id, 2).is_none();
    training_absent || const_scalar(2) == Some(0.0) || const_scalar(1) == Some(0.0)
}
