//! Convolution and transposed convolution (N-d, grouped, dilated, padded) by direct loops
//! in f64, following the ONNX reference (`op_conv.py`, `op_conv_transpose.py`).

use super::util::{next_index, strides};
use super::{opt, req, OpResult};
use crate::{AutoPad, Tensor, Window};

/// Geometry of a conv-like op over `nd` spatial axes, with defaults filled in.
pub(crate) struct Geometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
}

impl Geometry {
    /// Fills the defaults of `w` for `nd` spatial axes; `kernel` is the kernel from the
    /// weight shape (or the attribute for pools).
    pub fn new(w: &Window, nd: usize, kernel: &[usize]) -> Result<Geometry, String> {
        let fill = |v: &[usize], what: &str| -> Result<Vec<usize>, String> {
            if v.is_empty() {
                return Ok(vec![1; nd]);
            }
            if v.len() != nd || v.contains(&0) {
                return Err(format!("{what} {v:?} must have {nd} positive entries"));
            }
            Ok(v.to_vec())
        };
        if kernel.len() != nd || kernel.contains(&0) {
            return Err(format!(
                "kernel shape {kernel:?} must have {nd} positive entries"
            ));
        }
        Ok(Geometry {
            kernel: kernel.to_vec(),
            strides: fill(&w.strides, "strides")?,
            dilations: fill(&w.dilations, "dilations")?,
        })
    }

    /// Extent of the dilated kernel on axis `i`.
    pub fn span(&self, i: usize) -> usize {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }
}

/// Explicit pads of a window (ONNX layout: begins then ends), zeros when absent.
pub(crate) fn explicit_pads(w: &Window, nd: usize) -> Result<Vec<usize>, String> {
    if w.pads.is_empty() {
        return Ok(vec![0; 2 * nd]);
    }
    if w.pads.len() != 2 * nd {
        return Err(format!("pads {:?} must have {} entries", w.pads, 2 * nd));
    }
    Ok(w.pads.clone())
}

/// Shape `[N, C, spatial...]` of the input, checked to have at least one spatial axis.
fn spatial_rank(x: &Tensor) -> Result<usize, String> {
    if x.rank() < 3 {
        return Err(format!(
            "input must have rank >= 3 (N, C, spatial...), got shape {:?}",
            x.shape()
        ));
    }
    Ok(x.rank() - 2)
}

/// Kernel shape from the weight, checked against the attribute when it is given.
fn kernel_of(w: &Window, wt: &Tensor, nd: usize) -> Result<Vec<usize>, String> {
    if wt.rank() != nd + 2 {
        return Err(format!(
            "weight shape {:?} must have rank {}",
            wt.shape(),
            nd + 2
        ));
    }
    let k = wt.shape()[2..].to_vec();
    if !w.kernel_shape.is_empty() && w.kernel_shape != k {
        return Err(format!(
            "kernel_shape {:?} does not match the weight shape {:?}",
            w.kernel_shape,
            wt.shape()
        ));
    }
    Ok(k)
}

/// The bias as f64, one value per output channel (a one-element bias broadcasts).
pub(crate) fn bias_of(b: Option<&Tensor>, m: usize) -> Result<Vec<f64>, String> {
    match b {
        None => Ok(vec![0.0; m]),
        Some(b) if b.len() == 1 => Ok(vec![b.get_f64(0); m]),
        Some(b) if b.len() == m => Ok(b.to_f64_vec()),
        Some(b) => Err(format!(
            "bias shape {:?} does not match {m} output channels",
            b.shape()
        )),
    }
}

fn check_float(x: &Tensor) -> Result<(), String> {
    if !x.dtype().is_float() {
        return Err(format!(
            "expected a floating-point input, got {}",
            x.dtype()
        ));
    }
    Ok(())
}

/// `x, w, b? → y`: `y[n, m, o] = b[m] + Σ_{c, k} x[n, g·C/G + c, o·s − pad + k·d] · w[m, c, k]`.
pub fn conv(window: &Window, group: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let wt = req(ins, 1, "W")?;
    check_float(x)?;
    let bias = bias_of(opt(ins, 2), wt.shape().first().copied().unwrap_or(0))?;
    let (shape, y) = conv_core(
        window,
        group,
        x.shape(),
        &x.to_f64_vec(),
        wt.shape(),
        &wt.to_f64_vec(),
        &bias,
    )?;
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

/// Explicit begin/end pads (auto-padding resolved) and the output spatial sizes of a
/// conv-like window over `in_sp`.
pub(crate) fn conv_pads_and_out(
    window: &Window,
    geo: &Geometry,
    in_sp: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let nd = in_sp.len();
    let pads = match window.auto_pad {
        AutoPad::NotSet => explicit_pads(window, nd)?,
        AutoPad::Valid => vec![0; 2 * nd],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let mut p = vec![0; 2 * nd];
            for i in 0..nd {
                let target = in_sp[i].div_ceil(geo.strides[i]);
                let need =
                    ((target.max(1) - 1) * geo.strides[i] + geo.span(i)).saturating_sub(in_sp[i]);
                let head = if window.auto_pad == AutoPad::SameLower {
                    need.div_ceil(2)
                } else {
                    need / 2
                };
                p[i] = head;
                p[nd + i] = need - head;
            }
            p
        }
    };
    let mut out_sp = Vec::with_capacity(nd);
    for i in 0..nd {
        // Floor division as the reference: a kernel one stride too large gives 0 outputs.
        let room = (in_sp[i] + pads[i] + pads[nd + i]) as i64 - geo.span(i) as i64;
        let o = room.div_euclid(geo.strides[i] as i64) + 1;
        if o < 0 {
            return Err(format!(
                "kernel extent {} is larger than the padded input on axis {i}",
                geo.span(i)
            ));
        }
        out_sp.push(o as usize);
    }
    Ok((pads, out_sp))
}

