//! Lowering of QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the integer
//! products (MatMulInteger, QLinearMatMul, MatMulIntegerToFloat) to the host kernels of
//! `kernels/quant.rs` and `kernels/qmatmul.rs`; parameter layouts (per tensor, per axis,
//! blocked) follow `whittle_ir::eval::quant`.

use super::matmul::matmul_geometry;
use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::igemm::PackedQB;
use crate::kernels::index::dense;
use crate::kernels::qmatmul::{packable, IntMatMul, IntOut, Requant, Role, ToFloat};
use crate::kernels::quant::QLinear;
use whittle_ir::eval::util::norm_axis;
use whittle_ir::{Activation, DType, NodeId, Op, Value};
use whittle_runtime::RuntimeError;

/// Saturation range of a quantized dtype.
fn q_range(dt: DType) -> Option<(i128, i128)> {
    Some(match dt {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        _ => return None,
    })
}

/// For every element of `x`, the flat index into a parameter of shape `p`: per tensor,
/// per `axis`, or blocked along `axis` with `block` > 0.
fn param_index(x: &[usize], p: &[usize], axis: i64, block: usize) -> Result<Vec<usize>, String> {
    let n: usize = x.iter().product();
    if p.iter().product::<usize>() == 1 {
        return Ok(vec![0; n]);
    }
    let ax = norm_axis(axis, x.len())?;
    let xs = dense(x);
    if block == 0 {
        if p.len() != 1 || p[0] != x[ax] {
            return Err(format!(
                "per-axis parameter {p:?} does not fit axis {ax} of {x:?}"
            ));
        }
        return Ok((0..n).map(|i| (i / xs[ax]) % x[ax]).collect());
    }
    let blocks = x[ax].div_ceil(block);
    let ok = p.len() == x.len()
        && p.iter().zip(x).enumerate().all(
            |(i, (&a, &d))| {
                if i == ax {
                    a == blocks
                } else {
                    a == d
                }
            },
        );
    if !ok {
        return Err(format!("blocked parameter {p:?} does not fit {x:?}"));
    }
    let ps = dense(p);
    Ok((0..n)
        .map(|i| {
            (0..x.len())
                .map(|a| {
                    let c = (i / xs[a]) % x[a];
                    (if a == ax { c / block } else { c }) * ps[a]
                })
                .sum()
        })
        .collect())
}

