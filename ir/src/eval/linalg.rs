//! Matrix products: MatMul, Gemm, and the integer MatMulInteger / QLinearMatMul (Einsum
//! is `einsum.rs`).
//! Float products accumulate in f64; integer products run exactly in i128 and wrap to the
//! output width.

use super::util::{
    broadcast_index_map, broadcast_shapes, broadcast_to, float_tensor, int_tensor, round_to,
    to_i128_vec,
};
use super::{opt, req, OpResult};
use crate::*;

/// An accumulator type: f64 for floats, i128 (wrapping) for integers.
pub(crate) trait Acc: Copy + Default {
    fn add(self, a: Self) -> Self;
    fn mul(self, a: Self) -> Self;
    fn mul_add(self, a: Self, b: Self) -> Self {
        self.add(a.mul(b))
    }
}

impl Acc for f64 {
    fn add(self, a: f64) -> f64 {
        self + a
    }
    fn mul(self, a: f64) -> f64 {
        self * a
    }
}

impl Acc for i128 {
    fn add(self, a: i128) -> i128 {
        self.wrapping_add(a)
    }
    fn mul(self, a: i128) -> i128 {
        self.wrapping_mul(a)
    }
}

/// The geometry of a numpy `matmul`: batch broadcasting and 1-D promotion.
pub(crate) struct MatMulPlan {
    pub out_shape: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// For each output batch, the batch index into `a` and into `b`.
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
}

pub(crate) fn matmul_plan(a: &[usize], b: &[usize]) -> Result<MatMulPlan, String> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul inputs must have rank ≥ 1".into());
    }
    let (a_lead, m, k) = if a.len() == 1 {
        (&a[..0], 1, a[0])
    } else {
        (&a[..a.len() - 2], a[a.len() - 2], a[a.len() - 1])
    };
    let (b_lead, kb, n) = if b.len() == 1 {
        (&b[..0], b[0], 1)
    } else {
        (&b[..b.len() - 2], b[b.len() - 2], b[b.len() - 1])
    };
    if k != kb {
        return Err(format!("MatMul inner dimensions differ: {a:?} × {b:?}"));
    }
    let batch = broadcast_shapes(a_lead, b_lead)?;
    let a_batch = broadcast_index_map(a_lead, &batch)?;
    let b_batch = broadcast_index_map(b_lead, &batch)?;
    let mut out_shape = batch;
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    Ok(MatMulPlan {
        out_shape,
        m,
        k,
        n,
        a_batch,
        b_batch,
    })
}

/// Batched matrix product following `plan`; `a` and `b` are the flat inputs.
pub(crate) fn matmul_core<T: Acc>(p: &MatMulPlan, a: &[T], b: &[T]) -> Vec<T> {
    let (m, k, n) = (p.m, p.k, p.n);
    let mut out = vec![T::default(); p.a_batch.len() * m * n];
    for (bi, (&ab, &bb)) in p.a_batch.iter().zip(&p.b_batch).enumerate() {
        let ao = ab * m * k;
        let bo = bb * k * n;
        let oo = bi * m * n;
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::default();
                for t in 0..k {
                    acc = acc.mul_add(a[ao + i * k + t], b[bo + t * n + j]);
                }
                out[oo + i * n + j] = acc;
            }
        }
    }
    out
}

pub fn matmul(ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    if a.dtype() != b.dtype() {
        return Err(format!(
            "input dtypes differ: {} and {}",
            a.dtype(),
            b.dtype()
        ));
    }
    let p = matmul_plan(a.shape(), b.shape())?;
    let dt = a.dtype();
    if dt.is_float() {
        let out = matmul_core(&p, &a.to_f64_vec(), &b.to_f64_vec());
        Ok(vec![float_tensor(dt, p.out_shape, &out)?])
    } else {
        let x = to_i128_vec(a).ok_or("unsupported dtype")?;
        let y = to_i128_vec(b).ok_or("unsupported dtype")?;
        let out = matmul_core(&p, &x, &y);
        Ok(vec![int_tensor(dt, p.out_shape, &out)?])
    }
}

/// Row-major 2-D transpose of a `rows × cols` matrix.
fn transpose2<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for j in 0..cols {
        for i in 0..rows {
            out.push(v[i * cols + j]);
        }
    }
    out
}

