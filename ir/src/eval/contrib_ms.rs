//! Reference semantics of onnxruntime's `MultiHeadAttention` and `MatMulNBits` (domain
//! com.microsoft): plain f64 loops over the definitions in [`crate::Op`]'s docs, checked
//! against onnxruntime by `tests/conformance/contrib.py`.

use super::util::round_to;
use super::{opt, req, OpResult};
use crate::limits::check_alloc;
use crate::{DType, MatMulNBitsAttrs, MhaAttrs, Tensor};

/// A `[B, S, H·D]` (`bnsh == false`) or `[B, H, S, D]` tensor as `[B, H, S, D]` values.
fn to_bnsh(t: &Tensor, heads: usize, what: &str) -> Result<(Vec<f64>, [usize; 4]), String> {
    let s = t.shape();
    match *s {
        [b, h, n, d] if h == heads => Ok((t.to_f64_vec(), [b, h, n, d])),
        [b, n, w] if heads > 0 && w % heads == 0 => {
            let d = w / heads;
            let v = t.to_f64_vec();
            let mut out = vec![0.0; v.len()];
            for bi in 0..b {
                for si in 0..n {
                    for h in 0..heads {
                        let src = (bi * n + si) * w + h * d;
                        let dst = ((bi * heads + h) * n + si) * d;
                        out[dst..dst + d].copy_from_slice(&v[src..src + d]);
                    }
                }
            }
            Ok((out, [b, heads, n, d]))
        }
        _ => Err(format!(
            "{what} has shape {s:?}, expected [B, S, {heads}·D] or [B, {heads}, S, D]"
        )),
    }
}

/// `past` (`[B,H,P,D]`) followed by `new` (`[B,H,N,D]`) along the sequence axis.
fn concat_seq(past: &[f64], p: usize, new: &[f64], n: usize, bh: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(past.len() + new.len());
    for i in 0..bh {
        out.extend_from_slice(&past[i * p * d..(i + 1) * p * d]);
        out.extend_from_slice(&new[i * n * d..(i + 1) * n * d]);
    }
    out
}

/// Adds `bias[off..off + w]` to every row of a `[.., w]` tensor.
fn add_rows(t: &Tensor, bias: &[f64], off: usize) -> Tensor {
    let w = *t.shape().last().unwrap_or(&1);
    let mut v = t.to_f64_vec();
    for (i, x) in v.iter_mut().enumerate() {
        *x += bias[off + i % w];
    }
    Tensor::from_f64(t.dtype(), t.shape().to_vec(), &v)
}

