//! Shape and data-movement ops: Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat,
//! Split, Slice, Expand, Tile, Shape, ConstantOfShape, Range, Trilu, NonZero. Gathers, Pad
//! and OneHot live in `movement/gather.rs`. Data is copied without conversion, so every op
//! works on every dtype.

mod gather;

pub use gather::{gather, gather_elements, gather_nd, one_hot, pad};

use super::index::{filled, gather_parts, int_list, take, to_sizes};
use super::util::{
    broadcast_index_map, broadcast_shapes, next_index, norm_axes, norm_axis, strides,
};
use super::{opt, req, OpResult};
use crate::{dispatch_data, Element, Tensor, TensorData};

/// `data, shape → reshaped`: 0 copies the input dimension (unless `allowzero`), -1 infers.
pub fn reshape(allowzero: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let spec = int_list(req(ins, 1, "shape")?, "shape")?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 => {
                if infer.replace(i).is_some() {
                    return Err(format!("shape {spec:?} has more than one -1"));
                }
                out.push(1);
            }
            0 if !allowzero => {
                let d = x.shape().get(i).ok_or_else(|| {
                    format!("shape {spec:?}: 0 at {i} but input rank is {}", x.rank())
                })?;
                out.push(*d);
            }
            d if d < 0 => return Err(format!("shape {spec:?} has invalid entry {d}")),
            d => out.push(d as usize),
        }
    }
    if let Some(i) = infer {
        let known: usize = out
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &d)| d)
            .product();
        if known == 0 || x.len() % known != 0 {
            return Err(format!("cannot reshape {:?} to {spec:?}", x.shape()));
        }
        out[i] = x.len() / known;
    }
    Ok(vec![x.reshape(out).map_err(|e| e.to_string())?])
}

/// `x → y`; `perm: None` reverses the axes.
pub fn transpose(perm: Option<&[usize]>, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let r = x.rank();
    let perm: Vec<usize> = match perm {
        Some(p) => p.to_vec(),
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    if perm.len() != r
        || perm
            .iter()
            .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!("perm {perm:?} is not a permutation of rank {r}"));
    }
    Ok(vec![permute(x, &perm)?])
}

/// Output axis `i` is input axis `perm[i]` (perm already validated).
pub(crate) fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor, String> {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let xs = strides(x.shape());
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; shape.len()];
    for _ in 0..n {
        idx.push(pos.iter().zip(perm).map(|(&i, &p)| i * xs[p]).sum());
        next_index(&mut pos, &shape);
    }
    take(x, &idx, shape)
}

/// `x → y (2-D)`: dimensions before `axis` become rows, the rest columns.
pub fn flatten(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let r = x.rank() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let a = a as usize;
    let rows = x.shape()[..a].iter().product();
    let cols = x.shape()[a..].iter().product();
    Ok(vec![x
        .reshape(vec![rows, cols])
        .map_err(|e| e.to_string())?])
}

/// `data, axes? → y`: removes the listed size-1 axes, or every size-1 axis.
pub fn squeeze(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let drop: Vec<usize> = match opt(ins, 1) {
        Some(a) => {
            let axes = norm_axes(&int_list(a, "axes")?, x.rank())?;
            if let Some(&bad) = axes.iter().find(|&&a| x.shape()[a] != 1) {
                return Err(format!(
                    "cannot squeeze axis {bad} of size {} (shape {:?})",
                    x.shape()[bad],
                    x.shape()
                ));
            }
            axes
        }
        None => (0..x.rank()).filter(|&i| x.shape()[i] == 1).collect(),
    };
    let shape = (0..x.rank())
        .filter(|i| !drop.contains(i))
        .map(|i| x.shape()[i])
        .collect();
    Ok(vec![x.reshape(shape).map_err(|e| e.to_string())?])
}

/// `data, axes → y`: inserts size-1 axes; negative axes count from the output's end.
pub fn unsqueeze(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let axes = int_list(req(ins, 1, "axes")?, "axes")?;
    let out_rank = x.rank() + axes.len();
    let axes = norm_axes(&axes, out_rank)?;
    let mut dims = x.shape().iter();
    let shape = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect();
    Ok(vec![x.reshape(shape).map_err(|e| e.to_string())?])
}

/// `x0, x1, ... → y` joined along `axis`.
pub fn concat(axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let parts: Vec<&Tensor> = ins
        .iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| format!("missing input {i}")))
        .collect::<Result<_, _>>()?;
    let first = parts.first().ok_or("Concat needs at least one input")?;
    let r = first.rank();
    let a = norm_axis(axis, r)?;
    let mut shape = first.shape().to_vec();
    shape[a] = 0;
    for p in &parts {
        let same = p.rank() == r && (0..r).all(|i| i == a || p.shape()[i] == first.shape()[i]);
        if !same {
            return Err(format!(
                "cannot concatenate shapes {:?} and {:?} on axis {a}",
                first.shape(),
                p.shape()
            ));
        }
        shape[a] += p.shape()[a];
    }
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let mut plan = Vec::new();
    for o in 0..outer {
        for (pi, p) in parts.iter().enumerate() {
            let chunk = p.shape()[a] * inner;
            if chunk > 0 {
                plan.push((pi, o * chunk, chunk));
            }
        }
    }
    Ok(vec![gather_parts(&parts, &plan, shape)?])
}

