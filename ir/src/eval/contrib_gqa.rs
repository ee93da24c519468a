//! Reference semantics of onnxruntime's `GroupQueryAttention` (com.microsoft): the KV cache
//! update, optional rotary embedding, and causal (windowed, soft-capped) grouped-query
//! attention of [`crate::Op::GroupQueryAttention`]'s doc, checked against onnxruntime by
//! `tests/conformance/contrib.py`.

use super::contrib_ms::{attend, outputs};
use super::{opt, req, OpResult};
use crate::limits::check_alloc;
use crate::{GqaAttrs, Tensor};

/// Rotates `x[off..off + d]` (one head at position `pos`) by the caches' row `pos`.
fn rotate(x: &mut [f64], pos: usize, cos: &[f64], sin: &[f64], half: usize, inter: bool) {
    let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
    for i in 0..half {
        let (a, b) = if inter {
            (2 * i, 2 * i + 1)
        } else {
            (i, half + i)
        };
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * c[i] - xb * s[i];
        x[b] = xb * c[i] + xa * s[i];
    }
}

fn scalar_int(t: &Tensor, what: &str) -> Result<i64, String> {
    if t.dtype().is_float() || t.len() != 1 {
        return Err(format!(
            "{what} must be one integer, got {}{:?}",
            t.dtype(),
            t.shape()
        ));
    }
    Ok(t.to_i64_vec()[0])
}

