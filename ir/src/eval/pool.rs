//! Pooling: MaxPool (with indices), AveragePool, GlobalAveragePool, GlobalMaxPool, following
//! the ONNX reference (`op_max_pool.py`, `op_pool_common.py`) including its output-shape
//! and padding rules for `ceil_mode` and `auto_pad`.

use super::conv::{explicit_pads, Geometry};
use super::index::{take, take_or};
use super::util::{next_index, strides};
use super::{req, OpResult};
use crate::{AutoPad, Tensor, Window};

/// Where the windows of one pooling op sit. Window `o` on axis `i` visits the padded
/// positions `p = o·s + j·d` (`j < k`) with `p < limit[i]`; position `p` is input
/// element `p − shift[i]` when that is inside the input, padding otherwise.
pub(super) struct Plan {
    geo: Geometry,
    pub(super) out: Vec<usize>,
    shift: Vec<i64>,
    limit: Vec<i64>,
}

/// `floor` or `ceil` of `(len − span) / s + 1`, with the reference's rule that the last
/// window must start inside the input or the begin padding.
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

/// Spatial input shape, checked against the window's kernel.
fn spatial(x: &Tensor, w: &Window) -> Result<(usize, Geometry), String> {
    if x.rank() < 3 {
        return Err(format!(
            "input must have rank >= 3 (N, C, spatial...), got shape {:?}",
            x.shape()
        ));
    }
    let nd = x.rank() - 2;
    if w.kernel_shape.contains(&0) {
        return Err(format!(
            "kernel_shape {:?} has a zero entry",
            w.kernel_shape
        ));
    }
    Ok((nd, Geometry::new(w, nd, &w.kernel_shape)?))
}

/// MaxPool geometry: auto-padding uses the dilated kernel and `ceil(in / s)` outputs.
fn max_plan(x: &Tensor, w: &Window, ceil: bool) -> Result<Plan, String> {
    let (nd, geo) = spatial(x, w)?;
    let in_sp = &x.shape()[2..];
    let mut out = Vec::with_capacity(nd);
    let mut shift = Vec::with_capacity(nd);
    let pads = explicit_pads(w, nd)?;
    for i in 0..nd {
        let (s, span, len) = (geo.strides[i], geo.span(i), in_sp[i]);
        match w.auto_pad {
            AutoPad::NotSet => {
                out.push(out_len(len, pads[i], pads[nd + i], span, s, ceil));
                shift.push(pads[i] as i64);
            }
            AutoPad::Valid => {
                out.push(out_len(len, 0, 0, span, s, false));
                shift.push(0);
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                // The reference lets this go negative (kernel smaller than the stride),
                // which moves the windows right.
                let o = len.div_ceil(s);
                let pad = (o.max(1) as i64 - 1) * s as i64 + span as i64 - len as i64;
                out.push(o);
                shift.push(if w.auto_pad == AutoPad::SameUpper {
                    pad.div_euclid(2)
                } else {
                    pad - pad.div_euclid(2)
                });
            }
        }
    }
    Ok(Plan {
        geo,
        out,
        shift,
        limit: vec![i64::MAX; nd],
    })
}

/// AveragePool geometry, as the reference's `CommonPool`: auto-padding uses the
/// undilated kernel; explicit padding in ceil mode adds extra padding (half of it at the
/// begin) that windows may not reach past `in + pads`.
pub(super) fn avg_plan(x: &Tensor, w: &Window, ceil: bool) -> Result<Plan, String> {
    let (nd, geo) = spatial(x, w)?;
    let in_sp = &x.shape()[2..];
    let mut out = Vec::with_capacity(nd);
    let mut shift = Vec::with_capacity(nd);
    let mut limit = Vec::with_capacity(nd);
    let pads = explicit_pads(w, nd)?;
    for i in 0..nd {
        let (s, k, len) = (geo.strides[i], geo.kernel[i], in_sp[i] as i64);
        match w.auto_pad {
            AutoPad::NotSet => {
                let (pb, pe) = (pads[i] as i64, pads[nd + i] as i64);
                let o = out_len(in_sp[i], pads[i], pads[nd + i], geo.span(i), s, ceil);
                let extra = (o as i64 - 1) * s as i64 + geo.span(i) as i64 - len - pb - pe;
                out.push(o);
                shift.push(pb + if extra > 0 { extra / 2 } else { 0 });
                limit.push(len + pb + pe);
            }
            AutoPad::Valid => {
                out.push(out_len(in_sp[i], 0, 0, k, s, false));
                shift.push(0);
                limit.push(len);
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = (in_sp[i].max(1) - 1) / s + 1;
                let pad = ((o as i64 - 1) * s as i64 + k as i64 - len).max(0);
                let pb = if w.auto_pad == AutoPad::SameUpper {
                    pad / 2
                } else {
                    pad - pad / 2
                };
                out.push(o);
                shift.push(pb);
                limit.push(len + pad);
            }
        }
    }
    Ok(Plan {
        geo,
        out,
        shift,
        limit,
    })
}

