//! Reference semantics of the ONNX standard attention ops: `SdpAttention` (ONNX
//! `Attention`, opsets 23–25) and `RotaryEmbedding` (opset 23).
//!
//! Attention follows the ONNX reference implementation step by step: Q and K are each
//! multiplied by `√scale`, the scores soft-capped, the bias (mask padded to the total key
//! length, causal and sliding-window frontiers offset by the cache, `nonpad_kv_seqlen`
//! padding) added, softmax taken (a row whose bias is all `-inf` gives zeros), and the
//! probabilities multiply V. Sums run in f64; every intermediate the reference holds in
//! the input dtype is rounded to it, so f16/bf16 results match it closely.

use super::util::{float_tensor, round_to};
use super::{opt, req, OpResult};
use crate::limits::{check_tensor, try_vec};
use crate::{DType, SdpAttentionAttrs, Tensor};

/// A tensor viewed as `[B, H, S, D]` (3-D `[B, S, H·D]` inputs split into heads).
struct Heads {
    data: Vec<f64>,
    b: usize,
    h: usize,
    s: usize,
    d: usize,
    /// Strides of (b, h, s) in `data`; the head dim is contiguous.
    st: [usize; 3],
}

impl Heads {
    fn new(t: &Tensor, heads: Option<usize>, what: &str, attr: &str) -> Result<Heads, String> {
        let sh = t.shape();
        match sh.len() {
            4 => Ok(Heads {
                data: t.to_f64_vec(),
                b: sh[0],
                h: sh[1],
                s: sh[2],
                d: sh[3],
                st: [sh[1] * sh[2] * sh[3], sh[2] * sh[3], sh[3]],
            }),
            3 => {
                let h = match heads {
                    Some(n) if n > 0 => n,
                    _ => return Err(format!("3-D inputs need a positive {attr} attribute")),
                };
                if sh[2] % h != 0 {
                    return Err(format!(
                        "{what} width {} is not a multiple of {attr} = {h}",
                        sh[2]
                    ));
                }
                let d = sh[2] / h;
                Ok(Heads {
                    data: t.to_f64_vec(),
                    b: sh[0],
                    h,
                    s: sh[1],
                    d,
                    st: [sh[1] * sh[2], d, sh[2]],
                })
            }
            r => Err(format!("{what} must have rank 3 or 4, has rank {r}")),
        }
    }

    fn row(&self, b: usize, h: usize, s: usize) -> &[f64] {
        &self.data[b * self.st[0] + h * self.st[1] + s * self.st[2]..][..self.d]
    }

    /// `concat(past, self)` on the sequence axis, as a contiguous `[B, H, P+S, D]` view.
    fn with_past(&self, past: Option<&Tensor>, what: &str) -> Result<Heads, String> {
        let p = match past {
            Some(p) => {
                let ps = p.shape();
                if ps.len() != 4 || ps[0] != self.b || ps[1] != self.h || ps[3] != self.d {
                    return Err(format!(
                        "{what} has shape {ps:?}, expected [{}, {}, past, {}]",
                        self.b, self.h, self.d
                    ));
                }
                Some((p.to_f64_vec(), ps[2]))
            }
            None => None,
        };
        let plen = p.as_ref().map_or(0, |(_, n)| *n);
        let s = plen + self.s;
        let shape = [self.b, self.h, s, self.d];
        let n = check_tensor(&shape, 8, what)? / 8;
        let mut data = try_vec(n, 0.0f64, what)?;
        for b in 0..self.b {
            for h in 0..self.h {
                for j in 0..s {
                    let dst = &mut data[((b * self.h + h) * s + j) * self.d..][..self.d];
                    if j < plen {
                        let (pv, _) = p.as_ref().expect("plen > 0 implies a past");
                        dst.copy_from_slice(
                            &pv[((b * self.h + h) * plen + j) * self.d..][..self.d],
                        );
                    } else {
                        dst.copy_from_slice(self.row(b, h, j - plen));
                    }
                }
            }
        }
        Ok(Heads {
            data,
            b: self.b,
            h: self.h,
            s,
            d: self.d,
            st: [self.h * s * self.d, s * self.d, self.d],
        })
    }

    fn tensor(&self, dt: DType) -> Result<Tensor, String> {
        float_tensor(dt, vec![self.b, self.h, self.s, self.d], &self.data)
    }
}

