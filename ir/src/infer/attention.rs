//! Shape inference for the ONNX standard attention ops: `SdpAttention` (ONNX `Attention`,
//! 4-D `[B, H, S, D]` or 3-D `[B, S, H·D]` inputs, optional KV cache and score output)
//! and `RotaryEmbedding` (the input's type).

use super::dims::{dim_add, unify_dim, Ins, SymGen};
use crate::{DType, Dim, SdpAttentionAttrs, TensorType};

/// `dim / n` when known (and divisible), a fresh symbol otherwise.
fn dim_div(d: &Dim, n: usize, what: &str, gen: &mut SymGen) -> Result<Dim, String> {
    match d {
        Dim::Known(x) if n != 0 && x % n == 0 => Ok(Dim::Known(x / n)),
        Dim::Known(x) => Err(format!("{what} {x} is not a multiple of {n} heads")),
        Dim::Sym(_) => Ok(gen.fresh()),
    }
}

fn heads(h: Option<usize>, what: &str) -> Result<usize, String> {
    match h {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("3-D inputs need a positive {what} attribute")),
    }
}

/// One tensor as `[B, H, S, D]` dims (3-D inputs split by `h` heads).
fn as_4d(
    dims: &[Dim],
    h: Option<usize>,
    what: &str,
    attr: &str,
    gen: &mut SymGen,
) -> Result<Vec<Dim>, String> {
    match dims.len() {
        4 => Ok(dims.to_vec()),
        3 => {
            let h = heads(h, attr)?;
            let d = dim_div(&dims[2], h, &format!("{what} width"), gen)?;
            Ok(vec![dims[0].clone(), Dim::Known(h), dims[1].clone(), d])
        }
        r => Err(format!("{what} must have rank 3 or 4, has rank {r}")),
    }
}

