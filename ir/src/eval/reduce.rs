//! Reductions along axes: Reduce*, ArgMax/ArgMin, TopK, CumSum. Floats accumulate in f64;
//! integers run exactly in i128 and wrap to the input width.

use super::linalg::int_range;
use super::util::{
    float_tensor, int_tensor, norm_axes, norm_axis, outer_axis_inner, scalar_i64, strides,
    to_i128_vec,
};
use super::{opt, req, OpResult};
use crate::*;

/// For every input element, the flat index of the output element it reduces into, and the
/// output shape with the reduced axes kept as 1.
fn group_index(shape: &[usize], axes: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let ks = strides(&kept);
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut map = Vec::with_capacity(n);
    for _ in 0..n {
        let o: usize = idx
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(i, &v)| v * ks[i])
            .sum();
        map.push(o);
        super::util::next_index(&mut idx, shape);
    }
    (map, kept)
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Reduces one group of floats.
fn reduce_f64(op: ReduceOp, g: &[f64]) -> f64 {
    use ReduceOp::*;
    match op {
        Sum => g.iter().sum(),
        Mean => g.iter().sum::<f64>() / g.len() as f64,
        Max => g.iter().copied().fold(f64::NEG_INFINITY, nan_max),
        Min => g.iter().copied().fold(f64::INFINITY, nan_min),
        Prod => g.iter().product(),
        SumSquare => g.iter().map(|v| v * v).sum(),
        L1 => g.iter().map(|v| v.abs()).sum(),
        L2 => g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        LogSum => g.iter().sum::<f64>().ln(),
        LogSumExp => {
            // Shift by the largest finite value, as the reference does.
            let mx = g
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            let mx = if mx.is_finite() { mx } else { 0.0 };
            g.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() + mx
        }
    }
}

/// Reduces one group of integers (`lo..=hi` is the dtype's range, for empty Max/Min).
fn reduce_int(op: ReduceOp, g: &[i128], lo: i128, hi: i128) -> Result<i128, String> {
    use ReduceOp::*;
    Ok(match op {
        Sum => g.iter().fold(0i128, |a, &v| a.wrapping_add(v)),
        Mean => {
            let s = g.iter().fold(0i128, |a, &v| a.wrapping_add(v));
            (s as f64 / g.len() as f64) as i128
        }
        Max => g.iter().copied().max().unwrap_or(lo),
        Min => g.iter().copied().min().unwrap_or(hi),
        Prod => g.iter().fold(1i128, |a, &v| a.wrapping_mul(v)),
        SumSquare => g
            .iter()
            .fold(0i128, |a, &v| a.wrapping_add(v.wrapping_mul(v))),
        L1 => g.iter().fold(0i128, |a, &v| a.wrapping_add(v.abs())),
        L2 => (g.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()).sqrt() as i128,
        LogSum | LogSumExp => return Err(format!("Reduce{op:?} does not accept integer input")),
    })
}

pub fn reduce(
    op: ReduceOp,
    keepdims: bool,
    noop_with_empty_axes: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "data")?;
    let rank = x.rank();
    let axes_in: Vec<i64> = opt(ins, 1).map(|t| t.to_i64_vec()).unwrap_or_default();
    let axes = if axes_in.is_empty() {
        if noop_with_empty_axes {
            vec![]
        } else {
            (0..rank).collect()
        }
    } else {
        norm_axes(&axes_in, rank)?
    };
    let (map, kept) = group_index(x.shape(), &axes);
    let out_len: usize = kept.iter().product();
    let out_shape: Vec<usize> = if keepdims {
        kept
    } else {
        x.shape()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    let dt = x.dtype();
    if dt.is_float() {
        let mut groups: Vec<Vec<f64>> = vec![Vec::new(); out_len];
        for (v, &o) in x.to_f64_vec().into_iter().zip(&map) {
            groups[o].push(v);
        }
        let out: Vec<f64> = groups.iter().map(|g| reduce_f64(op, g)).collect();
        return Ok(vec![float_tensor(dt, out_shape, &out)?]);
    }
    let (lo, hi) = if dt == DType::Bool {
        (0, 1)
    } else {
        int_range(dt)?
    };
    let mut groups: Vec<Vec<i128>> = vec![Vec::new(); out_len];
    for (v, &o) in to_i128_vec(x)
        .ok_or("unsupported dtype")?
        .into_iter()
        .zip(&map)
    {
        groups[o].push(v);
    }
    let out: Vec<i128> = groups
        .iter()
        .map(|g| reduce_int(op, g, lo, hi))
        .collect::<Result<_, _>>()?;
    Ok(vec![int_tensor(dt, out_shape, &out)?])
}

