//! Index-driven movement ops: Gather, GatherElements, GatherND, OneHot and Pad.

use crate::eval::index::{int_list, take, take_or, to_sizes, wrap_index};
use crate::eval::util::{norm_axes, norm_axis, strides, unravel};
use crate::eval::{opt, req, OpResult};
use crate::{PadMode, Tensor};

/// The elements of an integer index tensor.
fn indices_of(t: &Tensor) -> Result<Vec<i64>, String> {
    if !t.dtype().is_int() {
        return Err(format!("indices must be integers, got {}", t.dtype()));
    }
    Ok(t.to_i64_vec())
}

/// `data, indices → y`: `y[a.., i.., b..] = data[a.., indices[i..], b..]`.
pub fn gather(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let ind = req(ins, 1, "indices")?;
    let a = norm_axis(axis, x.rank())?;
    let iv = indices_of(ind)?;
    let d = x.shape()[a];
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a + 1..].iter().product();
    let wrapped: Vec<usize> = iv
        .iter()
        .map(|&i| wrap_index(i, d, "Gather"))
        .collect::<Result<_, _>>()?;
    let mut idx = Vec::with_capacity(outer * wrapped.len() * inner);
    for o in 0..outer {
        for &w in &wrapped {
            let base = (o * d + w) * inner;
            idx.extend(base..base + inner);
        }
    }
    let mut shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(ind.shape());
    shape.extend_from_slice(&x.shape()[a + 1..]);
    Ok(vec![take(x, &idx, shape)?])
}

/// `data, indices → y` (same rank): `y[p] = data[p with axis replaced by indices[p]]`.
pub fn gather_elements(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let ind = req(ins, 1, "indices")?;
    let a = norm_axis(axis, x.rank())?;
    if ind.rank() != x.rank() {
        return Err(format!(
            "indices rank {} must equal data rank {}",
            ind.rank(),
            x.rank()
        ));
    }
    for k in 0..x.rank() {
        if k != a && ind.shape()[k] > x.shape()[k] {
            return Err(format!(
                "indices shape {:?} exceeds data shape {:?}",
                ind.shape(),
                x.shape()
            ));
        }
    }
    let iv = indices_of(ind)?;
    let xs = strides(x.shape());
    let mut idx = Vec::with_capacity(iv.len());
    for (flat, &i) in iv.iter().enumerate() {
        let mut pos = unravel(flat, ind.shape());
        pos[a] = wrap_index(i, x.shape()[a], "GatherElements")?;
        idx.push(pos.iter().zip(&xs).map(|(p, s)| p * s).sum());
    }
    Ok(vec![take(x, &idx, ind.shape().to_vec())?])
}

/// `data, indices → y`: each last-axis tuple of `indices` picks a slice of `data`, with
/// `batch_dims` leading axes shared between the two.
pub fn gather_nd(batch_dims: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let ind = req(ins, 1, "indices")?;
    let (r, q, b) = (x.rank(), ind.rank(), batch_dims);
    if q < 1 || b >= q.min(r) {
        return Err(format!(
            "batch_dims {b} is too large for data rank {r} and indices rank {q}"
        ));
    }
    let k = ind.shape()[q - 1];
    if b + k > r {
        return Err(format!(
            "index tuples of length {k} are too long for data rank {r} with {b} batch dims"
        ));
    }
    if ind.shape()[..b] != x.shape()[..b] {
        return Err(format!(
            "batch dims of data {:?} and indices {:?} differ",
            x.shape(),
            ind.shape()
        ));
    }
    let iv = indices_of(ind)?;
    let batch: usize = x.shape()[..b].iter().product();
    let per_batch_tuples: usize = ind.shape()[b..q - 1].iter().product();
    let slice: usize = x.shape()[b + k..].iter().product();
    let batch_len: usize = x.shape()[b..].iter().product();
    let xs = strides(&x.shape()[b..]);
    let mut idx = Vec::with_capacity(batch * per_batch_tuples * slice);
    for bi in 0..batch {
        for t in 0..per_batch_tuples {
            let tuple = &iv[(bi * per_batch_tuples + t) * k..][..k];
            let mut base = bi * batch_len;
            for (j, &i) in tuple.iter().enumerate() {
                base += wrap_index(i, x.shape()[b + j], "GatherND")? * xs[j];
            }
            idx.extend(base..base + slice);
        }
    }
    let mut shape = ind.shape()[..q - 1].to_vec();
    shape.extend_from_slice(&x.shape()[b + k..]);
    Ok(vec![take(x, &idx, shape)?])
}

