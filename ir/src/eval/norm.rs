//! Normalizations: BatchNormalization (inference), LayerNormalization, RMSNormalization,
//! Softmax, LogSoftmax. Statistics accumulate in f64; results round to the input dtype.

use super::util::{broadcast_to, float_tensor, norm_axis, outer_axis_inner};
use super::{opt, req, OpResult};
use crate::*;

fn need_float(t: &Tensor, what: &str) -> Result<(), String> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(format!("{what} must be floating point, got {}", t.dtype()))
    }
}

/// `y = scale · (x − mean) / √(var + ε) + bias`, parameters per channel (axis 1).
pub fn batch_norm(epsilon: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    need_float(x, "X")?;
    if x.rank() < 2 {
        return Err(format!("X must have rank ≥ 2, got {:?}", x.shape()));
    }
    let c = x.shape()[1];
    let mut params = Vec::new();
    for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        let t = req(ins, i, what)?;
        if t.len() != c {
            return Err(format!(
                "{what} has {} elements but X has {c} channels",
                t.len()
            ));
        }
        params.push(t.to_f64_vec());
    }
    let (s, b, m, v) = (&params[0], &params[1], &params[2], &params[3]);
    let inner: usize = x.shape()[2..].iter().product();
    let eps = epsilon as f64;
    let xv = x.to_f64_vec();
    let out: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &val)| {
            let ch = (i / inner.max(1)) % c.max(1);
            s[ch] * (val - m[ch]) / (v[ch] + eps).sqrt() + b[ch]
        })
        .collect();
    Ok(vec![float_tensor(x.dtype(), x.shape().to_vec(), &out)?])
}

/// Mean and variance of each of the `rows` rows of `cols` values when `x` is seen as
/// `[prod(shape[..axis]), rest]`. A row of no values has NaN statistics, as numpy's mean
/// over an empty axis in the ONNX reference.
fn row_stats(xv: &[f64], rows: usize, cols: usize) -> Vec<(f64, f64)> {
    (0..rows)
        .map(|r| {
            let row = &xv[r * cols..(r + 1) * cols];
            let n = cols as f64;
            let mean = row.iter().sum::<f64>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            (mean, var)
        })
        .collect()
}

pub fn layer_norm(
    axis: i64,
    epsilon: f32,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let x = req(ins, 0, "X")?;
    need_float(x, "X")?;
    let scale = req(ins, 1, "Scale")?;
    let ax = norm_axis(axis, x.rank())?;
    let shape = x.shape().to_vec();
    let cols: usize = shape[ax..].iter().product();
    let w = broadcast_to(scale, &shape)?.to_f64_vec();
    let b = match opt(ins, 2) {
        Some(b) => Some(broadcast_to(b, &shape)?.to_f64_vec()),
        None => None,
    };
    let xv = x.to_f64_vec();
    let rows: usize = shape[..ax].iter().product();
    let stats = row_stats(&xv, rows, cols);
    let eps = epsilon as f64;
    let mut y = Vec::with_capacity(xv.len());
    for (i, &v) in xv.iter().enumerate() {
        let (mean, var) = stats[i / cols.max(1)];
        let mut r = (v - mean) / (var + eps).sqrt() * w[i];
        if let Some(b) = &b {
            r += b[i];
        }
        y.push(r);
    }
    let dt = x.dtype();
    let mut outs = vec![float_tensor(dt, shape.clone(), &y)?];
    if num_outputs > 1 {
        let mut red_shape = shape[..ax].to_vec();
        red_shape.resize(shape.len(), 1);
        let means: Vec<f64> = stats.iter().map(|s| s.0).collect();
        let inv: Vec<f64> = stats.iter().map(|s| 1.0 / (s.1 + eps).sqrt()).collect();
        outs.push(float_tensor(dt, red_shape.clone(), &means)?);
        if num_outputs > 2 {
            outs.push(float_tensor(dt, red_shape, &inv)?);
        }
    }
    Ok(outs)
}

/// `y = x / √(mean(x², axes ≥ axis) + ε) · scale`.
pub fn rms_norm(axis: i64, epsilon: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    need_float(x, "X")?;
    let scale = req(ins, 1, "scale")?;
    let ax = norm_axis(axis, x.rank())?;
    let shape = x.shape().to_vec();
    let cols: usize = shape[ax..].iter().product();
    let w = broadcast_to(scale, &shape)?.to_f64_vec();
    let xv = x.to_f64_vec();
    let eps = epsilon as f64;
    let mut y = Vec::with_capacity(xv.len());
    for (r, row) in xv.chunks(cols.max(1)).enumerate() {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (j, &v) in row.iter().enumerate() {
            y.push(v * inv * w[r * cols + j]);
        }
    }
    Ok(vec![float_tensor(x.dtype(), shape, &y)?])
}

/// Softmax (or its log) of `len` values spaced `stride` apart starting at `base`.
fn softmax_line(xv: &[f64], out: &mut [f64], base: usize, len: usize, stride: usize, log: bool) {
    let max = (0..len)
        .map(|j| xv[base + j * stride])
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = (0..len).map(|j| (xv[base + j * stride] - max).exp()).sum();
    for j in 0..len {
        let d = xv[base + j * stride] - max;
        out[base + j * stride] = if log { d - sum.ln() } else { d.exp() / sum };
    }
}

