//! Index-driven writes and selections: ScatterElements / ScatterND / TensorScatter (one
//! `Op::Scatter` family), Compress, Unique and ReverseSequence. A scatter is computed as a
//! list of `(destination, source)` flat-index pairs applied in order, so duplicate indices
//! behave as the ONNX reference (the last write wins, reductions accumulate).

use super::index::{take, wrap_index};
use super::util::{int_tensor, norm_axis, strides, to_i128_vec, unravel};
use super::{opt, req, OpResult};
use crate::{dispatch_data, DType, Element, ScatterKind, ScatterReduction, Tensor, TensorData};
use std::cmp::Ordering;

fn int_values(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    if !t.dtype().is_int() {
        return Err(format!("{what} must be integers, got {}", t.dtype()));
    }
    Ok(t.to_i64_vec())
}

/// `Op::Scatter`: dispatches on the addressing scheme.
pub fn scatter(
    kind: ScatterKind,
    reduction: ScatterReduction,
    ins: &[Option<&Tensor>],
) -> OpResult {
    match kind {
        ScatterKind::Elements { axis } => {
            let data = req(ins, 0, "data")?;
            let ind = req(ins, 1, "indices")?;
            let upd = req(ins, 2, "updates")?;
            let pairs = elements_pairs(axis, data, ind, upd)?;
            Ok(vec![apply(data, upd, &pairs, reduction)?])
        }
        ScatterKind::Nd => {
            let data = req(ins, 0, "data")?;
            let ind = req(ins, 1, "indices")?;
            let upd = req(ins, 2, "updates")?;
            let pairs = nd_pairs(data, ind, upd)?;
            Ok(vec![apply(data, upd, &pairs, reduction)?])
        }
        ScatterKind::Tensor { axis, circular } => {
            let past = req(ins, 0, "past_cache")?;
            let upd = req(ins, 1, "update")?;
            let pairs = tensor_pairs(axis, circular, past, upd, opt(ins, 2))?;
            Ok(vec![apply(past, upd, &pairs, reduction)?])
        }
    }
}

/// ScatterElements: `updates[p]` goes to `p` with `p[axis]` replaced by `indices[p]`.
fn elements_pairs(
    axis: i64,
    data: &Tensor,
    ind: &Tensor,
    upd: &Tensor,
) -> Result<Vec<(usize, usize)>, String> {
    let r = data.rank();
    let a = norm_axis(axis, r)?;
    if ind.shape() != upd.shape() {
        return Err(format!(
            "indices shape {:?} and updates shape {:?} differ",
            ind.shape(),
            upd.shape()
        ));
    }
    if ind.rank() != r {
        return Err(format!(
            "indices rank {} must equal data rank {r}",
            ind.rank()
        ));
    }
    for k in 0..r {
        if k != a && ind.shape()[k] > data.shape()[k] {
            return Err(format!(
                "indices shape {:?} exceeds data shape {:?} on axis {k}",
                ind.shape(),
                data.shape()
            ));
        }
    }
    let iv = int_values(ind, "indices")?;
    let ds = strides(data.shape());
    let mut pairs = Vec::with_capacity(iv.len());
    for (flat, &i) in iv.iter().enumerate() {
        let mut pos = unravel(flat, ind.shape());
        pos[a] = wrap_index(i, data.shape()[a], "ScatterElements")?;
        pairs.push((pos.iter().zip(&ds).map(|(p, s)| p * s).sum(), flat));
    }
    Ok(pairs)
}

/// ScatterND: tuple `t` (last axis of `indices`) addresses a slice of `data` that takes
/// the matching slice of `updates`.
fn nd_pairs(data: &Tensor, ind: &Tensor, upd: &Tensor) -> Result<Vec<(usize, usize)>, String> {
    let (r, q) = (data.rank(), ind.rank());
    if q < 1 {
        return Err("indices must have rank >= 1".into());
    }
    let k = ind.shape()[q - 1];
    if k > r {
        return Err(format!(
            "index tuples of length {k} are too long for data rank {r}"
        ));
    }
    let mut want = ind.shape()[..q - 1].to_vec();
    want.extend_from_slice(&data.shape()[k..]);
    if upd.shape() != want.as_slice() {
        return Err(format!(
            "updates shape {:?} must be {want:?} (indices {:?}, data {:?})",
            upd.shape(),
            ind.shape(),
            data.shape()
        ));
    }
    let iv = int_values(ind, "indices")?;
    let ds = strides(data.shape());
    let slice: usize = data.shape()[k..].iter().product();
    let tuples: usize = ind.shape()[..q - 1].iter().product();
    let mut pairs = Vec::with_capacity(tuples * slice);
    for t in 0..tuples {
        let mut base = 0usize;
        for (j, &i) in iv[t * k..(t + 1) * k].iter().enumerate() {
            base += wrap_index(i, data.shape()[j], "ScatterND")? * ds[j];
        }
        pairs.extend((0..slice).map(|s| (base + s, t * slice + s)));
    }
    Ok(pairs)
}

