//! Reference semantics of the compiler-made fused ops. `FusedMatMul` is evaluated as the
//! very ops it replaces (MatMul, Add, activation, Add), so a fusion pass is checked against
//! exactly the unfused graph; `Attention` is plain f64 loops over batch, head, query, key.

use super::util::{broadcast_index_map, float_tensor};
use super::{elementwise, linalg, opt, req, OpResult};
use crate::{Activation, BinaryOp, Tensor, UnaryOp};

/// `activation(matmul(a, b) + bias) + residual`.
pub fn fused_matmul(activation: Activation, ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    let one = |r: OpResult| -> Result<Tensor, String> {
        r?.into_iter().next().ok_or_else(|| "no output".to_string())
    };
    let add = |x: &Tensor, y: &Tensor| one(elementwise::binary(BinaryOp::Add, &[Some(x), Some(y)]));
    let mut y = one(linalg::matmul(&[Some(a), Some(b)]))?;
    if let Some(bias) = opt(ins, 2) {
        y = add(&y, bias)?;
    }
    y = one(activate(activation, vec![y]))?;
    if let Some(res) = opt(ins, 3) {
        y = add(&y, res)?;
    }
    Ok(vec![y])
}

/// `activation` applied to the one output in `y`, as the ops it stands for compute it.
pub fn activate(activation: Activation, y: Vec<Tensor>) -> OpResult {
    let one = |r: OpResult| -> Result<Tensor, String> {
        r?.into_iter().next().ok_or_else(|| "no output".to_string())
    };
    let y = y.into_iter().next().ok_or("no output")?;
    let out = match activation {
        Activation::Linear => y,
        Activation::Relu => one(elementwise::unary(UnaryOp::Relu, &[Some(&y)]))?,
        Activation::Gelu(mode) => one(elementwise::gelu(mode, &[Some(&y)]))?,
        Activation::Silu => {
            let s = one(elementwise::unary(UnaryOp::Sigmoid, &[Some(&y)]))?;
            one(elementwise::binary(BinaryOp::Mul, &[Some(&y), Some(&s)]))?
        }
    };
    Ok(vec![out])
}

/// `sum = (x + bias) + residual`, then LayerNorm (or RMSNorm) of it over the last axis: the
/// very ops `fuse-add-norm` replaces, in their order.
pub fn add_norm(rms: bool, epsilon: f32, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let x = req(ins, 0, "x")?;
    let r = req(ins, 1, "residual")?;
    let gamma = req(ins, 2, "gamma")?;
    if x.shape() != r.shape() {
        return Err(format!(
            "x {:?} and residual {:?} differ in shape",
            x.shape(),
            r.shape()
        ));
    }
    let one = |res: OpResult| -> Result<Tensor, String> {
        res?.into_iter()
            .next()
            .ok_or_else(|| "no output".to_string())
    };
    let add = |a: &Tensor, b: &Tensor| one(elementwise::binary(BinaryOp::Add, &[Some(a), Some(b)]));
    let mut sum = match opt(ins, 4) {
        Some(bias) => add(x, bias)?,
        None => x.clone(),
    };
    sum = add(&sum, r)?;
    let y = if rms {
        one(super::norm::rms_norm(
            -1,
            epsilon,
            &[Some(&sum), Some(gamma)],
        ))?
    } else {
        one(super::norm::layer_norm(
            -1,
            epsilon,
            &[Some(&sum), Some(gamma), opt(ins, 3)],
            1,
        ))?
    };
    Ok(if num_outputs > 1 {
        vec![y, sum]
    } else {
        vec![y]
    })
}

