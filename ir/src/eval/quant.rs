//! Quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked),
//! DynamicQuantizeLinear. Rounding is half to even and results saturate, as in the ONNX
//! reference; the float steps are rounded to the dtype numpy would compute them in.

use super::linalg::int_range;
use super::util::{int_tensor, norm_axis, round_to, strides, to_i128_vec};
use super::{opt, req, OpResult};
use crate::*;

/// For every element of `x_shape`, the flat index into a scale / zero-point tensor of
/// shape `p_shape`: one element (per tensor), a 1-D vector along `axis` (per axis), or,
/// with `block_size > 0`, `x_shape` with `axis` divided into blocks.
fn param_index(
    x_shape: &[usize],
    p_shape: &[usize],
    axis: i64,
    block_size: usize,
) -> Result<Vec<usize>, String> {
    let n: usize = x_shape.iter().product();
    let p_len: usize = p_shape.iter().product();
    if p_len == 1 {
        return Ok(vec![0; n]);
    }
    let ax = norm_axis(axis, x_shape.len())?;
    let xs = strides(x_shape);
    if block_size == 0 {
        if p_shape.len() != 1 || p_shape[0] != x_shape[ax] {
            return Err(format!(
                "per-axis scale/zero point has shape {p_shape:?} but axis {ax} of the input {x_shape:?} has {}",
                x_shape[ax]
            ));
        }
        return Ok((0..n).map(|i| (i / xs[ax]) % x_shape[ax]).collect());
    }
    let blocks = x_shape[ax].div_ceil(block_size);
    let ok = p_shape.len() == x_shape.len()
        && p_shape
            .iter()
            .zip(x_shape)
            .enumerate()
            .all(|(i, (&p, &d))| if i == ax { p == blocks } else { p == d });
    if !ok {
        return Err(format!(
            "blocked scale/zero point has shape {p_shape:?}; expected {x_shape:?} with axis {ax} = {blocks}"
        ));
    }
    let ps = strides(p_shape);
    Ok((0..n)
        .map(|i| {
            (0..x_shape.len())
                .map(|a| {
                    let c = (i / xs[a]) % x_shape[a];
                    let c = if a == ax { c / block_size } else { c };
                    c * ps[a]
                })
                .sum()
        })
        .collect())
}

/// The dtype numpy computes `a op b` in for two float dtypes.
fn promote(a: DType, b: DType) -> DType {
    if a == b {
        a
    } else if a == DType::F64 || b == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

pub fn quantize_linear(
    axis: i64,
    block_size: usize,
    output_dtype: Option<DType>,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "x")?;
    let scale = req(ins, 1, "y_scale")?;
    let zp = opt(ins, 2);
    if !x.dtype().is_float() || !scale.dtype().is_float() {
        return Err("QuantizeLinear needs floating-point x and y_scale".into());
    }
    let out_dt = match (zp, output_dtype) {
        (Some(z), Some(o)) if z.dtype() != o => {
            return Err(format!(
                "output_dtype {o} differs from the zero point's dtype {}",
                z.dtype()
            ))
        }
        (Some(z), _) => z.dtype(),
        (None, Some(o)) => o,
        (None, None) => DType::U8,
    };
    if !matches!(out_dt, DType::U8 | DType::I8 | DType::U16 | DType::I16) {
        return Err(format!("unsupported quantized type {out_dt}"));
    }
    let (lo, hi) = int_range(out_dt)?;
    let si = param_index(x.shape(), scale.shape(), axis, block_size)?;
    let sv = scale.to_f64_vec();
    let (zi, zv) = match zp {
        Some(z) => (
            param_index(x.shape(), z.shape(), axis, block_size)?,
            to_i128_vec(z).ok_or("zero point must be an integer tensor")?,
        ),
        None => (vec![0; x.len()], vec![0]),
    };
    let cdt = promote(x.dtype(), scale.dtype());
    let out: Vec<i128> = x
        .to_f64_vec()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let q = round_to(cdt, v / sv[si[i]]).round_ties_even();
            ((q as i128) + zv[zi[i]]).clamp(lo, hi)
        })
        .collect();
    Ok(vec![int_tensor(out_dt, x.shape().to_vec(), &out)?])
}

