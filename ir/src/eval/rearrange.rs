//! Block rearrangements and their relatives: DepthToSpace, SpaceToDepth, CenterCropPad,
//! Col2Im and MaxUnpool. Pure movement keeps the dtype (built from flat source indices);
//! Col2Im sums overlapping blocks in f64.

use super::index::{int_list, take, take_or, to_sizes};
use super::util::{next_index, norm_axes, strides, unravel};
use super::{opt, req, OpResult};
use crate::{limits, Tensor, Window};

fn nchw(x: &Tensor, what: &str) -> Result<[usize; 4], String> {
    match *x.shape() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!(
            "{what} needs a 4-D input, got shape {:?}",
            x.shape()
        )),
    }
}

/// `x [N,C,H,W] → y [N,C/b²,H·b,W·b]`.
pub fn depth_to_space(blocksize: usize, crd: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let [n, c, h, w] = nchw(x, "DepthToSpace")?;
    let b = blocksize;
    let bb = b
        .checked_mul(b)
        .filter(|&v| v > 0)
        .ok_or("blocksize must be positive")?;
    if c % bb != 0 {
        return Err(format!("channels {c} are not divisible by blocksize² {bb}"));
    }
    let oc = c / bb;
    let (oh, ow) = match (h.checked_mul(b), w.checked_mul(b)) {
        (Some(oh), Some(ow)) => (oh, ow),
        _ => {
            return Err(format!(
                "spatial size {h}x{w} times blocksize {b} overflows"
            ))
        }
    };
    let mut idx = Vec::with_capacity(x.len());
    for ni in 0..n {
        for ci in 0..oc {
            for y in 0..oh {
                for xw in 0..ow {
                    let (bh, bw) = (y % b, xw % b);
                    let ic = if crd {
                        ci * bb + bh * b + bw
                    } else {
                        (bh * b + bw) * oc + ci
                    };
                    idx.push(((ni * c + ic) * h + y / b) * w + xw / b);
                }
            }
        }
    }
    Ok(vec![take(x, &idx, vec![n, oc, oh, ow])?])
}

/// `x [N,C,H,W] → y [N,C·b²,H/b,W/b]`.
pub fn space_to_depth(blocksize: usize, crd: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let [n, c, h, w] = nchw(x, "SpaceToDepth")?;
    let b = blocksize;
    if b == 0 || h % b != 0 || w % b != 0 {
        return Err(format!(
            "height {h} and width {w} must be divisible by blocksize {b}"
        ));
    }
    let oc = b
        .checked_mul(b)
        .and_then(|bb| bb.checked_mul(c))
        .ok_or_else(|| format!("channels {c} times blocksize² overflow"))?;
    let bb = b * b;
    let (oh, ow) = (h / b, w / b);
    let mut idx = Vec::with_capacity(x.len());
    for ni in 0..n {
        for o in 0..oc {
            // Which input channel and block offset this output channel holds.
            let (ci, bh, bw) = if crd {
                (o / bb, (o % bb) / b, o % b)
            } else {
                (o % c, (o / c) / b, (o / c) % b)
            };
            for y in 0..oh {
                for xw in 0..ow {
                    idx.push(((ni * c + ci) * h + y * b + bh) * w + xw * b + bw);
                }
            }
        }
    }
    Ok(vec![take(x, &idx, vec![n, oc, oh, ow])?])
}

/// Per axis of CenterCropPad: the output length and the signed offset `src = dst + off`.
pub(crate) fn crop_pad_plan(
    shape: &[usize],
    target: &[i64],
    axes: Option<&[i64]>,
) -> Result<Vec<(usize, i64)>, String> {
    let r = shape.len();
    let axes = match axes {
        None => (0..r).collect(),
        Some(a) => norm_axes(a, r)?,
    };
    if target.len() != axes.len() {
        return Err(format!(
            "shape has {} entries but {} axes are cropped or padded",
            target.len(),
            axes.len()
        ));
    }
    let mut plan: Vec<(usize, i64)> = shape.iter().map(|&d| (d, 0)).collect();
    for (&a, &t) in axes.iter().zip(target) {
        let t = usize::try_from(t).map_err(|_| format!("shape has a negative entry {t}"))?;
        let d = shape[a];
        let off = if t <= d {
            ((d - t) / 2) as i64
        } else {
            -(((t - d) / 2) as i64)
        };
        plan[a] = (t, off);
    }
    Ok(plan)
}

