//! Shape inference for the scatter family, Compress, Unique, DepthToSpace / SpaceToDepth,
//! CenterCropPad, Col2Im, MaxUnpool and Det (the normalizations keep their input's type
//! and are handled in `mod.rs`). Value-dependent sizes come from constant inputs, or are
//! fresh symbols.

use super::dims::{norm_axis, to_size, Ins, SymGen};
use crate::eval::rearrange::{col2im_geometry, crop_pad_plan, unpool_shape};
use crate::{DType, Dim, ScatterKind, TensorType, Window};

/// The scatters: the output is the data (or cache) input's type.
pub fn scatter(kind: ScatterKind, ins: &Ins) -> Result<TensorType, String> {
    let data = ins.ty(0, "data")?;
    let upd_port = match kind {
        ScatterKind::Tensor { .. } => 1,
        _ => 2,
    };
    if let Some(u) = ins.opt_ty(upd_port) {
        if u.dtype != data.dtype {
            return Err(format!(
                "updates have dtype {} but data has {}",
                u.dtype, data.dtype
            ));
        }
    }
    Ok(data.clone())
}

/// A concrete type whose shape comes from model values: refused when it overflows.
fn checked_fixed(dtype: DType, shape: &[usize]) -> Result<TensorType, String> {
    crate::limits::byte_size(shape, dtype.size_of())?;
    Ok(TensorType::fixed(dtype, shape))
}

/// `t`, refused when its shape is concrete but overflows.
fn checked(t: TensorType) -> Result<TensorType, String> {
    if let Some(s) = t.concrete_shape() {
        crate::limits::byte_size(&s, t.dtype.size_of())?;
    }
    Ok(t)
}

/// Number of true entries of a constant condition.
fn count_true(ins: &Ins, i: usize) -> Option<usize> {
    ins.konst(i)
        .map(|t| t.to_f64_vec().iter().filter(|&&v| v != 0.0).count())
}

pub fn compress(axis: Option<i64>, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let n = match count_true(ins, 1) {
        Some(k) => Dim::Known(k),
        None => gen.fresh(),
    };
    let shape = match axis {
        None => Some(vec![n]),
        Some(a) => x
            .shape
            .as_ref()
            .map(|s| -> Result<Vec<Dim>, String> {
                let a = norm_axis(a, s.len())?;
                let mut s = s.clone();
                s[a] = n;
                Ok(s)
            })
            .transpose()?,
    };
    Ok(TensorType {
        dtype: x.dtype,
        shape,
    })
}

pub fn unique(
    axis: Option<i64>,
    ins: &Ins,
    gen: &mut SymGen,
    num_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "X")?;
    let u = gen.fresh();
    let (y, n) = match (axis, &x.shape) {
        (None, Some(s)) => {
            let n = super::dims::dim_product(s, gen);
            (Some(vec![u.clone()]), n)
        }
        (None, None) => (Some(vec![u.clone()]), gen.fresh()),
        (Some(a), Some(s)) => {
            let a = norm_axis(a, s.len())?;
            let mut y = s.clone();
            y[a] = u.clone();
            (Some(y), s[a].clone())
        }
        (Some(_), None) => (None, gen.fresh()),
    };
    let mut outs = vec![TensorType {
        dtype: x.dtype,
        shape: y,
    }];
    let i64s = |d: Dim| TensorType::new(DType::I64, vec![d]);
    for k in 1..num_outputs.min(4) {
        outs.push(if k == 2 {
            i64s(n.clone())
        } else {
            i64s(u.clone())
        });
    }
    Ok(outs)
}

/// DepthToSpace (`to_space`) or SpaceToDepth on `[N, C, H, W]`.
pub fn depth_space(
    to_space: bool,
    blocksize: usize,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let Some(s) = &x.shape else {
        return Ok(TensorType::new(x.dtype, gen.fresh_dims(4)));
    };
    if s.len() != 4 {
        return Err(format!("input must be 4-D, got rank {}", s.len()));
    }
    let b = blocksize;
    let bb = b
        .checked_mul(b)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("blocksize {b} is invalid"))?;
    let mut out = vec![s[0].clone()];
    let mut f = |d: &Dim, mul: bool, div: usize| -> Result<Dim, String> {
        Ok(match d.known() {
            Some(n) if mul => Dim::Known(
                n.checked_mul(div)
                    .ok_or_else(|| format!("dimension {n} × {div} overflows"))?,
            ),
            Some(n) if n % div != 0 => {
                return Err(format!("dimension {n} is not divisible by {div}"))
            }
            Some(n) => Dim::Known(n / div),
            None => gen.fresh(),
        })
    };
    if to_space {
        out.push(f(&s[1], false, bb)?);
        out.push(f(&s[2], true, b)?);
        out.push(f(&s[3], true, b)?);
    } else {
        out.push(f(&s[1], true, bb)?);
        out.push(f(&s[2], false, b)?);
        out.push(f(&s[3], false, b)?);
    }
    Ok(TensorType::new(x.dtype, out))
}