/// Checks the shapes of a (grouped) convolution: `(nd, kernel)` of X `[N, C, spatial...]`
/// and W `[M, C/group, k...]`.
pub(crate) fn conv_shapes(
    window: &Window,
    group: usize,
    xs: &[usize],
    ws: &[usize],
) -> Result<(usize, Vec<usize>), String> {
    if xs.len() < 3 {
        return Err(format!(
            "input must have rank >= 3 (N, C, spatial...), got shape {xs:?}"
        ));
    }
    let nd = xs.len() - 2;
    if ws.len() != nd + 2 {
        return Err(format!("weight shape {ws:?} must have rank {}", nd + 2));
    }
    let kernel = ws[2..].to_vec();
    if !window.kernel_shape.is_empty() && window.kernel_shape != kernel {
        return Err(format!(
            "kernel_shape {:?} does not match the weight shape {ws:?}",
            window.kernel_shape
        ));
    }
    let (c, m, cg) = (xs[1], ws[0], ws[1]);
    if group == 0 || c != cg * group || m % group != 0 {
        return Err(format!(
            "shapes X {xs:?} and W {ws:?} do not fit group {group}"
        ));
    }
    Ok((nd, kernel))
}

/// The convolution itself on f64 values (`x` of shape `xs`, `w` of shape `ws`, one bias
/// per output channel): the output shape and values. Shared by Conv, ConvInteger and
/// QLinearConv (integer values are exact in f64 at these sizes).
pub(crate) fn conv_core(
    window: &Window,
    group: usize,
    xs: &[usize],
    xv: &[f64],
    ws: &[usize],
    wv: &[f64],
    bias: &[f64],
) -> Result<(Vec<usize>, Vec<f64>), String> {
    let (nd, kernel) = conv_shapes(window, group, xs, ws)?;
    let geo = Geometry::new(window, nd, &kernel)?;
    let (n, c) = (xs[0], xs[1]);
    let m = ws[0];
    let cg = ws[1];
    if bias.len() != m {
        return Err(format!(
            "{} bias values for {m} output channels",
            bias.len()
        ));
    }
    let in_sp = &xs[2..];
    let (pads, out_sp) = conv_pads_and_out(window, &geo, in_sp)?;
    let in_len: usize = in_sp.iter().product();
    let k_len: usize = kernel.iter().product();
    let out_len: usize = out_sp.iter().product();
    let in_st = strides(in_sp);
    let kernel_pos = all_positions(&kernel);
    let mg = m / group;
    let mut y = vec![0.0f64; n * m * out_len];
    let mut o = vec![0usize; nd];
    for of in 0..out_len {
        // (kernel flat index, input spatial flat index) pairs that land inside the input.
        let mut taps = Vec::with_capacity(k_len);
        'k: for (kf, k) in kernel_pos.iter().enumerate() {
            let mut xf = 0;
            for i in 0..nd {
                let p = (o[i] * geo.strides[i] + k[i] * geo.dilations[i]) as i64 - pads[i] as i64;
                if p < 0 || p >= in_sp[i] as i64 {
                    continue 'k;
                }
                xf += p as usize * in_st[i];
            }
            taps.push((kf, xf));
        }
        for b in 0..n {
            for mo in 0..m {
                let g = mo / mg;
                let mut acc = bias[mo];
                for ci in 0..cg {
                    let xb = (b * c + g * cg + ci) * in_len;
                    let wb = (mo * cg + ci) * k_len;
                    for &(kf, xf) in &taps {
                        acc += xv[xb + xf] * wv[wb + kf];
                    }
                }
                y[(b * m + mo) * out_len + of] = acc;
            }
        }
        next_index(&mut o, &out_sp);
    }
    let mut shape = vec![n, m];
    shape.extend(out_sp);
    Ok((shape, y))
}

/// Every multi-index of `shape`, row-major.
pub(crate) fn all_positions(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut p = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(p.clone());
        next_index(&mut p, shape);
    }
    out
}