/// `input, shape → y`: centre crop where `shape` is smaller, zero pad where larger.
pub fn center_crop_pad(axes: Option<&[i64]>, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input_data")?;
    let target = int_list(req(ins, 1, "shape")?, "shape")?;
    let plan = crop_pad_plan(x.shape(), &target, axes)?;
    let out: Vec<usize> = plan.iter().map(|p| p.0).collect();
    let n = limits::numel(&out).ok_or("the output size overflows")?;
    limits::check_tensor(&out, x.dtype().size_of(), "the output")?;
    let xs = strides(x.shape());
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; out.len()];
    for _ in 0..n {
        let mut src = Some(0usize);
        for (k, &p) in pos.iter().enumerate() {
            let q = p as i64 + plan[k].1;
            src = src
                .filter(|_| q >= 0 && (q as usize) < x.shape()[k])
                .map(|s| s + q as usize * xs[k]);
        }
        idx.push(src);
        next_index(&mut pos, &out);
    }
    Ok(vec![take_or(
        x,
        &idx,
        &Tensor::zeros(x.dtype(), vec![1]),
        out,
    )?])
}

/// Col2Im geometry: defaults filled in and the number of block positions per axis.
pub(crate) struct Col2ImGeo {
    pub image: Vec<usize>,
    pub block: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
    pub strides: Vec<usize>,
    pub cols: Vec<usize>,
}

pub(crate) fn col2im_geometry(
    image: &[i64],
    block: &[i64],
    dilations: &[usize],
    pads: &[usize],
    strides: &[usize],
) -> Result<Col2ImGeo, String> {
    let nd = image.len();
    if nd == 0 || block.len() != nd {
        return Err(format!(
            "image_shape {image:?} and block_shape {block:?} must be non-empty and of one length"
        ));
    }
    let fill = |v: &[usize], len: usize, d: usize, what: &str| -> Result<Vec<usize>, String> {
        match v.len() {
            0 => Ok(vec![d; len]),
            l if l == len => Ok(v.to_vec()),
            l => Err(format!("{what} has {l} values, expected {len}")),
        }
    };
    let dilations = fill(dilations, nd, 1, "dilations")?;
    let pads = fill(pads, 2 * nd, 0, "pads")?;
    let strides = fill(strides, nd, 1, "strides")?;
    if dilations.contains(&0) || strides.contains(&0) {
        return Err("dilations and strides must be positive".into());
    }
    let image = to_sizes(image, "image_shape")?;
    let block = to_sizes(block, "block_shape")?;
    if block.contains(&0) {
        return Err(format!("block_shape {block:?} has a zero entry"));
    }
    let mut cols = Vec::with_capacity(nd);
    for i in 0..nd {
        let span = (block[i] as i128 - 1) * dilations[i] as i128 + 1;
        let num = image[i] as i128 + pads[i] as i128 + pads[nd + i] as i128 - span;
        if num < 0 {
            return Err(format!(
                "axis {i}: the block (span {span}) is larger than the padded image"
            ));
        }
        cols.push((num / strides[i] as i128 + 1) as usize);
    }
    Ok(Col2ImGeo {
        image,
        block,
        dilations,
        pads,
        strides,
        cols,
    })
}

/// `input [N, C·∏block, L], image_shape, block_shape → y [N, C, image...]`.
pub fn col2im(
    dilations: &[usize],
    pads: &[usize],
    strides_: &[usize],
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "input")?;
    if !x.dtype().is_float() {
        return Err(format!("input must be floating point, got {}", x.dtype()));
    }
    let image = int_list(req(ins, 1, "image_shape")?, "image_shape")?;
    let block = int_list(req(ins, 2, "block_shape")?, "block_shape")?;
    let g = col2im_geometry(&image, &block, dilations, pads, strides_)?;
    let [n, ck, l] = *x.shape() else {
        return Err(format!("input must be 3-D, got shape {:?}", x.shape()));
    };
    let k: usize = limits::numel(&g.block).ok_or("block_shape overflows")?;
    let ncols = limits::numel(&g.cols).ok_or("the block count overflows")?;
    if ck % k != 0 {
        return Err(format!(
            "input dimension 1 ({ck}) is not divisible by the block size {k}"
        ));
    }
    if l != ncols {
        return Err(format!(
            "input dimension 2 is {l} but the geometry gives {ncols} blocks"
        ));
    }
    let c = ck / k;
    let mut out_shape = vec![n, c];
    out_shape.extend_from_slice(&g.image);
    let total = limits::check_tensor(&out_shape, 8, "the output")? / 8;
    let img_len: usize = g.image.iter().product();
    let img_st = strides(&g.image);
    let nd = g.image.len();
    let xv = x.to_f64_vec();
    let mut y = limits::try_vec(total, 0f64, "the output")?;
    for plane in 0..n * c {
        for kk in 0..k {
            let off = unravel(kk, &g.block);
            for col in 0..ncols {
                let cpos = unravel(col, &g.cols);
                let mut dst = Some(0usize);
                for i in 0..nd {
                    let p = (cpos[i] as i128) * g.strides[i] as i128 - g.pads[i] as i128
                        + (off[i] as i128) * g.dilations[i] as i128;
                    dst = dst
                        .filter(|_| p >= 0 && p < g.image[i] as i128)
                        .map(|d| d + p as usize * img_st[i]);
                }
                if let Some(d) = dst {
                    y[plane * img_len + d] += xv[(plane * k + kk) * ncols + col];
                }
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), out_shape, &y)])
}