/// TensorScatter: for batch `b` (axis 0), `update` is written along `axis` starting at
/// `write_indices[b]` (0 when absent), wrapping modulo the cache length when `circular`.
fn tensor_pairs(
    axis: i64,
    circular: bool,
    past: &Tensor,
    upd: &Tensor,
    write: Option<&Tensor>,
) -> Result<Vec<(usize, usize)>, String> {
    let r = past.rank();
    let a = norm_axis(axis, r)?;
    if a == 0 {
        return Err("axis must not be the batch axis 0".into());
    }
    if upd.rank() != r {
        return Err(format!(
            "update rank {} must equal past_cache rank {r}",
            upd.rank()
        ));
    }
    for k in 0..r {
        let (p, u) = (past.shape()[k], upd.shape()[k]);
        if (k != a && p != u) || (k == a && u > p) {
            return Err(format!(
                "update shape {:?} does not fit past_cache shape {:?} on axis {k}",
                upd.shape(),
                past.shape()
            ));
        }
    }
    let batch = past.shape()[0];
    let starts = match write {
        None => vec![0i64; batch],
        Some(w) => {
            let v = int_values(w, "write_indices")?;
            if v.len() != batch {
                return Err(format!(
                    "write_indices has {} entries but the batch is {batch}",
                    v.len()
                ));
            }
            v
        }
    };
    let max_len = past.shape()[a];
    let seq = upd.shape()[a];
    let outer: usize = past.shape()[..a].iter().product();
    let per_batch = outer / batch.max(1);
    let inner: usize = past.shape()[a + 1..].iter().product();
    let mut pairs = Vec::with_capacity(outer * seq * inner);
    for o in 0..outer {
        let start = starts[o / per_batch.max(1)];
        if start < 0 {
            return Err(format!("write index {start} is negative"));
        }
        for s in 0..seq {
            let mut pos = start as u64 + s as u64;
            if circular {
                pos %= max_len as u64;
            } else if pos >= max_len as u64 {
                return Err(format!(
                    "write index {start} + {seq} updates exceed the cache length {max_len}"
                ));
            }
            let dst = (o * max_len + pos as usize) * inner;
            let src = (o * seq + s) * inner;
            pairs.extend((0..inner).map(|i| (dst + i, src + i)));
        }
    }
    Ok(pairs)
}

