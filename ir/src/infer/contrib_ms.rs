//! Shape inference of onnxruntime's `MultiHeadAttention` and `MatMulNBits`.

use super::dims::{dim_add, Ins, SymGen};
use crate::{Dim, GqaAttrs, MatMulNBitsAttrs, MhaAttrs, TensorType};

fn div(d: &Dim, h: usize, gen: &mut SymGen) -> Dim {
    match d {
        Dim::Known(w) if h > 0 && w % h == 0 => Dim::Known(w / h),
        _ => gen.fresh(),
    }
}

/// `output [B,S,H·Dv], present_key? [B,H,T,D], present_value? [B,H,T,Dv]`, `T = P + Skv`.
pub fn multi_head_attention(
    a: &MhaAttrs,
    ins: &Ins,
    n_out: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let (q, k, v) = (ins.ty(0, "query")?, ins.ty(1, "key")?, ins.ty(2, "value")?);
    let dt = q.dtype;
    if !dt.is_float() || k.dtype != dt || v.dtype != dt {
        return Err(format!(
            "query, key and value must be float tensors of one dtype, got {dt}, {} and {}",
            k.dtype, v.dtype
        ));
    }
    let h = a.num_heads;
    if h == 0 {
        return Err("num_heads must be positive".into());
    }
    let (Some(qs), Some(ks), Some(vs)) = (&q.shape, &k.shape, &v.shape) else {
        return Ok(vec![TensorType::unknown_rank(dt); n_out.max(1)]);
    };
    if qs.len() != 3 || ks.len() != vs.len() || !(ks.len() == 3 || ks.len() == 4) {
        return Err(format!(
            "query must be [B, S, hidden] and key/value both 3-D or both 4-D, got ranks {}, {}, {}",
            qs.len(),
            ks.len(),
            vs.len()
        ));
    }
    let (b, s) = (qs[0].clone(), qs[1].clone());
    let d = div(&qs[2], h, gen);
    let (skv, dv) = if ks.len() == 3 {
        (ks[1].clone(), div(&vs[2], h, gen))
    } else {
        (ks[2].clone(), vs[3].clone())
    };
    let out_w = match &dv {
        Dim::Known(x) => Dim::Known(x * h),
        _ if vs.len() == 3 => vs[2].clone(),
        _ => gen.fresh(),
    };
    let past = match ins.opt_ty(6).and_then(|t| t.shape.clone()) {
        Some(p) if p.len() == 4 => p[2].clone(),
        Some(_) => return Err("past_key must be [B, H, P, D]".into()),
        None => Dim::Known(0),
    };
    let t = dim_add(&past, &skv, gen);
    let mut outs = vec![TensorType::new(dt, vec![b.clone(), s, out_w])];
    let hd = Dim::Known(h);
    if n_out > 1 {
        outs.push(TensorType::new(
            dt,
            vec![b.clone(), hd.clone(), t.clone(), d],
        ));
    }
    if n_out > 2 {
        outs.push(TensorType::new(dt, vec![b, hd, t, dv]));
    }
    Ok(outs)
}

/// `a [..., K] → y [..., N]`.
pub fn matmul_nbits(a: &MatMulNBitsAttrs, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "A")?;
    if !x.dtype.is_float() {
        return Err(format!("A must be a float tensor, got {}", x.dtype));
    }
    let Some(s) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    match s.last() {
        Some(Dim::Known(k)) if *k != a.k => {
            return Err(format!(
                "A's last dimension is {k}, the attribute K is {}",
                a.k
            ))
        }
        None => return Err("A must have rank at least 1".into()),
        _ => {}
    }
    let mut out = s.clone();
    if let Some(l) = out.last_mut() {
        *l = Dim::Known(a.n);
    }
    Ok(TensorType::new(x.dtype, out))
}

/// `output [B,S,Hq·D], present_key? [B,Hkv,C,D], present_value?` with `C = max(total, L)`
/// (known when total_sequence_length is a constant).
pub fn group_query_attention(
    a: &GqaAttrs,
    ins: &Ins,
    n_out: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let q = ins.ty(0, "query")?;
    let dt = q.dtype;
    if !dt.is_float() {
        return Err(format!("query must be a float tensor, got {dt}"));
    }
    let (hq, hkv) = (a.num_heads, a.kv_num_heads);
    if hq == 0 || hkv == 0 || hq % hkv != 0 {
        return Err(format!("kv_num_heads {hkv} must divide num_heads {hq}"));
    }
    let Some(qs) = &q.shape else {
        return Ok(vec![TensorType::unknown_rank(dt); n_out.max(1)]);
    };
    if qs.len() != 3 {
        return Err(format!(
            "query must be [B, S, hidden], has rank {}",
            qs.len()
        ));
    }
    let packed = !ins.present(1) && !ins.present(2);
    let d = div(&qs[2], if packed { hq + 2 * hkv } else { hq }, gen);
    let out_w = match &d {
        Dim::Known(x) => Dim::Known(x * hq),
        _ if !packed => qs[2].clone(),
        _ => gen.fresh(),
    };
    let past = match ins.opt_ty(3).and_then(|t| t.shape.clone()) {
        Some(p) if p.len() == 4 => Some(p[2].clone()),
        Some(_) => return Err("past_key must be [B, Hkv, L, D]".into()),
        None => None,
    };
    let total = ins
        .konst(6)
        .filter(|t| t.len() == 1)
        .map(|t| t.to_i64_vec()[0]);
    let c = match (total, &past) {
        (Some(t), Some(Dim::Known(l))) if t >= 0 => Dim::Known((t as usize).max(*l)),
        (Some(t), None) if t >= 0 => Dim::Known(t as usize),
        _ => gen.fresh(),
    };
    let mut outs = vec![TensorType::new(
        dt,
        vec![qs[0].clone(), qs[1].clone(), out_w],
    )];
    let present = TensorType::new(dt, vec![qs[0].clone(), Dim::Known(hkv), c, d]);
    outs.extend(std::iter::repeat_n(present, n_out.saturating_sub(1).min(2)));
    Ok(outs)
}