/// com.microsoft `MultiHeadAttention`.
pub fn multi_head_attention(a: &MhaAttrs, ins: &[Option<&Tensor>], n_out: usize) -> OpResult {
    let (mut q, mut k, mut v) = (
        req(ins, 0, "query")?.clone(),
        req(ins, 1, "key")?.clone(),
        req(ins, 2, "value")?.clone(),
    );
    let dt = q.dtype();
    if !dt.is_float() || k.dtype() != dt || v.dtype() != dt {
        return Err(format!(
            "query, key and value must be float tensors of one dtype, got {dt}, {} and {}",
            k.dtype(),
            v.dtype()
        ));
    }
    if ins.len() > 8 && ins[8..].iter().any(|t| t.is_some()) {
        return Err("past_sequence_length and cache_indirection are not supported".into());
    }
    let h = a.num_heads;
    if q.rank() != 3 || k.rank() != v.rank() || !(k.rank() == 3 || k.rank() == 4) {
        return Err(format!(
            "query must be [B, S, hidden] and key/value both 3-D or both 4-D, got ranks {}, {}, {}",
            q.rank(),
            k.rank(),
            v.rank()
        ));
    }
    if let Some(bias) = opt(ins, 3) {
        let (wq, wk, wv) = (q.shape()[2], k.shape()[2], v.shape()[2]);
        if k.rank() != 3 || bias.shape() != [wq + wk + wv] || bias.dtype() != dt {
            return Err(format!(
                "bias must be {dt}[{}] with 3-D key and value, got {}{:?}",
                wq + wk + wv,
                bias.dtype(),
                bias.shape()
            ));
        }
        let b = bias.to_f64_vec();
        q = add_rows(&q, &b, 0);
        k = add_rows(&k, &b, wq);
        v = add_rows(&v, &b, wq + wk);
    }
    let (qv, [bn, _, sq, d]) = to_bnsh(&q, h, "query")?;
    let (mut kv, [kb, _, skv, dk]) = to_bnsh(&k, h, "key")?;
    let (mut vv, [vb, _, vs, dv]) = to_bnsh(&v, h, "value")?;
    if kb != bn || vb != bn || dk != d || vs != skv {
        return Err(format!(
            "key {:?} and value {:?} do not fit query {:?} with {h} heads",
            k.shape(),
            v.shape(),
            q.shape()
        ));
    }
    let mut p = 0;
    match (opt(ins, 6), opt(ins, 7)) {
        (None, None) => {}
        (Some(pk), Some(pv)) => {
            let ps = pk.shape();
            if ps.len() != 4
                || ps[0] != bn
                || ps[1] != h
                || ps[3] != d
                || pv.shape() != [bn, h, ps[2], dv]
            {
                return Err(format!(
                    "past_key {ps:?} / past_value {:?} must be [B, {h}, P, D] and [B, {h}, P, Dv]",
                    pv.shape()
                ));
            }
            p = ps[2];
            kv = concat_seq(&pk.to_f64_vec(), p, &kv, skv, bn * h, d);
            vv = concat_seq(&pv.to_f64_vec(), p, &vv, skv, bn * h, dv);
        }
        _ => return Err("past_key and past_value must be given together".into()),
    }
    let t = p + skv;
    let cells = bn.checked_mul(sq).and_then(|x| x.checked_mul(t));
    check_alloc(
        cells.map_or(u64::MAX, |c| c as u64 * 8),
        "the attention mask",
    )?;
    // Masked (b, i, j): key padding and causality, each adding mask_filter_value once.
    let mut masked = vec![false; bn * sq * t];
    if let Some(m) = opt(ins, 4) {
        if m.dtype().is_float() {
            return Err(format!(
                "key_padding_mask must be integer, got {}",
                m.dtype()
            ));
        }
        let mv = m.to_i64_vec();
        match *m.shape() {
            [b, tt] if b == bn && tt == t => {
                for bi in 0..bn {
                    for i in 0..sq {
                        for j in 0..t {
                            masked[(bi * sq + i) * t + j] |= mv[bi * t + j] == 0;
                        }
                    }
                }
            }
            [b] if b == bn => {
                for bi in 0..bn {
                    for i in 0..sq {
                        for j in 0..t {
                            masked[(bi * sq + i) * t + j] |= (j as i64) >= mv[bi];
                        }
                    }
                }
            }
            _ => {
                return Err(format!(
                    "key_padding_mask has shape {:?}; supported are [{bn}, {t}] and [{bn}]",
                    m.shape()
                ))
            }
        }
    }
    if a.unidirectional {
        for (idx, m) in masked.iter_mut().enumerate() {
            let (i, j) = ((idx / t) % sq, idx % t);
            *m |= j > p + i;
        }
    }
    let bias = match opt(ins, 5) {
        None => None,
        Some(ab) => {
            let s = ab.shape();
            let ok = s.len() == 4
                && (s[0] == bn || s[0] == 1)
                && (s[1] == h || s[1] == 1)
                && s[2] == sq
                && s[3] == t;
            if !ok || ab.dtype() != dt {
                return Err(format!(
                    "attention_bias must be {dt}[B|1, {h}|1, {sq}, {t}], got {}{s:?}",
                    ab.dtype()
                ));
            }
            Some((ab.to_f64_vec(), s[0] == 1, s[1] == 1))
        }
    };
    let scale = a.scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    let mfv = a.mask_filter_value as f64;
    let mut out = vec![0.0; bn * sq * h * dv];
    let mut scores = vec![0.0; t];
    for bi in 0..bn {
        for hi in 0..h {
            let kb = (bi * h + hi) * t;
            for i in 0..sq {
                let qr = &qv[((bi * h + hi) * sq + i) * d..][..d];
                for (j, sc) in scores.iter_mut().enumerate() {
                    let kr = &kv[(kb + j) * d..][..d];
                    let mut s = scale * qr.iter().zip(kr).map(|(x, y)| x * y).sum::<f64>();
                    if masked[(bi * sq + i) * t + j] {
                        s += mfv;
                    }
                    if let Some((ab, b1, h1)) = &bias {
                        let (bb, hh) = (if *b1 { 0 } else { bi }, if *h1 { 0 } else { hi });
                        s += ab[((bb * if *h1 { 1 } else { h } + hh) * sq + i) * t + j];
                    }
                    *sc = s;
                }
                let o = &mut out[((bi * sq + i) * h + hi) * dv..][..dv];
                attend(&mut scores, &vv[kb * dv..], o);
            }
        }
    }
    let present = [(vec![bn, h, t, d], kv), (vec![bn, h, t, dv], vv)];
    Ok(outputs(dt, (vec![bn, sq, h * dv], out), present, n_out))
}