/// The attention mask, padded on the key axis to the total length and read with numpy
/// broadcasting against `[B, Hq, Sq, T]`; bool masks become `0` / `-inf`.
struct Mask {
    vals: Vec<f64>,
    /// Stride of each of the 4 output axes in `vals` (0 where broadcast).
    bst: [usize; 4],
}

impl Mask {
    fn new(m: &Tensor, out: [usize; 4]) -> Result<Mask, String> {
        let sh = m.shape();
        if sh.is_empty() || sh.len() > 4 {
            return Err(format!("attn_mask must have rank 1 to 4, has shape {sh:?}"));
        }
        let last = sh[sh.len() - 1];
        let total = out[3];
        let is_bool = m.dtype() == DType::Bool;
        let raw = m.to_f64_vec();
        let conv = |x: f64| match (is_bool, x != 0.0) {
            (true, true) => 0.0,
            (true, false) => f64::NEG_INFINITY,
            (false, _) => x,
        };
        // Pad the key axis with false / -inf when the mask is shorter.
        let mut ps = sh.to_vec();
        let vals: Vec<f64> = if last < total {
            let rows: usize = sh[..sh.len() - 1].iter().product();
            *ps.last_mut().expect("rank ≥ 1") = total;
            let n = check_tensor(&ps, 8, "the padded attn_mask")? / 8;
            let mut v = try_vec(n, f64::NEG_INFINITY, "the padded attn_mask")?;
            for r in 0..rows {
                for j in 0..last {
                    v[r * total + j] = conv(raw[r * last + j]);
                }
            }
            v
        } else {
            raw.into_iter().map(conv).collect()
        };
        let off = 4 - ps.len();
        let mut st = vec![1usize; ps.len()];
        for i in (0..ps.len().saturating_sub(1)).rev() {
            st[i] = st[i + 1] * ps[i + 1];
        }
        let mut bst = [0usize; 4];
        for (i, &d) in ps.iter().enumerate() {
            let o = out[off + i];
            if d == o {
                bst[off + i] = st[i];
            } else if d != 1 {
                return Err(format!(
                    "attn_mask of shape {sh:?} (padded {ps:?}) does not broadcast to {out:?}"
                ));
            }
        }
        Ok(Mask { vals, bst })
    }

    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        let s = &self.bst;
        self.vals[b * s[0] + h * s[1] + i * s[2] + j * s[3]]
    }
}

/// `Σ v` as numpy sums an array of `dt`: bf16 (an ml_dtypes type) is added one element at
/// a time, rounding every partial sum; the built-in float types are summed once and rounded.
fn dtype_sum(dt: DType, v: &[f64]) -> f64 {
    if dt == DType::BF16 {
        v.iter().fold(0.0, |acc, &x| round_to(dt, acc + x))
    } else {
        round_to(dt, v.iter().sum())
    }
}

/// NaN-propagating maximum (numpy `max`).
fn nan_max(v: &[f64]) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for &x in v {
        if x.is_nan() {
            return f64::NAN;
        }
        m = m.max(x);
    }
    m
}