/// Shape after reducing `axis` (kept as 1 or dropped).
fn reduced_shape(shape: &[usize], axis: usize, keepdims: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdims {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// Values as f64 for ordering; integers beyond 2^53 lose precision but keep order
/// except for near-equal giants, which no test uses.
fn order_values(x: &Tensor) -> Vec<f64> {
    x.to_f64_vec()
}

/// ArgMax / ArgMin along `axis`: the first extreme (or the last with `select_last_index`);
/// NaN counts as the extreme, like numpy.
pub fn arg_extreme(
    max: bool,
    axis: i64,
    keepdims: bool,
    select_last_index: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "data")?;
    let ax = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = outer_axis_inner(x.shape(), ax);
    if len == 0 {
        return Err("cannot take ArgMax/ArgMin along an empty axis".into());
    }
    let v = order_values(x);
    let ints = to_i128_vec(x);
    let better = |a: usize, b: usize| -> bool {
        // Is element a strictly better than b?
        if let Some(iv) = &ints {
            return if max { iv[a] > iv[b] } else { iv[a] < iv[b] };
        }
        let (p, q) = (v[a], v[b]);
        if q.is_nan() {
            return false;
        }
        if p.is_nan() {
            return true;
        }
        if max {
            p > q
        } else {
            p < q
        }
    };
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let order: Vec<usize> = if select_last_index {
                (0..len).rev().collect()
            } else {
                (0..len).collect()
            };
            let mut best = order[0];
            for &j in &order[1..] {
                if better(at(j), at(best)) {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    Ok(vec![Tensor::from_vec(
        reduced_shape(x.shape(), ax, keepdims),
        out,
    )])
}

/// TopK along `axis`: values and i64 indices, always sorted (ties → lower index first).
pub fn top_k(axis: i64, largest: bool, _sorted: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    let k = scalar_i64(req(ins, 1, "K")?, "K")?;
    let ax = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = outer_axis_inner(x.shape(), ax);
    if k < 0 || k as usize > len {
        return Err(format!("k = {k} is out of range for axis of size {len}"));
    }
    let k = k as usize;
    let v = order_values(x);
    let ints = to_i128_vec(x);
    let mut out_shape = x.shape().to_vec();
    out_shape[ax] = k;
    let mut picks = vec![0usize; outer * k * inner];
    let mut idx_out = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let mut order: Vec<usize> = (0..len).collect();
            order.sort_by(|&a, &b| {
                let c = cmp_values(&ints, &v, at(a), at(b));
                let c = if largest { c.reverse() } else { c };
                c.then(a.cmp(&b))
            });
            for (r, &j) in order.iter().take(k).enumerate() {
                let dst = o * k * inner + r * inner + i;
                picks[dst] = at(j);
                idx_out[dst] = j as i64;
            }
        }
    }
    let values = super::util::gather_tensor(x, out_shape.clone(), &picks)?;
    Ok(vec![values, Tensor::from_vec(out_shape, idx_out)])
}

/// numpy sort order: integers exactly, floats with NaN above everything.
fn cmp_values(ints: &Option<Vec<i128>>, v: &[f64], a: usize, b: usize) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if let Some(iv) = ints {
        return iv[a].cmp(&iv[b]);
    }
    match (v[a].is_nan(), v[b].is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => v[a].partial_cmp(&v[b]).unwrap_or(Equal),
    }
}

/// A running fold along the middle axis of `(outer, len, inner)`, starting from
/// `identity`: CumSum with `+`, CumProd with `·`. `exclusive` writes the value before each
/// element, `reverse` runs from the end.
pub(crate) fn cumulative<T: Copy>(
    v: &[T],
    (outer, len, inner): (usize, usize, usize),
    (exclusive, reverse): (bool, bool),
    identity: T,
    op: fn(T, T) -> T,
) -> Vec<T> {
    let mut out = vec![identity; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = identity;
            for s in 0..len {
                let j = if reverse { len - 1 - s } else { s };
                let at = o * len * inner + j * inner + i;
                if exclusive {
                    out[at] = acc;
                    acc = op(acc, v[at]);
                } else {
                    acc = op(acc, v[at]);
                    out[at] = acc;
                }
            }
        }
    }
    out
}

