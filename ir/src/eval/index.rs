//! Dtype-generic element movement for the evaluator: build a tensor from flat source
//! indices (with an optional fill value), concatenate typed buffers, and read small
//! integer inputs (shapes, axes, pads) with validation.

use crate::{dispatch_data, Element, Tensor, TensorData};

fn wrap<T: Element>(v: Vec<T>) -> TensorData {
    T::wrap(v)
}

/// A tensor of `shape` whose element `i` is `t`'s flat element `idx[i]`. Every index must
/// be in range (callers build them from validated shapes); out-of-range is an error.
pub fn take(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> Result<Tensor, String> {
    let len = t.len();
    if let Some(&bad) = idx.iter().find(|&&i| i >= len) {
        return Err(format!(
            "internal: source index {bad} out of range for {len} elements"
        ));
    }
    let data = dispatch_data!(t.data(), v => wrap(idx.iter().map(|&i| v[i]).collect()));
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Like [`take`], but `None` positions get `fill`'s first element (`fill` must have the
/// dtype of `t` and at least one element).
pub fn take_or(
    t: &Tensor,
    idx: &[Option<usize>],
    fill: &Tensor,
    shape: Vec<usize>,
) -> Result<Tensor, String> {
    fn go<T: Element>(
        v: &[T],
        idx: &[Option<usize>],
        fill: &TensorData,
    ) -> Result<TensorData, String> {
        let f = T::unwrap(fill)
            .and_then(|f| f.first().copied())
            .ok_or("fill value has the wrong dtype or is empty")?;
        let mut out = Vec::with_capacity(idx.len());
        for i in idx {
            match i {
                Some(i) => out.push(*v.get(*i).ok_or("internal: source index out of range")?),
                None => out.push(f),
            }
        }
        Ok(T::wrap(out))
    }
    let data = dispatch_data!(t.data(), v => go(v, idx, fill.data())?);
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Concatenates the flat element lists of `parts` following `plan`: each entry is
/// `(part, start, count)` and copies `count` elements of part `part` from `start`.
/// All parts must share the dtype of the first one.
pub fn gather_parts(
    parts: &[&Tensor],
    plan: &[(usize, usize, usize)],
    shape: Vec<usize>,
) -> Result<Tensor, String> {
    fn go<T: Element>(
        first: &[T],
        parts: &[&Tensor],
        plan: &[(usize, usize, usize)],
    ) -> Result<TensorData, String> {
        let mut bufs: Vec<&[T]> = Vec::with_capacity(parts.len());
        bufs.push(first);
        for p in &parts[1..] {
            let v = p.as_slice::<T>().ok_or_else(|| {
                format!("all inputs must have dtype {}, got {}", T::DTYPE, p.dtype())
            })?;
            bufs.push(v);
        }
        let mut out = Vec::new();
        for &(p, start, count) in plan {
            let src = bufs
                .get(p)
                .and_then(|b| b.get(start..start + count))
                .ok_or("internal: copy range out of bounds")?;
            out.extend_from_slice(src);
        }
        Ok(T::wrap(out))
    }
    let first = parts.first().ok_or("no inputs")?;
    let data = dispatch_data!(first.data(), v => go(v, parts, plan)?);
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// A tensor of `shape` filled with `value`'s first element (keeping its dtype).
pub fn filled(value: &Tensor, shape: Vec<usize>) -> Result<Tensor, String> {
    let n: usize = shape.iter().product();
    let data = dispatch_data!(value.data(), v => {
        let x = *v.first().ok_or("the fill value is empty")?;
        wrap(vec![x; n])
    });
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// The integer elements of a 0-D or 1-D integer tensor (shapes, axes, pads, repeats).
pub fn int_list(t: &Tensor, what: &str) -> Result<Vec<i64>, String> {
    if !t.dtype().is_int() {
        return Err(format!(
            "{what} must be an integer tensor, got {}",
            t.dtype()
        ));
    }
    if t.rank() > 1 {
        return Err(format!(
            "{what} must be 0-D or 1-D, got shape {:?}",
            t.shape()
        ));
    }
    Ok(t.to_i64_vec())
}

/// Converts a list of non-negative i64 to sizes.
pub fn to_sizes(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("{what} has a negative entry {d} in {v:?}"))
        })
        .collect()
}

/// Normalises an index that may be negative (counting from the end) against `len`.
pub fn wrap_index(i: i64, len: usize, what: &str) -> Result<usize, String> {
    let n = len as i64;
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return Err(format!("{what} index {i} is out of range for size {len}"));
    }
    Ok(j as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_fill_keep_dtype() {
        let t = Tensor::from_vec(vec![3], vec![10i8, 20, 30]);
        let y = take(&t, &[2, 0], vec![2]).unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), &[30, 10]);
        assert!(take(&t, &[3], vec![1]).is_err());
        let f = Tensor::scalar(7i8);
        let y = take_or(&t, &[None, Some(1)], &f, vec![2]).unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), &[7, 20]);
        let y = filled(&Tensor::scalar(true), vec![2, 1]).unwrap();
        assert_eq!(y.as_slice::<bool>().unwrap(), &[true, true]);
    }

    #[test]
    fn parts_and_indices() {
        let a = Tensor::from_vec(vec![2], vec![1u16, 2]);
        let b = Tensor::from_vec(vec![1], vec![3u16]);
        let y = gather_parts(&[&a, &b], &[(1, 0, 1), (0, 0, 2)], vec![3]).unwrap();
        assert_eq!(y.as_slice::<u16>().unwrap(), &[3, 1, 2]);
        let c = Tensor::from_vec(vec![1], vec![3u32]);
        assert!(gather_parts(&[&a, &c], &[(0, 0, 2)], vec![2]).is_err());
        assert_eq!(wrap_index(-1, 4, "x").unwrap(), 3);
        assert!(wrap_index(4, 4, "x").is_err());
        assert!(to_sizes(&[1, -1], "shape").is_err());
    }
}
