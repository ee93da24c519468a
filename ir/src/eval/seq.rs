//! Sequence-model ops: CausalConvWithState (stateful causal depthwise conv1d),
//! LinearAttention (the recurrent linear-attention state update) and TfIdfVectorizer
//! (n-gram counting over integer tokens). f64 throughout, rounded to the output dtype.

use super::util::round_to;
use super::{opt, req, OpResult};
use crate::{DType, LinearAttentionRule, Tensor, TfIdfAttrs, TfIdfMode};
use std::collections::HashMap;

/// `input [B,C,L], weight [C,1,k], bias? [C], past_state? [B,C,k-1] → output, present`.
pub fn causal_conv(silu: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let w = req(ins, 1, "weight")?;
    let dt = x.dtype();
    if !dt.is_float() {
        return Err(format!("input must be floating-point, got {dt}"));
    }
    let &[b, c, l] = x.shape() else {
        return Err(format!("input must have rank 3, got shape {:?}", x.shape()));
    };
    let &[wc, w1, k] = w.shape() else {
        return Err(format!(
            "weight must have rank 3, got shape {:?}",
            w.shape()
        ));
    };
    if wc != c || w1 != 1 || k == 0 {
        return Err(format!(
            "weight has shape {:?}, expected [{c}, 1, k] with k >= 1",
            w.shape()
        ));
    }
    let bias = match opt(ins, 2) {
        Some(t) if t.shape() != [c] => {
            return Err(format!("bias has shape {:?}, expected [{c}]", t.shape()))
        }
        Some(t) => t.to_f64_vec(),
        None => vec![0.0; c],
    };
    let km1 = k - 1;
    if crate::limits::numel(&[b, c, km1]).is_none() {
        return Err("present_state's size overflows".into());
    }
    let past = match opt(ins, 3) {
        Some(t) if t.shape() != [b, c, km1] => {
            return Err(format!(
                "past_state has shape {:?}, expected {:?}",
                t.shape(),
                [b, c, km1]
            ))
        }
        Some(t) => t.to_f64_vec(),
        None => vec![0.0; b * c * km1],
    };
    let xv = x.to_f64_vec();
    let wv = w.to_f64_vec();
    let pl = km1 + l;
    let mut out = vec![0.0; b * c * l];
    let mut present = vec![0.0; b * c * km1];
    for bi in 0..b {
        for ci in 0..c {
            let row = bi * c + ci;
            // The padded row: past state, then the input.
            let padded: Vec<f64> = past[row * km1..(row + 1) * km1]
                .iter()
                .chain(&xv[row * l..(row + 1) * l])
                .copied()
                .collect();
            let kw = &wv[ci * k..(ci + 1) * k];
            for li in 0..l {
                let s: f64 = (0..k).map(|j| kw[j] * padded[li + j]).sum();
                let mut y = round_to(dt, s + bias[ci]);
                if silu {
                    y *= 1.0 / (1.0 + (-y).exp());
                }
                out[row * l + li] = y;
            }
            present[row * km1..(row + 1) * km1].copy_from_slice(&padded[pl - km1..]);
        }
    }
    Ok(vec![
        Tensor::from_f64(dt, vec![b, c, l], &out),
        Tensor::from_f64(dt, vec![b, c, km1], &present),
    ])
}

/// Attributes of [`linear_attention`].
pub struct LinAttn {
    pub q_heads: usize,
    pub kv_heads: usize,
    pub scale: Option<f32>,
    pub rule: LinearAttentionRule,
}