/// `q, k, v, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen? → y, present_key,
/// present_value, qk_matmul_output` (see `Op::SdpAttention`).
pub fn sdp_attention(
    a: &SdpAttentionAttrs,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let q_t = req(ins, 0, "Q")?;
    let k_t = req(ins, 1, "K")?;
    let v_t = req(ins, 2, "V")?;
    let dt = q_t.dtype();
    if !dt.is_float() {
        return Err(format!("Attention needs floating-point inputs, got {dt}"));
    }
    for (t, what) in [(k_t, "K"), (v_t, "V")] {
        if t.dtype() != dt {
            return Err(format!("{what} has dtype {} but Q has {dt}", t.dtype()));
        }
    }
    let rank = q_t.rank();
    if k_t.rank() != rank || v_t.rank() != rank {
        return Err("Q, K and V must have one rank".into());
    }
    let (past_k, past_v) = (opt(ins, 4), opt(ins, 5));
    if past_k.is_some() != past_v.is_some() {
        return Err("past_key and past_value must be given together".into());
    }
    let nonpad = opt(ins, 6);
    if nonpad.is_some() && past_k.is_some() {
        return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
    }
    for t in [past_k, past_v].into_iter().flatten() {
        if t.dtype() != dt {
            return Err(format!(
                "past_key/past_value have dtype {} but Q has {dt}",
                t.dtype()
            ));
        }
    }
    let mode = a.qk_matmul_output_mode;
    if mode > 3 {
        return Err(format!("qk_matmul_output_mode {mode} is not 0..3"));
    }
    let q = Heads::new(q_t, a.q_num_heads, "Q", "q_num_heads")?;
    let k = Heads::new(k_t, a.kv_num_heads, "K", "kv_num_heads")?;
    let v = Heads::new(v_t, a.kv_num_heads, "V", "kv_num_heads")?;
    if k.b != q.b || v.b != q.b {
        return Err(format!(
            "batch sizes differ: Q {}, K {}, V {}",
            q.b, k.b, v.b
        ));
    }
    if k.h != v.h || k.s != v.s {
        return Err(format!(
            "K ({} heads, length {}) and V ({} heads, length {}) do not agree",
            k.h, k.s, v.h, v.s
        ));
    }
    if k.d != q.d {
        return Err(format!("Q head size {} differs from K's {}", q.d, k.d));
    }
    if k.h == 0 || q.h % k.h != 0 {
        return Err(format!("K/V heads {} do not divide Q heads {}", k.h, q.h));
    }
    let pk = k.with_past(past_k, "present_key")?;
    let pv = v.with_past(past_v, "present_value")?;
    let (b_n, hq, sq, d, dv, t_n) = (q.b, q.h, q.s, q.d, v.d, pk.s);
    let group = hq / k.h;
    let plen = past_k.map_or(0, |p| p.shape()[2]);
    // Per-batch frontier offset of the causal and window masks.
    let nonpad_v = match nonpad {
        Some(n) => {
            if n.dtype() != DType::I64 || n.len() != b_n {
                return Err(format!(
                    "nonpad_kv_seqlen must be int64 of length {b_n}, has {} {:?}",
                    n.dtype(),
                    n.shape()
                ));
            }
            Some(n.to_i64_vec())
        }
        None => None,
    };
    let offset = |b: usize| -> i64 {
        match &nonpad_v {
            Some(n) => n[b].saturating_sub(sq as i64),
            None => plen as i64,
        }
    };
    let out4 = [b_n, hq, sq, t_n];
    let mask = match opt(ins, 3) {
        Some(m) => {
            if m.dtype() != DType::Bool && m.dtype() != dt {
                return Err(format!("attn_mask must be bool or {dt}, got {}", m.dtype()));
            }
            Some(Mask::new(m, out4)?)
        }
        None => None,
    };
    let rnd = |x: f64| round_to(dt, x);
    let sp = a.softmax_precision.unwrap_or(dt);
    if !sp.is_float() {
        return Err(format!("softmax_precision must be a float type, got {sp}"));
    }
    let rsp = |x: f64| round_to(sp, x);
    let scale = match a.scale {
        Some(s) => s as f64,
        None => 1.0 / (d as f64).sqrt(),
    };
    let sc = rnd(scale.sqrt());
    let softcap = a.softcap as f64;

    let y_len = check_tensor(&[b_n, hq, sq, dv], 8, "Y")? / 8;
    let mut y = try_vec(y_len, 0.0f64, "Y")?;
    let want_qk = num_outputs > 3;
    let qk_len = if want_qk {
        check_tensor(&out4, 8, "qk_matmul_output")? / 8
    } else {
        0
    };
    let mut qk_out = try_vec(qk_len, 0.0f64, "qk_matmul_output")?;
    let mut s = try_vec(t_n, 0.0f64, "scores")?;
    let mut bias = try_vec(t_n, 0.0f64, "bias")?;
    let mut w = try_vec(t_n, 0.0f64, "scores")?;
    for bi in 0..b_n {
        let off = offset(bi);
        for hi in 0..hq {
            let kh = hi / group;
            for i in 0..sq {
                let qrow: Vec<f64> = q.row(bi, hi, i).iter().map(|&x| rnd(x * sc)).collect();
                for j in 0..t_n {
                    let krow = pk.row(bi, kh, j);
                    let dot: f64 = qrow.iter().zip(krow).map(|(x, y)| x * rnd(y * sc)).sum();
                    let mut x = rnd(dot);
                    if softcap > 0.0 {
                        x = rnd(rnd(rnd(x / softcap).tanh()) * softcap);
                    }
                    s[j] = x;
                    // The additive bias: mask, causal and window frontiers, padding.
                    let mut bj = mask.as_ref().map_or(0.0, |m| m.at(bi, hi, i, j));
                    let pos = i as i64 + off; // absolute position of query i
                    let jj = j as i64;
                    if a.is_causal && jj > pos {
                        bj += f64::NEG_INFINITY;
                    }
                    let diff = pos - jj;
                    if a.left_window.is_some_and(|l| diff > l as i64)
                        || a.right_window.is_some_and(|r| -diff > r as i64)
                    {
                        bj += f64::NEG_INFINITY;
                    }
                    if nonpad_v.as_ref().is_some_and(|n| jj >= n[bi]) {
                        bj += f64::NEG_INFINITY;
                    }
                    bias[j] = bj;
                    w[j] = rnd(x + bj);
                }
                let qk_row = (((bi * hq) + hi) * sq + i) * t_n;
                if want_qk && mode < 3 {
                    let src = if mode == 2 { &w } else { &s };
                    qk_out[qk_row..qk_row + t_n].copy_from_slice(src);
                }
                // Softmax in the softmax precision; fully-masked rows give zeros.
                let ws: Vec<f64> = w.iter().map(|&x| rsp(x)).collect();
                let m = nan_max(&ws);
                let safe = if m == f64::NEG_INFINITY { 0.0 } else { m };
                let tmp: Vec<f64> = ws.iter().map(|&x| rsp(rsp(x - safe).exp())).collect();
                let mut sum = dtype_sum(sp, &tmp);
                if sum == 0.0 {
                    sum = 1.0;
                }
                let masked = bias.iter().all(|&x| x == f64::NEG_INFINITY);
                let p: Vec<f64> = tmp
                    .iter()
                    .map(|&x| if masked { 0.0 } else { rnd(rsp(x / sum)) })
                    .collect();
                if want_qk && mode == 3 {
                    qk_out[qk_row..qk_row + t_n].copy_from_slice(&p);
                }
                let yrow = &mut y[(((bi * hq) + hi) * sq + i) * dv..][..dv];
                for (j, &pj) in p.iter().enumerate() {
                    for (o, &x) in yrow.iter_mut().zip(pv.row(bi, kh, j)) {
                        *o += pj * x;
                    }
                }
            }
        }
    }
    let y_t = if rank == 3 {
        // [B, H, S, Dv] → [B, S, H·Dv]
        let mut t = try_vec(y_len, 0.0f64, "Y")?;
        for bi in 0..b_n {
            for hi in 0..hq {
                for i in 0..sq {
                    let src = &y[(((bi * hq) + hi) * sq + i) * dv..][..dv];
                    t[(bi * sq + i) * hq * dv + hi * dv..][..dv].copy_from_slice(src);
                }
            }
        }
        float_tensor(dt, vec![b_n, sq, hq * dv], &t)?
    } else {
        float_tensor(dt, vec![b_n, hq, sq, dv], &y)?
    };
    let mut outs = vec![y_t];
    if num_outputs > 1 {
        outs.push(pk.tensor(dt)?);
    }
    if num_outputs > 2 {
        outs.push(pv.tensor(dt)?);
    }
    if want_qk {
        outs.push(float_tensor(dt, out4.to_vec(), &qk_out)?);
    }
    Ok(outs)
}

