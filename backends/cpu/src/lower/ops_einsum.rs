//! Lowering of Einsum to the generic contraction kernel: the equation is planned at compile
//! time (iteration sizes and per-input strides) by the reference evaluator's own
//! [`whittle_ir::eval::einsum::plan`].

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::index::Contraction;
use whittle_ir::eval::einsum::plan;
use whittle_ir::{NodeId, Op, Value};
use whittle_runtime::RuntimeError;

impl Lowerer<'_> {
    /// Lowers Einsum; `Ok(false)` for other ops.
    pub(super) fn host_einsum(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let Op::Einsum { equation } = &g.node(id).op else {
            return Ok(false);
        };
        let err = |m: String| unsupported(g, id, m);
        let ins: Vec<Value> = g.node_inputs(id).into_iter().flatten().collect();
        let out = Value::new(id, 0);
        let dt = self.dtype(out);
        if ins.iter().any(|&v| self.dtype(v) != dt) || dt == whittle_ir::DType::Bool {
            return Err(err("Einsum inputs must share a numeric dtype".into()));
        }
        let shapes: Vec<Vec<usize>> = ins.iter().map(|&v| self.shape(v)).collect();
        let shapes: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let p = plan(equation, &shapes).map_err(err)?;
        if p.out_shape() != self.shape(out).as_slice() {
            return Err(err(
                "the equation's output shape differs from the graph's".into()
            ));
        }
        let c = Contraction {
            sizes: p.sizes,
            strides: p.strides,
            n_out: p.n_out,
            dt,
        };
        self.push_ext_op(id, ExtOp::Einsum(c), &ins, &[out])?;
        Ok(true)
    }
}