pub fn center_crop_pad(
    axes: Option<&[i64]>,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "input_data")?;
    let Some(s) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    let target = ins.const_i64(1);
    // With the whole input shape known and a constant target: exact.
    let known: Option<Vec<usize>> = s.iter().map(|d| d.known()).collect();
    if let (Some(k), Some(t)) = (&known, &target) {
        let plan = crop_pad_plan(k, t, axes)?;
        return checked_fixed(x.dtype, &plan.iter().map(|p| p.0).collect::<Vec<_>>());
    }
    let axes: Vec<usize> = match axes {
        None => (0..s.len()).collect(),
        Some(a) => super::dims::norm_axes(a, s.len())?,
    };
    let mut out = s.clone();
    for (j, &a) in axes.iter().enumerate() {
        out[a] = match target.as_ref().and_then(|t| t.get(j)) {
            Some(&v) => Dim::Known(to_size(v, "shape")?),
            None => gen.fresh(),
        };
    }
    checked(TensorType::new(x.dtype, out))
}

pub fn col2im(
    dilations: &[usize],
    pads: &[usize],
    strides: &[usize],
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    if let Some(s) = &x.shape {
        if s.len() != 3 {
            return Err(format!("input must be 3-D, got rank {}", s.len()));
        }
    }
    let dim = |i: usize, gen: &mut SymGen| match &x.shape {
        Some(s) => s[i].clone(),
        None => gen.fresh(),
    };
    let (image, block) = (ins.const_i64(1), ins.const_i64(2));
    let nd = match (&image, ins.len_1d(1)) {
        (Some(v), _) => v.len(),
        (None, Some(n)) => n,
        (None, None) => return Ok(TensorType::unknown_rank(x.dtype)),
    };
    let mut out = vec![dim(0, gen)];
    match (&image, &block) {
        (Some(img), Some(blk)) => {
            let g = col2im_geometry(img, blk, dilations, pads, strides)?;
            let k: usize = g
                .block
                .iter()
                .try_fold(1usize, |a, &b| a.checked_mul(b))
                .ok_or("block_shape overflows")?;
            out.push(match dim(1, gen).known() {
                Some(ck) if ck % k != 0 => {
                    return Err(format!(
                        "input dimension 1 ({ck}) is not divisible by the block size {k}"
                    ))
                }
                Some(ck) => Dim::Known(ck / k),
                None => gen.fresh(),
            });
            out.extend(g.image.iter().map(|&d| Dim::Known(d)));
        }
        _ => {
            out.push(gen.fresh());
            for j in 0..nd {
                out.push(match image.as_ref().and_then(|v| v.get(j)) {
                    Some(&v) => Dim::Known(to_size(v, "image_shape")?),
                    None => gen.fresh(),
                });
            }
        }
    }
    checked(TensorType::new(x.dtype, out))
}

pub fn max_unpool(w: &Window, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    if let Some(t) = ins.const_i64(2) {
        let s: Vec<usize> = t
            .iter()
            .map(|&v| to_size(v, "output_shape"))
            .collect::<Result<_, _>>()?;
        return checked_fixed(x.dtype, &s);
    }
    let Some(s) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    if ins.present(2) {
        return Ok(TensorType::new(x.dtype, gen.fresh_dims(s.len())));
    }
    let known: Option<Vec<usize>> = s.iter().map(|d| d.known()).collect();
    match known {
        Some(k) => checked_fixed(x.dtype, &unpool_shape(w, &k)?),
        None => {
            let mut out = s[..2.min(s.len())].to_vec();
            out.extend(gen.fresh_dims(s.len().saturating_sub(2)));
            Ok(TensorType::new(x.dtype, out))
        }
    }
}

pub fn det(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let shape = match &x.shape {
        None => None,
        Some(s) if s.len() < 2 => return Err(format!("X must have rank >= 2, got {}", s.len())),
        Some(s) => Some(s[..s.len() - 2].to_vec()),
    };
    Ok(TensorType {
        dtype: x.dtype,
        shape,
    })
}
