//! Shape inference for the signal ops (DFT, STFT, windows, MelWeightMatrix), the vision
//! ops (GridSample, AffineGrid, RoiAlign, NonMaxSuppression) and the conv variants
//! (DeformConv, ConvInteger, QLinearConv). Sizes read from constant inputs are checked
//! with the same planning code the evaluator uses.

use super::dims::{show_dims, Ins, SymGen};
use crate::eval::signal::{dft_plan, mel_shape, stft_plan};
use crate::eval::vision::affine_grid_dims;
use crate::{DType, Dim, TensorType, Window};

fn known(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

/// A constant one-element integer input, if it is one.
fn const_scalar(ins: &Ins, i: usize) -> Option<i64> {
    ins.konst(i)
        .filter(|t| t.len() == 1 && t.dtype().is_int())
        .map(|t| t.to_i64_vec()[0])
}

/// `X [N, C, D...], grid [N, O..., k] → [N, C, O...]`.
pub fn grid_sample(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let g = ins.ty(1, "grid")?;
    let (Some(xs), Some(gs)) = (&x.shape, &g.shape) else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    if xs.len() < 3 || gs.len() != xs.len() {
        return Err(format!(
            "X {} must have rank >= 3 and grid {} the same rank",
            show_dims(xs),
            show_dims(gs)
        ));
    }
    if let Dim::Known(k) = gs[gs.len() - 1] {
        if k != xs.len() - 2 {
            return Err(format!(
                "grid {} must end in {} coordinates",
                show_dims(gs),
                xs.len() - 2
            ));
        }
    }
    let mut out = vec![xs[0].clone(), xs[1].clone()];
    out.extend_from_slice(&gs[1..gs.len() - 1]);
    Ok(TensorType::new(x.dtype, out))
}

/// `theta [N, k, k+1], size → grid [N, spatial..., k]`.
pub fn affine_grid(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let theta = ins.ty(0, "theta")?;
    ins.ty(1, "size")?;
    if let Some(size) = ins.konst(1) {
        if let Some(ts) = theta.concrete_shape() {
            let dims = affine_grid_dims(&ts, &size.to_i64_vec())?;
            let mut out = vec![dims[0]];
            out.extend_from_slice(&dims[2..]);
            out.push(dims.len() - 2);
            crate::limits::numel(&out).ok_or("the grid shape overflows")?;
            return Ok(TensorType::new(theta.dtype, known(&out)));
        }
    }
    let Some(len) = ins.len_1d(1) else {
        return Ok(TensorType::unknown_rank(theta.dtype));
    };
    if len != 4 && len != 5 {
        return Err(format!("size must have 4 or 5 entries, got {len}"));
    }
    let n = match theta.shape.as_deref() {
        Some([n, ..]) => n.clone(),
        _ => gen.fresh(),
    };
    let mut out = vec![n];
    out.extend(gen.fresh_dims(len - 2));
    out.push(Dim::Known(len - 2));
    Ok(TensorType::new(theta.dtype, out))
}

/// `X [N, C, H, W], rois [R, 4], batch_indices [R] → [R, C, oh, ow]`.
pub fn roi_align(oh: usize, ow: usize, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let rois = ins.ty(1, "rois")?;
    let bi = ins.ty(2, "batch_indices")?;
    if let Some(xs) = &x.shape {
        if xs.len() != 4 {
            return Err(format!("X must have rank 4, got {}", show_dims(xs)));
        }
    }
    let r = match (rois.shape.as_deref(), bi.shape.as_deref()) {
        (Some([r, _]), _) => r.clone(),
        (_, Some([r])) => r.clone(),
        _ => gen.fresh(),
    };
    let c = match x.shape.as_deref() {
        Some(xs) => xs[1].clone(),
        None => gen.fresh(),
    };
    Ok(TensorType::new(
        x.dtype,
        vec![r, c, Dim::Known(oh), Dim::Known(ow)],
    ))
}

/// `boxes, scores, ... → selected_indices i64 [K, 3]` (K depends on values).
pub fn non_max_suppression(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    ins.ty(0, "boxes")?;
    ins.ty(1, "scores")?;
    Ok(TensorType::new(
        DType::I64,
        vec![gen.fresh(), Dim::Known(3)],
    ))
}

/// `input [..., 1|2], dft_length?, axis? → output`.
pub fn dft(
    inverse: bool,
    onesided: bool,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let Some(xs) = &x.shape else {
        return Ok(x.clone());
    };
    let dl_known = !ins.present(1) || const_scalar(ins, 1).is_some();
    let axis_known = !ins.present(2) || const_scalar(ins, 2).is_some();
    if !axis_known {
        return Ok(TensorType::new(x.dtype, gen.fresh_dims(xs.len())));
    }
    let Some(shape) = x.concrete_shape() else {
        // Plan with placeholder sizes to learn the axis, then keep symbols.
        let probe: Vec<usize> = xs
            .iter()
            .enumerate()
            .map(|(i, d)| d.known().unwrap_or(if i + 1 == xs.len() { 2 } else { 1 }))
            .collect();
        let p = dft_plan(
            &probe,
            const_scalar(ins, 1),
            const_scalar(ins, 2),
            inverse,
            onesided,
        )?;
        let mut out = xs.clone();
        out[p.axis] = if dl_known && xs[p.axis].known().is_some() {
            Dim::Known(p.out_len)
        } else {
            gen.fresh()
        };
        let r = out.len();
        out[r - 1] = Dim::Known(p.out_c);
        return Ok(TensorType::new(x.dtype, out));
    };
    let p = dft_plan(
        &shape,
        const_scalar(ins, 1),
        const_scalar(ins, 2),
        inverse,
        onesided,
    )?;
    let mut out = known(&shape);
    out[p.axis] = if dl_known {
        Dim::Known(p.out_len)
    } else {
        gen.fresh()
    };
    let r = out.len();
    out[r - 1] = Dim::Known(p.out_c);
    Ok(TensorType::new(x.dtype, out))
}

/// `signal [B, L, 1|2], frame_step, window?, frame_length? → [B, frames, bins, 2]`.
pub fn stft(onesided: bool, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "signal")?;
    ins.ty(1, "frame_step")?;
    let win_len = match ins.opt_ty(2).map(|t| t.shape.as_deref()) {
        None => Some(None),
        Some(Some([Dim::Known(w)])) => Some(Some(*w)),
        Some(_) => None,
    };
    let fl_known = !ins.present(3) || const_scalar(ins, 3).is_some();
    match (x.concrete_shape(), const_scalar(ins, 1), win_len, fl_known) {
        (Some(s), Some(step), Some(w), true) => {
            let (_, frames, bins) = stft_plan(&s, step, w, const_scalar(ins, 3), onesided)?;
            Ok(TensorType::new(x.dtype, known(&[s[0], frames, bins, 2])))
        }
        _ => {
            let b = match x.shape.as_deref() {
                Some([b, _, _]) => b.clone(),
                _ => gen.fresh(),
            };
            Ok(TensorType::new(
                x.dtype,
                vec![b, gen.fresh(), gen.fresh(), Dim::Known(2)],
            ))
        }
    }
}