/// `y[b, i, h·Dv + c] = Σ_j p[b,h,i,j]·v[b, j, h·Dv + c]` with
/// `p[b,h,i,·] = softmax_j(scale·Σ_d q[b,i,h·D+d]·k[b,j,h·D+d] + mask[b,h,i,j])`.
pub fn attention(num_heads: usize, scale: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let q = req(ins, 0, "q")?;
    let k = req(ins, 1, "k")?;
    let v = req(ins, 2, "v")?;
    let mask = opt(ins, 3);
    let dt = q.dtype();
    if !dt.is_float() {
        return Err(format!("Attention needs floating-point inputs, got {dt}"));
    }
    for t in [Some(k), Some(v), mask].into_iter().flatten() {
        if t.dtype() != dt {
            return Err(format!("input dtypes differ: {dt} and {}", t.dtype()));
        }
    }
    let (sq, sk, sv) = (q.shape(), k.shape(), v.shape());
    if sq.len() != 3 || sk.len() != 3 || sv.len() != 3 {
        return Err("q, k and v must have rank 3".into());
    }
    let h = num_heads;
    let (b, lq, e) = (sq[0], sq[1], sq[2]);
    let (lk, ev) = (sk[1], sv[2]);
    if h == 0 || e % h != 0 || ev % h != 0 {
        return Err(format!(
            "widths {e} and {ev} must be multiples of num_heads {h}"
        ));
    }
    if sk[0] != b || sv[0] != b || sk[2] != e || sv[1] != lk {
        return Err(format!("shapes q {sq:?}, k {sk:?}, v {sv:?} do not agree"));
    }
    let (d, dv) = (e / h, ev / h);
    // The mask, broadcast to [B, H, Sq, Sk], as flat indices into its own data.
    let scores_shape = [b, h, lq, lk];
    let mask_vals = match mask {
        Some(m) => {
            if m.shape().len() > 4 {
                return Err(format!("mask rank {} is above 4", m.shape().len()));
            }
            let map = broadcast_index_map(m.shape(), &scores_shape)?;
            let data = m.to_f64_vec();
            Some(map.iter().map(|&i| data[i]).collect::<Vec<f64>>())
        }
        None => None,
    };
    let (qv, kv, vv) = (q.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec());
    let mut out = vec![0.0f64; b * lq * ev];
    let mut p = vec![0.0f64; lk];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..lq {
                let qrow = &qv[(bi * lq + i) * e + hi * d..][..d];
                for (j, pj) in p.iter_mut().enumerate() {
                    let krow = &kv[(bi * lk + j) * e + hi * d..][..d];
                    let dot: f64 = qrow.iter().zip(krow).map(|(x, y)| x * y).sum();
                    let m = mask_vals
                        .as_ref()
                        .map_or(0.0, |mv| mv[((bi * h + hi) * lq + i) * lk + j]);
                    *pj = scale as f64 * dot + m;
                }
                let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for pj in p.iter_mut() {
                    *pj = (*pj - max).exp();
                    sum += *pj;
                }
                let orow = &mut out[(bi * lq + i) * ev + hi * dv..][..dv];
                for (j, pj) in p.iter().enumerate() {
                    let w = pj / sum;
                    let vrow = &vv[(bi * lk + j) * ev + hi * dv..][..dv];
                    for (o, x) in orow.iter_mut().zip(vrow) {
                        *o += w * x;
                    }
                }
            }
        }
    }
    Ok(vec![float_tensor(dt, vec![b, lq, ev], &out)?])
}

/// `mask [B,S] → offsets [T], inverse [B,S], cu_seqlens [B+1]` (see `Op::PaddingOffsets`).
pub fn padding_offsets(ins: &[Option<&Tensor>]) -> OpResult {
    let m = req(ins, 0, "mask")?;
    let &[b, s] = m.shape() else {
        return Err(format!(
            "the mask must be [batch, seq], got {:?}",
            m.shape()
        ));
    };
    let mut offsets = Vec::new();
    let mut inverse = vec![0i64; b * s];
    let mut cu = vec![0i64; b + 1];
    for bi in 0..b {
        for si in 0..s {
            let i = bi * s + si;
            if m.get_f64(i) != 0.0 {
                offsets.push(i as i64);
                inverse[i] = offsets.len() as i64;
            }
        }
        cu[bi + 1] = offsets.len() as i64;
    }
    Ok(vec![
        Tensor::from_vec(vec![offsets.len()], offsets),
        Tensor::from_vec(vec![b, s], inverse),
        Tensor::from_vec(vec![b + 1], cu),
    ])
}