/// `indices, depth, values → y`: a new axis of size `depth` at `axis`, `values[1]` where
/// the (wrapped) index matches and `values[0]` elsewhere.
pub fn one_hot(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let ind = req(ins, 0, "indices")?;
    let depth_t = req(ins, 1, "depth")?;
    let values = req(ins, 2, "values")?;
    if depth_t.len() != 1 {
        return Err(format!(
            "depth must hold one element, got shape {:?}",
            depth_t.shape()
        ));
    }
    if values.len() != 2 {
        return Err(format!(
            "values must hold [off, on], got shape {:?}",
            values.shape()
        ));
    }
    let depth_f = depth_t.get_f64(0).ceil();
    if !(0.0..=1e9).contains(&depth_f) {
        return Err(format!("depth {depth_f} is invalid"));
    }
    let depth = depth_f as usize;
    let r = ind.rank() as i64;
    let a = if axis < 0 { axis + r + 1 } else { axis };
    if a < 0 || a > r {
        return Err(format!(
            "axis {axis} is out of range for output rank {}",
            r + 1
        ));
    }
    let a = a as usize;
    let outer: usize = ind.shape()[..a].iter().product();
    let inner: usize = ind.shape()[a..].iter().product();
    let iv = ind.to_f64_vec();
    let mut pick = Vec::with_capacity(outer * depth * inner);
    for o in 0..outer {
        for d in 0..depth {
            for i in 0..inner {
                let v = iv[o * inner + i];
                let v = if v < 0.0 { v + depth as f64 } else { v };
                pick.push(if v == d as f64 { 1 } else { 0 });
            }
        }
    }
    let mut shape = ind.shape()[..a].to_vec();
    shape.push(depth);
    shape.extend_from_slice(&ind.shape()[a..]);
    Ok(vec![take(values, &pick, shape)?])
}

/// Source position along one axis for padded output position `o` (`None`: constant).
fn pad_source(mode: PadMode, o: usize, begin: i64, n: usize) -> Option<usize> {
    let j = o as i64 - begin;
    let n = n as i64;
    if (0..n).contains(&j) {
        return Some(j as usize);
    }
    let s = match mode {
        PadMode::Constant => return None,
        PadMode::Edge => j.clamp(0, n - 1),
        PadMode::Wrap => j.rem_euclid(n),
        PadMode::Reflect if n == 1 => 0,
        PadMode::Reflect => {
            let period = 2 * (n - 1);
            let m = j.rem_euclid(period);
            if m >= n {
                period - m
            } else {
                m
            }
        }
    };
    Some(s as usize)
}

/// `data, pads, constant_value?, axes? → y`. Negative pads crop.
pub fn pad(mode: PadMode, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let pads = int_list(req(ins, 1, "pads")?, "pads")?;
    let r = x.rank();
    let axes = match opt(ins, 3) {
        Some(a) => norm_axes(&int_list(a, "axes")?, r)?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pads {pads:?} must have 2 entries per padded axis ({} axes)",
            axes.len()
        ));
    }
    let mut begin = vec![0i64; r];
    let mut shape = x.shape().to_vec();
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        let d = (x.shape()[a] as i64)
            .checked_add(pads[i])
            .and_then(|d| d.checked_add(pads[axes.len() + i]))
            .ok_or_else(|| format!("pads {pads:?} overflow axis {a}"))?;
        shape[a] = to_sizes(&[d], "padded shape")?[0];
        if mode != PadMode::Constant && x.shape()[a] == 0 && d > 0 {
            return Err(format!("cannot pad an empty axis {a} in {mode:?} mode"));
        }
    }
    let xs = strides(x.shape());
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        let mut flat = Some(0usize);
        for k in 0..r {
            flat = match (flat, pad_source(mode, pos[k], begin[k], x.shape()[k])) {
                (Some(f), Some(s)) => Some(f + s * xs[k]),
                _ => None,
            };
        }
        idx.push(flat);
        crate::eval::util::next_index(&mut pos, &shape);
    }
    let fill = match opt(ins, 2) {
        Some(c) if !c.is_empty() => c.cast(x.dtype()),
        _ => Tensor::zeros(x.dtype(), vec![1]),
    };
    Ok(vec![take_or(x, &idx, &fill, shape)?])
}