/// com.microsoft `GroupQueryAttention`.
pub fn group_query_attention(a: &GqaAttrs, ins: &[Option<&Tensor>], n_out: usize) -> OpResult {
    let q_t = req(ins, 0, "query")?;
    let dt = q_t.dtype();
    let (hq, hkv) = (a.num_heads, a.kv_num_heads);
    if !dt.is_float() || q_t.rank() != 3 {
        return Err(format!(
            "query must be a float [B, S, hidden], got {dt}{:?}",
            q_t.shape()
        ));
    }
    if hq == 0 || hkv == 0 || hq % hkv != 0 {
        return Err(format!("kv_num_heads {hkv} must divide num_heads {hq}"));
    }
    let [bn, sn, w] = [q_t.shape()[0], q_t.shape()[1], q_t.shape()[2]];
    // q, k, v as [B, S, heads, D] values.
    let (q, k, v, d) = match (opt(ins, 1), opt(ins, 2)) {
        (None, None) => {
            let d = w / (hq + 2 * hkv);
            if d == 0 || w != (hq + 2 * hkv) * d {
                return Err(format!(
                    "packed QKV width {w} is not (num_heads + 2·kv_num_heads)·D"
                ));
            }
            let all = q_t.to_f64_vec();
            let (mut q, mut k, mut v) = (vec![], vec![], vec![]);
            for row in all.chunks(w) {
                q.extend_from_slice(&row[..hq * d]);
                k.extend_from_slice(&row[hq * d..(hq + hkv) * d]);
                v.extend_from_slice(&row[(hq + hkv) * d..]);
            }
            (q, k, v, d)
        }
        (Some(k), Some(v)) => {
            let d = w / hq;
            let want = [bn, sn, hkv * d];
            if d == 0 || w != hq * d || k.shape() != want || v.shape() != want {
                return Err(format!(
                    "key {:?} and value {:?} must be {want:?} for query {:?}",
                    k.shape(),
                    v.shape(),
                    q_t.shape()
                ));
            }
            if k.dtype() != dt || v.dtype() != dt {
                return Err("query, key and value must have one dtype".into());
            }
            (q_t.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec(), d)
        }
        _ => return Err("key and value must be given together (or neither: packed QKV)".into()),
    };
    let (past_k, past_v, l) = match (opt(ins, 3), opt(ins, 4)) {
        (None, None) => (vec![], vec![], 0),
        (Some(pk), Some(pv)) => {
            let s = pk.shape();
            if s.len() != 4 || s[0] != bn || s[1] != hkv || s[3] != d || pv.shape() != s {
                return Err(format!(
                    "past_key {s:?} / past_value {:?} must be [{bn}, {hkv}, L, {d}]",
                    pv.shape()
                ));
            }
            (pk.to_f64_vec(), pv.to_f64_vec(), s[2])
        }
        _ => return Err("past_key and past_value must be given together".into()),
    };
    let seqlens = req(ins, 5, "seqlens_k")?;
    if seqlens.dtype().is_float() || seqlens.shape() != [bn] {
        return Err(format!(
            "seqlens_k must be integer [{bn}], got {:?}",
            seqlens.shape()
        ));
    }
    let total = scalar_int(
        req(ins, 6, "total_sequence_length")?,
        "total_sequence_length",
    )?;
    let total = usize::try_from(total).map_err(|_| "total_sequence_length is negative")?;
    let c = total.max(l);
    let rot = match (a.do_rotary, opt(ins, 7), opt(ins, 8)) {
        (false, _, _) => None,
        (true, Some(cs), Some(sn_)) if cs.rank() == 2 && cs.shape() == sn_.shape() => {
            let half = cs.shape()[1];
            if half == 0 || 2 * half > d {
                return Err(format!(
                    "the rotary caches' width {half} does not fit head size {d}"
                ));
            }
            Some((cs.to_f64_vec(), sn_.to_f64_vec(), cs.shape()[0], half))
        }
        (true, _, _) => return Err("do_rotary needs cos_cache and sin_cache [M, R/2]".into()),
    };
    let pos_ids = match opt(ins, 9) {
        Some(p) if p.shape() == [bn, sn] => Some(p.to_i64_vec()),
        Some(p) => {
            return Err(format!(
                "position_ids must be [{bn}, {sn}], got {:?}",
                p.shape()
            ))
        }
        None => None,
    };
    let bias = match opt(ins, 10) {
        None => None,
        Some(ab) => {
            let s = ab.shape();
            let ok = s.len() == 4
                && (s[0] == bn || s[0] == 1)
                && (s[1] == hq || s[1] == 1)
                && s[2] == sn
                && s[3] == total;
            if !ok {
                return Err(format!(
                    "attention_bias must be [B|1, {hq}|1, {sn}, {total}], got {s:?}"
                ));
            }
            Some((ab.to_f64_vec(), s[0] == 1, s[1] == 1))
        }
    };
    let cells = bn
        .checked_mul(hkv)
        .and_then(|x| x.checked_mul(c))
        .and_then(|x| x.checked_mul(d));
    check_alloc(cells.map_or(u64::MAX, |x| x as u64 * 16), "the KV cache")?;
    let cells = cells.unwrap_or(0);
    let (mut pres_k, mut pres_v) = (vec![0.0; cells], vec![0.0; cells]);
    let (mut q, mut k) = (q, k);
    let seq = seqlens.to_i64_vec();
    let scale = a.scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    let group = hq / hkv;
    let mut out = vec![0.0; bn * sn * hq * d];
    for b in 0..bn {
        let t = usize::try_from(seq[b] + 1)
            .ok()
            .filter(|&t| t >= 1 && t <= c)
            .ok_or_else(|| format!("seqlens_k[{b}] = {} does not fit a cache of {c}", seq[b]))?;
        let nq = sn.min(t);
        let p = t - nq;
        if p > l {
            return Err(format!(
                "batch entry {b} needs {p} cached tokens, past_key holds {l}"
            ));
        }
        if let Some((cos, sin, rows, half)) = &rot {
            for s in 0..sn {
                let pos = match &pos_ids {
                    Some(ids) => usize::try_from(ids[b * sn + s]).unwrap_or(usize::MAX),
                    None => p + s,
                };
                if pos >= *rows {
                    continue; // a padding row past the cache; its output is unspecified
                }
                for h in 0..hq {
                    let o = ((b * sn + s) * hq + h) * d;
                    rotate(&mut q[o..o + d], pos, cos, sin, *half, a.rotary_interleaved);
                }
                for h in 0..hkv {
                    let o = ((b * sn + s) * hkv + h) * d;
                    rotate(&mut k[o..o + d], pos, cos, sin, *half, a.rotary_interleaved);
                }
            }
        }
        for h in 0..hkv {
            let dst = (b * hkv + h) * c * d;
            let src = (b * hkv + h) * l * d;
            pres_k[dst..dst + p * d].copy_from_slice(&past_k[src..src + p * d]);
            pres_v[dst..dst + p * d].copy_from_slice(&past_v[src..src + p * d]);
            for s in 0..nq {
                let o = ((b * sn + s) * hkv + h) * d;
                let at = dst + (p + s) * d;
                pres_k[at..at + d].copy_from_slice(&k[o..o + d]);
                pres_v[at..at + d].copy_from_slice(&v[o..o + d]);
            }
        }
        let mut scores = vec![0.0; t];
        for s in 0..sn {
            let pos = p + s;
            for h in 0..hq {
                let kh = h / group;
                let base = (b * hkv + kh) * c * d;
                let qr = &q[((b * sn + s) * hq + h) * d..][..d];
                for (j, sc) in scores.iter_mut().enumerate() {
                    let hidden = (a.causal && j > pos)
                        || a.local_window.is_some_and(|w| a.causal && j + w <= pos);
                    if hidden {
                        *sc = f64::NEG_INFINITY;
                        continue;
                    }
                    let kr = &pres_k[base + j * d..][..d];
                    let mut x = scale * qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f64>();
                    if a.softcap > 0.0 {
                        let cap = a.softcap as f64;
                        x = cap * (x / cap).tanh();
                    }
                    if let Some((ab, b1, h1)) = &bias {
                        let (bb, hh) = (if *b1 { 0 } else { b }, if *h1 { 0 } else { h });
                        x += ab[((bb * if *h1 { 1 } else { hq } + hh) * sn + s) * total + j];
                    }
                    *sc = x;
                }
                let o = &mut out[((b * sn + s) * hq + h) * d..][..d];
                attend(&mut scores, &pres_v[base..], o);
            }
        }
    }
    let present = [(vec![bn, hkv, c, d], pres_k), (vec![bn, hkv, c, d], pres_v)];
    Ok(outputs(dt, (vec![bn, sn, hq * d], out), present, n_out))
}