/// `data` with `updates[src]` combined into `data[dst]` for each pair, in order.
fn apply(
    data: &Tensor,
    upd: &Tensor,
    pairs: &[(usize, usize)],
    reduction: ScatterReduction,
) -> Result<Tensor, String> {
    if upd.dtype() != data.dtype() {
        return Err(format!(
            "updates have dtype {} but data has {}",
            upd.dtype(),
            data.dtype()
        ));
    }
    let (n, m) = (data.len(), upd.len());
    if pairs.iter().any(|&(d, s)| d >= n || s >= m) {
        return Err("internal: scatter index out of range".into());
    }
    let shape = data.shape().to_vec();
    if reduction == ScatterReduction::None {
        fn go<T: Element>(d: &[T], u: &TensorData, pairs: &[(usize, usize)]) -> TensorData {
            let u = T::unwrap(u).expect("dtype checked");
            let mut out = d.to_vec();
            for &(dst, src) in pairs {
                out[dst] = u[src];
            }
            T::wrap(out)
        }
        let out = dispatch_data!(data.data(), v => go(v, upd.data(), pairs));
        return Tensor::new(shape, out).map_err(|e| e.to_string());
    }
    use ScatterReduction::*;
    if data.dtype().is_float() {
        let mut out = data.to_f64_vec();
        let u = upd.to_f64_vec();
        for &(dst, src) in pairs {
            let (x, y) = (out[dst], u[src]);
            out[dst] = match reduction {
                Add => x + y,
                Mul => x * y,
                Max => x.max(y),
                Min => x.min(y),
                None => y,
            };
        }
        return Ok(Tensor::from_f64(data.dtype(), shape, &out));
    }
    let (Some(mut out), Some(u)) = (to_i128_vec(data), to_i128_vec(upd)) else {
        return Err(format!("unsupported dtype {}", data.dtype()));
    };
    if data.dtype() == DType::Bool {
        return Err("scatter reductions do not apply to bool data".into());
    }
    for &(dst, src) in pairs {
        let (x, y) = (out[dst], u[src]);
        out[dst] = match reduction {
            Add => x.wrapping_add(y),
            Mul => x.wrapping_mul(y),
            Max => x.max(y),
            Min => x.min(y),
            None => y,
        };
        out[dst] = wrap_int(data.dtype(), out[dst]);
    }
    int_tensor(data.dtype(), shape, &out)
}

/// `x` wrapped to the range of integer dtype `dt` (as numpy's fixed-width arithmetic).
fn wrap_int(dt: DType, x: i128) -> i128 {
    match dt {
        DType::I8 => x as i8 as i128,
        DType::U8 => x as u8 as i128,
        DType::I16 => x as i16 as i128,
        DType::U16 => x as u16 as i128,
        DType::I32 => x as i32 as i128,
        DType::U32 => x as u32 as i128,
        DType::I64 => x as i64 as i128,
        DType::U64 => x as u64 as i128,
        _ => x,
    }
}

/// `input, condition → y`: the slices along `axis` (elements of the flattened input when
/// `None`) whose condition entry is true; entries past the condition's end are dropped.
pub fn compress(axis: Option<i64>, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let c = req(ins, 1, "condition")?;
    if c.rank() != 1 {
        return Err(format!("condition must be 1-D, got shape {:?}", c.shape()));
    }
    let cond: Vec<bool> = c.to_f64_vec().iter().map(|&v| v != 0.0).collect();
    let (outer, len, inner, a) = match axis {
        None => (1, x.len(), 1, None),
        Some(ax) => {
            let a = norm_axis(ax, x.rank())?;
            let (o, l, i) = super::util::outer_axis_inner(x.shape(), a);
            (o, l, i, Some(a))
        }
    };
    if let Some(p) = cond.iter().skip(len).position(|&b| b) {
        return Err(format!(
            "condition entry {} is true but the axis has only {len} entries",
            len + p
        ));
    }
    let keep: Vec<usize> = (0..len.min(cond.len())).filter(|&i| cond[i]).collect();
    let mut idx = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in &keep {
            let base = (o * len + k) * inner;
            idx.extend(base..base + inner);
        }
    }
    let shape = match a {
        None => vec![keep.len()],
        Some(a) => {
            let mut s = x.shape().to_vec();
            s[a] = keep.len();
            s
        }
    };
    Ok(vec![take(x, &idx, shape)?])
}

/// Total order on f64 for Unique: NaNs equal each other and sort last; `-0 == 0`.
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The comparison keys of the `n` slices of `x` (`n × width` values), exact for integers.
enum Keys {
    Float(Vec<f64>),
    Int(Vec<i128>),
}

impl Keys {
    fn cmp(&self, width: usize, i: usize, j: usize) -> Ordering {
        let r = |k: usize| k * width..(k + 1) * width;
        match self {
            Keys::Float(v) => v[r(i)]
                .iter()
                .zip(&v[r(j)])
                .map(|(&a, &b)| cmp_f64(a, b))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
            Keys::Int(v) => v[r(i)].cmp(&v[r(j)]),
        }
    }
}