pub fn gemm(
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    let c = opt(ins, 2);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(format!(
            "Gemm needs 2-D A and B, got {:?} and {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let (mut av, mut bv) = (a.to_f64_vec(), b.to_f64_vec());
    let (mut m, mut k) = (a.shape()[0], a.shape()[1]);
    if trans_a {
        av = transpose2(&av, m, k);
        std::mem::swap(&mut m, &mut k);
    }
    let (mut kb, mut n) = (b.shape()[0], b.shape()[1]);
    if trans_b {
        bv = transpose2(&bv, kb, n);
        std::mem::swap(&mut kb, &mut n);
    }
    let p = matmul_plan(&[m, k], &[kb, n])?;
    let mut out = matmul_core(&p, &av, &bv);
    let alpha = alpha as f64;
    out.iter_mut().for_each(|v| *v *= alpha);
    if let Some(c) = c.filter(|_| beta != 0.0) {
        let cv = broadcast_to(c, &[m, n])?.to_f64_vec();
        let beta = beta as f64;
        out.iter_mut().zip(cv).for_each(|(o, c)| *o += c * beta);
    }
    Ok(vec![Tensor::from_f64(a.dtype(), vec![m, n], &out)])
}

/// Integer values of a quantized matrix input minus its zero point: a scalar (or
/// one-element) zero point applies to all; a 1-D one applies per row of `x` (`per_row`,
/// axis -2) or per column (axis -1).
fn centered(x: &Tensor, zp: Option<&Tensor>, per_row: bool) -> Result<Vec<i128>, String> {
    let mut v =
        to_i128_vec(x).ok_or_else(|| format!("expected an integer input, got {}", x.dtype()))?;
    let Some(zp) = zp else { return Ok(v) };
    let z = to_i128_vec(zp).ok_or("zero point must be an integer tensor")?;
    if z.len() == 1 {
        v.iter_mut().for_each(|a| *a -= z[0]);
        return Ok(v);
    }
    let r = x.rank();
    let (rows, cols) = match r {
        0 => (1, 1),
        1 => (1, x.shape()[0]),
        _ => (x.shape()[r - 2], x.shape()[r - 1]),
    };
    let want = if per_row { rows } else { cols };
    if z.len() != want {
        return Err(format!(
            "zero point has {} elements but the input {:?} has {want} {}",
            z.len(),
            x.shape(),
            if per_row { "rows" } else { "columns" }
        ));
    }
    for (i, a) in v.iter_mut().enumerate() {
        let k = if per_row {
            (i / cols.max(1)) % rows.max(1)
        } else {
            i % cols.max(1)
        };
        *a -= z[k];
    }
    Ok(v)
}

pub fn matmul_integer(ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    let p = matmul_plan(a.shape(), b.shape())?;
    let x = centered(a, opt(ins, 2), true)?;
    let y = centered(b, opt(ins, 3), false)?;
    let out = matmul_core(&p, &x, &y);
    Ok(vec![int_tensor(DType::I32, p.out_shape, &out)?])
}

/// com.microsoft MatMulIntegerToFloat: the i32 product (as MatMulInteger wraps it), cast to
/// the scales' type, times `a_scale · b_scale` (rounded to that type), plus the bias.
pub fn matmul_integer_to_float(ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    let a_scale = req(ins, 2, "a_scale")?;
    let b_scale = req(ins, 3, "b_scale")?;
    for (t, what) in [(a, "A"), (b, "B")] {
        if !matches!(t.dtype(), DType::U8 | DType::I8) {
            return Err(format!("{what} must be uint8 or int8, got {}", t.dtype()));
        }
    }
    let sdt = a_scale.dtype();
    if b_scale.dtype() != sdt {
        return Err(format!(
            "a_scale is {sdt} but b_scale is {}",
            b_scale.dtype()
        ));
    }
    let p = matmul_plan(a.shape(), b.shape())?;
    let x = centered(a, opt(ins, 4), true)?;
    let y = centered(b, opt(ins, 5), false)?;
    let c = matmul_core(&p, &x, &y);
    let sa = scales(a_scale, 1, "a_scale")?;
    let sb = scales(b_scale, p.n, "b_scale")?;
    let bias = match opt(ins, 6) {
        Some(t) if t.dtype() != sdt => {
            return Err(format!("bias is {} but the scales are {sdt}", t.dtype()))
        }
        Some(t) => Some(scales(t, p.n, "bias")?),
        None => None,
    };
    let pick = |v: &[f64], col: usize| if v.len() == 1 { v[0] } else { v[col] };
    let out: Vec<f64> = c
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let col = i % p.n.max(1);
            let scale = round_to(sdt, sa[0] * pick(&sb, col));
            let y = round_to(sdt, round_to(sdt, v as i32 as f64) * scale);
            match &bias {
                Some(bv) => round_to(sdt, y + pick(bv, col)),
                None => y,
            }
        })
        .collect();
    Ok(vec![Tensor::from_f64(sdt, p.out_shape, &out)])
}

/// Scale values of a quantization parameter as f64, checked to be 1 or `n` long.
pub(crate) fn scales(t: &Tensor, n: usize, what: &str) -> Result<Vec<f64>, String> {
    if !t.dtype().is_float() {
        return Err(format!("{what} must be floating point, got {}", t.dtype()));
    }
    if t.len() != 1 && t.len() != n {
        return Err(format!(
            "{what} has {} elements; expected 1 or {n}",
            t.len()
        ));
    }
    Ok(t.to_f64_vec())
}

