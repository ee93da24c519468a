//! Lowering of Conv (f32: im2col + GEMM, or the direct depthwise kernel), ConvTranspose, MaxPool,
//! AveragePool and GlobalAverage/MaxPool to host kernels. Window geometry (pads from
//! `auto_pad`, `ceil_mode`, the reference's extra padding rules) follows
//! `whittle_ir::eval::pool` / `eval::conv` and is resolved at compile time.

use super::ops_ext::ExtOp;
use super::{unsupported, Lowerer};
use crate::kernels::conv::{tap_table, ConvGeom, ConvTGeom, Dw2d};
use crate::kernels::depthwise::ConvAct;
use crate::kernels::index::{dense, strided_offsets, Reduce};
use crate::kernels::pool::Pool;
use whittle_ir::{AutoPad, DType, NodeId, Op, ReduceOp, UnaryOp, Value, Window};
use whittle_runtime::RuntimeError;

/// Strides, dilations and explicit pads (begins then ends) of a window.
type WindowParts = (Vec<usize>, Vec<usize>, Vec<usize>);

/// Strides, dilations (defaults filled) and explicit pads of a window over `nd` axes.
fn window_parts(w: &Window, nd: usize) -> Result<WindowParts, String> {
    let fill = |v: &[usize], what: &str| -> Result<Vec<usize>, String> {
        if v.is_empty() {
            Ok(vec![1; nd])
        } else if v.len() != nd || v.contains(&0) {
            Err(format!("{what} {v:?} must have {nd} positive entries"))
        } else {
            Ok(v.to_vec())
        }
    };
    let pads = if w.pads.is_empty() {
        vec![0; 2 * nd]
    } else if w.pads.len() == 2 * nd {
        w.pads.clone()
    } else {
        return Err(format!("pads {:?} must have {} entries", w.pads, 2 * nd));
    };
    Ok((
        fill(&w.strides, "strides")?,
        fill(&w.dilations, "dilations")?,
        pads,
    ))
}

/// The reference's pooled length: floor or ceil, the last window starting inside.
fn out_len(len: usize, pb: usize, pe: usize, span: usize, s: usize, ceil: bool) -> usize {
    let num = len as i64 + pb as i64 + pe as i64 - span as i64;
    let s = s as i64;
    let mut out = if ceil {
        -((-num).div_euclid(s)) + 1
    } else {
        num.div_euclid(s) + 1
    };
    if ceil && (out - 1) * s >= len as i64 + pb as i64 {
        out -= 1;
    }
    out.max(0) as usize
}