/// `y, present_key, present_value, qk_matmul_output` (as many as `num_outputs`).
pub fn sdp_attention(
    a: &SdpAttentionAttrs,
    ins: &Ins,
    num_outputs: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let q = ins.ty(0, "Q")?;
    let k = ins.ty(1, "K")?;
    let v = ins.ty(2, "V")?;
    if !q.dtype.is_float() {
        return Err(format!("Q must be floating-point, got {}", q.dtype));
    }
    for (t, what) in [(k, "K"), (v, "V")] {
        if t.dtype != q.dtype {
            return Err(format!(
                "{what} has dtype {} but Q has {}",
                t.dtype, q.dtype
            ));
        }
    }
    if let Some(m) = ins.opt_ty(3) {
        if m.dtype != DType::Bool && m.dtype != q.dtype {
            return Err(format!(
                "attn_mask must be bool or {}, got {}",
                q.dtype, m.dtype
            ));
        }
    }
    for (port, what) in [(4, "past_key"), (5, "past_value")] {
        if let Some(t) = ins.opt_ty(port) {
            if t.dtype != q.dtype {
                return Err(format!(
                    "{what} has dtype {} but Q has {}",
                    t.dtype, q.dtype
                ));
            }
            if t.shape.as_ref().is_some_and(|s| s.len() != 4) {
                return Err(format!("{what} must have rank 4"));
            }
        }
    }
    if ins.present(4) != ins.present(5) {
        return Err("past_key and past_value must be given together".into());
    }
    if let Some(t) = ins.opt_ty(6) {
        if t.dtype != DType::I64 {
            return Err(format!("nonpad_kv_seqlen must be int64, got {}", t.dtype));
        }
        if ins.present(4) {
            return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
        }
    }
    if a.qk_matmul_output_mode > 3 {
        return Err(format!(
            "qk_matmul_output_mode {} is not 0..3",
            a.qk_matmul_output_mode
        ));
    }
    let unknown = |n: usize| vec![TensorType::unknown_rank(q.dtype); n];
    let (Some(sq), Some(sk), Some(sv)) = (&q.shape, &k.shape, &v.shape) else {
        return Ok(unknown(num_outputs));
    };
    if sq.len() != sk.len() || sq.len() != sv.len() {
        return Err(format!(
            "Q, K and V must have one rank, have {}, {} and {}",
            sq.len(),
            sk.len(),
            sv.len()
        ));
    }
    let q4 = as_4d(sq, a.q_num_heads, "Q", "q_num_heads", gen)?;
    let k4 = as_4d(sk, a.kv_num_heads, "K", "kv_num_heads", gen)?;
    let v4 = as_4d(sv, a.kv_num_heads, "V", "kv_num_heads", gen)?;
    let b = unify_dim(&q4[0], &k4[0], "Q and K batches differ")?;
    let b = unify_dim(&b, &v4[0], "Q and V batches differ")?;
    let hkv = unify_dim(&k4[1], &v4[1], "K and V head counts differ")?;
    if let (Dim::Known(hq), Dim::Known(hk)) = (&q4[1], &hkv) {
        if *hk == 0 || hq % hk != 0 {
            return Err(format!("K/V heads {hk} do not divide Q heads {hq}"));
        }
    }
    unify_dim(&q4[3], &k4[3], "Q and K head sizes differ")?;
    unify_dim(&k4[2], &v4[2], "K and V sequence lengths differ")?;
    let mut total = k4[2].clone();
    let mut present_k = k4.clone();
    let mut present_v = v4.clone();
    if let (Some(pk), Some(pv)) = (ins.opt_ty(4), ins.opt_ty(5)) {
        match (&pk.shape, &pv.shape) {
            (Some(pks), Some(pvs)) => {
                unify_dim(&pks[3], &k4[3], "past_key and K head sizes differ")?;
                unify_dim(&pvs[3], &v4[3], "past_value and V head sizes differ")?;
                unify_dim(&pks[2], &pvs[2], "past_key and past_value lengths differ")?;
                total = dim_add(&pks[2], &k4[2], gen);
                present_k[2] = total.clone();
                present_v[2] = dim_add(&pvs[2], &v4[2], gen);
            }
            _ => {
                total = gen.fresh();
                present_k[2] = total.clone();
                present_v[2] = total.clone();
            }
        }
    }
    let y = if sq.len() == 3 {
        let w = super::dims::dim_product(&[q4[1].clone(), v4[3].clone()], gen);
        vec![b.clone(), sq[1].clone(), w]
    } else {
        vec![b.clone(), q4[1].clone(), q4[2].clone(), v4[3].clone()]
    };
    present_k[0] = b.clone();
    present_v[0] = b.clone();
    let qk = vec![b, q4[1].clone(), q4[2].clone(), total];
    let all = [y, present_k, present_v, qk];
    Ok(all
        .into_iter()
        .take(num_outputs)
        .map(|s| TensorType::new(q.dtype, s))
        .collect())
}

/// `x, cos_cache, sin_cache, position_ids? → y` of `x`'s type.
pub fn rotary_embedding(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    if !x.dtype.is_float() {
        return Err(format!("input must be floating-point, got {}", x.dtype));
    }
    for (port, what) in [(1, "cos_cache"), (2, "sin_cache")] {
        let t = ins.ty(port, what)?;
        if t.dtype != x.dtype {
            return Err(format!(
                "{what} has dtype {} but input has {}",
                t.dtype, x.dtype
            ));
        }
    }
    if let Some(p) = ins.opt_ty(3) {
        if p.dtype != DType::I64 {
            return Err(format!("position_ids must be int64, got {}", p.dtype));
        }
    }
    if let Some(s) = &x.shape {
        match s.len() {
            4 => {}
            // Without num_heads the head size comes from the caches (com.microsoft form).
            3 => {}
            r => return Err(format!("input must have rank 3 or 4, has rank {r}")),
        }
    }
    Ok(x.clone())
}