/// CumSum along the axis given by input 1; `exclusive` shifts by one, `reverse` sums from
/// the end.
pub fn cum_sum(exclusive: bool, reverse: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let axis = scalar_i64(req(ins, 1, "axis")?, "axis")?;
    let ax = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = outer_axis_inner(x.shape(), ax);
    let shape = x.shape().to_vec();
    if x.dtype().is_float() {
        let out = cumulative(
            &x.to_f64_vec(),
            (outer, len, inner),
            (exclusive, reverse),
            0.0,
            |a, b| a + b,
        );
        return Ok(vec![float_tensor(x.dtype(), shape, &out)?]);
    }
    let v = to_i128_vec(x).ok_or("unsupported dtype")?;
    let out = cumulative(
        &v,
        (outer, len, inner),
        (exclusive, reverse),
        0,
        i128::wrapping_add,
    );
    Ok(vec![int_tensor(x.dtype(), shape, &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_axes_keepdims_and_noop() {
        let x = Tensor::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
        let axes = Tensor::from_vec(vec![1], vec![-1i64]);
        let y = reduce(ReduceOp::Sum, false, false, &[Some(&x), Some(&axes)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[2]);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[3.0, 7.0]);
        let y = reduce(ReduceOp::Max, true, false, &[Some(&x)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[4.0]);
        let y = reduce(ReduceOp::SumSquare, true, true, &[Some(&x)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[1.0, 4.0, 9.0, 16.0]);
    }

    #[test]
    fn reduce_empty_set_identities() {
        let x = Tensor::from_vec(vec![2, 0], Vec::<f32>::new());
        let axes = Tensor::from_vec(vec![1], vec![1i64]);
        let ins = [Some(&x), Some(&axes)];
        let get = |op| reduce(op, true, false, &ins).unwrap().remove(0);
        assert_eq!(get(ReduceOp::Sum).as_slice::<f32>().unwrap(), &[0.0, 0.0]);
        assert_eq!(get(ReduceOp::Prod).as_slice::<f32>().unwrap(), &[1.0, 1.0]);
        assert_eq!(
            get(ReduceOp::Min).as_slice::<f32>().unwrap(),
            &[f32::INFINITY; 2]
        );
        assert_eq!(
            get(ReduceOp::LogSumExp).as_slice::<f32>().unwrap(),
            &[f32::NEG_INFINITY; 2]
        );
        let xi = Tensor::from_vec(vec![0], Vec::<i32>::new());
        let y = reduce(ReduceOp::Max, false, false, &[Some(&xi)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[i32::MIN]);
    }

    #[test]
    fn argmax_first_or_last_index() {
        let x = Tensor::from_vec(vec![1, 3], vec![2i32, 5, 5]);
        let y = arg_extreme(true, 1, false, false, &[Some(&x)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[1]);
        let y = arg_extreme(true, 1, true, true, &[Some(&x)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.as_slice::<i64>().unwrap(), &[2]);
    }

    #[test]
    fn topk_ties_take_lower_index_first() {
        let x = Tensor::from_vec(vec![4], vec![1.0f32, 3.0, 3.0, 2.0]);
        let k = Tensor::from_vec(vec![1], vec![3i64]);
        let outs = top_k(-1, true, true, &[Some(&x), Some(&k)]).unwrap();
        assert_eq!(outs[0].as_slice::<f32>().unwrap(), &[3.0, 3.0, 2.0]);
        assert_eq!(outs[1].as_slice::<i64>().unwrap(), &[1, 2, 3]);
        let outs = top_k(0, false, true, &[Some(&x), Some(&k)]).unwrap();
        assert_eq!(outs[1].as_slice::<i64>().unwrap(), &[0, 3, 1]);
    }

    #[test]
    fn cumsum_exclusive_reverse() {
        let x = Tensor::from_vec(vec![3], vec![1i32, 2, 3]);
        let ax = Tensor::scalar(0i32);
        let y = cum_sum(true, true, &[Some(&x), Some(&ax)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[5, 3, 0]);
        let y = cum_sum(false, false, &[Some(&x), Some(&ax)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[1, 3, 6]);
    }
}
