//! Shared helpers of the evaluator: numpy broadcasting, strides, axis normalisation,
//! multi-index iteration and dtype-generic element access.

use crate::{DType, Element, Tensor, TensorData};
use half::{bf16, f16};

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Numpy multidirectional broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    broadcast_all(&[a, b])
}

/// Numpy multidirectional broadcast of any number of shapes.
pub fn broadcast_all(shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {shapes:?} cannot be broadcast together"));
            }
        }
    }
    Ok(out)
}

/// For every element of `out_shape` (row-major), the flat index of the element of a
/// tensor of shape `in_shape` that broadcasts to it. `in_shape` must broadcast to
/// `out_shape` (checked).
pub fn broadcast_index_map(in_shape: &[usize], out_shape: &[usize]) -> Result<Vec<usize>, String> {
    if in_shape.len() > out_shape.len() {
        return Err(format!(
            "shape {in_shape:?} cannot broadcast to {out_shape:?}"
        ));
    }
    let off = out_shape.len() - in_shape.len();
    let in_strides = strides(in_shape);
    // Stride of each output axis in the input (0 where the input is broadcast).
    let mut bs = vec![0usize; out_shape.len()];
    for (i, &d) in in_shape.iter().enumerate() {
        let o = out_shape[off + i];
        if d == o {
            bs[off + i] = in_strides[i];
        } else if d != 1 {
            return Err(format!(
                "shape {in_shape:?} cannot broadcast to {out_shape:?}"
            ));
        }
    }
    let n: usize = out_shape.iter().product();
    let mut map = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_shape.len()];
    let mut flat = 0usize;
    for _ in 0..n {
        map.push(flat);
        // Increment the multi-index, updating the input offset incrementally.
        for ax in (0..out_shape.len()).rev() {
            idx[ax] += 1;
            flat += bs[ax];
            if idx[ax] < out_shape[ax] {
                break;
            }
            flat -= bs[ax] * idx[ax];
            idx[ax] = 0;
        }
    }
    Ok(map)
}

/// Normalises a possibly negative axis against `rank` (`-1` is the last axis).
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Normalises a list of axes; duplicates are an error.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// The multi-index of flat (row-major) position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0usize; shape.len()];
    for i in (0..shape.len()).rev() {
        if shape[i] > 0 {
            idx[i] = flat % shape[i];
            flat /= shape[i];
        }
    }
    idx
}

/// Advances a row-major multi-index within `shape`; returns false after the last one.
pub fn next_index(idx: &mut [usize], shape: &[usize]) -> bool {
    for ax in (0..shape.len()).rev() {
        idx[ax] += 1;
        if idx[ax] < shape[ax] {
            return true;
        }
        idx[ax] = 0;
    }
    false
}

/// Splits `shape` around `axis` into (outer, len, inner) element counts.
pub fn outer_axis_inner(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Reads the first element of a tensor as i64 (for scalar inputs such as `k` or `axis`).
pub fn scalar_i64(t: &Tensor, what: &str) -> Result<i64, String> {
    if t.len() != 1 {
        return Err(format!(
            "{what} must hold exactly one element, got shape {:?}",
            t.shape()
        ));
    }
    Ok(t.to_i64_vec()[0])
}

/// Rounds half to even (numpy `round`, `rint`).
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// Rounds an f64 to the precision of float dtype `dt` (identity for f64 and non-floats).
pub fn round_to(dt: DType, x: f64) -> f64 {
    match dt {
        DType::F32 => x as f32 as f64,
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        _ => x,
    }
}

/// Builds a float tensor of `dtype` (f32, f64, f16 or bf16) from f64 values, rounding.
pub fn float_tensor(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor, String> {
    if !dtype.is_float() {
        return Err(format!("expected a floating-point dtype, got {dtype}"));
    }
    Ok(Tensor::from_f64(dtype, shape, v))
}

/// Applies `f` (computed in f64) to every element of a floating-point tensor, keeping its
/// dtype. Integer or bool inputs are an error.
pub fn map_float(t: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor, String> {
    fn go<T: Element>(v: &[T], f: &dyn Fn(f64) -> f64) -> TensorData {
        T::wrap(v.iter().map(|x| T::from_f64(f(x.to_f64()))).collect())
    }
    let data = match t.data() {
        TensorData::F32(v) => go(v, &f),
        TensorData::F64(v) => go(v, &f),
        TensorData::F16(v) => go::<f16>(v, &f),
        TensorData::BF16(v) => go::<bf16>(v, &f),
        _ => {
            return Err(format!(
                "expected a floating-point input, got {}",
                t.dtype()
            ))
        }
    };
    Tensor::new(t.shape().to_vec(), data).map_err(|e| e.to_string())
}

/// Collects the elements at `idx` of `v` (a gather by flat index).
pub fn gather_flat<T: Copy>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i]).collect()
}