/// `query, key, value, past_state?, decay?, beta? → output, present_state`.
pub fn linear_attention(p: &LinAttn, ins: &[Option<&Tensor>]) -> OpResult {
    let q = req(ins, 0, "query")?;
    let k = req(ins, 1, "key")?;
    let v = req(ins, 2, "value")?;
    let (past, decay, beta) = (opt(ins, 3), opt(ins, 4), opt(ins, 5));
    let (hq, hk) = (p.q_heads, p.kv_heads);
    if hq == 0 || hk == 0 || hq % hk != 0 {
        return Err(format!(
            "q_num_heads ({hq}) must be a positive multiple of kv_num_heads ({hk})"
        ));
    }
    let dt = q.dtype();
    if !dt.is_float() {
        return Err(format!("query must be floating-point, got {dt}"));
    }
    let (gating, delta) = (p.rule.gated(), p.rule.delta());
    let rule = p.rule.onnx_name();
    match (gating, decay.is_some()) {
        (true, false) => return Err(format!("update_rule '{rule}' requires the decay input")),
        (false, true) => return Err(format!("update_rule '{rule}' forbids the decay input")),
        _ => {}
    }
    match (delta, beta.is_some()) {
        (true, false) => return Err(format!("update_rule '{rule}' requires the beta input")),
        (false, true) => return Err(format!("update_rule '{rule}' forbids the beta input")),
        _ => {}
    }
    let &[b, t, qd] = q.shape() else {
        return Err(format!("query must have rank 3, got shape {:?}", q.shape()));
    };
    if qd % hq != 0 {
        return Err(format!(
            "query's last dim {qd} is not divisible by q_num_heads {hq}"
        ));
    }
    let dk = qd / hq;
    let kd = hk
        .checked_mul(dk)
        .ok_or("kv_num_heads·d_k overflows".to_string())?;
    if k.shape() != [b, t, kd] {
        return Err(format!(
            "key has shape {:?}, expected {:?}",
            k.shape(),
            [b, t, kd]
        ));
    }
    let &[vb, vt, vd] = v.shape() else {
        return Err(format!("value must have rank 3, got shape {:?}", v.shape()));
    };
    if vb != b || vt != t || vd % hk != 0 {
        return Err(format!(
            "value has shape {:?}, expected [{b}, {t}, kv_num_heads·d_v]",
            v.shape()
        ));
    }
    let dv = vd / hk;
    if crate::limits::numel(&[b, hk, dk, dv]).is_none()
        || crate::limits::numel(&[b, t, hq, dv]).is_none()
    {
        return Err("the outputs' sizes overflow".into());
    }
    // decay: per key dim [B,T,Hkv·dk] or per head [B,T,Hkv] (index: b, t, h, d).
    let decay_at: Option<(Vec<f64>, bool)> = match decay {
        None => None,
        Some(g) => {
            let s = g.shape();
            if s.len() != 3 || s[0] != b || s[1] != t {
                return Err(format!("decay has shape {s:?}, expected [{b}, {t}, ...]"));
            }
            let per_head = if s[2] == hk {
                true
            } else if s[2] == kd {
                false
            } else {
                return Err(format!(
                    "decay's last dim {} must be kv_num_heads ({hk}) or kv_num_heads·d_k ({})",
                    s[2], kd
                ));
            };
            Some((g.to_f64_vec(), per_head))
        }
    };
    let beta_at: Option<(Vec<f64>, usize)> = match beta {
        None => None,
        Some(bt) => {
            let s = bt.shape();
            if s.len() != 3 || s[0] != b || s[1] != t || (s[2] != hk && s[2] != 1) {
                return Err(format!(
                    "beta has shape {s:?}, expected [{b}, {t}, {hk} or 1]"
                ));
            }
            Some((bt.to_f64_vec(), s[2]))
        }
    };
    let (state_dt, mut state) = match past {
        Some(s) => {
            if s.shape() != [b, hk, dk, dv] {
                return Err(format!(
                    "past_state has shape {:?}, expected {:?}",
                    s.shape(),
                    [b, hk, dk, dv]
                ));
            }
            (s.dtype(), s.to_f64_vec())
        }
        None => (
            dt,
            crate::limits::try_vec(b * hk * dk * dv, 0.0, "the state")?,
        ),
    };
    if !state_dt.is_float() {
        return Err(format!("past_state must be floating-point, got {state_dt}"));
    }
    let scale = match p.scale {
        Some(s) if s != 0.0 => s as f64,
        _ => 1.0 / (dk as f64).sqrt(),
    };
    let (qv, kv, vv) = (q.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec());
    let group = hq / hk;
    let mut out = crate::limits::try_vec(b * t * hq * dv, 0.0, "the output")?;
    let mut vt_buf = vec![0.0; dv];
    for bi in 0..b {
        for ti in 0..t {
            for h in 0..hk {
                let st = &mut state[(bi * hk + h) * dk * dv..(bi * hk + h + 1) * dk * dv];
                let kt = &kv[((bi * t + ti) * hk + h) * dk..][..dk];
                vt_buf.copy_from_slice(&vv[((bi * t + ti) * hk + h) * dv..][..dv]);
                if let Some((g, per_head)) = &decay_at {
                    for di in 0..dk {
                        let gi = if *per_head {
                            g[(bi * t + ti) * hk + h]
                        } else {
                            g[((bi * t + ti) * hk + h) * dk + di]
                        };
                        let e = gi.exp();
                        st[di * dv..(di + 1) * dv].iter_mut().for_each(|s| *s *= e);
                    }
                }
                if let Some((bv, bl)) = &beta_at {
                    let bh = if *bl == 1 { 0 } else { h };
                    let be = bv[(bi * t + ti) * bl + bh];
                    for m in 0..dv {
                        let retrieved: f64 = (0..dk).map(|di| st[di * dv + m] * kt[di]).sum();
                        vt_buf[m] = be * (vt_buf[m] - retrieved);
                    }
                }
                for di in 0..dk {
                    for m in 0..dv {
                        st[di * dv + m] += kt[di] * vt_buf[m];
                    }
                }
                // Read for every query head of this KV head's group.
                for qh in h * group..(h + 1) * group {
                    let qt = &qv[((bi * t + ti) * hq + qh) * dk..][..dk];
                    let o = &mut out[((bi * t + ti) * hq + qh) * dv..][..dv];
                    for (m, om) in o.iter_mut().enumerate() {
                        let s: f64 = (0..dk).map(|di| qt[di] * st[di * dv + m]).sum();
                        *om = scale * s;
                    }
                }
            }
        }
    }
    Ok(vec![
        Tensor::from_f64(dt, vec![b, t, hq * dv], &out),
        Tensor::from_f64(state_dt, vec![b, hk, dk, dv], &state),
    ])
}

