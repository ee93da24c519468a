//! Convolution variants: the integer ConvInteger and QLinearConv (zero points subtracted,
//! the window geometry and loop of `conv.rs`, exact integer accumulation; requantized as
//! QLinearMatMul) and DeformConv (bilinear sampling at learned offsets), following the
//! ONNX reference (`op_conv_integer.py`, `op_qlinear_conv.py`, `op_deform_conv.py`).

use super::conv::{all_positions, bias_of, conv_core, conv_pads_and_out, conv_shapes, Geometry};
use super::linalg::{int_range, scales};
use super::util::{int_tensor, round_to, to_i128_vec};
use super::{opt, req, OpResult};
use crate::limits::try_vec;
use crate::{AutoPad, DType, Tensor, Window};

/// Integer values of a quantized conv input minus its zero point: a scalar (one-element)
/// zero point for all, or (`per_channel`, the weight) one per output channel (axis 0).
fn centered(
    t: &Tensor,
    zp: Option<&Tensor>,
    what: &str,
    per_channel: bool,
) -> Result<Vec<f64>, String> {
    if !matches!(t.dtype(), DType::U8 | DType::I8) {
        return Err(format!("{what} must be uint8 or int8, got {}", t.dtype()));
    }
    let v = to_i128_vec(t).ok_or_else(|| format!("{what} must be integers"))?;
    let z: Vec<i128> = match zp {
        None => vec![0],
        Some(z) if z.is_empty() => vec![0],
        Some(z) => {
            if z.dtype() != t.dtype() {
                return Err(format!(
                    "{what} zero point has dtype {} but {what} has {}",
                    z.dtype(),
                    t.dtype()
                ));
            }
            to_i128_vec(z).ok_or_else(|| format!("{what} zero point must be integers"))?
        }
    };
    let rows = t.shape().first().copied().unwrap_or(1);
    if z.len() != 1 && !(per_channel && z.len() == rows) {
        return Err(format!(
            "{what} zero point has {} values; expected 1{}",
            z.len(),
            if per_channel {
                format!(" or {rows} (one per output channel)")
            } else {
                String::new()
            }
        ));
    }
    let per = t.len() / rows.max(1);
    Ok(v.iter()
        .enumerate()
        .map(|(i, &a)| {
            (a - if z.len() == 1 {
                z[0]
            } else {
                z[i / per.max(1)]
            }) as f64
        })
        .collect())
}

/// `x, w, x_zero_point?, w_zero_point? → y (i32)`: Conv on `x − x_zp` and `w − w_zp`.
pub fn conv_integer(window: &Window, group: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let w = req(ins, 1, "w")?;
    let xv = centered(x, opt(ins, 2), "x", false)?;
    let wv = centered(w, opt(ins, 3), "w", true)?;
    let m = w.shape().first().copied().unwrap_or(0);
    let (shape, y) = conv_core(window, group, x.shape(), &xv, w.shape(), &wv, &vec![0.0; m])?;
    let out: Vec<i128> = y.iter().map(|&v| v as i128).collect();
    Ok(vec![int_tensor(DType::I32, shape, &out)?])
}

/// `x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B? → y`: the integer convolution
/// plus the i32 bias, scaled by `x_scale·w_scale/y_scale` (per output channel when
/// `w_scale` is), rounded half to even, offset by `y_zp` and saturated to its dtype.
pub fn qlinear_conv(window: &Window, group: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let x_scale = req(ins, 1, "x_scale")?;
    let w = req(ins, 3, "w")?;
    let w_scale = req(ins, 4, "w_scale")?;
    let y_scale = req(ins, 6, "y_scale")?;
    let y_zp = opt(ins, 7);
    let xv = centered(x, opt(ins, 2), "x", false)?;
    let wv = centered(w, opt(ins, 5), "w", true)?;
    let m = w.shape().first().copied().unwrap_or(0);
    let bias = match opt(ins, 8) {
        Some(b) if b.dtype() != DType::I32 => {
            return Err(format!("B must be int32, got {}", b.dtype()))
        }
        b => bias_of(b, m)?,
    };
    let (shape, acc) = conv_core(window, group, x.shape(), &xv, w.shape(), &wv, &bias)?;
    let sdt = x_scale.dtype();
    let sx = scales(x_scale, 1, "x_scale")?;
    let sw = scales(w_scale, m, "w_scale")?;
    let sy = scales(y_scale, 1, "y_scale")?;
    let out_dt = y_zp.map_or(x.dtype(), |z| z.dtype());
    let zy = match y_zp {
        Some(z) if !z.is_empty() => to_i128_vec(z)
            .and_then(|v| v.first().copied())
            .ok_or("y_zero_point must be an integer tensor")?,
        _ => 0,
    };
    let (lo, hi) = int_range(out_dt)?;
    let per_m = acc.len() / (shape[0] * m).max(1);
    let out: Vec<i128> = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mo = (i / per_m.max(1)) % m.max(1);
            let kw = if sw.len() == 1 { sw[0] } else { sw[mo] };
            // The factor in the scale dtype, the rest in f64 (numpy promotion).
            let factor = round_to(sdt, round_to(sdt, sx[0] * kw) / sy[0]);
            let d = v * factor + zy as f64;
            (d.clamp(lo as f64, hi as f64).round_ties_even() as i128).clamp(lo, hi)
        })
        .collect();
    Ok(vec![int_tensor(out_dt, shape, &out)?])
}