/// `x → y, indices, inverse_indices, counts` (the first `num_outputs` of them).
pub fn unique(
    axis: Option<i64>,
    sorted: bool,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let x = req(ins, 0, "X")?;
    // View x as [outer, n, inner]; slice k is x[:, k, :] (all of x's elements for axis None).
    let (outer, n, inner, a) = match axis {
        None => (1, x.len(), 1, None),
        Some(ax) => {
            let a = norm_axis(ax, x.rank())?;
            let (o, l, i) = super::util::outer_axis_inner(x.shape(), a);
            (o, l, i, Some(a))
        }
    };
    let width = outer * inner;
    // Gather each slice's elements contiguously (slice-major).
    let mut perm = Vec::with_capacity(x.len());
    for k in 0..n {
        for o in 0..outer {
            let base = (o * n + k) * inner;
            perm.extend(base..base + inner);
        }
    }
    let keys = match to_i128_vec(x) {
        Some(v) => Keys::Int(perm.iter().map(|&i| v[i]).collect()),
        None => {
            let v = x.to_f64_vec();
            Keys::Float(perm.iter().map(|&i| v[i]).collect())
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| keys.cmp(width, i, j).then(i.cmp(&j)));
    // Groups of equal slices in sorted order: (first index, count).
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_of = vec![0usize; n];
    for (p, &i) in order.iter().enumerate() {
        if p == 0 || keys.cmp(width, order[p - 1], i).is_ne() {
            groups.push((i, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[i] = g;
    }
    // Output position of each group.
    let mut rank_of: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        let mut by_first: Vec<usize> = (0..groups.len()).collect();
        by_first.sort_by_key(|&g| groups[g].0);
        for (pos, &g) in by_first.iter().enumerate() {
            rank_of[g] = pos;
        }
    }
    let u = groups.len();
    let mut firsts = vec![0i64; u];
    let mut counts = vec![0i64; u];
    for (g, &(first, count)) in groups.iter().enumerate() {
        firsts[rank_of[g]] = first as i64;
        counts[rank_of[g]] = count as i64;
    }
    let inverse: Vec<i64> = (0..n).map(|i| rank_of[group_of[i]] as i64).collect();
    let mut idx = Vec::with_capacity(u * width);
    for o in 0..outer {
        for &f in &firsts {
            let base = (o * n + f as usize) * inner;
            idx.extend(base..base + inner);
        }
    }
    let shape = match a {
        None => vec![u],
        Some(a) => {
            let mut s = x.shape().to_vec();
            s[a] = u;
            s
        }
    };
    let mut outs = vec![take(x, &idx, shape)?];
    if num_outputs > 1 {
        outs.push(Tensor::from_vec(vec![u], firsts));
    }
    if num_outputs > 2 {
        outs.push(Tensor::from_vec(vec![n], inverse));
    }
    if num_outputs > 3 {
        outs.push(Tensor::from_vec(vec![u], counts));
    }
    Ok(outs)
}

/// `input, sequence_lens → y`: for batch `b`, steps `0..len[b]` along `time_axis` are
/// reversed; later steps are copied.
pub fn reverse_sequence(batch_axis: i64, time_axis: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let lens = int_values(req(ins, 1, "sequence_lens")?, "sequence_lens")?;
    if x.rank() < 2 {
        return Err(format!("input must have rank >= 2, got {:?}", x.shape()));
    }
    let (b, t) = (
        norm_axis(batch_axis, x.rank())?,
        norm_axis(time_axis, x.rank())?,
    );
    if b == t {
        return Err(format!("batch_axis and time_axis are both {b}"));
    }
    let (nb, nt) = (x.shape()[b], x.shape()[t]);
    if lens.len() != nb {
        return Err(format!(
            "sequence_lens has {} entries but the batch axis has {nb}",
            lens.len()
        ));
    }
    if let Some(&l) = lens.iter().find(|&&l| l < 0 || l as u64 > nt as u64) {
        return Err(format!("sequence length {l} is out of range 0..={nt}"));
    }
    let xs = strides(x.shape());
    let mut idx = Vec::with_capacity(x.len());
    for flat in 0..x.len() {
        let mut pos = unravel(flat, x.shape());
        let len = lens[pos[b]] as usize;
        if pos[t] < len {
            pos[t] = len - 1 - pos[t];
        }
        idx.push(pos.iter().zip(&xs).map(|(p, s)| p * s).sum());
    }
    Ok(vec![take(x, &idx, x.shape().to_vec())?])
}

#[cfg(test)]
#[path = "index_norm_tests.rs"]
mod tests;
