//! Shape inference for the losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss), the
//! recurrent ops (RNN, GRU, LSTM) and the sequence-model ops (CausalConvWithState,
//! LinearAttention, TfIdfVectorizer).

use super::dims::{unify_dim, Ins, SymGen};
use crate::{DType, Dim, LossReduction, RnnAttrs, TensorType, TfIdfAttrs};

fn require_float(t: &TensorType, what: &str) -> Result<(), String> {
    if !t.dtype.is_float() {
        return Err(format!("{what} must be floating-point, got {}", t.dtype));
    }
    Ok(())
}

fn check_rank<'a>(t: &'a TensorType, rank: usize, what: &str) -> Result<Option<&'a [Dim]>, String> {
    match &t.shape {
        Some(s) if s.len() != rank => Err(format!("{what} must have rank {rank}, got {}", s.len())),
        Some(s) => Ok(Some(s)),
        None => Ok(None),
    }
}

/// `d / n` for a dim (an error when a known size is not divisible).
fn dim_div(d: &Dim, n: usize, what: &str, gen: &mut SymGen) -> Result<Dim, String> {
    match d {
        Dim::Known(k) if n == 0 || k % n != 0 => {
            Err(format!("{what}: {k} is not divisible by {n}"))
        }
        Dim::Known(k) => Ok(Dim::Known(k / n)),
        Dim::Sym(_) => Ok(gen.fresh()),
    }
}

/// `input [N,C,d...], target [N,d...], weight? [C] → loss` and, for the cross entropy,
/// `log_prob` of the input's type.
pub fn loss(
    reduction: LossReduction,
    ins: &Ins,
    num_outputs: usize,
) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "input")?;
    let t = ins.ty(1, "target")?;
    require_float(x, "input")?;
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        return Err(format!("target must be int32 or int64, got {}", t.dtype));
    }
    if let Some(xs) = &x.shape {
        if xs.len() < 2 {
            return Err(format!("input must have rank >= 2, got {}", xs.len()));
        }
        if let Some(ts) = &t.shape {
            if ts.len() + 1 != xs.len() {
                return Err(format!(
                    "target must have rank {} (input rank - 1), got {}",
                    xs.len() - 1,
                    ts.len()
                ));
            }
            unify_dim(&xs[0], &ts[0], "input and target batch sizes differ")?;
            for (a, b) in xs[2..].iter().zip(&ts[1..]) {
                unify_dim(a, b, "input and target spatial dims differ")?;
            }
        }
    }
    if let Some(w) = ins.opt_ty(2) {
        if w.dtype != x.dtype {
            return Err(format!(
                "weight has dtype {} but input has {}",
                w.dtype, x.dtype
            ));
        }
        if let (Some(ws), Some(xs)) = (check_rank(w, 1, "weight")?, &x.shape) {
            unify_dim(&ws[0], &xs[1], "weight length and class count differ")?;
        }
    }
    let loss = match reduction {
        LossReduction::None => TensorType {
            dtype: x.dtype,
            shape: t.shape.clone(),
        },
        _ => TensorType::fixed(x.dtype, &[]),
    };
    let mut outs = vec![loss];
    if num_outputs > 1 {
        outs.push(x.clone());
    }
    Ok(outs)
}

/// RNN / GRU / LSTM: `Y [seq, dirs, batch, H]`, `Y_h` (and `Y_c`) `[dirs, batch, H]`
/// (batch-major with `layout = 1`: `[batch, seq, dirs, H]`, `[batch, dirs, H]`).
pub fn recurrent(
    a: &RnnAttrs,
    ins: &Ins,
    num_outputs: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "X")?;
    let w = ins.ty(1, "W")?;
    let r = ins.ty(2, "R")?;
    require_float(x, "X")?;
    for (t, what) in [(w, "W"), (r, "R")] {
        if t.dtype != x.dtype {
            return Err(format!(
                "{what} has dtype {} but X has {}",
                t.dtype, x.dtype
            ));
        }
    }
    let dirs = a.direction.num_directions();
    let gates = a.cell.gates();
    let xs = check_rank(x, 3, "X")?;
    let ws = check_rank(w, 3, "W")?;
    let rs = check_rank(r, 3, "R")?;
    let hidden = match (a.hidden_size, rs) {
        (Some(h), _) => Dim::Known(h),
        (None, Some(rs)) => rs[2].clone(),
        (None, None) => gen.fresh(),
    };
    if let Some(h) = hidden.known() {
        let rows = h
            .checked_mul(gates)
            .ok_or_else(|| format!("hidden_size {h} is too large"))?;
        for (s, what) in [(ws, "W"), (rs, "R")] {
            if let Some(s) = s {
                unify_dim(
                    &s[0],
                    &Dim::Known(dirs),
                    &format!("{what}'s num_directions"),
                )?;
                unify_dim(&s[1], &Dim::Known(rows), &format!("{what}'s gate rows"))?;
            }
        }
        if let Some(rs) = rs {
            unify_dim(&rs[2], &Dim::Known(h), "R's hidden size")?;
        }
    }
    let (seq, batch) = match xs {
        Some(s) if a.batch_major => (s[1].clone(), s[0].clone()),
        Some(s) => (s[0].clone(), s[1].clone()),
        None => (gen.fresh(), gen.fresh()),
    };
    if let (Some(xs), Some(ws)) = (xs, ws) {
        unify_dim(&ws[2], &xs[2], "W's input size and X's")?;
    }
    let dt = x.dtype;
    let nd = Dim::Known(dirs);
    let y = if a.batch_major {
        vec![batch.clone(), seq, nd.clone(), hidden.clone()]
    } else {
        vec![seq, nd.clone(), batch.clone(), hidden.clone()]
    };
    let state = if a.batch_major {
        vec![batch, nd, hidden]
    } else {
        vec![nd, batch, hidden]
    };
    let mut outs = vec![TensorType::new(dt, y)];
    for _ in 1..num_outputs.max(1) {
        outs.push(TensorType::new(dt, state.clone()));
    }
    Ok(outs)
}