/// For each output window (row-major over the spatial output), the visited positions as
/// `Some(input spatial flat index)` or `None` for padding.
pub(super) fn windows(plan: &Plan, in_sp: &[usize]) -> Vec<Vec<Option<usize>>> {
    let nd = in_sp.len();
    let in_st = strides(in_sp);
    let n_out: usize = plan.out.iter().product();
    let mut res = Vec::with_capacity(n_out);
    let mut o = vec![0usize; nd];
    for _ in 0..n_out {
        // Per axis: the visited (in-limit) positions of this window.
        let axis_pos: Vec<Vec<Option<usize>>> = (0..nd)
            .map(|i| {
                (0..plan.geo.kernel[i])
                    .map(|j| (o[i] * plan.geo.strides[i] + j * plan.geo.dilations[i]) as i64)
                    .filter(|&p| p < plan.limit[i])
                    .map(|p| {
                        let q = p - plan.shift[i];
                        (q >= 0 && q < in_sp[i] as i64).then(|| q as usize * in_st[i])
                    })
                    .collect()
            })
            .collect();
        let mut win = Vec::new();
        let counts: Vec<usize> = axis_pos.iter().map(|v| v.len()).collect();
        if counts.iter().all(|&c| c > 0) {
            let mut j = vec![0usize; nd];
            loop {
                let mut flat = Some(0usize);
                for i in 0..nd {
                    flat = flat.zip(axis_pos[i][j[i]]).map(|(a, b)| a + b);
                }
                win.push(flat);
                if !next_index(&mut j, &counts) {
                    break;
                }
            }
        }
        res.push(win);
        next_index(&mut o, &plan.out);
    }
    res
}

pub(super) fn out_shape(x: &Tensor, out: &[usize]) -> Vec<usize> {
    let mut s = x.shape()[..2].to_vec();
    s.extend_from_slice(out);
    s
}

/// `x → y, indices?`. Indices are flat over the whole input (batch and channel
/// included), row-major, or column-major over the spatial axes when `storage_order` is 1.
pub fn max_pool(
    window: &Window,
    ceil_mode: bool,
    storage_order: u8,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let x = req(ins, 0, "X")?;
    if x.dtype() == crate::DType::Bool {
        return Err("MaxPool does not support bool inputs".into());
    }
    let plan = max_plan(x, window, ceil_mode)?;
    let in_sp = &x.shape()[2..];
    let wins = windows(&plan, in_sp);
    let in_len: usize = in_sp.iter().product();
    // Spatial strides of the index output: row-major, or column-major for storage_order 1.
    let mut idx_st = vec![1usize; in_sp.len()];
    if storage_order == 1 {
        for i in 1..in_sp.len() {
            idx_st[i] = idx_st[i - 1] * in_sp[i - 1];
        }
    } else {
        idx_st = strides(in_sp);
    }
    let xv = x.to_f64_vec();
    let channels = x.shape()[0] * x.shape()[1];
    let mut pick = Vec::with_capacity(channels * wins.len());
    let mut indices = Vec::with_capacity(channels * wins.len());
    for ch in 0..channels {
        let base = ch * in_len;
        for win in &wins {
            let mut best: Option<usize> = None;
            for f in win.iter().flatten() {
                if best.is_none_or(|b| xv[base + f] > xv[base + b]) {
                    best = Some(*f);
                }
            }
            pick.push(best.map(|b| base + b));
            indices.push(match best {
                Some(b) => {
                    let spatial: usize = super::util::unravel(b, in_sp)
                        .iter()
                        .zip(&idx_st)
                        .map(|(p, s)| p * s)
                        .sum();
                    (base + spatial) as i64
                }
                None => -1,
            });
        }
    }
    let shape = out_shape(x, &plan.out);
    let y = take_or(x, &pick, &Tensor::zeros(x.dtype(), vec![1]), shape.clone())?;
    let mut outs = vec![y];
    if num_outputs > 1 {
        outs.push(Tensor::from_vec(shape, indices));
    }
    Ok(outs)
}

/// `x → y`: the mean over each window; padding counts only with `count_include_pad`.
pub fn average_pool(
    window: &Window,
    ceil_mode: bool,
    count_include_pad: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "X")?;
    if !x.dtype().is_float() {
        return Err(format!(
            "AveragePool expects a floating-point input, got {}",
            x.dtype()
        ));
    }
    let plan = avg_plan(x, window, ceil_mode)?;
    let in_sp = &x.shape()[2..];
    let wins = windows(&plan, in_sp);
    let in_len: usize = in_sp.iter().product();
    let xv = x.to_f64_vec();
    let channels = x.shape()[0] * x.shape()[1];
    let mut y = Vec::with_capacity(channels * wins.len());
    for ch in 0..channels {
        let base = ch * in_len;
        for win in &wins {
            let sum: f64 = win.iter().flatten().map(|f| xv[base + f]).sum();
            let count = if count_include_pad {
                win.len()
            } else {
                win.iter().flatten().count()
            };
            y.push(if count == 0 {
                f64::NAN
            } else {
                sum / count as f64
            });
        }
    }
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        out_shape(x, &plan.out),
        &y,
    )])
}

/// `x → y` with every spatial axis reduced to size 1 by mean or max.
pub fn global_pool(max: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    if x.rank() < 2 {
        return Err(format!(
            "input must have rank >= 2 (N, C, ...), got shape {:?}",
            x.shape()
        ));
    }
    let channels = x.shape()[0] * x.shape()[1];
    let len: usize = x.shape()[2..].iter().product();
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, x.rank() - 2));
    let xv = x.to_f64_vec();
    if max {
        if len == 0 {
            return Err("GlobalMaxPool over an empty spatial extent".into());
        }
        let pick: Vec<usize> = (0..channels)
            .map(|c| {
                let base = c * len;
                (base..base + len).fold(base, |b, i| if xv[i] > xv[b] { i } else { b })
            })
            .collect();
        return Ok(vec![take(x, &pick, shape)?]);
    }
    if !x.dtype().is_float() {
        return Err(format!(
            "GlobalAveragePool expects a floating-point input, got {}",
            x.dtype()
        ));
    }
    let y: Vec<f64> = (0..channels)
        .map(|c| xv[c * len..(c + 1) * len].iter().sum::<f64>() / len as f64)
        .collect();
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

#[cfg(test)]
mod tests;