pub fn qlinear_matmul(ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "a")?;
    let a_scale = req(ins, 1, "a_scale")?;
    let b = req(ins, 3, "b")?;
    let b_scale = req(ins, 4, "b_scale")?;
    let y_scale = req(ins, 6, "y_scale")?;
    let y_zp = opt(ins, 7);
    let p = matmul_plan(a.shape(), b.shape())?;
    let x = centered(a, opt(ins, 2), true)?;
    let y = centered(b, opt(ins, 5), false)?;
    let c = matmul_core(&p, &x, &y);
    let sdt = a_scale.dtype();
    let sa = scales(a_scale, p.m, "a_scale")?;
    let sb = scales(b_scale, p.n, "b_scale")?;
    let sy = scales(y_scale, 1, "y_scale")?;
    let out_dt = y_zp.map_or(a.dtype(), |z| z.dtype());
    let zy = match y_zp {
        Some(z) => to_i128_vec(z)
            .and_then(|v| v.first().copied())
            .ok_or("bad y_zero_point")?,
        None => 0,
    };
    let (lo, hi) = int_range(out_dt)?;
    let mut out = Vec::with_capacity(c.len());
    for (i, &v) in c.iter().enumerate() {
        let row = (i / p.n.max(1)) % p.m.max(1);
        let col = i % p.n.max(1);
        let ka = if sa.len() == 1 { sa[0] } else { sa[row] };
        let kb = if sb.len() == 1 { sb[0] } else { sb[col] };
        // The factor is computed in the scale dtype, the rest in f64 (numpy promotion).
        let factor = round_to(sdt, round_to(sdt, ka * kb) / sy[0]);
        let d = round_to(sdt, factor) * v as f64 + zy as f64;
        out.push((d.round_ties_even() as i128).clamp(lo, hi));
    }
    Ok(vec![int_tensor(out_dt, p.out_shape, &out)?])
}

/// The representable range of an integer dtype.
pub(crate) fn int_range(dt: DType) -> Result<(i128, i128), String> {
    Ok(match dt {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        _ => return Err(format!("expected an integer dtype, got {dt}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_promotes_1d_and_broadcasts_batches() {
        let a = Tensor::from_vec(vec![2, 1, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
        let b = Tensor::from_vec(vec![2], vec![10.0f32, 1.0]);
        let y = matmul(&[Some(&a), Some(&b)]).unwrap().remove(0);
        assert_eq!(y.shape(), &[2, 1]);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[12.0, 34.0]);
        let i = Tensor::from_vec(vec![2, 2], vec![1i32, 2, 3, 4]);
        let y = matmul(&[Some(&i), Some(&i)]).unwrap().remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[7, 10, 15, 22]);
    }

    #[test]
    fn gemm_transposes_scales_and_adds_c() {
        let a = Tensor::from_vec(vec![2, 1], vec![1.0f32, 2.0]); // transA → [1,2]
        let b = Tensor::from_vec(vec![2, 2], vec![1.0f32, 0.0, 0.0, 1.0]);
        let c = Tensor::scalar(1.0f32);
        let y = gemm(2.0, 3.0, true, false, &[Some(&a), Some(&b), Some(&c)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<f32>().unwrap(), &[5.0, 7.0]);
    }

    #[test]
    fn matmul_integer_subtracts_zero_points() {
        let a = Tensor::from_vec(vec![1, 2], vec![12u8, 14]);
        let b = Tensor::from_vec(vec![2, 1], vec![1u8, 2]);
        let za = Tensor::scalar(12u8);
        let y = matmul_integer(&[Some(&a), Some(&b), Some(&za)])
            .unwrap()
            .remove(0);
        assert_eq!(y.as_slice::<i32>().unwrap(), &[4]);
    }

    #[test]
    fn qlinear_matmul_requantizes_half_to_even_and_saturates() {
        // C = 1·1 = 1; factor = 0.5·1/1 → 0.5 rounds to 0, + zp 10 → 10.
        let a = Tensor::from_vec(vec![1, 1], vec![1u8]);
        let b = Tensor::from_vec(vec![1, 1], vec![1u8]);
        let s = Tensor::scalar(1.0f32);
        let half = Tensor::scalar(0.5f32);
        let z = Tensor::scalar(0u8);
        let yz = Tensor::scalar(10u8);
        let ins = [
            Some(&a),
            Some(&half),
            Some(&z),
            Some(&b),
            Some(&s),
            Some(&z),
            Some(&s),
            Some(&yz),
        ];
        assert_eq!(
            qlinear_matmul(&ins).unwrap()[0].as_slice::<u8>().unwrap(),
            &[10]
        );
        let big = Tensor::from_vec(vec![1, 1], vec![255u8]);
        let ins = [
            Some(&big),
            Some(&s),
            Some(&z),
            Some(&big),
            Some(&s),
            Some(&z),
            Some(&s),
            Some(&yz),
        ];
        assert_eq!(
            qlinear_matmul(&ins).unwrap()[0].as_slice::<u8>().unwrap(),
            &[255]
        );
    }
}
