//! Lowering of LayerNormalization (with its Mean / InvStdDev outputs and broadcast
//! scale/bias, when the fast f32 row kernel does not apply), RMSNormalization and
//! inference BatchNormalization to the generic f64 row kernels of `kernels/norm.rs`.

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::ewise::bcast_strides;
use crate::kernels::index::strided_offsets;
use crate::kernels::norm::{BatchNorm, NormRows};
use whittle_ir::eval::util::norm_axis;
use whittle_ir::{DType, NodeId, Op, Value};
use whittle_runtime::RuntimeError;

impl Lowerer<'_> {
    /// Lowers the normalizations; `Ok(false)` for other ops (and for LayerNorm the fast
    /// path in `ops.rs` covers).
    pub(super) fn host_norm(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let op = g.node(id).op.clone();
        let err = |m: String| unsupported(g, id, m);
        let out = Value::new(id, 0);
        match op {
            Op::LayerNormalization { axis, epsilon } | Op::RmsNormalization { axis, epsilon } => {
                let rms = matches!(op, Op::RmsNormalization { .. });
                let x = self.input_value(id, 0)?;
                let sc = self.input_value(id, 1)?;
                let bias = if rms { None } else { g.input(id, 2) };
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                let cols: usize = sx[ax..].iter().product();
                let stats: Vec<Value> = (1..g.node(id).outputs.len())
                    .map(|p| Value::new(id, p))
                    .collect();
                let stats_used = stats.iter().any(|&v| self.is_used(v));
                let dt = self.dtype(x);
                let plain = |v: Value| self.numel(v) == cols && self.dtype(v) == DType::F32;
                if !rms && !stats_used && dt == DType::F32 && plain(sc) && bias.is_none_or(plain) {
                    return Ok(false);
                }
                if !dt.is_float() {
                    return Err(err(format!("needs a float input, got {dt}")));
                }
                let offs = |v: Value| -> Result<Vec<usize>, RuntimeError> {
                    let st = bcast_strides(&self.shape(v), &sx)
                        .ok_or_else(|| err("scale/bias do not broadcast to X".into()))?;
                    if st[..ax].iter().all(|&s| s == 0) {
                        Ok(strided_offsets(&sx[ax..], &st[ax..], 0))
                    } else {
                        Ok(strided_offsets(&sx, &st, 0))
                    }
                };
                let stats_dt = if stats_used {
                    Some(self.dtype(stats[0]))
                } else {
                    None
                };
                let nr = NormRows {
                    rms,
                    rows: sx[..ax].iter().product(),
                    cols,
                    eps: epsilon as f64,
                    dt,
                    s_dt: self.dtype(sc),
                    s_off: offs(sc)?,
                    b_off: match bias {
                        Some(b) => Some((offs(b)?, self.dtype(b))),
                        None => None,
                    },
                    stats_dt,
                };
                let mut ins = vec![x, sc];
                ins.extend(bias);
                let mut outs = vec![out];
                if stats_used {
                    outs.extend(stats);
                }
                self.push_ext_op(id, ExtOp::Norm(nr), &ins, &outs)?;
            }
            Op::AddNorm { rms, epsilon } => {
                let x = self.input_value(id, 0)?;
                let r = self.input_value(id, 1)?;
                let gamma = self.input_value(id, 2)?;
                let (beta, bias) = (g.input(id, 3), g.input(id, 4));
                let sx = self.shape(x);
                let cols = sx.last().copied().unwrap_or(1);
                let mut ins = vec![x, r, gamma];
                ins.extend(beta);
                ins.extend(bias);
                for &v in &ins {
                    if self.dtype(v) != DType::F32 {
                        return Err(err(format!(
                            "AddNorm is lowered for f32 only, got {}",
                            self.dtype(v)
                        )));
                    }
                }
                if self.shape(r) != sx || ins[2..].iter().any(|&v| self.shape(v) != [cols]) {
                    return Err(err("AddNorm needs x and residual of one shape and 1-D gamma/beta/bias of the last dimension".into()));
                }
                let sum = Value::new(id, 1);
                let write_sum = g.node(id).outputs.len() > 1 && self.is_used(sum);
                let nr = crate::kernels::rows::AddNormRows {
                    rms,
                    rows: sx[..sx.len().saturating_sub(1)].iter().product(),
                    cols,
                    eps: epsilon,
                    has_beta: beta.is_some(),
                    has_bias: bias.is_some(),
                    write_sum,
                };
                let mut outs = vec![out];
                if write_sum {
                    outs.push(sum);
                }
                self.push_ext_op(id, ExtOp::AddNorm(nr), &ins, &outs)?;
            }
            Op::BatchNormalization { epsilon } => {
                let x = self.input_value(id, 0)?;
                let sx = self.shape(x);
                if sx.len() < 2 {
                    return Err(err("X must have rank ≥ 2".into()));
                }
                let mut ins = vec![x];
                let mut p_dt = [DType::F32; 4];
                for (k, pd) in p_dt.iter_mut().enumerate() {
                    let v = self.input_value(id, k + 1)?;
                    if self.numel(v) != sx[1] {
                        return Err(err("parameters must have one value per channel".into()));
                    }
                    *pd = self.dtype(v);
                    ins.push(v);
                }
                let dt = self.dtype(x);
                if !dt.is_float() || p_dt.iter().any(|d| !d.is_float()) {
                    return Err(err("BatchNormalization needs float inputs".into()));
                }
                let bn = BatchNorm {
                    n: sx[0],
                    c: sx[1],
                    inner: sx[2..].iter().product(),
                    eps: epsilon as f64,
                    dt,
                    p_dt,
                };
                self.push_ext_op(id, ExtOp::BatchNorm(bn), &ins, &[out])?;
            }
            _ => return self.host_conv(id),
        }
        Ok(true)
    }
}