/// `x [N, C, spatial...], w [M, C/group, k...], offset [N, og·K·nd, out...], B? [M],
/// mask? [N, og·K, out...] → y [N, M, out...]` (K = kernel points): every kernel tap
/// samples `x` bilinearly (zero outside) at its regular position plus its offset, times
/// the mask.
pub fn deform_conv(
    window: &Window,
    group: usize,
    offset_group: usize,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "X")?;
    let w = req(ins, 1, "W")?;
    let off = req(ins, 2, "offset")?;
    for (t, what) in [(x, "X"), (w, "W"), (off, "offset")] {
        if !t.dtype().is_float() {
            return Err(format!("{what} must be floating point, got {}", t.dtype()));
        }
    }
    if window.auto_pad != AutoPad::NotSet {
        return Err("DeformConv takes explicit pads only".into());
    }
    let (xs, ws) = (x.shape(), w.shape());
    let (nd, kernel) = conv_shapes(window, group, xs, ws)?;
    let geo = Geometry::new(window, nd, &kernel)?;
    let in_sp = &xs[2..];
    let (pads, out_sp) = conv_pads_and_out(window, &geo, in_sp)?;
    let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    let k_len: usize = kernel.iter().product();
    let out_len: usize = out_sp.iter().product();
    let in_len: usize = in_sp.iter().product();
    if offset_group == 0 || c % offset_group != 0 {
        return Err(format!(
            "{c} input channels are not divisible by offset_group {offset_group}"
        ));
    }
    let mut want = vec![n, offset_group * k_len * nd];
    want.extend_from_slice(&out_sp);
    if off.shape() != want.as_slice() {
        return Err(format!("offset shape {:?} must be {want:?}", off.shape()));
    }
    let mask = opt(ins, 4);
    let mut want_mask = vec![n, offset_group * k_len];
    want_mask.extend_from_slice(&out_sp);
    if let Some(mk) = mask {
        if mk.shape() != want_mask.as_slice() {
            return Err(format!("mask shape {:?} must be {want_mask:?}", mk.shape()));
        }
    }
    let bias = bias_of(opt(ins, 3), m)?;
    let xv = x.to_f64_vec();
    let wv = w.to_f64_vec();
    let ov = off.to_f64_vec();
    let mv = mask.map(|t| t.to_f64_vec());
    let mut y = try_vec(n * m * out_len, 0.0f64, "DeformConv output")?;
    let in_st = super::util::strides(in_sp);
    let kernel_pos = all_positions(&kernel);
    let out_pos = all_positions(&out_sp);
    let mg = m / group;
    let cpo = c / offset_group;
    // Bilinear samples of one input plane at `p`: (flat index, weight) pairs inside it.
    let sample = |p: &[f64]| -> Vec<(usize, f64)> {
        let mut taps = vec![(0usize, 1.0f64)];
        for i in 0..nd {
            let f = p[i].floor();
            let t = p[i] - f;
            let mut next = Vec::with_capacity(taps.len() * 2);
            for (lo, wgt) in [(f, 1.0 - t), (f + 1.0, t)] {
                if lo >= 0.0 && lo < in_sp[i] as f64 {
                    for &(o, w0) in &taps {
                        next.push((o + lo as usize * in_st[i], w0 * wgt));
                    }
                }
            }
            taps = next;
        }
        taps
    };
    for b in 0..n {
        for og in 0..offset_group {
            for (of, o) in out_pos.iter().enumerate() {
                for (kf, k) in kernel_pos.iter().enumerate() {
                    let mut p = vec![0.0f64; nd];
                    for i in 0..nd {
                        let ch = ((og * k_len + kf) * nd + i) * out_len + of;
                        let d = ov[b * offset_group * k_len * nd * out_len + ch];
                        p[i] = (o[i] * geo.strides[i] + k[i] * geo.dilations[i]) as f64
                            - pads[i] as f64
                            + d;
                    }
                    let mk = mv.as_ref().map_or(1.0, |mv| {
                        mv[(b * offset_group * k_len + og * k_len + kf) * out_len + of]
                    });
                    let taps = sample(&p);
                    for ci in og * cpo..(og + 1) * cpo {
                        let plane = (b * c + ci) * in_len;
                        let v: f64 =
                            taps.iter().map(|&(t, wt)| wt * xv[plane + t]).sum::<f64>() * mk;
                        if v == 0.0 {
                            continue;
                        }
                        let g = ci / cg;
                        for mo in g * mg..(g + 1) * mg {
                            let wf = (mo * cg + ci % cg) * k_len + kf;
                            y[(b * m + mo) * out_len + of] += v * wv[wf];
                        }
                    }
                }
            }
        }
        for mo in 0..m {
            for v in &mut y[(b * m + mo) * out_len..(b * m + mo + 1) * out_len] {
                *v += bias[mo];
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(out_sp);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win() -> Window {
        Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: vec![],
            strides: vec![],
            dilations: vec![],
            pads: vec![],
        }
    }

    #[test]
    fn conv_integer_subtracts_zero_points() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![3u8, 4, 5, 6]);
        let w = Tensor::from_vec(vec![1, 1, 1, 1], vec![2u8]);
        let xz = Tensor::scalar(1u8);
        let wz = Tensor::from_vec(vec![1], vec![1u8]);
        let y = conv_integer(&win(), 1, &[Some(&x), Some(&w), Some(&xz), Some(&wz)]).unwrap();
        assert_eq!(y[0].dtype(), DType::I32);
        assert_eq!(y[0].to_i64_vec(), vec![2, 3, 4, 5]);
        let bad = Tensor::from_vec(vec![1, 1, 1, 1], vec![2.0f32]);
        assert!(conv_integer(&win(), 1, &[Some(&x), Some(&bad)]).is_err());
    }

    #[test]
    fn qlinear_conv_requantizes_and_saturates() {
        let x = Tensor::from_vec(vec![1, 1, 1, 2], vec![10u8, 200]);
        let w = Tensor::from_vec(vec![1, 1, 1, 1], vec![3u8]);
        let one = Tensor::scalar(1.0f32);
        let zero = Tensor::scalar(0u8);
        let ins = [
            Some(&x),
            Some(&one),
            Some(&zero),
            Some(&w),
            Some(&one),
            Some(&zero),
            Some(&one),
            Some(&zero),
        ];
        let y = qlinear_conv(&win(), 1, &ins).unwrap();
        assert_eq!(y[0].to_i64_vec(), vec![30, 255]);
    }

    #[test]
    fn deform_conv_with_zero_offsets_is_conv() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
        let w = Tensor::from_vec(vec![1, 1, 2, 2], vec![1.0f32; 4]);
        let off = Tensor::from_vec(vec![1, 8, 1, 1], vec![0.0f32; 8]);
        let y = deform_conv(&win(), 1, 1, &[Some(&x), Some(&w), Some(&off)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![10.0]);
        // Half a pixel right: the right column is half outside (zero).
        let mut v = vec![0.0f32; 8];
        for k in 0..4 {
            v[k * 2 + 1] = 0.5;
        }
        let off = Tensor::from_vec(vec![1, 8, 1, 1], v);
        let y = deform_conv(&win(), 1, 1, &[Some(&x), Some(&w), Some(&off)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![1.5 + 1.0 + 3.5 + 2.0]);
        let short = Tensor::from_vec(vec![1, 4, 1, 1], vec![0.0f32; 4]);
        assert!(deform_conv(&win(), 1, 1, &[Some(&x), Some(&w), Some(&short)]).is_err());
    }
}