/// Softmax / LogSoftmax along `axis`; with `coerce_2d` (opset < 13) the input is seen as a
/// 2-D matrix `[prod(shape[..axis]), prod(shape[axis..])]` and each row is normalised.
pub fn softmax(axis: i64, coerce_2d: bool, log: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    need_float(x, "input")?;
    let shape = x.shape().to_vec();
    if x.is_empty() {
        return Ok(vec![x.clone()]);
    }
    let xv = x.to_f64_vec();
    let mut out = vec![0.0; xv.len()];
    if coerce_2d {
        // Opset < 13 allows axis == rank (a single column per row).
        let r = shape.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a > r {
            return Err(format!("axis {axis} is out of range for rank {r}"));
        }
        let cols: usize = shape[a as usize..].iter().product();
        for row in 0..xv.len() / cols {
            softmax_line(&xv, &mut out, row * cols, cols, 1, log);
        }
    } else {
        let ax = norm_axis(axis, shape.len())?;
        let (outer, len, inner) = outer_axis_inner(&shape, ax);
        for o in 0..outer {
            for i in 0..inner {
                softmax_line(&xv, &mut out, o * len * inner + i, len, inner, log);
            }
        }
    }
    Ok(vec![float_tensor(x.dtype(), shape, &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn softmax_coerce_2d_normalises_flattened_rows() {
        // Shape [1,2,2], axis 1: one row of 4 values under coerce_2d, but per-axis
        // (opset 13) normalises pairs along axis 1.
        let x = Tensor::from_vec(vec![1, 2, 2], vec![0.0f32, 0.0, 0.0, 0.0]);
        let y = softmax(1, true, false, &[Some(&x)]).unwrap().remove(0);
        assert!(close(y.as_slice::<f32>().unwrap(), &[0.25; 4]));
        let y = softmax(1, false, false, &[Some(&x)]).unwrap().remove(0);
        assert!(close(y.as_slice::<f32>().unwrap(), &[0.5; 4]));
        let l = softmax(-1, false, true, &[Some(&x)]).unwrap().remove(0);
        assert!(close(
            l.as_slice::<f32>().unwrap(),
            &[-std::f32::consts::LN_2; 4]
        ));
    }

    #[test]
    fn layer_norm_outputs_mean_and_inv_std() {
        let x = Tensor::from_vec(vec![1, 2], vec![1.0f32, 3.0]);
        let s = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]);
        let outs = layer_norm(-1, 0.0, &[Some(&x), Some(&s)], 3).unwrap();
        assert!(close(outs[0].as_slice::<f32>().unwrap(), &[-1.0, 2.0]));
        assert_eq!(outs[1].shape(), &[1, 1]);
        assert!(close(outs[1].as_slice::<f32>().unwrap(), &[2.0]));
        assert!(close(outs[2].as_slice::<f32>().unwrap(), &[1.0]));
    }

    #[test]
    fn layer_norm_stats_of_empty_rows_are_nan() {
        // [2, 0] over axis 1: two rows of no values; [0] over axis 0: one such row.
        for (shape, stats_shape) in [(vec![2, 0], vec![2, 1]), (vec![0], vec![1])] {
            let x = Tensor::from_vec(shape.clone(), Vec::<f32>::new());
            let s = Tensor::from_vec(vec![0], Vec::<f32>::new());
            let outs = layer_norm(-1, 1e-5, &[Some(&x), Some(&s)], 3).unwrap();
            assert_eq!(outs[0].shape(), &shape[..]);
            for t in &outs[1..] {
                assert_eq!(t.shape(), &stats_shape[..]);
                assert!(t.as_slice::<f32>().unwrap().iter().all(|v| v.is_nan()));
            }
        }
    }

    #[test]
    fn rms_and_batch_norm() {
        let x = Tensor::from_vec(vec![1, 2], vec![3.0f32, 4.0]);
        let s = Tensor::from_vec(vec![1], vec![2.0f32]);
        let y = rms_norm(-1, 0.0, &[Some(&x), Some(&s)]).unwrap().remove(0);
        // rms = sqrt((9+16)/2) = 3.5355
        assert!(close(
            y.as_slice::<f32>().unwrap(),
            &[1.697_056_3, 2.262_741_7]
        ));
        let x = Tensor::from_vec(vec![1, 2, 1], vec![1.0f32, 1.0]);
        let p = |v: [f32; 2]| Tensor::from_vec(vec![2], v.to_vec());
        let (sc, b, m, v) = (p([1.0, 2.0]), p([0.0, 1.0]), p([0.0, 1.0]), p([1.0, 4.0]));
        let y = batch_norm(0.0, &[Some(&x), Some(&sc), Some(&b), Some(&m), Some(&v)])
            .unwrap()
            .remove(0);
        assert!(close(y.as_slice::<f32>().unwrap(), &[1.0, 1.0]));
    }
}