/// `out = softmax(scores)·V` for value rows `vals[j·w..(j+1)·w]` (`w = out.len()`); a row
/// whose scores are all −∞ stays zero.
pub(super) fn attend(scores: &mut [f64], vals: &[f64], out: &mut [f64]) {
    let w = out.len();
    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !mx.is_finite() {
        return;
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - mx).exp();
        sum += *s;
    }
    for (j, &p) in scores.iter().enumerate() {
        for (x, y) in out.iter_mut().zip(&vals[j * w..(j + 1) * w]) {
            *x += p / sum * y;
        }
    }
}

/// The attention output (rounded to `dt`) and as many of the present caches as asked for.
pub(super) fn outputs(
    dt: crate::DType,
    (shape, out): (Vec<usize>, Vec<f64>),
    present: [(Vec<usize>, Vec<f64>); 2],
    n_out: usize,
) -> Vec<Tensor> {
    let out: Vec<f64> = out.into_iter().map(|x| round_to(dt, x)).collect();
    let mut res = vec![Tensor::from_f64(dt, shape, &out)];
    for (s, v) in present.into_iter().take(n_out.saturating_sub(1)) {
        res.push(Tensor::from_f64(dt, s, &v));
    }
    res
}

/// The logical `[K, N]` weight of a `MatMulNBits` (`b`, `scales`, `zero_points?` as the
/// op takes them), in `scales`' dtype: the one dequantization that the reference evaluator
/// and the cpu backend (which dequantizes constant weights once, when it builds a plan)
/// share.
pub fn nbits_weight(
    a: &MatMulNBitsAttrs,
    b: &Tensor,
    sc: &Tensor,
    zp: Option<&Tensor>,
) -> Result<Tensor, String> {
    let dt = sc.dtype();
    let (k, n, bits, block) = (a.k, a.n, a.bits as usize, a.block_size);
    if !matches!(bits, 2 | 4 | 8) || block < 16 || !block.is_power_of_two() {
        return Err(format!(
            "bits {bits} and block_size {block} must be 2, 4 or 8 and a power of two ≥ 16"
        ));
    }
    let kb = k.div_ceil(block);
    let blob = block * bits / 8;
    if b.dtype() != DType::U8 || b.shape() != [n, kb, blob] {
        return Err(format!(
            "B must be u8[{n}, {kb}, {blob}], got {}{:?}",
            b.dtype(),
            b.shape()
        ));
    }
    if !dt.is_float() || sc.len() != n * kb {
        return Err(format!(
            "scales must be float with {} elements, got {}{:?}",
            n * kb,
            sc.dtype(),
            sc.shape()
        ));
    }
    let mask = (1u16 << bits) - 1;
    let zp: Vec<f64> = match zp {
        None => vec![(1u32 << (bits - 1)) as f64; n * kb],
        Some(z) if z.dtype() == DType::U8 => {
            let row = (kb * bits).div_ceil(8);
            if z.len() != n * row {
                return Err(format!(
                    "packed zero_points must have {} bytes, got {:?}",
                    n * row,
                    z.shape()
                ));
            }
            let zv = z.to_i64_vec();
            (0..n * kb)
                .map(|i| {
                    let (ni, blk) = (i / kb, i % kb);
                    let bit = blk * bits;
                    ((zv[ni * row + bit / 8] as u16 >> (bit % 8)) & mask) as f64
                })
                .collect()
        }
        Some(z) if z.dtype() == dt && z.len() == n * kb => z.to_f64_vec(),
        Some(z) => {
            return Err(format!(
                "zero_points must be u8 (packed) or {dt}[{}], got {}{:?}",
                n * kb,
                z.dtype(),
                z.shape()
            ))
        }
    };
    check_alloc((n * k * 8) as u64, "the dequantized MatMulNBits weight")?;
    let (bv, sv) = (b.to_i64_vec(), sc.to_f64_vec());
    let mut w = vec![0.0f64; k * n];
    for ni in 0..n {
        for ki in 0..k {
            let (blk, within) = (ki / block, ki % block);
            let bit = within * bits;
            let byte = bv[(ni * kb + blk) * blob + bit / 8] as u16;
            let qv = ((byte >> (bit % 8)) & mask) as f64;
            let s = ni * kb + blk;
            w[ki * n + ni] = round_to(dt, (qv - zp[s]) * sv[s]);
        }
    }
    Ok(Tensor::from_f64(dt, vec![k, n], &w))
}