/// Every element of an integer or bool tensor as i128 (exact for all of them, u64 included);
/// `None` for floating-point tensors.
pub fn to_i128_vec(t: &Tensor) -> Option<Vec<i128>> {
    macro_rules! conv {
        ($v:expr) => {
            Some($v.iter().map(|&x| x as i128).collect())
        };
    }
    match t.data() {
        TensorData::I8(v) => conv!(v),
        TensorData::U8(v) => conv!(v),
        TensorData::I16(v) => conv!(v),
        TensorData::U16(v) => conv!(v),
        TensorData::I32(v) => conv!(v),
        TensorData::U32(v) => conv!(v),
        TensorData::I64(v) => conv!(v),
        TensorData::U64(v) => conv!(v),
        TensorData::Bool(v) => Some(v.iter().map(|&x| x as i128).collect()),
        _ => None,
    }
}

/// Builds an integer (or bool) tensor from i128 values, wrapping like numpy (`as` casts).
pub fn int_tensor(dtype: DType, shape: Vec<usize>, v: &[i128]) -> Result<Tensor, String> {
    macro_rules! conv {
        ($t:ty) => {
            <$t as Element>::wrap(v.iter().map(|&x| x as $t).collect())
        };
    }
    let data = match dtype {
        DType::I8 => conv!(i8),
        DType::U8 => conv!(u8),
        DType::I16 => conv!(i16),
        DType::U16 => conv!(u16),
        DType::I32 => conv!(i32),
        DType::U32 => conv!(u32),
        DType::I64 => conv!(i64),
        DType::U64 => conv!(u64),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0).collect()),
        _ => return Err(format!("expected an integer dtype, got {dtype}")),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// The same elements picked by flat index `idx` (broadcast or gather), any dtype.
pub fn gather_tensor(t: &Tensor, shape: Vec<usize>, idx: &[usize]) -> Result<Tensor, String> {
    let len = t.len();
    if idx.iter().any(|&i| i >= len) {
        return Err("gather index out of range".into());
    }
    let data = crate::dispatch_data!(t.data(), v => Element::wrap(gather_flat(v, idx)));
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Broadcasts `t` to `shape` (numpy rules).
pub fn broadcast_to(t: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    if t.shape() == shape {
        return Ok(t.clone());
    }
    let map = broadcast_index_map(t.shape(), shape)?;
    gather_tensor(t, shape.to_vec(), &map)
}

/// Picks `a[i]` where `cond[i]` and `b[i]` elsewhere; `a` and `b` must share dtype and
/// hold `cond.len()` elements.
pub fn select_tensor(cond: &[bool], a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    fn pick<T: Copy>(c: &[bool], a: &[T], b: &[T]) -> Vec<T> {
        c.iter()
            .zip(a.iter().zip(b))
            .map(|(&c, (&x, &y))| if c { x } else { y })
            .collect()
    }
    if a.len() != cond.len() || b.len() != cond.len() {
        return Err("select: length mismatch".into());
    }
    macro_rules! arms {
        ($($var:ident),*) => {
            match (a.data(), b.data()) {
                $((TensorData::$var(x), TensorData::$var(y)) => TensorData::$var(pick(cond, x, y)),)*
                _ => return Err(format!("dtypes differ: {} and {}", a.dtype(), b.dtype())),
            }
        };
    }
    let data = arms!(F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool);
    Tensor::new(a.shape().to_vec(), data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shapes_numpy_rules() {
        assert_eq!(
            broadcast_shapes(&[2, 1, 4], &[3, 1]).unwrap(),
            vec![2, 3, 4]
        );
        assert_eq!(broadcast_shapes(&[], &[5]).unwrap(), vec![5]);
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 3]).unwrap(), vec![0, 3]);
        assert!(broadcast_shapes(&[2, 3], &[3, 2]).is_err());
    }

    #[test]
    fn index_map_repeats_broadcast_axes() {
        // [2,1] -> [2,3]: rows repeat.
        assert_eq!(
            broadcast_index_map(&[2, 1], &[2, 3]).unwrap(),
            vec![0, 0, 0, 1, 1, 1]
        );
        // [3] -> [2,3]: the vector repeats per row.
        assert_eq!(
            broadcast_index_map(&[3], &[2, 3]).unwrap(),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_eq!(broadcast_index_map(&[], &[2]).unwrap(), vec![0, 0]);
        assert!(broadcast_index_map(&[2], &[3]).is_err());
    }

    #[test]
    fn axes_and_indices() {
        assert_eq!(norm_axis(-1, 3).unwrap(), 2);
        assert!(norm_axis(3, 3).is_err());
        assert!(norm_axes(&[0, -3], 3).is_err());
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(unravel(4, &[2, 3]), vec![1, 1]);
        let mut i = vec![0, 2];
        assert!(next_index(&mut i, &[2, 3]));
        assert_eq!(i, vec![1, 0]);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(-1.5), -2.0);
    }
}