pub fn dequantize_linear(axis: i64, block_size: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let scale = req(ins, 1, "x_scale")?;
    let zp = opt(ins, 2);
    if !scale.dtype().is_float() {
        return Err(format!(
            "x_scale must be floating point, got {}",
            scale.dtype()
        ));
    }
    let xv =
        to_i128_vec(x).ok_or_else(|| format!("x must be an integer tensor, got {}", x.dtype()))?;
    let si = param_index(x.shape(), scale.shape(), axis, block_size)?;
    let sv = scale.to_f64_vec();
    let (zi, zv) = match zp {
        Some(z) => {
            if z.dtype() != x.dtype() {
                return Err(format!(
                    "zero point dtype {} differs from x dtype {}",
                    z.dtype(),
                    x.dtype()
                ));
            }
            (
                param_index(x.shape(), z.shape(), axis, block_size)?,
                to_i128_vec(z).ok_or("bad zero point")?,
            )
        }
        None => (vec![0; x.len()], vec![0]),
    };
    // (x - zp) is float32 in the reference; the product is promoted with the scale dtype.
    let cdt = promote(DType::F32, scale.dtype());
    let out: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let dx = round_to(
                DType::F32,
                round_to(DType::F32, v as f64) - zv[zi[i]] as f64,
            );
            round_to(cdt, dx * sv[si[i]])
        })
        .collect();
    Ok(vec![Tensor::from_f64(
        scale.dtype(),
        x.shape().to_vec(),
        &out,
    )])
}

/// `y = saturate(round(x / scale) + zp)` with scale and zero point from the data range
/// (which always includes 0), all in f32 like the reference.
pub fn dynamic_quantize_linear(ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    if !x.dtype().is_float() {
        return Err(format!("x must be floating point, got {}", x.dtype()));
    }
    if x.is_empty() {
        return Err("DynamicQuantizeLinear of an empty tensor".into());
    }
    let xv: Vec<f32> = x.to_f64_vec().iter().map(|&v| v as f32).collect();
    let maxx = xv.iter().copied().fold(0.0f32, f32::max);
    let minx = xv.iter().copied().fold(0.0f32, f32::min);
    let scale = if maxx == minx { 1.0f32 } else { maxx - minx } / 255.0f32;
    let zp = (0.0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    let y: Vec<u8> = xv
        .iter()
        .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8)
        .collect();
    Ok(vec![
        Tensor::from_vec(x.shape().to_vec(), y),
        Tensor::from_f64(x.dtype(), vec![], &[scale as f64]),
        Tensor::scalar(zp as u8),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_even_and_saturates() {
        let x = Tensor::from_vec(vec![5], vec![1.0f32, 3.0, 5.0, -600.0, 600.0]);
        let s = Tensor::scalar(2.0f32);
        let z = Tensor::scalar(128u8);
        let y = quantize_linear(1, 0, None, &[Some(&x), Some(&s), Some(&z)])
            .unwrap()
            .remove(0);
        // 0.5 → 0, 1.5 → 2, 2.5 → 2; then + 128 and clamp to [0, 255].
        assert_eq!(y.as_slice::<u8>().unwrap(), &[128, 130, 130, 0, 255]);
        let y = quantize_linear(1, 0, Some(DType::I8), &[Some(&x), Some(&s)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i8>().unwrap(), &[0, 2, 2, -128, 127]);
    }

    #[test]
    fn per_axis_and_blocked_dequantize() {
        let x = Tensor::from_vec(vec![2, 2], vec![1i8, 2, 3, 4]);
        let s = Tensor::from_vec(vec![2], vec![1.0f32, 10.0]);
        let y = dequantize_linear(1, 0, &[Some(&x), Some(&s)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[1.0, 20.0, 3.0, 40.0]);
        // Blocks of 2 along axis 1: one scale per row.
        let sb = Tensor::from_vec(vec![2, 1], vec![1.0f32, 10.0]);
        let zb = Tensor::from_vec(vec![2, 1], vec![1i8, 0]);
        let y = dequantize_linear(1, 2, &[Some(&x), Some(&sb), Some(&zb)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[0.0, 1.0, 30.0, 40.0]);
    }

    #[test]
    fn dynamic_quantize_matches_spec_example() {
        let x = Tensor::from_vec(vec![3], vec![0.0f32, 2.0, -3.0]);
        let outs = dynamic_quantize_linear(&[Some(&x)]).unwrap();
        // scale = 5/255, zp = rint(3 / scale) = 153.
        assert!((outs[1].as_slice::<f32>().unwrap()[0] - 5.0 / 255.0).abs() < 1e-7);
        assert_eq!(outs[2].as_slice::<u8>().unwrap(), &[153]);
        assert_eq!(outs[0].as_slice::<u8>().unwrap(), &[153, 255, 0]);
    }
}
