//! Lowering of the non-elementwise, non-GEMM ops to host kernel calls (`HostOp`):
//! LayerNormalization, Softmax, ReduceSum/Mean over trailing axes, Transpose / Slice /
//! Expand (one strided copy each), Concat, Gather and Cast. Attribute-like inputs (axes,
//! starts, ...) must be constants by now (`specialize` folds shape computations).

pub use whittle_exec::steps::HostOp;

use super::{unsupported, Lowerer, Step};
use crate::kernels::movement::{GatherGeom, StridedCopy};
use crate::plan::Buf;
use whittle_ir::eval::util::{norm_axes, norm_axis};
use whittle_ir::{DType, NodeId, Op, ReduceOp, Value};
use whittle_runtime::RuntimeError;

fn dense_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1] as isize;
    }
    s
}

use whittle_ir::infer::slice_range;

impl Lowerer<'_> {
    fn input_at(&self, id: NodeId, p: usize) -> Result<Value, RuntimeError> {
        self.g
            .input(id, p)
            .ok_or_else(|| unsupported(self.g, id, format!("missing input {p}")))
    }

    /// Integer list held by the constant at input `p` (None when the input is absent).
    fn const_ints(&self, id: NodeId, p: usize) -> Result<Option<Vec<i64>>, RuntimeError> {
        let Some(v) = self.g.input(id, p) else {
            return Ok(None);
        };
        match self.const_of(v) {
            Some(t) if !t.dtype().is_float() => Ok(Some(t.to_i64_vec())),
            _ => Err(unsupported(
                self.g,
                id,
                format!("input {p} must be a constant integer tensor for the cpu backend"),
            )),
        }
    }

    fn push_host(&mut self, id: NodeId, op: HostOp, ins: &[Value]) -> Result<(), RuntimeError> {
        let mut args: Vec<Buf> = Vec::with_capacity(ins.len() + 1);
        for &v in ins {
            args.push(self.read(v)?);
        }
        args.push(self.alloc(Value::new(id, 0)));
        let name = format!(
            "{}_{}",
            self.g.node(id).op.kind_name(),
            self.prog.steps.len()
        );
        self.prog.steps.push(Step::Host { op, args, name });
        Ok(())
    }

    fn need_f32(&self, id: NodeId, vals: &[Value]) -> Result<(), RuntimeError> {
        if vals.iter().all(|&v| self.dtype(v) == DType::F32) {
            Ok(())
        } else {
            Err(unsupported(self.g, id, "only f32 is lowered for this op"))
        }
    }

    fn only_first_output(&self, id: NodeId) -> Result<(), RuntimeError> {
        let n = self.g.node(id);
        for p in 1..n.outputs.len() {
            let v = Value::new(id, p);
            if !self.g.consumers(v).is_empty() || self.g.is_output(v) {
                return Err(unsupported(
                    self.g,
                    id,
                    format!("output {p} is not lowered"),
                ));
            }
        }
        Ok(())
    }

    /// Lowers `id` if it is one of the host-kernel ops; `Ok(false)` if it is not.
    pub(super) fn host_op(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let op = g.node(id).op.clone();
        let out = Value::new(id, 0);
        let oshape = self.shape(out);
        match op {
            Op::LayerNormalization { axis, epsilon } => {
                self.only_first_output(id)?;
                let x = self.input_at(id, 0)?;
                let gamma = self.input_at(id, 1)?;
                let beta = g.input(id, 2);
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len()).map_err(|e| unsupported(g, id, e))?;
                let cols: usize = sx[ax..].iter().product();
                let rows: usize = sx[..ax].iter().product();
                let mut ins = vec![x, gamma];
                ins.extend(beta);
                self.need_f32(id, &ins)?;
                for &p in &ins[1..] {
                    if self.numel(p) != cols {
                        return Err(unsupported(
                            g,
                            id,
                            "scale and bias must cover the normalized axes without broadcasting",
                        ));
                    }
                }
                let has_beta = beta.is_some();
                self.push_host(
                    id,
                    HostOp::LayerNorm {
                        rows,
                        cols,
                        eps: epsilon,
                        has_beta,
                    },
                    &ins,
                )?;
            }
            Op::Softmax { axis, coerce_2d } => {
                let x = self.input_at(id, 0)?;
                self.need_f32(id, &[x, out])?;
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len().max(1)).map_err(|e| unsupported(g, id, e))?;
                let trailing_ones = sx.iter().skip(ax + 1).all(|&d| d == 1);
                if !coerce_2d && !trailing_ones {
                    return Err(unsupported(
                        g,
                        id,
                        "Softmax is lowered over the last axis only",
                    ));
                }
                let cols: usize = sx.iter().skip(ax).product();
                let rows: usize = sx.iter().take(ax).product();
                self.push_host(id, HostOp::Softmax { rows, cols }, &[x])?;
            }
            // (No axes with noop_with_empty_axes never gets here: `ops_ext` lowers it.)
            Op::Reduce {
                op: rop @ (ReduceOp::Sum | ReduceOp::Mean),
                ..
            } => {
                let x = self.input_at(id, 0)?;
                self.need_f32(id, &[x, out])?;
                let sx = self.shape(x);
                let axes = self.const_ints(id, 1)?.unwrap_or_default();
                let mut axes = if axes.is_empty() {
                    (0..sx.len()).collect()
                } else {
                    norm_axes(&axes, sx.len()).map_err(|e| unsupported(g, id, e))?
                };
                axes.sort_unstable();
                axes.dedup();
                let first = axes.first().copied().unwrap_or(sx.len());
                if axes.iter().enumerate().any(|(i, &a)| a != first + i)
                    || axes.last().is_some_and(|&a| a + 1 != sx.len())
                {
                    return Err(unsupported(
                        g,
                        id,
                        "reductions are lowered over trailing axes only",
                    ));
                }
                let cols: usize = sx[first..].iter().product();
                let rows: usize = sx[..first].iter().product();
                let scale = if rop == ReduceOp::Mean {
                    1.0 / cols as f32
                } else {
                    1.0
                };
                self.push_host(id, HostOp::ReduceSum { rows, cols, scale }, &[x])?;
            }
            Op::Transpose { perm } => {
                let x = self.input_at(id, 0)?;
                let sx = self.shape(x);
                let perm = perm.unwrap_or_else(|| (0..sx.len()).rev().collect());
                if perm.len() != sx.len() || perm.iter().any(|&p| p >= sx.len()) {
                    return Err(unsupported(g, id, format!("bad permutation {perm:?}")));
                }
                let st = dense_strides(&sx);
                let strides: Vec<isize> = perm.iter().map(|&p| st[p]).collect();
                let elem = self.dtype(x).size_of();
                let c = StridedCopy::new(elem, &oshape, &strides, 0);
                self.push_host(id, HostOp::Copy(c), &[x])?;
            }
            Op::Slice => {
                let x = self.input_at(id, 0)?;
                let sx = self.shape(x);
                let starts = self.const_ints(id, 1)?.unwrap_or_default();
                let ends = self.const_ints(id, 2)?.unwrap_or_default();
                let axes = match self.const_ints(id, 3)? {
                    Some(a) => norm_axes(&a, sx.len()).map_err(|e| unsupported(g, id, e))?,
                    None => (0..starts.len()).collect(),
                };
                let steps = self
                    .const_ints(id, 4)?
                    .unwrap_or_else(|| vec![1; starts.len()]);
                if ends.len() != starts.len()
                    || axes.len() != starts.len()
                    || steps.len() != starts.len()
                {
                    return Err(unsupported(g, id, "starts/ends/axes/steps lengths differ"));
                }
                let st = dense_strides(&sx);
                let mut strides = st.clone();
                let mut offset = 0isize;
                for (i, &a) in axes.iter().enumerate() {
                    let (s, step, _) = slice_range(starts[i], ends[i], steps[i], sx[a])
                        .map_err(|e| unsupported(g, id, e))?;
                    offset += s.max(0) as isize * st[a];
                    strides[a] = st[a] * step as isize;
                }
                let elem = self.dtype(x).size_of();
                let c = StridedCopy::new(elem, &oshape, &strides, offset);
                self.push_host(id, HostOp::Copy(c), &[x])?;
            }
            Op::Expand => {
                let x = self.input_at(id, 0)?;
                let sx = self.shape(x);
                if sx.len() > oshape.len() {
                    return Err(unsupported(g, id, "input rank exceeds the output rank"));
                }
                let pad = oshape.len() - sx.len();
                let st = dense_strides(&sx);
                let mut strides = vec![0isize; oshape.len()];
                for d in 0..sx.len() {
                    if sx[d] == oshape[pad + d] {
                        strides[pad + d] = st[d];
                    } else if sx[d] != 1 {
                        return Err(unsupported(g, id, "input does not broadcast to the output"));
                    }
                }
                let elem = self.dtype(x).size_of();
                let c = StridedCopy::new(elem, &oshape, &strides, 0);
                self.push_host(id, HostOp::Copy(c), &[x])?;
            }
            Op::Concat { axis } => {
                let ins: Vec<Value> = g.node_inputs(id).into_iter().flatten().collect();
                let ax = norm_axis(axis, oshape.len()).map_err(|e| unsupported(g, id, e))?;
                let elem = self.dtype(out).size_of();
                let outer: usize = oshape[..ax].iter().product();
                let inner: usize = oshape[ax + 1..].iter().product();
                let mut chunk_bytes = Vec::with_capacity(ins.len());
                for &v in &ins {
                    let s = self.shape(v);
                    if s.len() != oshape.len() || self.dtype(v) != self.dtype(out) {
                        return Err(unsupported(g, id, "inputs differ in rank or dtype"));
                    }
                    chunk_bytes.push(s[ax] * inner * elem);
                }
                self.push_host(id, HostOp::Concat { outer, chunk_bytes }, &ins)?;
            }
            Op::Gather { axis } => {
                let data = self.input_at(id, 0)?;
                let idx = self.input_at(id, 1)?;
                let sd = self.shape(data);
                let ax = norm_axis(axis, sd.len()).map_err(|e| unsupported(g, id, e))?;
                let idx_dtype = self.dtype(idx);
                if !matches!(idx_dtype, DType::I64 | DType::I32) {
                    return Err(unsupported(g, id, "Gather indices must be i64 or i32"));
                }
                let geom = GatherGeom {
                    outer: sd[..ax].iter().product(),
                    axis_len: sd[ax],
                    inner_bytes: sd[ax + 1..].iter().product::<usize>()
                        * self.dtype(data).size_of(),
                    count: self.numel(idx),
                    idx_dtype,
                };
                self.push_host(id, HostOp::Gather(geom), &[data, idx])?;
            }
            Op::Cast { to } => {
                let x = self.input_at(id, 0)?;
                let from = self.dtype(x);
                let ok = |d: DType| {
                    matches!(
                        d,
                        DType::F32
                            | DType::F16
                            | DType::BF16
                            | DType::F64
                            | DType::I64
                            | DType::I32
                            | DType::I16
                            | DType::I8
                            | DType::U64
                            | DType::U32
                            | DType::U16
                            | DType::U8
                            | DType::Bool
                    )
                };
                if !ok(from) || !ok(to) {
                    return Err(unsupported(
                        g,
                        id,
                        format!("Cast {from} → {to} is not lowered"),
                    ));
                }
                if from == to {
                    let b = self.buf(x)?;
                    self.storage.insert(out, b);
                    return Ok(true);
                }
                let n = self.numel(x);
                self.push_host(id, HostOp::Cast { from, to, n }, &[x])?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_range_follows_onnx_clamping() {
        assert_eq!(slice_range(1, 1000, 1, 5).unwrap(), (1, 1, 4));
        assert_eq!(slice_range(-1, -1000, -2, 5).unwrap(), (4, -2, 3));
        assert_eq!(slice_range(3, 1, 1, 5).unwrap(), (3, 1, 0));
        assert!(slice_range(0, 1, 0, 5).is_err());
        assert_eq!(dense_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
