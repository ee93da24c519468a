//! The reference path: any op run by `whittle_ir::eval` on host tensors copied from the
//! plan's buffers. The cpu backend uses it for ops without a kernel of their own (rare ops
//! where speed does not matter), so it computes what the oracle computes, by the same code.

use serde::{Deserialize, Serialize};
use whittle_ir::{DType, Op, Tensor};

/// One op evaluated by the reference evaluator. Arguments: the present input ports in
/// order, then the outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefOp {
    pub op: Op,
    /// Per input port: its dtype and shape, or `None` when the port has no edge.
    pub ins: Vec<Option<(DType, Vec<usize>)>>,
    /// Per output port: the dtype and shape the plan allocated for it.
    pub outs: Vec<(DType, Vec<usize>)>,
}

impl RefOp {
    /// # Safety
    /// `ins` holds one pointer per present input port, each to a buffer of its declared
    /// dtype and shape; `outs` one per output, sized as declared.
    pub unsafe fn run(&self, ins: &[*const u8], outs: &[*mut u8]) -> Result<(), String> {
        let mut tensors: Vec<Option<Tensor>> = Vec::with_capacity(self.ins.len());
        let mut next = 0;
        for port in &self.ins {
            let Some((dt, shape)) = port else {
                tensors.push(None);
                continue;
            };
            let p = *ins.get(next).ok_or("missing input buffer")?;
            next += 1;
            let bytes = whittle_ir::limits::byte_size(shape, dt.size_of())?;
            let raw: &[u8] = if bytes == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, bytes)
            };
            let t = Tensor::from_le_bytes(*dt, shape.clone(), raw).map_err(|e| e.to_string())?;
            tensors.push(Some(t));
        }
        let refs: Vec<Option<&Tensor>> = tensors.iter().map(|t| t.as_ref()).collect();
        let got = whittle_ir::eval::eval_op_checked(&self.op, &refs, self.outs.len())?;
        if got.len() < self.outs.len() {
            return Err(format!(
                "the reference evaluator gave {} outputs, the plan expects {}",
                got.len(),
                self.outs.len()
            ));
        }
        for (i, ((dt, shape), t)) in self.outs.iter().zip(&got).enumerate() {
            if t.dtype() != *dt || t.shape() != shape.as_slice() {
                return Err(format!(
                    "output {i} is {}{:?}, the plan expects {dt}{shape:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
            let bytes = t.to_le_bytes();
            let p = *outs.get(i).ok_or("missing output buffer")?;
            if !bytes.is_empty() && !p.is_null() {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            }
        }
        Ok(())
    }
}