/// `x, split? → y0, y1, ...`: explicit sizes, or `num_outputs` parts of `ceil(d / n)`
/// with the last one smaller (opset 18 rule; earlier opsets need an exact division).
pub fn split(axis: i64, num_outputs: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let a = norm_axis(axis, x.rank())?;
    let d = x.shape()[a];
    let sizes: Vec<usize> = match opt(ins, 1) {
        Some(s) => {
            let s = to_sizes(&int_list(s, "split")?, "split")?;
            if s.iter().sum::<usize>() != d {
                return Err(format!("split sizes {s:?} do not add up to dimension {d}"));
            }
            s
        }
        None => {
            if num_outputs == 0 {
                return Err("Split needs at least one output".into());
            }
            let chunk = d.div_ceil(num_outputs);
            let mut s = vec![chunk; num_outputs];
            // Python slicing clamps a too-large split to what is left.
            let mut left = d;
            for v in s.iter_mut() {
                *v = (*v).min(left);
                left -= *v;
            }
            s
        }
    };
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a + 1..].iter().product();
    let mut outs = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for &s in &sizes {
        let mut plan = Vec::new();
        for o in 0..outer {
            if s * inner > 0 {
                plan.push((0, (o * d + start) * inner, s * inner));
            }
        }
        let mut shape = x.shape().to_vec();
        shape[a] = s;
        outs.push(gather_parts(&[x], &plan, shape)?);
        start += s;
    }
    Ok(outs)
}

pub(crate) use crate::infer::slice_range;

/// `data, starts, ends, axes?, steps? → y` with numpy slicing semantics per axis.
pub fn slice(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let starts = int_list(req(ins, 1, "starts")?, "starts")?;
    let ends = int_list(req(ins, 2, "ends")?, "ends")?;
    let r = x.rank();
    let axes: Vec<usize> = match opt(ins, 3) {
        Some(a) => norm_axes(&int_list(a, "axes")?, r)?,
        None => (0..starts.len()).collect(),
    };
    let steps = match opt(ins, 4) {
        Some(s) => int_list(s, "steps")?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(format!(
            "starts {starts:?}, ends {ends:?}, axes and steps must have the same length"
        ));
    }
    let mut first = vec![0i64; r];
    let mut step = vec![1i64; r];
    let mut shape = x.shape().to_vec();
    for (i, &a) in axes.iter().enumerate() {
        if a >= r {
            return Err(format!("axis {a} is out of range for rank {r}"));
        }
        let (s, st, c) = slice_range(starts[i], ends[i], steps[i], x.shape()[a])?;
        first[a] = s;
        step[a] = st;
        shape[a] = c;
    }
    let xs = strides(x.shape());
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        let mut flat = 0i64;
        for k in 0..r {
            flat += (first[k] + step[k] * pos[k] as i64) * xs[k] as i64;
        }
        idx.push(flat as usize);
        next_index(&mut pos, &shape);
    }
    Ok(vec![take(x, &idx, shape)?])
}

/// `input, shape → y`: bidirectional (numpy) broadcast of the input to `shape`.
pub fn expand(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let target = to_sizes(&int_list(req(ins, 1, "shape")?, "shape")?, "shape")?;
    let shape = broadcast_shapes(x.shape(), &target)?;
    let idx = broadcast_index_map(x.shape(), &shape)?;
    Ok(vec![take(x, &idx, shape)?])
}

/// `input, repeats → y`: repeats the tensor along every axis.
pub fn tile(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let reps = to_sizes(&int_list(req(ins, 1, "repeats")?, "repeats")?, "repeats")?;
    if reps.len() != x.rank() {
        return Err(format!(
            "repeats {reps:?} must have one entry per axis of {:?}",
            x.shape()
        ));
    }
    let shape: Vec<usize> = x.shape().iter().zip(&reps).map(|(d, r)| d * r).collect();
    let xs = strides(x.shape());
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; shape.len()];
    for _ in 0..n {
        idx.push(
            pos.iter()
                .enumerate()
                .map(|(k, &p)| (p % x.shape()[k]) * xs[k])
                .sum(),
        );
        next_index(&mut pos, &shape);
    }
    Ok(vec![take(x, &idx, shape)?])
}