impl Lowerer<'_> {
    /// The activation node that f32 Conv `conv` computes in its epilogue: the conv output's
    /// only consumer, an f32 Relu / HardSwish / HardSigmoid / Clip (constant bounds) that
    /// would otherwise be a kernel of its own (not inlined into a fused consumer).
    pub(super) fn conv_epilogue(
        &self,
        conv: NodeId,
    ) -> Result<Option<(NodeId, ConvAct)>, RuntimeError> {
        let g = self.g;
        if !matches!(g.node(conv).op, Op::Conv { .. }) {
            return Ok(None);
        }
        let cv = Value::new(conv, 0);
        let cons = g.consumers(cv);
        if cons.len() != 1 || cons[0].1 != 0 || g.is_output(cv) || self.dtype(cv) != DType::F32 {
            return Ok(None);
        }
        let a = cons[0].0;
        let av = Value::new(a, 0);
        let act = match g.node(a).op {
            Op::Unary(UnaryOp::Relu) => ConvAct::Relu,
            Op::Unary(UnaryOp::HardSwish) => ConvAct::HardSwish,
            Op::HardSigmoid { alpha, beta } => ConvAct::HardSigmoid { alpha, beta },
            Op::Clip => {
                let bound = |p: usize| -> Option<Option<f32>> {
                    match g.input(a, p) {
                        None => Some(None),
                        Some(v) => {
                            let t = self.const_f32(v)?;
                            if t.len() != 1 {
                                return None;
                            }
                            t.as_slice::<f32>()?.first().map(|&x| Some(x))
                        }
                    }
                };
                match (bound(1), bound(2)) {
                    (Some(lo), Some(hi)) => ConvAct::Clip {
                        lo: lo.unwrap_or(f32::NEG_INFINITY),
                        hi: hi.unwrap_or(f32::INFINITY),
                    },
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        if g.node(a).outputs.len() != 1 || self.dtype(av) != DType::F32 || !self.fusible(a)? {
            return Ok(None);
        }
        // Not when the fusion inlines the activation into its consumer's kernel.
        let acons = g.consumers(av);
        if acons.len() == 1 && !g.is_output(av) {
            let (c, port) = acons[0];
            let reads_data = super::data_ports(&g.node(c).op, g.node(c).num_inputs).contains(&port);
            if reads_data && self.fusible(c)? && self.numel(av) == self.numel(Value::new(c, 0)) {
                return Ok(None);
            }
        }
        Ok(Some((a, act)))
    }

    /// For an activation that its producing Conv already applied: its output shares the
    /// conv's buffer. `Ok(false)` for any other node.
    pub(super) fn conv_absorbed(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let Some(src) = self.g.input(id, 0) else {
            return Ok(false);
        };
        if src.port != 0 || self.conv_epilogue(src.node)?.map(|(a, _)| a) != Some(id) {
            return Ok(false);
        }
        match self.storage.get(&src).copied() {
            Some(b @ crate::plan::Buf::Arena(_)) => {
                self.storage.insert(Value::new(id, 0), b);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Lowers conv and pooling ops; `Ok(false)` for other ops.
    pub(super) fn host_conv(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let op = g.node(id).op.clone();
        let err = |m: String| unsupported(g, id, m);
        let out = Value::new(id, 0);
        match op {
            Op::GlobalAveragePool | Op::GlobalMaxPool => {
                let x = self.input_value(id, 0)?;
                let sx = self.shape(x);
                if sx.len() < 2 {
                    return Err(err("input must have rank ≥ 2".into()));
                }
                let st = dense(&sx);
                let mut kshape = sx.clone();
                let mut rshape = vec![1; sx.len()];
                for d in 2..sx.len() {
                    kshape[d] = 1;
                    rshape[d] = sx[d];
                }
                let dt = self.dtype(x);
                if !dt.is_float() {
                    return Err(err(format!("needs a float input, got {dt}")));
                }
                let r = Reduce {
                    op: if matches!(op, Op::GlobalMaxPool) {
                        ReduceOp::Max
                    } else {
                        ReduceOp::Mean
                    },
                    kept: strided_offsets(&kshape, &st, 0),
                    red: strided_offsets(&rshape, &st, 0),
                    dt,
                    lo_hi: (0, 0),
                };
                self.push_ext_op(id, ExtOp::Reduce(r), &[x], &[out])?;
            }
            Op::MaxPool {
                ref window,
                ceil_mode,
                storage_order,
            } => self.lower_pool(id, window, true, ceil_mode, storage_order == 1, false)?,
            Op::AveragePool {
                ref window,
                ceil_mode,
                count_include_pad,
            } => self.lower_pool(id, window, false, ceil_mode, false, count_include_pad)?,
            Op::Conv { ref window, group } => {
                let x = self.input_value(id, 0)?;
                let w = self.input_value(id, 1)?;
                let b = g.input(id, 2);
                let mut ins = vec![x, w];
                ins.extend(b);
                if ins
                    .iter()
                    .chain([&out])
                    .any(|&v| self.dtype(v) != DType::F32)
                {
                    // f16/bf16/f64 convolutions run as a reference step (`ops_ref`).
                    return Ok(false);
                }
                let (sx, sw, so) = (self.shape(x), self.shape(w), self.shape(out));
                if sx.len() < 3 || sw.len() != sx.len() || so.len() != sx.len() {
                    return Err(err(format!("bad shapes X {sx:?} W {sw:?}")));
                }
                let nd = sx.len() - 2;
                let (c, m, cg) = (sx[1], sw[0], sw[1]);
                if group == 0 || c != cg * group || m % group != 0 || so[1] != m {
                    return Err(err(format!(
                        "X {sx:?} and W {sw:?} do not fit group {group}"
                    )));
                }
                let kernel = sw[2..].to_vec();
                let (strides, dil, pads) = window_parts(window, nd).map_err(err)?;
                let in_sp = &sx[2..];
                let out_sp = &so[2..];
                let mut begin = pads[..nd].to_vec();
                if matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
                    for i in 0..nd {
                        let span = (kernel[i] - 1) * dil[i] + 1;
                        let need =
                            ((out_sp[i].max(1) - 1) * strides[i] + span).saturating_sub(in_sp[i]);
                        begin[i] = if window.auto_pad == AutoPad::SameLower {
                            need.div_ceil(2)
                        } else {
                            need / 2
                        };
                    }
                } else if window.auto_pad == AutoPad::Valid {
                    begin = vec![0; nd];
                }
                if let Some(b) = b {
                    if self.numel(b) != m {
                        return Err(err("bias must have one value per output channel".into()));
                    }
                }
                let geom = ConvGeom {
                    n: sx[0],
                    c,
                    m,
                    group,
                    in_len: in_sp.iter().product(),
                    k_len: kernel.iter().product(),
                    out_len: out_sp.iter().product(),
                    taps: tap_table(in_sp, out_sp, &kernel, &strides, &dil, &begin),
                    has_bias: b.is_some(),
                    dw2d: (nd == 2).then(|| Dw2d {
                        ih: in_sp[0],
                        iw: in_sp[1],
                        oh: out_sp[0],
                        ow: out_sp[1],
                        kh: kernel[0],
                        kw: kernel[1],
                        sh: strides[0],
                        sw: strides[1],
                        dh: dil[0],
                        dw: dil[1],
                        ph: begin[0],
                        pw: begin[1],
                    }),
                    act: self.conv_epilogue(id)?.map_or(ConvAct::None, |(_, a)| a),
                };
                let ukr = self.ukr;
                self.push_ext_op(id, ExtOp::Conv { geom, ukr }, &ins, &[out])?;
            }
            Op::ConvTranspose {
                ref window,
                group,
                ref output_padding,
                ref output_shape,
            } => self.lower_conv_transpose(id, window, group, output_padding, output_shape)?,
            _ => return self.host_resize(id),
        }
        Ok(true)
    }

    fn lower_conv_transpose(
        &mut self,
        id: NodeId,
        window: &Window,
        group: usize,
        output_padding: &[usize],
        output_shape: &[usize],
    ) -> Result<(), RuntimeError> {
        let g = self.g;
        let err = |m: String| unsupported(g, id, m);
        let out = Value::new(id, 0);
        let x = self.input_value(id, 0)?;
        let w = self.input_value(id, 1)?;
        let b = g.input(id, 2);
        let (sx, sw, so) = (self.shape(x), self.shape(w), self.shape(out));
        let dt = self.dtype(x);
        if !dt.is_float() || self.dtype(w) != dt || b.is_some_and(|b| self.dtype(b) != dt) {
            return Err(err("ConvTranspose needs float inputs of one dtype".into()));
        }
        if sx.len() < 3 || sw.len() != sx.len() || so.len() != sx.len() {
            return Err(err(format!("bad shapes X {sx:?} W {sw:?}")));
        }
        let nd = sx.len() - 2;
        let (c, mg) = (sx[1], sw[1]);
        if group == 0 || sw[0] != c || c % group != 0 || so[1] != mg * group {
            return Err(err(format!(
                "X {sx:?} and W {sw:?} do not fit group {group}"
            )));
        }
        let kernel = sw[2..].to_vec();
        let (strides, dil, pads) = window_parts(window, nd).map_err(err)?;
        let in_sp = &sx[2..];
        let out_pad: Vec<usize> = match output_padding.len() {
            0 => vec![0; nd],
            l if l == nd || l == 2 * nd => output_padding[..nd].to_vec(),
            _ => return Err(err("bad output_padding".into())),
        };
        let given: Option<Vec<usize>> = match output_shape.len() {
            0 => None,
            l if l == nd => Some(output_shape.to_vec()),
            l if l == nd + 2 => Some(output_shape[2..].to_vec()),
            _ => return Err(err("bad output_shape".into())),
        };
        let full: Vec<i64> = (0..nd)
            .map(|i| {
                (strides[i] * (in_sp[i].max(1) - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1)
                    as i64
            })
            .collect();
        let same = matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        let begin: Vec<i64> = if same && window.pads.is_empty() {
            let target = given.unwrap_or_else(|| (0..nd).map(|i| in_sp[i] * strides[i]).collect());
            (0..nd)
                .map(|i| {
                    let total = full[i] - target[i] as i64;
                    if window.auto_pad == AutoPad::SameUpper {
                        total.div_euclid(2)
                    } else {
                        total - total.div_euclid(2)
                    }
                })
                .collect()
        } else if window.auto_pad == AutoPad::Valid {
            vec![0; nd]
        } else {
            pads[..nd].iter().map(|&p| p as i64).collect()
        };
        let out_sp = &so[2..];
        let out_st = dense(out_sp);
        let (il, kl) = (
            in_sp.iter().product::<usize>(),
            kernel.iter().product::<usize>(),
        );
        let in_st = dense(in_sp);
        let k_st = dense(&kernel);
        let mut taps = vec![usize::MAX; il * kl];
        for xf in 0..il {
            for kf in 0..kl {
                let mut of = 0usize;
                let mut inside = true;
                for i in 0..nd {
                    let (xi, ki) = ((xf / in_st[i]) % in_sp[i], (kf / k_st[i]) % kernel[i]);
                    let p = (xi * strides[i] + ki * dil[i]) as i64 - begin[i];
                    if p < 0 || p >= out_sp[i] as i64 {
                        inside = false;
                        break;
                    }
                    of += p as usize * out_st[i];
                }
                if inside {
                    taps[xf * kl + kf] = of;
                }
            }
        }
        let geom = ConvTGeom {
            n: sx[0],
            c,
            m: mg * group,
            group,
            in_len: il,
            k_len: kl,
            out_len: out_sp.iter().product(),
            taps,
            has_bias: b.is_some(),
            dt,
        };
        let mut ins = vec![x, w];
        ins.extend(b);
        self.push_ext_op(id, ExtOp::ConvT(geom), &ins, &[out])
    }

    fn lower_pool(
        &mut self,
        id: NodeId,
        w: &Window,
        max: bool,
        ceil: bool,
        col_major: bool,
        count_include_pad: bool,
    ) -> Result<(), RuntimeError> {
        let g = self.g;
        let err = |m: String| unsupported(g, id, m);
        let x = self.input_value(id, 0)?;
        let sx = self.shape(x);
        let dt = self.dtype(x);
        if sx.len() < 3 || dt == DType::Bool || (!max && !dt.is_float()) {
            return Err(err(format!("unsupported input {dt}{sx:?}")));
        }
        let nd = sx.len() - 2;
        let kernel = w.kernel_shape.clone();
        if kernel.len() != nd || kernel.contains(&0) {
            return Err(err(format!("bad kernel_shape {kernel:?}")));
        }
        let (strides, dil, pads) = window_parts(w, nd).map_err(err)?;
        let in_sp = &sx[2..];
        let span = |i: usize| (kernel[i] - 1) * dil[i] + 1;
        let (mut out, mut shift, mut limit) = (vec![], vec![], vec![]);
        for i in 0..nd {
            let (s, len) = (strides[i], in_sp[i]);
            let (pb, pe) = (pads[i], pads[nd + i]);
            match (w.auto_pad, max) {
                (AutoPad::NotSet, true) => {
                    out.push(out_len(len, pb, pe, span(i), s, ceil));
                    shift.push(pb as i64);
                    limit.push(i64::MAX);
                }
                (AutoPad::Valid, true) => {
                    out.push(out_len(len, 0, 0, span(i), s, false));
                    shift.push(0);
                    limit.push(i64::MAX);
                }
                (_, true) => {
                    let o = len.div_ceil(s);
                    let pad = (o.max(1) as i64 - 1) * s as i64 + span(i) as i64 - len as i64;
                    out.push(o);
                    shift.push(if w.auto_pad == AutoPad::SameUpper {
                        pad.div_euclid(2)
                    } else {
                        pad - pad.div_euclid(2)
                    });
                    limit.push(i64::MAX);
                }
                (AutoPad::NotSet, false) => {
                    let o = out_len(len, pb, pe, span(i), s, ceil);
                    let extra = (o as i64 - 1) * s as i64 + span(i) as i64 - (len + pb + pe) as i64;
                    out.push(o);
                    shift.push(pb as i64 + if extra > 0 { extra / 2 } else { 0 });
                    limit.push((len + pb + pe) as i64);
                }
                (AutoPad::Valid, false) => {
                    out.push(out_len(len, 0, 0, kernel[i], s, false));
                    shift.push(0);
                    limit.push(len as i64);
                }
                (_, false) => {
                    let o = (len.max(1) - 1) / s + 1;
                    let pad = ((o as i64 - 1) * s as i64 + kernel[i] as i64 - len as i64).max(0);
                    let pbeg = if w.auto_pad == AutoPad::SameUpper {
                        pad / 2
                    } else {
                        pad - pad / 2
                    };
                    out.push(o);
                    shift.push(pbeg);
                    limit.push(len as i64 + pad);
                }
            }
        }
        let oshape = self.shape(Value::new(id, 0));
        if oshape.get(2..) != Some(out.as_slice()) {
            return Err(err(format!(
                "window rules give {out:?}, the graph says {oshape:?}"
            )));
        }
        let in_st = dense(in_sp);
        let n_out: usize = out.iter().product();
        let (mut start, mut offs) = (vec![0usize], Vec::new());
        let mut o = vec![0usize; nd];
        for _ in 0..n_out {
            let axis_pos: Vec<Vec<usize>> = (0..nd)
                .map(|i| {
                    (0..kernel[i])
                        .map(|j| (o[i] * strides[i] + j * dil[i]) as i64)
                        .filter(|&p| p < limit[i])
                        .map(|p| {
                            let q = p - shift[i];
                            if q >= 0 && q < in_sp[i] as i64 {
                                q as usize * in_st[i]
                            } else {
                                usize::MAX
                            }
                        })
                        .collect()
                })
                .collect();
            let counts: Vec<usize> = axis_pos.iter().map(Vec::len).collect();
            if counts.iter().all(|&c| c > 0) {
                let total: usize = counts.iter().product();
                for t in 0..total {
                    let (mut r, mut f) = (t, 0usize);
                    for i in (0..nd).rev() {
                        let a = axis_pos[i][r % counts[i]];
                        r /= counts[i];
                        f = if a == usize::MAX || f == usize::MAX {
                            usize::MAX
                        } else {
                            f + a
                        };
                    }
                    offs.push(f);
                }
            }
            start.push(offs.len());
            for d in (0..nd).rev() {
                o[d] += 1;
                if o[d] < out[d] {
                    break;
                }
                o[d] = 0;
            }
        }
        let idx_v = Value::new(id, 1);
        let want_idx = max && g.node(id).outputs.len() > 1 && self.is_used(idx_v);
        let idx_map = if want_idx {
            let ist: Vec<usize> = if col_major {
                let mut s = vec![1usize; nd];
                for i in 1..nd {
                    s[i] = s[i - 1] * in_sp[i - 1];
                }
                s
            } else {
                in_st.clone()
            };
            let il: usize = in_sp.iter().product();
            Some(
                (0..il)
                    .map(|f| (0..nd).map(|i| (f / in_st[i]) % in_sp[i] * ist[i]).sum())
                    .collect(),
            )
        } else {
            None
        };
        let p = Pool {
            max,
            count_include_pad,
            channels: sx[0] * sx[1],
            in_len: in_sp.iter().product(),
            start,
            offs,
            dt,
            idx_map,
        };
        let mut outs = vec![Value::new(id, 0)];
        if want_idx {
            outs.push(idx_v);
        }
        self.push_ext_op(id, ExtOp::Pool(p), &[x], &outs)
    }
}
