//! The last resort of lowering: an op without a kernel of its own runs as a reference
//! step (`whittle_exec::kernels::reference`), evaluated by `whittle_ir::eval` on the
//! plan's buffers. So the cpu backend runs every op the reference evaluator runs, with
//! the oracle's own code where speed does not matter (rare ops, index bookkeeping).

use super::{unsupported, Lowerer};
use crate::kernels::reference::RefOp;
use whittle_exec::steps::ExtOp;
use whittle_ir::{DType, NodeId, Op, Tensor, TensorType, Value};
use whittle_runtime::RuntimeError;

impl Lowerer<'_> {
    /// Lowers `id` as a reference step; false for the ops that are not computations.
    pub(super) fn host_reference(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let n = g.node(id);
        if matches!(n.op, Op::Input(_) | Op::Constant(_)) {
            return Ok(false);
        }
        let mut ins = Vec::new();
        let mut ports = Vec::new();
        for v in g.node_inputs(id) {
            match v {
                Some(v) => {
                    ports.push(Some((self.dtype(v), self.shape(v))));
                    ins.push(v);
                }
                None => ports.push(None),
            }
        }
        let outs: Vec<Value> = (0..n.outputs.len()).map(|p| Value::new(id, p)).collect();
        let out_types: Vec<(DType, Vec<usize>)> = outs
            .iter()
            .map(|&v| (self.dtype(v), self.shape(v)))
            .collect();
        // The node must be one the evaluator accepts, with the types the plan allocates:
        // a node it would refuse is a compile error here, not a failure at run time.
        let in_types: Vec<Option<TensorType>> = ports
            .iter()
            .map(|p| p.as_ref().map(|(dt, s)| TensorType::fixed(*dt, s)))
            .collect();
        let in_refs: Vec<Option<&TensorType>> = in_types.iter().map(|t| t.as_ref()).collect();
        let consts: Vec<_> = g
            .node_inputs(id)
            .into_iter()
            .map(|v| v.and_then(|v| self.const_of(v)))
            .collect();
        let const_refs: Vec<Option<&Tensor>> = consts.iter().map(|c| c.as_deref()).collect();
        let inferred = whittle_ir::infer::infer_node(&n.op, &in_refs, &const_refs, outs.len())
            .map_err(|e| unsupported(g, id, e))?;
        for (t, (dt, s)) in inferred.iter().zip(&out_types) {
            if t.dtype != *dt || t.concrete_shape().is_some_and(|c| c != *s) {
                return Err(unsupported(
                    g,
                    id,
                    format!("inferred output {t} differs from the graph's {dt}{s:?}"),
                ));
            }
        }
        let op = ExtOp::Reference(RefOp {
            op: n.op.clone(),
            ins: ports,
            outs: out_types,
        });
        self.push_ext_op(id, op, &ins, &outs)?;
        Ok(true)
    }
}