/// `size → [size]` of `output_dtype`.
pub fn window(output_dtype: DType, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    ins.ty(0, "size")?;
    let d = match const_scalar(ins, 0) {
        Some(v) => {
            let n =
                usize::try_from(v).map_err(|_| format!("size must be non-negative, got {v}"))?;
            crate::limits::byte_size(&[n], output_dtype.size_of())?;
            Dim::Known(n)
        }
        None => gen.fresh(),
    };
    Ok(TensorType::new(output_dtype, vec![d]))
}

/// `num_mel_bins, dft_length, ... → [dft_length/2 + 1, num_mel_bins]`.
pub fn mel_weight_matrix(
    output_dtype: DType,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    for (i, what) in [
        "num_mel_bins",
        "dft_length",
        "sample_rate",
        "lower_edge_hertz",
        "upper_edge_hertz",
    ]
    .iter()
    .enumerate()
    {
        ins.ty(i, what)?;
    }
    match (const_scalar(ins, 0), const_scalar(ins, 1)) {
        (Some(m), Some(d)) => Ok(TensorType::new(output_dtype, known(&mel_shape(m, d)?))),
        _ => Ok(TensorType::new(output_dtype, gen.fresh_dims(2))),
    }
}

/// A Conv-shaped output for input ports `x` and `w` (dtypes may differ), of `dtype`.
pub fn conv_like(
    w: &Window,
    group: usize,
    x_port: usize,
    w_port: usize,
    dtype: DType,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(x_port, "x")?;
    let wt = ins.ty(w_port, "w")?;
    let xt = TensorType {
        dtype,
        shape: x.shape.clone(),
    };
    let wt = TensorType {
        dtype,
        shape: wt.shape.clone(),
    };
    let types = [Some(&xt), Some(&wt)];
    let sub = Ins {
        types: &types,
        consts: &[],
        vals: &[],
    };
    super::window::conv(w, group, &sub, gen)
}