/// `data → shape (i64 1-D)`, sliced by `start`/`end` with Python clamping.
pub fn shape(start: i64, end: Option<i64>, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "data")?;
    let n = x.rank() as i64;
    let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
    let s = clamp(start);
    let e = clamp(end.unwrap_or(n));
    let dims: Vec<i64> = if e > s {
        x.shape()[s..e].iter().map(|&d| d as i64).collect()
    } else {
        vec![]
    };
    Ok(vec![Tensor::from_vec(vec![dims.len()], dims)])
}

/// `shape → y` filled with `value` (its dtype; an empty shape gives a scalar).
pub fn constant_of_shape(value: &Tensor, ins: &[Option<&Tensor>]) -> OpResult {
    let shape = to_sizes(&int_list(req(ins, 0, "shape")?, "shape")?, "shape")?;
    if value.len() != 1 {
        return Err(format!(
            "value must hold exactly one element, got shape {:?}",
            value.shape()
        ));
    }
    Ok(vec![filled(value, shape)?])
}

/// `start, limit, delta → y`: `max(ceil((limit - start) / delta), 0)` elements.
pub fn range(ins: &[Option<&Tensor>]) -> OpResult {
    let (s, l, d) = (
        req(ins, 0, "start")?,
        req(ins, 1, "limit")?,
        req(ins, 2, "delta")?,
    );
    for t in [s, l, d] {
        if t.len() != 1 {
            return Err(format!(
                "start, limit and delta must be scalars, got shape {:?}",
                t.shape()
            ));
        }
        if t.dtype() != s.dtype() {
            return Err(format!(
                "start, limit and delta must share a dtype ({} vs {})",
                s.dtype(),
                t.dtype()
            ));
        }
    }
    let dt = s.dtype();
    if dt.is_float() {
        let (s, l, d) = (s.get_f64(0), l.get_f64(0), d.get_f64(0));
        if d == 0.0 {
            return Err("delta cannot be 0".into());
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if !n.is_finite() || n > 1e9 {
            return Err(format!("Range would have {n} elements"));
        }
        let v: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
        Ok(vec![Tensor::from_f64(dt, vec![v.len()], &v)])
    } else if dt.is_int() {
        let (s, l, d) = (s.to_i64_vec()[0], l.to_i64_vec()[0], d.to_i64_vec()[0]);
        if d == 0 {
            return Err("delta cannot be 0".into());
        }
        let span = l as i128 - s as i128;
        let d128 = d as i128;
        let n = if (span > 0 && d > 0) || (span < 0 && d < 0) {
            (span + d128 - d128.signum()) / d128
        } else {
            0
        };
        if n > 1_000_000_000 {
            return Err(format!("Range would have {n} elements"));
        }
        let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
        Ok(vec![Tensor::from_i64(dt, vec![v.len()], &v)])
    } else {
        Err(format!("Range does not support dtype {dt}"))
    }
}

/// `input, k? → y`: keeps the upper (`j - i >= k`) or lower (`j - i <= k`) triangle of
/// the last two axes and zeroes the rest.
pub fn trilu(upper: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let k = match opt(ins, 1) {
        Some(k) => super::util::scalar_i64(k, "k")?,
        None => 0,
    };
    if x.rank() < 2 {
        return Err(format!("Trilu needs rank >= 2, got shape {:?}", x.shape()));
    }
    let (rows, cols) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
    let keep = |flat: usize| {
        let j = (flat % cols) as i64;
        let i = ((flat / cols) % rows) as i64;
        if upper {
            j - i >= k
        } else {
            j - i <= k
        }
    };
    fn zero_out<T: Element>(v: &[T], keep: &dyn Fn(usize) -> bool) -> TensorData {
        T::wrap(
            v.iter()
                .enumerate()
                .map(|(i, &x)| if keep(i) { x } else { T::default() })
                .collect(),
        )
    }
    let data = dispatch_data!(x.data(), v => zero_out(v, &keep));
    Ok(vec![
        Tensor::new(x.shape().to_vec(), data).map_err(|e| e.to_string())?
    ])
}

/// `x → indices (i64 [rank, nnz])` of the non-zero elements in row-major order.
pub fn non_zero(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let r = x.rank();
    let nz: Vec<usize> = (0..x.len()).filter(|&i| x.get_f64(i) != 0.0).collect();
    if r == 0 {
        return Ok(vec![Tensor::from_vec(vec![0, nz.len()], Vec::<i64>::new())]);
    }
    let mut out = vec![0i64; r * nz.len()];
    for (j, &flat) in nz.iter().enumerate() {
        for (k, c) in super::util::unravel(flat, x.shape())
            .into_iter()
            .enumerate()
        {
            out[k * nz.len() + j] = c as i64;
        }
    }
    Ok(vec![Tensor::from_vec(vec![r, nz.len()], out)])
}

#[cfg(test)]
mod tests;
