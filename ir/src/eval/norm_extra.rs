//! More normalizations and friends: LpNormalization, LRN, InstanceNormalization,
//! GroupNormalization, MeanVarianceNormalization, LpPool and Det. Everything is computed in
//! f64 and rounded to the input dtype once.

use super::pool::{avg_plan, out_shape, windows};
use super::util::{norm_axes, norm_axis, outer_axis_inner};
use super::{req, OpResult};
use crate::{Tensor, Window};

fn float_input<'a>(ins: &[Option<&'a Tensor>], i: usize, what: &str) -> Result<&'a Tensor, String> {
    let t = req(ins, i, what)?;
    if !t.dtype().is_float() {
        return Err(format!("{what} must be floating point, got {}", t.dtype()));
    }
    Ok(t)
}

/// `x → x / ‖x‖_p` along `axis`, 0 where the norm is 0.
pub fn lp_normalization(axis: i64, p: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "input")?;
    if p != 1 && p != 2 {
        return Err(format!("p must be 1 or 2, got {p}"));
    }
    let a = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = outer_axis_inner(x.shape(), a);
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; xv.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let norm = if p == 1 {
                (0..len).map(|k| xv[at(k)].abs()).sum::<f64>()
            } else {
                (0..len).map(|k| xv[at(k)] * xv[at(k)]).sum::<f64>().sqrt()
            };
            for k in 0..len {
                y[at(k)] = if norm == 0.0 { 0.0 } else { xv[at(k)] / norm };
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

/// `x [N,C,...] → x / (bias + alpha/size · Σ x²)^beta`, the sum over the channels
/// `c − ⌊(size−1)/2⌋ ..= c + ⌈(size−1)/2⌉` that exist.
pub fn lrn(alpha: f32, beta: f32, bias: f32, size: usize, ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "X")?;
    if x.rank() < 2 {
        return Err(format!("X must have rank >= 2, got {:?}", x.shape()));
    }
    if size == 0 {
        return Err("size must be positive".into());
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let inner: usize = x.shape()[2..].iter().product();
    let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let (alpha, beta, bias) = (alpha as f64, beta as f64, bias as f64);
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; xv.len()];
    for ni in 0..n {
        for ci in 0..c {
            let (from, to) = (ci.saturating_sub(lo), (ci + hi).min(c - 1));
            for i in 0..inner {
                let at = |k: usize| (ni * c + k) * inner + i;
                let sq: f64 = (from..=to).map(|k| xv[at(k)] * xv[at(k)]).sum();
                y[at(ci)] = xv[at(ci)] / (bias + alpha / size as f64 * sq).powf(beta);
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

/// Mean and (population) variance of `v`.
fn stats(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = v.clone().count() as f64;
    let mean = v.clone().sum::<f64>() / n;
    let var = v.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

/// `x [N,C,...], scale, bias → y`: per (n, group of `C/groups` channels) normalisation,
/// then `scale`/`bias` per channel (`per_group`: per group).
fn grouped_norm(
    x: &Tensor,
    groups: usize,
    scale: &[f64],
    bias: &[f64],
    per_group: bool,
    epsilon: f32,
) -> Result<Tensor, String> {
    if x.rank() < 2 {
        return Err(format!("X must have rank >= 2, got {:?}", x.shape()));
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    if groups == 0 || c % groups != 0 {
        return Err(format!("{c} channels cannot form {groups} groups"));
    }
    let want = if per_group { groups } else { c };
    if scale.len() != want || bias.len() != want {
        return Err(format!(
            "scale and bias must have {want} elements, got {} and {}",
            scale.len(),
            bias.len()
        ));
    }
    let inner: usize = x.shape()[2..].iter().product();
    let block = c / groups * inner;
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; xv.len()];
    for ni in 0..n {
        for g in 0..groups {
            let base = (ni * groups + g) * block;
            let (mean, var) = stats(xv[base..base + block].iter().copied());
            let inv = 1.0 / (var + epsilon as f64).sqrt();
            for j in 0..block {
                let ch = g * (c / groups) + j / inner.max(1);
                let p = if per_group { g } else { ch };
                y[base + j] = (xv[base + j] - mean) * inv * scale[p] + bias[p];
            }
        }
    }
    Ok(Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y))
}

/// `x, scale [C], bias [C] → y`, statistics per (n, c).
pub fn instance_norm(epsilon: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "input")?;
    let s = req(ins, 1, "scale")?.to_f64_vec();
    let b = req(ins, 2, "B")?.to_f64_vec();
    let c = x.shape().get(1).copied().unwrap_or(0);
    Ok(vec![grouped_norm(x, c, &s, &b, false, epsilon)?])
}

/// `x, scale, bias → y`, statistics per (n, group).
pub fn group_norm(
    epsilon: f32,
    num_groups: usize,
    per_group_affine: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = float_input(ins, 0, "X")?;
    let s = req(ins, 1, "scale")?.to_f64_vec();
    let b = req(ins, 2, "bias")?.to_f64_vec();
    Ok(vec![grouped_norm(
        x,
        num_groups,
        &s,
        &b,
        per_group_affine,
        epsilon,
    )?])
}

/// `x → (x − mean) / (std + 1e-9)`, statistics over `axes` (the ONNX function body).
pub fn mean_variance_norm(axes: &[i64], ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "X")?;
    let axes = norm_axes(axes, x.rank())?;
    let shape = x.shape();
    // Split positions into (kept index, reduced index) by axis membership.
    let kept: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
    let st = super::util::strides(shape);
    let kept_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
    let groups: usize = kept_shape.iter().product();
    let xv = x.to_f64_vec();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    let kst = super::util::strides(&kept_shape);
    for flat in 0..xv.len() {
        let g: usize = kept
            .iter()
            .zip(&kst)
            .map(|(&a, s)| (flat / st[a]) % shape[a] * s)
            .sum();
        members[g].push(flat);
    }
    let mut y = vec![0f64; xv.len()];
    for m in &members {
        let (mean, var) = stats(m.iter().map(|&i| xv[i]));
        let d = var.sqrt() + 1e-9;
        for &i in m {
            y[i] = (xv[i] - mean) / d;
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape.to_vec(), &y)])
}

/// `x → y = (Σ |x|^p)^(1/p)` over each window (AveragePool's geometry; padding adds 0).
pub fn lp_pool(window: &Window, ceil_mode: bool, p: i64, ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "X")?;
    if p <= 0 {
        return Err(format!("p must be positive, got {p}"));
    }
    let plan = avg_plan(x, window, ceil_mode)?;
    let in_sp = &x.shape()[2..];
    let wins = windows(&plan, in_sp);
    let in_len: usize = in_sp.iter().product();
    let xv = x.to_f64_vec();
    let channels = x.shape()[0] * x.shape()[1];
    let pf = p as f64;
    let mut y = Vec::with_capacity(channels * wins.len());
    for ch in 0..channels {
        let base = ch * in_len;
        for win in &wins {
            let s: f64 = win
                .iter()
                .flatten()
                .map(|f| xv[base + f].abs().powf(pf))
                .sum();
            y.push(s.powf(1.0 / pf));
        }
    }
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        out_shape(x, &plan.out),
        &y,
    )])
}