/// Attention per packed sequence: rows `cu[b]..cu[b+1]` of q, k, v, as [`attention`] on a
/// batch of one without a mask.
pub fn packed_attention(num_heads: usize, scale: f32, ins: &[Option<&Tensor>]) -> OpResult {
    let q = req(ins, 0, "q")?;
    let k = req(ins, 1, "k")?;
    let v = req(ins, 2, "v")?;
    let cu = req(ins, 3, "cu_seqlens")?;
    let (&[t, e], &[tk, ek], &[tv, ev]) = (q.shape(), k.shape(), v.shape()) else {
        return Err("packed q, k and v must have rank 2".into());
    };
    if tk != t || tv != t || ek != e {
        return Err(format!(
            "packed shapes q {:?}, k {:?}, v {:?} do not match",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    let bounds: Vec<i64> = (0..cu.len()).map(|i| cu.get_f64(i) as i64).collect();
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&(t as i64))
        || bounds.windows(2).any(|w| w[1] < w[0])
    {
        return Err(format!("cu_seqlens {bounds:?} does not split {t} tokens"));
    }
    let dt = q.dtype();
    let (qv, kv, vv) = (q.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec());
    let mut out = Vec::with_capacity(t * ev);
    for w in bounds.windows(2) {
        let (r0, r1) = (w[0] as usize, w[1] as usize);
        let part = |data: &[f64], width: usize| {
            float_tensor(dt, vec![1, r1 - r0, width], &data[r0 * width..r1 * width])
        };
        let (qs, ks, vs) = (part(&qv, e)?, part(&kv, e)?, part(&vv, ev)?);
        let y = attention(num_heads, scale, &[Some(&qs), Some(&ks), Some(&vs), None])?;
        out.extend(y[0].to_f64_vec());
    }
    Ok(vec![float_tensor(dt, vec![t, ev], &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GeluApprox;

    fn t(shape: Vec<usize>, v: &[f32]) -> Tensor {
        Tensor::from_f64(
            crate::DType::F32,
            shape,
            &v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn fused_matmul_is_bias_activation_residual() {
        // [1,2]·[[1,-1],[2,-2]] = [5,-5]; +bias [1,1] = [6,-4]; relu = [6,0]; +res [1,2].
        let a = t(vec![1, 2], &[1.0, 2.0]);
        let b = t(vec![2, 2], &[1.0, -1.0, 2.0, -2.0]);
        let bias = t(vec![2], &[1.0, 1.0]);
        let res = t(vec![1, 2], &[1.0, 2.0]);
        let y = fused_matmul(
            Activation::Relu,
            &[Some(&a), Some(&b), Some(&bias), Some(&res)],
        )
        .unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![7.0, 2.0]);
        let y = fused_matmul(
            Activation::Gelu(GeluApprox::None),
            &[Some(&a), Some(&b), None, None],
        )
        .unwrap();
        let g = y[0].to_f64_vec();
        assert!((g[0] - 5.0).abs() < 1e-5 && g[1].abs() < 1e-5, "{g:?}");
    }

    #[test]
    fn attention_with_one_key_copies_values_and_mask_selects() {
        // One head of size 1, two keys; a -inf mask on key 1 leaves key 0's value.
        let q = t(vec![1, 1, 1], &[1.0]);
        let k = t(vec![1, 2, 1], &[1.0, 2.0]);
        let v = t(vec![1, 2, 1], &[3.0, 7.0]);
        let mask = t(vec![1, 1, 1, 2], &[0.0, f32::NEG_INFINITY]);
        let y = attention(1, 1.0, &[Some(&q), Some(&k), Some(&v), Some(&mask)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![3.0]);
        // Without the mask: weights e^1, e^2 → (3e + 7e²)/(e + e²).
        let y = attention(1, 1.0, &[Some(&q), Some(&k), Some(&v), None]).unwrap();
        let e = std::f64::consts::E;
        let want = (3.0 * e + 7.0 * e * e) / (e + e * e);
        assert!((y[0].to_f64_vec()[0] - want).abs() < 1e-5);
        // Two heads of size 1: head 1 sees only its own column.
        let q = t(vec![1, 1, 2], &[0.0, 0.0]);
        let k = t(vec![1, 2, 2], &[0.0, 0.0, 0.0, 0.0]);
        let v = t(vec![1, 2, 2], &[1.0, 10.0, 3.0, 30.0]);
        let y = attention(2, 0.5, &[Some(&q), Some(&k), Some(&v), None]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![2.0, 20.0]);
        assert!(attention(3, 1.0, &[Some(&q), Some(&k), Some(&v), None]).is_err());
    }

    #[test]
    fn fused_ops_round_trip_through_the_text_format() {
        let src = "graph \"g\" {\n  input %q: f32[1,2,4]\n  input %w: f32[4,4]\n  %y = FusedMatMul(activation:Gelu(Tanh)) %q, %w, _, %q : f32[1,2,4]\n  %a = Attention(num_heads:2,scale:0.5) %y, %y, %y, _ : f32[1,2,4]\n  output %a\n}\n";
        let g = crate::text::parse_graph(src).unwrap();
        assert_eq!(crate::text::print_graph(&g).unwrap(), src);
    }
}