/// `x, cos_cache, sin_cache, position_ids? → y` (see `Op::RotaryEmbedding`).
pub fn rotary_embedding(
    interleaved: bool,
    rotary_dim: usize,
    num_heads: usize,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x_t = req(ins, 0, "input")?;
    let cos_t = req(ins, 1, "cos_cache")?;
    let sin_t = req(ins, 2, "sin_cache")?;
    let pos_t = opt(ins, 3);
    let dt = x_t.dtype();
    if !dt.is_float() {
        return Err(format!(
            "RotaryEmbedding needs a floating-point input, got {dt}"
        ));
    }
    let sh = x_t.shape();
    // Element (b, s, h, c) of x is at b·sb + s·ss + h·sh + c.
    let (b_n, s_n, h_n, d, st) = match sh.len() {
        4 => (
            sh[0],
            sh[2],
            sh[1],
            sh[3],
            [sh[1] * sh[2] * sh[3], sh[3], sh[2] * sh[3]],
        ),
        3 => {
            // com.microsoft form: without num_heads, the head size is twice the caches'
            // last dimension.
            let cache_d = cos_t.shape().last().map(|&h| 2 * h).filter(|&d| d > 0);
            let num_heads = match (num_heads, cache_d) {
                (0, Some(d)) if rotary_dim == 0 && sh[2] % d == 0 => sh[2] / d,
                (h, _) => h,
            };
            if num_heads == 0 || sh[2] % num_heads != 0 {
                return Err(format!(
                    "a 3-D input needs num_heads dividing its width {}, num_heads is {num_heads}",
                    sh[2]
                ));
            }
            let d = sh[2] / num_heads;
            (sh[0], sh[1], num_heads, d, [sh[1] * sh[2], sh[2], d])
        }
        r => return Err(format!("input must have rank 3 or 4, has rank {r}")),
    };
    let rd = if rotary_dim == 0 { d } else { rotary_dim };
    if rd > d || rd % 2 != 0 {
        return Err(format!(
            "rotary_embedding_dim {rd} must be even and at most the head size {d}"
        ));
    }
    let half = rd / 2;
    let (cs, ss) = (cos_t.shape(), sin_t.shape());
    if cs != ss {
        return Err(format!(
            "cos_cache {cs:?} and sin_cache {ss:?} differ in shape"
        ));
    }
    // Index of (b, s) into the caches' rows of `half` values.
    let pos = match pos_t {
        // com.microsoft form: one element, the position of every sequence's first token.
        Some(p) if p.shape() == [1] => {
            let start = p.to_i64_vec()[0];
            if cs.len() != 2 || cs[1] != half {
                return Err(format!(
                    "with position_ids the caches must be [max_position, {half}], are {cs:?}"
                ));
            }
            let rows = cs[0] as i64;
            if start < 0 || start.saturating_add(s_n as i64) > rows {
                return Err(format!(
                    "positions {start}..{} are outside the cache's {rows} rows",
                    start.saturating_add(s_n as i64)
                ));
            }
            (0..b_n * s_n).map(|i| start as usize + i % s_n).collect()
        }
        Some(p) => {
            if p.shape() != [b_n, s_n] {
                return Err(format!(
                    "position_ids has shape {:?}, expected [{b_n}, {s_n}]",
                    p.shape()
                ));
            }
            if cs.len() != 2 || cs[1] != half {
                return Err(format!(
                    "with position_ids the caches must be [max_position, {half}], are {cs:?}"
                ));
            }
            let rows = cs[0];
            let mut v = Vec::with_capacity(b_n * s_n);
            for &id in &p.to_i64_vec() {
                let r = usize::try_from(id)
                    .ok()
                    .filter(|&r| r < rows)
                    .ok_or_else(|| {
                        format!("position id {id} is outside the cache's {rows} rows")
                    })?;
                v.push(r);
            }
            v
        }
        None => {
            if cs.len() != 3 || cs[0] != b_n || cs[1] != s_n || cs[2] != half {
                return Err(format!(
                    "without position_ids the caches must be [{b_n}, {s_n}, {half}], are {cs:?}"
                ));
            }
            (0..b_n * s_n).collect()
        }
    };
    let (xv, cv, sv) = (x_t.to_f64_vec(), cos_t.to_f64_vec(), sin_t.to_f64_vec());
    let rnd = |x: f64| round_to(dt, x);
    let mut out = xv.clone();
    for b in 0..b_n {
        for s in 0..s_n {
            let row = pos[b * s_n + s] * half;
            for h in 0..h_n {
                let base = b * st[0] + s * st[1] + h * st[2];
                for c in 0..half {
                    let (i1, i2) = if interleaved {
                        (base + 2 * c, base + 2 * c + 1)
                    } else {
                        (base + c, base + half + c)
                    };
                    let (x1, x2) = (xv[i1], xv[i2]);
                    let (co, si) = (cv[row + c], sv[row + c]);
                    out[i1] = rnd(rnd(co * x1) - rnd(si * x2));
                    out[i2] = rnd(rnd(si * x1) + rnd(co * x2));
                }
            }
        }
    }
    Ok(vec![float_tensor(dt, sh.to_vec(), &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> SdpAttentionAttrs {
        SdpAttentionAttrs {
            q_num_heads: None,
            kv_num_heads: None,
            scale: None,
            is_causal: false,
            softcap: 0.0,
            qk_matmul_output_mode: 0,
            softmax_precision: None,
            left_window: None,
            right_window: None,
        }
    }

    fn t(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            shape.to_vec(),
            (0..n).map(|i| (i % 7) as f32 * 0.1).collect(),
        )
    }

    #[test]
    fn single_key_gives_its_value() {
        // One key: the softmax is 1 whatever the score, so y = v.
        let (q, k) = (t(&[1, 2, 3, 4]), t(&[1, 1, 1, 4]));
        let v = Tensor::from_vec(vec![1, 1, 1, 2], vec![3.0f32, -1.0]);
        let a = attrs();
        let out = sdp_attention(&a, &[Some(&q), Some(&k), Some(&v)], 1).unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 3, 2]);
        for (i, y) in out[0].to_f64_vec().iter().enumerate() {
            assert_eq!(*y, if i % 2 == 0 { 3.0 } else { -1.0 });
        }
    }

    #[test]
    fn fully_masked_rows_are_zero_and_presents_concatenate() {
        let (q, k, v) = (t(&[1, 1, 2, 4]), t(&[1, 1, 3, 4]), t(&[1, 1, 3, 4]));
        let (pk, pv) = (t(&[1, 1, 2, 4]), t(&[1, 1, 2, 4]));
        let mask = Tensor::from_vec(vec![2, 5], vec![false; 10]);
        let a = attrs();
        let ins = [
            Some(&q),
            Some(&k),
            Some(&v),
            Some(&mask),
            Some(&pk),
            Some(&pv),
        ];
        let out = sdp_attention(&a, &ins, 4).unwrap();
        assert!(out[0].to_f64_vec().iter().all(|&x| x == 0.0));
        assert_eq!(out[1].shape(), &[1, 1, 5, 4]);
        assert_eq!(out[3].shape(), &[1, 1, 2, 5]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let a = attrs();
        let (q, k) = (t(&[1, 3, 2, 4]), t(&[1, 2, 2, 4]));
        let e = sdp_attention(&a, &[Some(&q), Some(&k), Some(&k)], 1).unwrap_err();
        assert!(e.contains("do not divide"), "{e}");
        let (q3, k3) = (t(&[1, 2, 8]), t(&[1, 2, 8]));
        let e = sdp_attention(&a, &[Some(&q3), Some(&k3), Some(&k3)], 1).unwrap_err();
        assert!(e.contains("q_num_heads"), "{e}");
        let q = t(&[1, 1, 2, 4]);
        let mask = t(&[3, 2]);
        let e = sdp_attention(&a, &[Some(&q), Some(&q), Some(&q), Some(&mask)], 1).unwrap_err();
        assert!(e.contains("broadcast"), "{e}");
        let x = t(&[1, 1, 2, 4]);
        let cache = t(&[4, 2]);
        let pos = Tensor::from_vec(vec![1, 2], vec![0i64, 9]);
        let e = rotary_embedding(
            false,
            0,
            0,
            &[Some(&x), Some(&cache), Some(&cache), Some(&pos)],
        )
        .unwrap_err();
        assert!(e.contains("position id 9"), "{e}");
        let e = rotary_embedding(false, 3, 0, &[Some(&x), Some(&cache), Some(&cache)]).unwrap_err();
        assert!(e.contains("even"), "{e}");
    }

    #[test]
    fn rotary_rotates_pairs() {
        // cos = 0, sin = 1: (x1, x2) → (-x2, x1).
        let x = Tensor::from_vec(vec![1, 1, 1, 4], vec![1.0f32, 2.0, 3.0, 4.0]);
        let cos = Tensor::from_vec(vec![1, 2], vec![0.0f32, 0.0]);
        let sin = Tensor::from_vec(vec![1, 2], vec![1.0f32, 1.0]);
        let pos = Tensor::from_vec(vec![1, 1], vec![0i64]);
        let ins = [Some(&x), Some(&cos), Some(&sin), Some(&pos)];
        let halves = rotary_embedding(false, 0, 0, &ins).unwrap();
        assert_eq!(halves[0].to_f64_vec(), vec![-3.0, -4.0, 1.0, 2.0]);
        let pairs = rotary_embedding(true, 0, 0, &ins).unwrap();
        assert_eq!(pairs[0].to_f64_vec(), vec![-2.0, 1.0, -4.0, 3.0]);
    }
}