/// com.microsoft `MatMulNBits`: `a · nbits_weight + bias`.
pub fn matmul_nbits(a: &MatMulNBitsAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "A")?;
    let dt = x.dtype();
    let (k, n) = (a.k, a.n);
    if opt(ins, 4).is_some() {
        return Err("g_idx (deprecated) is not supported".into());
    }
    if !dt.is_float() || x.shape().last() != Some(&k) {
        return Err(format!(
            "A must be a float tensor with last dimension K = {k}, got {dt}{:?}",
            x.shape()
        ));
    }
    let sc = req(ins, 2, "scales")?;
    if sc.dtype() != dt {
        return Err(format!("scales must be {dt}, got {}", sc.dtype()));
    }
    let w = nbits_weight(a, req(ins, 1, "B")?, sc, opt(ins, 3))?.to_f64_vec();
    let bias = match opt(ins, 5) {
        None => None,
        Some(c) if c.dtype() == dt && c.shape() == [n] => Some(c.to_f64_vec()),
        Some(c) => {
            return Err(format!(
                "bias must be {dt}[{n}], got {}{:?}",
                c.dtype(),
                c.shape()
            ))
        }
    };
    let rows = x.len() / k.max(1);
    let cells = rows.checked_mul(n);
    check_alloc(
        cells.map_or(u64::MAX, |c| c as u64 * 8),
        "the MatMulNBits output",
    )?;
    let xv = x.to_f64_vec();
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        let xr = &xv[r * k..(r + 1) * k];
        for ni in 0..n {
            let acc: f64 = xr
                .iter()
                .enumerate()
                .map(|(ki, a)| a * w[ki * n + ni])
                .sum();
            let c = bias.as_ref().map_or(0.0, |b| b[ni]);
            y[r * n + ni] = round_to(dt, acc + c);
        }
    }
    let mut shape = x.shape().to_vec();
    if let Some(l) = shape.last_mut() {
        *l = n;
    }
    Ok(vec![Tensor::from_f64(dt, shape, &y)])
}