/// `x, w, b? → y` with `w: [C, M/G, k...]`: every input element scatters
/// `x · w[c, m, k]` to output position `i·s + k·d − pad`.
///
/// Pads: explicit ones are used as given; with `SAME_*` auto-padding and no explicit pads
/// they come from the output shape (default `in·s`), the extra one at the end for
/// `SAME_UPPER`. The output shape is `output_shape` when given, else
/// `s·(in−1) + output_padding + (k−1)·d + 1 − pads`.
pub fn conv_transpose(
    window: &Window,
    group: usize,
    output_padding: &[usize],
    output_shape: &[usize],
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "X")?;
    let wt = req(ins, 1, "W")?;
    check_float(x)?;
    let nd = spatial_rank(x)?;
    let kernel = kernel_of(window, wt, nd)?;
    let geo = Geometry::new(window, nd, &kernel)?;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    if group == 0 || wt.shape()[0] != c || c % group != 0 {
        return Err(format!(
            "shapes X {:?} and W {:?} do not fit group {group}",
            x.shape(),
            wt.shape()
        ));
    }
    let mg = wt.shape()[1];
    let m = mg * group;
    let cg = c / group;
    let in_sp = &x.shape()[2..];
    let out_pad: Vec<usize> = match output_padding.len() {
        0 => vec![0; nd],
        l if l == nd => output_padding.to_vec(),
        l if l == 2 * nd => output_padding[..nd].to_vec(),
        _ => {
            return Err(format!(
                "output_padding {output_padding:?} must have {nd} entries"
            ))
        }
    };
    let given_out: Option<Vec<usize>> = match output_shape.len() {
        0 => None,
        l if l == nd => Some(output_shape.to_vec()),
        l if l == nd + 2 => Some(output_shape[2..].to_vec()),
        _ => {
            return Err(format!(
                "output_shape {output_shape:?} must have {nd} entries"
            ))
        }
    };
    // Full (uncropped) output extent per axis.
    let full: Vec<i64> = (0..nd)
        .map(|i| (geo.strides[i] * (in_sp[i].max(1) - 1) + out_pad[i] + geo.span(i)) as i64)
        .collect();
    let same = matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    let pads_begin: Vec<i64>;
    let out_sp: Vec<usize>;
    if same && window.pads.is_empty() {
        let target = given_out
            .clone()
            .unwrap_or_else(|| (0..nd).map(|i| in_sp[i] * geo.strides[i]).collect());
        pads_begin = (0..nd)
            .map(|i| {
                let total = full[i] - target[i] as i64;
                if window.auto_pad == AutoPad::SameUpper {
                    total.div_euclid(2)
                } else {
                    total - total.div_euclid(2)
                }
            })
            .collect();
        out_sp = target;
    } else {
        let pads = if window.auto_pad == AutoPad::Valid {
            vec![0; 2 * nd]
        } else {
            explicit_pads(window, nd)?
        };
        pads_begin = (0..nd).map(|i| pads[i] as i64).collect();
        out_sp = match given_out {
            Some(o) => o,
            None => (0..nd)
                .map(|i| {
                    let v = full[i] - (pads[i] + pads[nd + i]) as i64;
                    usize::try_from(v)
                        .map_err(|_| format!("pads {pads:?} leave a negative output size"))
                })
                .collect::<Result<_, _>>()?,
        };
    }
    let xv = x.to_f64_vec();
    let wv = wt.to_f64_vec();
    let bias = bias_of(opt(ins, 2), m)?;
    let in_len: usize = in_sp.iter().product();
    let k_len: usize = kernel.iter().product();
    let out_len: usize = out_sp.iter().product();
    let out_st = strides(&out_sp);
    let kernel_pos = all_positions(&kernel);
    let mut y = vec![0.0f64; n * m * out_len];
    for (b, mo) in (0..n).flat_map(|b| (0..m).map(move |mo| (b, mo))) {
        let base = (b * m + mo) * out_len;
        y[base..base + out_len]
            .iter_mut()
            .for_each(|v| *v = bias[mo]);
    }
    let mut ip = vec![0usize; nd];
    for xf in 0..in_len {
        // (kernel flat index, output spatial flat index) pairs that land inside the output.
        let mut taps = Vec::with_capacity(k_len);
        'k: for (kf, k) in kernel_pos.iter().enumerate() {
            let mut of = 0;
            for i in 0..nd {
                let p = (ip[i] * geo.strides[i] + k[i] * geo.dilations[i]) as i64 - pads_begin[i];
                if p < 0 || p >= out_sp[i] as i64 {
                    continue 'k;
                }
                of += p as usize * out_st[i];
            }
            taps.push((kf, of));
        }
        for b in 0..n {
            for ci in 0..c {
                let g = ci / cg;
                let xval = xv[(b * c + ci) * in_len + xf];
                for mi in 0..mg {
                    let mo = g * mg + mi;
                    let wb = (ci * mg + mi) * k_len;
                    let yb = (b * m + mo) * out_len;
                    for &(kf, of) in &taps {
                        y[yb + of] += xval * wv[wb + kf];
                    }
                }
            }
        }
        next_index(&mut ip, in_sp);
    }
    let mut shape = vec![n, m];
    shape.extend(out_sp);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

#[cfg(test)]
mod tests;