/// Determinant of one `m × m` row-major matrix by LU with partial pivoting.
fn det_one(mut a: Vec<f64>, m: usize) -> f64 {
    let mut det = 1.0;
    for col in 0..m {
        let piv = (col..m)
            .max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))
            .unwrap_or(col);
        if a[piv * m + col] == 0.0 {
            return 0.0;
        }
        if piv != col {
            for k in 0..m {
                a.swap(piv * m + k, col * m + k);
            }
            det = -det;
        }
        let d = a[col * m + col];
        det *= d;
        for r in col + 1..m {
            let f = a[r * m + col] / d;
            for k in col..m {
                a[r * m + k] -= f * a[col * m + k];
            }
        }
    }
    det
}

/// `x [..., M, M] → y [...]`.
pub fn det(ins: &[Option<&Tensor>]) -> OpResult {
    let x = float_input(ins, 0, "X")?;
    let r = x.rank();
    if r < 2 || x.shape()[r - 1] != x.shape()[r - 2] {
        return Err(format!(
            "X must be [..., M, M] (square matrices), got {:?}",
            x.shape()
        ));
    }
    let m = x.shape()[r - 1];
    let batch: usize = x.shape()[..r - 2].iter().product();
    let xv = x.to_f64_vec();
    let y: Vec<f64> = (0..batch)
        .map(|b| det_one(xv[b * m * m..(b + 1) * m * m].to_vec(), m))
        .collect();
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        x.shape()[..r - 2].to_vec(),
        &y,
    )])
}
