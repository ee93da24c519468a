//! Lowering of Resize: roi/scales/sizes must be constants (bound at plan time); the output
//! shape and the per-axis tap tables are the reference evaluator's
//! ([`whittle_ir::eval::resize::plan`]), computed once here.

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::resize::{AxisPlan, ResizePlan};
use std::sync::Arc;
use whittle_ir::eval::resize::plan;
use whittle_ir::{NodeId, Op, Tensor, Value};
use whittle_runtime::RuntimeError;

impl Lowerer<'_> {
    /// Lowers Resize; `Ok(false)` for other ops.
    pub(super) fn host_resize(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let Op::Resize(attrs) = &g.node(id).op else {
            return self.host_quant(id);
        };
        let err = |m: String| unsupported(g, id, m);
        let x = self.input_value(id, 0)?;
        let out = Value::new(id, 0);
        let in_shape = self.shape(x);
        let konst = |p: usize| -> Result<Option<Arc<Tensor>>, RuntimeError> {
            match g.input(id, p) {
                None => Ok(None),
                Some(v) => match self.const_of(v) {
                    Some(t) => Ok(Some(t)),
                    None => Err(err(format!("input {p} must be a constant"))),
                },
            }
        };
        let (roi, scales, sizes) = (konst(1)?, konst(2)?, konst(3)?);
        let geo = plan(
            attrs,
            &in_shape,
            roi.as_deref(),
            scales.as_deref(),
            sizes.as_deref(),
        )
        .map_err(err)?;
        if geo.out_shape != self.shape(out) {
            return Err(err(format!(
                "computed output shape {:?} differs from the graph's {:?}",
                geo.out_shape,
                self.shape(out)
            )));
        }
        let plan = ResizePlan {
            in_shape,
            axes: geo
                .axes
                .into_iter()
                .map(|(axis, taps)| AxisPlan { axis, taps })
                .collect(),
            dt: self.dtype(x),
        };
        self.push_ext_op(id, ExtOp::Resize(plan), &[x], &[out])?;
        Ok(true)
    }
}