/// MaxUnpool's natural output shape: `(in − 1)·s − (pb + pe) + k` per spatial axis.
pub(crate) fn unpool_shape(w: &Window, x_shape: &[usize]) -> Result<Vec<usize>, String> {
    if x_shape.len() < 3 {
        return Err(format!("X must have rank >= 3, got {x_shape:?}"));
    }
    let nd = x_shape.len() - 2;
    if w.kernel_shape.len() != nd {
        return Err(format!(
            "kernel_shape has {} values but X has {nd} spatial axes",
            w.kernel_shape.len()
        ));
    }
    let strides = if w.strides.is_empty() {
        vec![1; nd]
    } else {
        w.strides.clone()
    };
    let pads = if w.pads.is_empty() {
        vec![0; 2 * nd]
    } else {
        w.pads.clone()
    };
    if strides.len() != nd || pads.len() != 2 * nd {
        return Err("strides / pads do not match the spatial rank".into());
    }
    let mut out = x_shape[..2].to_vec();
    for i in 0..nd {
        let v = (x_shape[2 + i] as i128 - 1) * strides[i] as i128
            - pads[i] as i128
            - pads[nd + i] as i128
            + w.kernel_shape[i] as i128;
        let v = usize::try_from(v)
            .map_err(|_| format!("spatial axis {i}: output size {v} is out of range"))?;
        out.push(v);
    }
    Ok(out)
}

/// `x, indices, output_shape? → y`: `x[i]` lands at flat position `indices[i]` of a zero
/// tensor of the natural unpooled shape, which then sits at the origin of `output_shape`.
pub fn max_unpool(w: &Window, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let ind = req(ins, 1, "I")?;
    if ind.shape() != x.shape() {
        return Err(format!(
            "indices shape {:?} must equal X shape {:?}",
            ind.shape(),
            x.shape()
        ));
    }
    if !ind.dtype().is_int() {
        return Err(format!("indices must be integers, got {}", ind.dtype()));
    }
    let natural = unpool_shape(w, x.shape())?;
    let out = match opt(ins, 2) {
        None => natural.clone(),
        Some(t) => {
            let s = to_sizes(&int_list(t, "output_shape")?, "output_shape")?;
            if s.len() != natural.len() || s.iter().zip(&natural).any(|(a, b)| a < b) {
                return Err(format!(
                    "output_shape {s:?} must have rank {} and be at least {natural:?}",
                    natural.len()
                ));
            }
            s
        }
    };
    let n_nat = limits::numel(&natural).ok_or("the output size overflows")?;
    let n_out =
        limits::check_tensor(&out, x.dtype().size_of(), "the output")? / x.dtype().size_of().max(1);
    let mut src: Vec<Option<usize>> = limits::try_vec(n_nat, None, "the output")?;
    for (i, &p) in ind.to_i64_vec().iter().enumerate() {
        let p = usize::try_from(p)
            .ok()
            .filter(|&p| p < n_nat)
            .ok_or_else(|| format!("index {p} is out of range for {n_nat} output elements"))?;
        src[p] = Some(i);
    }
    // Place the natural-shape result at the origin of the (possibly larger) output.
    let nat_st = strides(&natural);
    let mut idx = Vec::with_capacity(n_out);
    let mut pos = vec![0usize; out.len()];
    for _ in 0..n_out {
        let inside = pos.iter().zip(&natural).all(|(p, d)| p < d);
        idx.push(if inside {
            src[pos.iter().zip(&nat_st).map(|(p, s)| p * s).sum::<usize>()]
        } else {
            None
        });
        next_index(&mut pos, &out);
    }
    Ok(vec![take_or(
        x,
        &idx,
        &Tensor::zeros(x.dtype(), vec![1]),
        out,
    )?])
}