/// `input [B,C,L], weight [C,1,k] → output [B,C,L], present_state [B,C,k-1]`.
pub fn causal_conv(
    ins: &Ins,
    num_outputs: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "input")?;
    let w = ins.ty(1, "weight")?;
    require_float(x, "input")?;
    if w.dtype != x.dtype {
        return Err(format!(
            "weight has dtype {} but input has {}",
            w.dtype, x.dtype
        ));
    }
    let xs = check_rank(x, 3, "input")?;
    let ws = check_rank(w, 3, "weight")?;
    let km1 = match ws.map(|s| &s[2]) {
        Some(Dim::Known(0)) => return Err("weight's kernel size must be >= 1".into()),
        Some(Dim::Known(k)) => Dim::Known(k - 1),
        _ => gen.fresh(),
    };
    if let (Some(xs), Some(ws)) = (xs, ws) {
        unify_dim(&ws[0], &xs[1], "weight's channels and input's")?;
        unify_dim(&ws[1], &Dim::Known(1), "weight's dim 1 (depthwise)")?;
    }
    let (b, c) = match xs {
        Some(s) => (s[0].clone(), s[1].clone()),
        None => (gen.fresh(), gen.fresh()),
    };
    let mut outs = vec![x.clone()];
    if num_outputs > 1 {
        outs.push(TensorType::new(x.dtype, vec![b, c, km1]));
    }
    Ok(outs)
}

/// `query [B,T,Hq·dk], key, value [B,T,Hkv·dv] → output [B,T,Hq·dv], present [B,Hkv,dk,dv]`.
pub fn linear_attention(
    q_heads: usize,
    kv_heads: usize,
    ins: &Ins,
    num_outputs: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let q = ins.ty(0, "query")?;
    let k = ins.ty(1, "key")?;
    let v = ins.ty(2, "value")?;
    require_float(q, "query")?;
    if q_heads == 0 || kv_heads == 0 || q_heads % kv_heads != 0 {
        return Err(format!(
            "q_num_heads ({q_heads}) must be a positive multiple of kv_num_heads ({kv_heads})"
        ));
    }
    for (t, what) in [(k, "key"), (v, "value")] {
        if t.dtype != q.dtype {
            return Err(format!(
                "{what} has dtype {} but query has {}",
                t.dtype, q.dtype
            ));
        }
    }
    let qs = check_rank(q, 3, "query")?;
    check_rank(k, 3, "key")?;
    let vs = check_rank(v, 3, "value")?;
    let (b, t, dk) = match qs {
        Some(s) => (
            s[0].clone(),
            s[1].clone(),
            dim_div(&s[2], q_heads, "query's last dim / q_num_heads", gen)?,
        ),
        None => (gen.fresh(), gen.fresh(), gen.fresh()),
    };
    let dv = match vs {
        Some(s) => dim_div(&s[2], kv_heads, "value's last dim / kv_num_heads", gen)?,
        None => gen.fresh(),
    };
    let out_last = match &dv {
        Dim::Known(d) => Dim::Known(
            d.checked_mul(q_heads)
                .ok_or("output size overflows".to_string())?,
        ),
        Dim::Sym(_) => gen.fresh(),
    };
    let mut outs = vec![TensorType::new(q.dtype, vec![b.clone(), t, out_last])];
    if num_outputs > 1 {
        let dt = ins.opt_ty(3).map_or(q.dtype, |p| p.dtype);
        outs.push(TensorType::new(dt, vec![b, Dim::Known(kv_heads), dk, dv]));
    }
    Ok(outs)
}

/// `X [C] | [N,C] → Y f32 [out] | [N,out]`, `out = max(ngram_indexes) + 1`.
pub fn tfidf(a: &TfIdfAttrs, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    if !matches!(x.dtype, DType::I32 | DType::I64) {
        return Err(format!("X must be int32 or int64, got {}", x.dtype));
    }
    let out = a
        .ngram_indexes
        .iter()
        .max()
        .map(|m| m + 1)
        .ok_or("ngram_indexes is empty")?;
    let shape = match &x.shape {
        None => return Ok(TensorType::unknown_rank(DType::F32)),
        Some(s) if s.len() <= 1 => vec![Dim::Known(out)],
        Some(s) if s.len() == 2 => vec![s[0].clone(), Dim::Known(out)],
        Some(s) => return Err(format!("X must have rank 1 or 2, got {}", s.len())),
    };
    Ok(TensorType::new(DType::F32, shape))
}
