//! Lowering of the compiler-made fused ops: the post-ops of `FusedMatMul` (its GEMM is
//! lowered by `Lowerer::matmul`; this adds the activation and the residual), and
//! `Attention` as one [`AttentionStep`] running `kernels::attention`.

use super::{unsupported, Lowerer, Step};
use crate::kernels::attention::AttnGeom;
use crate::plan::Buf;
use whittle_ir::{Activation, DType, NodeId, Op, Value};
use whittle_runtime::RuntimeError;

/// One fused attention call: `args` = q, k, v, mask (if any), then the output.
#[derive(Debug)]
pub struct AttentionStep {
    pub geom: AttnGeom,
    pub args: Vec<Buf>,
    pub name: String,
}

/// Element strides of a mask of shape `m` broadcast (numpy) to `full` (rank 4).
fn broadcast_strides(m: &[usize], full: [usize; 4]) -> Option<[usize; 4]> {
    if m.len() > 4 {
        return None;
    }
    let mut dims = vec![1usize; 4 - m.len()];
    dims.extend_from_slice(m);
    let mut st = [0usize; 4];
    let mut acc = 1;
    for a in (0..4).rev() {
        if dims[a] != 1 && dims[a] != full[a] {
            return None;
        }
        st[a] = if dims[a] == 1 { 0 } else { acc };
        acc *= dims[a];
    }
    Some(st)
}

impl Lowerer<'_> {
    /// The activation and residual buffer of a `FusedMatMul` (linear and none otherwise).
    pub(super) fn matmul_post_ops(
        &mut self,
        id: NodeId,
        out: Value,
    ) -> Result<(Activation, Option<Buf>), RuntimeError> {
        let g = self.g;
        let Op::FusedMatMul { activation } = g.node(id).op else {
            return Ok((Activation::Linear, None));
        };
        let residual = match g.input(id, 3) {
            None => None,
            Some(r) => {
                if self.dtype(r) != DType::F32 || self.shape(r) != self.shape(out) {
                    return Err(unsupported(
                        g,
                        id,
                        format!(
                            "residual of shape {:?} must have the output's shape {:?}",
                            self.shape(r),
                            self.shape(out)
                        ),
                    ));
                }
                Some(self.read(r)?)
            }
        };
        Ok((activation, residual))
    }

    pub(super) fn attention(&mut self, id: NodeId) -> Result<(), RuntimeError> {
        let g = self.g;
        let Op::Attention { num_heads, scale } = g.node(id).op else {
            return Err(unsupported(g, id, "not an Attention node"));
        };
        let (Some(q), Some(k), Some(v)) = (g.input(id, 0), g.input(id, 1), g.input(id, 2)) else {
            return Err(unsupported(g, id, "needs inputs q, k and v"));
        };
        let mask = g.input(id, 3);
        let out = Value::new(id, 0);
        for x in [Some(q), Some(k), Some(v), mask, Some(out)]
            .into_iter()
            .flatten()
        {
            if self.dtype(x) != DType::F32 {
                return Err(unsupported(g, id, "only f32 attention is lowered"));
            }
        }
        let (sq, sk, sv) = (self.shape(q), self.shape(k), self.shape(v));
        let h = num_heads;
        let ok = sq.len() == 3
            && sk.len() == 3
            && sv.len() == 3
            && h > 0
            && sq[2] % h == 0
            && sv[2] % h == 0
            && sk[0] == sq[0]
            && sv[0] == sq[0]
            && sk[2] == sq[2]
            && sv[1] == sk[1];
        if !ok {
            return Err(unsupported(
                g,
                id,
                format!("shapes q {sq:?}, k {sk:?}, v {sv:?} do not fit {h} heads"),
            ));
        }
        let (b, lq, lk) = (sq[0], sq[1], sk[1]);
        let mask_strides = match mask {
            None => None,
            Some(m) => {
                let sm = self.shape(m);
                Some(broadcast_strides(&sm, [b, h, lq, lk]).ok_or_else(|| {
                    unsupported(
                        g,
                        id,
                        format!("mask {sm:?} does not broadcast to [{b}, {h}, {lq}, {lk}]"),
                    )
                })?)
            }
        };
        // Q, K and V that are column blocks of one Split (a fused QKV GEMM's output) are
        // read in place from the Split's input: `(value read, offset, row stride)`.
        let place = |x: Value| match self.split_block(x) {
            Some((src, off, width)) => (src, off, width),
            None => (x, 0, self.shape(x)[2]),
        };
        let (pq, pk, pv) = (place(q), place(k), place(v));
        let geom = AttnGeom {
            batch: b,
            heads: h,
            q_len: lq,
            k_len: lk,
            head: sq[2] / h,
            v_head: sv[2] / h,
            scale,
            mask_strides,
            qkv_layout: Some([(pq.1, pq.2), (pk.1, pk.2), (pv.1, pv.2)]),
        };
        let mut args = Vec::with_capacity(5);
        for x in [Some(pq.0), Some(pk.0), Some(pv.0), mask]
            .into_iter()
            .flatten()
        {
            args.push(self.read(x)?);
        }
        args.push(self.alloc(out));
        let name = g.node(id).name.clone();
        self.prog
            .steps
            .push(Step::Attention(Box::new(AttentionStep {
                geom,
                args,
                name,
            })));
        Ok(())
    }
}

impl Lowerer<'_> {
    /// Whether `split` needs no step: a last-axis Split of a rank-3 f32 tensor all of whose
    /// outputs are read only as Q, K or V of `Attention` nodes, which read the blocks in
    /// place (see [`Lowerer::split_block`]).
    pub(super) fn split_absorbed(&self, split: NodeId) -> bool {
        let g = self.g;
        let Op::Split { axis, .. } = g.node(split).op else {
            return false;
        };
        let Some(x) = g.input(split, 0) else {
            return false;
        };
        let rank = self.shape(x).len() as i64;
        if rank != 3 || (axis != 2 && axis != -1) || self.dtype(x) != DType::F32 {
            return false;
        }
        (0..g.node(split).outputs.len()).all(|p| {
            let v = Value::new(split, p);
            !g.is_output(v)
                && g.consumers(v)
                    .iter()
                    .all(|&(n, i)| i < 3 && matches!(g.node(n).op, Op::Attention { .. }))
        })
    }

    /// `(split input, column offset, its row length)` when `v` is an output of an absorbed
    /// Split.
    fn split_block(&self, v: Value) -> Option<(Value, usize, usize)> {
        if !self.split_absorbed(v.node) {
            return None;
        }
        let x = self.g.input(v.node, 0)?;
        let off = (0..v.port)
            .map(|p| self.shape(Value::new(v.node, p))[2])
            .sum();
        Some((x, off, self.shape(x)[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_strides_follow_broadcasting() {
        assert_eq!(
            broadcast_strides(&[2, 1, 1, 7], [2, 3, 5, 7]),
            Some([7, 0, 0, 1])
        );
        assert_eq!(broadcast_strides(&[5, 7], [2, 3, 5, 7]), Some([0, 0, 7, 1]));
        assert_eq!(broadcast_strides(&[], [2, 3, 5, 7]), Some([0, 0, 0, 0]));
        assert_eq!(broadcast_strides(&[4, 7], [2, 3, 5, 7]), None);
    }
}