/// `X [C] | [N,C] (int32/int64) → Y f32 [out] | [N,out]`.
pub fn tfidf(a: &TfIdfAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "X")?;
    if !matches!(x.dtype(), DType::I32 | DType::I64) {
        return Err(format!("X must be int32 or int64, got {}", x.dtype()));
    }
    let out_size = a
        .ngram_indexes
        .iter()
        .max()
        .map(|m| m + 1)
        .ok_or("ngram_indexes is empty")?;
    let (rows, cols, out_shape) = match x.shape() {
        [] => (1, 1, vec![out_size]),
        [c] => (1, *c, vec![out_size]),
        [n, c] => (*n, *c, vec![*n, out_size]),
        s => return Err(format!("X must have rank 1 or 2, got shape {s:?}")),
    };
    // Pool n-grams of the included lengths → their ordinal over the whole pool.
    let mut grams: HashMap<&[i64], usize> = HashMap::new();
    let mut ordinal = 0usize;
    for (i, &start) in a.ngram_counts.iter().enumerate() {
        let size = i + 1;
        let end = a.ngram_counts.get(i + 1).copied().unwrap_or(a.pool.len());
        if start > end || end > a.pool.len() {
            return Err(format!(
                "ngram_counts {:?} do not partition a pool of {}",
                a.ngram_counts,
                a.pool.len()
            ));
        }
        let n = (end - start) / size;
        if (a.min_gram_length..=a.max_gram_length).contains(&size) {
            for j in 0..n {
                let g = &a.pool[start + j * size..start + (j + 1) * size];
                // A repeated n-gram keeps its last ordinal (as ONNX's trie does).
                grams.insert(g, ordinal + j);
            }
        }
        ordinal += n;
    }
    if ordinal > a.ngram_indexes.len() {
        return Err(format!(
            "the pool holds {ordinal} n-grams but ngram_indexes has {} entries",
            a.ngram_indexes.len()
        ));
    }
    let xv = x.to_i64_vec();
    let mut freq = vec![0u64; rows * out_size];
    let max_gram = a.max_gram_length;
    for row in 0..rows {
        let xr = &xv[row * cols..(row + 1) * cols];
        let mut start_size = a.min_gram_length.max(1);
        let mut gram: Vec<i64> = Vec::with_capacity(max_gram.min(cols));
        // Skips past the row's length only find unigrams again (counted once anyway).
        let max_skip = a.max_skip_count.saturating_add(1).min(cols.max(1));
        for skip in 1..=max_skip {
            for s in 0..cols {
                gram.clear();
                for n in 1..=max_gram {
                    let Some(&tok) = xr.get(s + (n - 1) * skip) else {
                        break;
                    };
                    gram.push(tok);
                    if n >= start_size {
                        if let Some(&o) = grams.get(gram.as_slice()) {
                            freq[row * out_size + a.ngram_indexes[o]] += 1;
                        }
                    }
                }
            }
            // Unigrams are counted once: they do not depend on the skip distance.
            if start_size == 1 {
                start_size = 2;
                if start_size > max_gram {
                    break;
                }
            }
        }
    }
    let w = &a.weights;
    if !w.is_empty() && w.len() < out_size && a.mode != TfIdfMode::Tf {
        return Err(format!(
            "weights has {} entries but the output has {out_size} columns",
            w.len()
        ));
    }
    let y: Vec<f64> = freq
        .iter()
        .enumerate()
        .map(|(p, &f)| {
            let col = p % out_size;
            match a.mode {
                TfIdfMode::Tf => f as f64,
                TfIdfMode::Idf if w.is_empty() => (f > 0) as u8 as f64,
                TfIdfMode::Idf => {
                    if f > 0 {
                        w[col] as f64
                    } else {
                        0.0
                    }
                }
                TfIdfMode::TfIdf if w.is_empty() => f as f64,
                TfIdfMode::TfIdf => w[col] as f64 * f as f64,
            }
        })
        .collect();
    Ok(vec![Tensor::from_f64(DType::F32, out_shape, &y)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_conv_carries_state() {
        // One channel, k = 2: y[l] = w0·x[l-1] + w1·x[l], past x[-1] = 10.
        let x = Tensor::from_vec(vec![1, 1, 3], vec![1.0f32, 2.0, 3.0]);
        let w = Tensor::from_vec(vec![1, 1, 2], vec![1.0f32, 10.0]);
        let past = Tensor::from_vec(vec![1, 1, 1], vec![10.0f32]);
        let out = causal_conv(false, &[Some(&x), Some(&w), None, Some(&past)]).unwrap();
        assert_eq!(out[0].to_f64_vec(), vec![20.0, 21.0, 32.0]);
        assert_eq!(out[1].to_f64_vec(), vec![3.0]);
    }

    #[test]
    fn tfidf_counts_bigrams_with_skips() {
        let a = TfIdfAttrs {
            mode: TfIdfMode::Tf,
            min_gram_length: 1,
            max_gram_length: 2,
            max_skip_count: 1,
            ngram_counts: vec![0, 1],
            ngram_indexes: vec![0, 1],
            weights: vec![],
            pool: vec![7, 7, 8],
        };
        // Unigram 7 twice; bigram (7,8) twice adjacent, never two apart.
        let x = Tensor::from_vec(vec![4], vec![7i64, 8, 7, 8]);
        let out = tfidf(&a, &[Some(&x)]).unwrap();
        assert_eq!(out[0].to_f64_vec(), vec![2.0, 2.0]);
    }
}