impl Lowerer<'_> {
    /// Lowers the quantization ops; `Ok(false)` for other ops.
    pub(super) fn host_quant(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let op = g.node(id).op.clone();
        let err = |m: String| unsupported(g, id, m);
        let out = Value::new(id, 0);
        match op {
            Op::QuantizeLinear {
                axis, block_size, ..
            }
            | Op::DequantizeLinear { axis, block_size } => {
                let quantize = matches!(op, Op::QuantizeLinear { .. });
                let x = self.input_value(id, 0)?;
                let s = self.input_value(id, 1)?;
                let z = g.input(id, 2);
                let sx = self.shape(x);
                let (x_dt, s_dt, out_dt) = (self.dtype(x), self.dtype(s), self.dtype(out));
                let lo_hi = if quantize {
                    if !x_dt.is_float() || !s_dt.is_float() {
                        return Err(err("needs float x and scale".into()));
                    }
                    q_range(out_dt).ok_or_else(|| err(format!("unsupported type {out_dt}")))?
                } else {
                    if !s_dt.is_float() || x_dt.is_float() || x_dt == DType::Bool {
                        return Err(err("needs an integer x and a float scale".into()));
                    }
                    (0, 0)
                };
                let s_idx = param_index(&sx, &self.shape(s), axis, block_size).map_err(err)?;
                let z_idx = match z {
                    Some(z) => param_index(&sx, &self.shape(z), axis, block_size).map_err(err)?,
                    None => vec![],
                };
                let per_tensor = s_idx.iter().chain(&z_idx).all(|&i| i == 0);
                let q = QLinear {
                    per_tensor,
                    quantize,
                    x_dt,
                    s_dt,
                    z_dt: z.map(|z| self.dtype(z)),
                    out_dt,
                    s_idx,
                    z_idx,
                    lo_hi,
                };
                let mut ins = vec![x, s];
                ins.extend(z);
                self.push_ext_op(id, ExtOp::QLinear(q), &ins, &[out])?;
            }
            Op::DynamicQuantizeLinear => {
                let x = self.input_value(id, 0)?;
                let dt = self.dtype(x);
                let n = self.numel(x);
                if !dt.is_float() || n == 0 {
                    return Err(err("needs a non-empty float input".into()));
                }
                let outs = [out, Value::new(id, 1), Value::new(id, 2)];
                self.push_ext_op(id, ExtOp::DynQuant { dt, n }, &[x], &outs)?;
            }
            Op::MatMulInteger | Op::QLinearMatMul | Op::MatMulIntegerToFloat { .. } => {
                self.int_matmul(id, &op)?
            }
            _ => return self.host_einsum(id),
        }
        Ok(true)
    }

    /// MatMulInteger, QLinearMatMul and MatMulIntegerToFloat: one integer product, its
    /// inputs named by role, a constant byte B packed once.
    fn int_matmul(&mut self, id: NodeId, op: &Op) -> Result<(), RuntimeError> {
        use Role::*;
        let g = self.g;
        let err = |m: String| unsupported(g, id, m);
        let out = Value::new(id, 0);
        let layout: &[Role] = match op {
            Op::MatMulInteger => &[A, B, Za, Zb],
            Op::QLinearMatMul => &[A, Sa, Za, B, Sb, Zb, Sy, Zy],
            _ => &[A, B, Sa, Sb, Za, Zb, Bias],
        };
        let port = |r: Role| {
            layout
                .iter()
                .position(|&x| x == r)
                .and_then(|p| g.input(id, p))
        };
        let (a, b) = match (port(A), port(B)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(err("missing matrix input".into())),
        };
        let (sa, sb) = (self.shape(a), self.shape(b));
        let (m, k, n, pairs, _) = matmul_geometry(&sa, &sb).map_err(err)?;
        let zp = |r: Role, want: usize| -> Result<Option<(DType, usize)>, RuntimeError> {
            match port(r) {
                None => Ok(None),
                Some(v) => {
                    let len = self.numel(v);
                    if len != 1 && len != want {
                        return Err(err(format!("zero point has {len} elements")));
                    }
                    Ok(Some((self.dtype(v), len)))
                }
            }
        };
        let (za, zb) = (zp(Za, m)?, zp(Zb, n)?);
        for v in [a, b] {
            if self.dtype(v).is_float() || self.dtype(v) == DType::Bool {
                return Err(err("integer matrix products need integer inputs".into()));
            }
        }
        let scale = |r: Role| port(r).ok_or_else(|| err(format!("missing {r:?} scale")));
        let int_out = match op {
            Op::MatMulInteger => IntOut::I32,
            Op::QLinearMatMul => {
                let out_dt = self.dtype(out);
                IntOut::Requant(Requant {
                    s_dt: self.dtype(scale(Sa)?),
                    sa_len: self.numel(scale(Sa)?),
                    sb_len: self.numel(scale(Sb)?),
                    out_dt,
                    lo_hi: q_range(out_dt)
                        .ok_or_else(|| err(format!("unsupported type {out_dt}")))?,
                })
            }
            _ => {
                let (sav, sbv) = (scale(Sa)?, scale(Sb)?);
                let s_dt = self.dtype(sav);
                if !s_dt.is_float() || self.dtype(sbv) != s_dt || self.dtype(out) != s_dt {
                    return Err(err(
                        "a_scale, b_scale and the output need one float type".into()
                    ));
                }
                if self.numel(sav) != 1 || za.is_some_and(|z| z.1 != 1) {
                    return Err(err("a_scale and a_zero_point must be per tensor".into()));
                }
                let sb_len = self.numel(sbv);
                let bias_len = port(Bias).map_or(0, |v| self.numel(v));
                if (sb_len != 1 && sb_len != n) || (bias_len > 1 && bias_len != n) {
                    return Err(err(format!(
                        "b_scale ({sb_len}) and bias ({bias_len}) must have 1 or {n} elements"
                    )));
                }
                if port(Bias).is_some_and(|v| self.dtype(v) != s_dt) {
                    return Err(err("bias must have the scales' type".into()));
                }
                let activation = match op {
                    Op::MatMulIntegerToFloat { activation } => *activation,
                    _ => Activation::Linear,
                };
                if activation != Activation::Linear && s_dt != DType::F32 {
                    return Err(err("a fused activation needs f32 scales".into()));
                }
                IntOut::Float(ToFloat {
                    s_dt,
                    sb_len,
                    bias_len,
                    activation,
                })
            }
        };
        let (a_dt, b_dt) = (self.dtype(a), self.dtype(b));
        let requant = matches!(int_out, IntOut::Requant(_));
        // A constant B of bytes is packed once for the integer GEMM.
        let packed = match self.const_of(b) {
            Some(t) if packable(a_dt, b_dt, k, requant) => {
                let bytes: Vec<u8> = t.to_i64_vec().iter().map(|&v| v as u8).collect();
                let batches = bytes.len() / (k * n).max(1);
                let packs = PackedQB::pack_batches(&bytes, k, n, batches, b_dt == DType::I8);
                Some(packs.map_err(err)?)
            }
            _ => None,
        };
        let mm = IntMatMul {
            m,
            k,
            n,
            pairs,
            a_dt,
            b_dt,
            za,
            zb,
            out: int_out,
            packed,
        };
        let mut ins = Vec::new();
        let mut roles = Vec::new();
        for (p, &r) in layout.iter().enumerate() {
            if let Some(v) = g.input(id, p) {
                roles.push(r);
                ins.push(v);
            }
        }
        self.push_ext_op(id, ExtOp::IntMatMul { mm, roles }, &ins, &[out])
    }
}
