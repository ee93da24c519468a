//! Lowering of the compiler-made fused ops: the post-ops of `FusedMatMul` (its GEMM is
//! lowered by `Lowerer::matmul`; this adds the activation and the residual), and
//! `Attention` as one [`AttentionStep`] running `kernels::attention`.

pub use whittle_exec::steps::AttentionStep;

use super::{unsupported, Lowerer, Step};
use crate::kernels::attention::AttnGeom;
use crate::plan::Buf;
use whittle_ir::{Activation, DType, NodeId, Op, Value};
use whittle_runtime::RuntimeError;

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
        let (pq, pk, pv) = (self.qkv_place(q), self.qkv_place(k), self.qkv_place(v));
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
            out_offset: 0,
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
    /// Whether `split` needs no step: a last-axis Split of a rank-3 (or, packed, rank-2)
    /// f32 tensor all of whose outputs are read only as Q, K or V of `Attention` /
    /// `PackedAttention` nodes, which read the blocks in place (see
    /// [`Lowerer::split_block`]).
    pub(super) fn split_absorbed(&self, split: NodeId) -> bool {
        let g = self.g;
        let Op::Split { axis, .. } = g.node(split).op else {
            return false;
        };
        let Some(x) = g.input(split, 0) else {
            return false;
        };
        let rank = self.shape(x).len() as i64;
        if !(2..=3).contains(&rank) || (axis != rank - 1 && axis != -1) {
            return false;
        }
        if self.dtype(x) != DType::F32 {
            return false;
        }
        (0..g.node(split).outputs.len()).all(|p| {
            let v = Value::new(split, p);
            !g.is_output(v)
                && g.consumers(v).iter().all(|&(n, i)| {
                    i < 3
                        && matches!(
                            g.node(n).op,
                            Op::Attention { .. } | Op::PackedAttention { .. }
                        )
                })
        })
    }

    /// Where attention reads Q, K or V `x`: `(value read, column offset, row stride)` —
    /// in place from the Split's input when `x` is a column block of an absorbed Split (a
    /// fused QKV GEMM's output), else `x` itself.
    fn qkv_place(&self, x: Value) -> (Value, usize, usize) {
        self.split_block(x)
            .unwrap_or_else(|| (x, 0, self.shape(x).last().copied().unwrap_or(0)))
    }

    /// `(split input, column offset, its row length)` when `v` is an output of an absorbed
    /// Split.
    fn split_block(&self, v: Value) -> Option<(Value, usize, usize)> {
        if !self.split_absorbed(v.node) {
            return None;
        }
        let x = self.g.input(v.node, 0)?;
        let last = |v: Value| self.shape(v).last().copied().unwrap_or(0);
        let off = (0..v.port).map(|p| last(Value::new(v.node, p))).sum();
        Some((x, off, last(x)))
    }

    /// `PackedAttention` with constant `cu_seqlens` (the cpu backend binds the padding mask
    /// per run, so the offsets fold to constants): one attention step per sequence, on its
    /// rows of the packed Q, K, V and output.
    pub(super) fn packed_attention(&mut self, id: NodeId) -> Result<(), RuntimeError> {
        let g = self.g;
        let Op::PackedAttention { num_heads, scale } = g.node(id).op else {
            return Err(unsupported(g, id, "not a PackedAttention node"));
        };
        let (Some(q), Some(k), Some(v), Some(cu)) = (
            g.input(id, 0),
            g.input(id, 1),
            g.input(id, 2),
            g.input(id, 3),
        ) else {
            return Err(unsupported(g, id, "needs inputs q, k, v and cu_seqlens"));
        };
        let out = Value::new(id, 0);
        for x in [q, k, v, out] {
            if self.dtype(x) != DType::F32 {
                return Err(unsupported(g, id, "only f32 attention is lowered"));
            }
        }
        let bounds: Vec<usize> = match g.const_tensor(cu) {
            Some(t) => (0..t.len()).map(|i| t.get_f64(i) as usize).collect(),
            None => {
                return Err(unsupported(
                    g,
                    id,
                    "cu_seqlens is not known when compiling (the padding mask must be a graph \
                     input of at most 4096 elements, which the cpu backend binds per run)",
                ))
            }
        };
        let (sq, sv) = (self.shape(q), self.shape(v));
        let h = num_heads;
        let t = sq[0];
        let ok = sq.len() == 2
            && self.shape(k) == sq
            && sv.len() == 2
            && sv[0] == t
            && h > 0
            && sq[1] % h == 0
            && sv[1] % h == 0
            && bounds.first() == Some(&0)
            && bounds.last() == Some(&t)
            && bounds.windows(2).all(|w| w[0] <= w[1]);
        if !ok {
            return Err(unsupported(
                g,
                id,
                format!("packed shapes q {sq:?}, v {sv:?} and cu_seqlens {bounds:?} do not fit"),
            ));
        }
        let (pq, pk, pv) = (self.qkv_place(q), self.qkv_place(k), self.qkv_place(v));
        let mut args = Vec::with_capacity(4);
        for x in [pq.0, pk.0, pv.0] {
            args.push(self.read(x)?);
        }
        args.push(self.alloc(out));
        let name = g.node(id).name.clone();
        for w in bounds.windows(2) {
            let (r0, len) = (w[0], w[1] - w[0]);
            if len == 0 {
                continue;
            }
            let at = |p: (Value, usize, usize)| (p.1 + r0 * p.2, p.2);
            let geom = AttnGeom {
                batch: 1,
                heads: h,
                q_len: len,
                k_len: len,
                head: sq[1] / h,
                v_head: sv[1] / h,
                scale,
                mask_strides: None,
                qkv_layout: Some([at(pq), at(pk), at(pv)]),
                out_offset: r0 * sv[1],
            };
            self.prog
                .steps
                .push(Step::Attention(Box::new(AttentionStep {
                    geom,
                    args: args.clone(),
                    name: name.clone(),
                })));
        }
        // Every step reads Q, K, V and writes the output: keep them live to the last one.
        let last = self.prog.steps.len().saturating_sub(1);
        for b in &args {
            if let Buf::Arena(i) = *b {
                let r = &mut self.prog.buffers[i];
                r.last_use = r.last_use.max(last);
            }
        }
        Ok(())
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
