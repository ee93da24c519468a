//! Reference semantics of the onnxruntime contrib ops without an IR equivalent:
//! `BiasGelu`, `ScaledMatMul` (com.microsoft FusedMatMul), `EmbedLayerNorm` and
//! `QkvAttention` (com.microsoft Attention). Plain f64 loops, as in onnxruntime's CPU
//! kernels' definitions.

use super::linalg::{matmul_core, matmul_plan};
use super::movement::permute;
use super::util::{broadcast_index_map, float_tensor};
use super::{elementwise, opt, req, OpResult};
use crate::infer::{qkv_widths, scaled_matmul_perm};
use crate::{BinaryOp, GeluApprox, QkvAttentionAttrs, Tensor};

/// `gelu(x + bias)`, the very ops it stands for.
pub fn bias_gelu(approximate: GeluApprox, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "x")?;
    let b = req(ins, 1, "bias")?;
    let sum = elementwise::binary(BinaryOp::Add, &[Some(x), Some(b)])?;
    let sum = sum.into_iter().next().ok_or("no output")?;
    elementwise::gelu(approximate, &[Some(&sum)])
}

/// `alpha·op(a)·op(b)`.
pub fn scaled_matmul(alpha: f32, trans: [bool; 4], ins: &[Option<&Tensor>]) -> OpResult {
    let a = req(ins, 0, "A")?;
    let b = req(ins, 1, "B")?;
    let dt = a.dtype();
    if !dt.is_float() || b.dtype() != dt {
        return Err(format!(
            "A and B must be float tensors of one dtype, got {dt} and {}",
            b.dtype()
        ));
    }
    let [ta, tb, tba, tbb] = trans;
    if tba || tbb {
        crate::infer::check_batch_ranks(a.rank(), b.rank())?;
    }
    let op = |t: &Tensor, tr: bool, tbatch: bool| -> Result<Tensor, String> {
        match scaled_matmul_perm(t.rank(), tr, tbatch) {
            None => Ok(t.clone()),
            Some(p) => permute(t, &p),
        }
    };
    let (a, b) = (op(a, ta, tba)?, op(b, tb, tbb)?);
    let p = matmul_plan(a.shape(), b.shape())?;
    let mut out = matmul_core(&p, &a.to_f64_vec(), &b.to_f64_vec());
    let alpha = alpha as f64;
    if alpha != 1.0 {
        out.iter_mut().for_each(|v| *v *= alpha);
    }
    Ok(vec![float_tensor(dt, p.out_shape, &out)?])
}

/// An integer index `v` into a table of `rows` rows.
fn row_index(v: i64, rows: usize, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&r| r < rows)
        .ok_or_else(|| format!("{what} {v} is out of range for a table of {rows} rows"))
}

fn dims2<'a>(t: &'a Tensor, what: &str) -> Result<(usize, usize), String> {
    match t.shape() {
        [a, b] => Ok((*a, *b)),
        s => Err(format!("{what} must be 2-D, got shape {s:?}")),
    }
}

/// See `Op::EmbedLayerNorm`: ports `input_ids, word_emb, pos_emb, gamma, beta?,
/// segment_ids?, seg_emb?, mask?, position_ids?`.
pub fn embed_layer_norm(epsilon: f32, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let ids = req(ins, 0, "input_ids")?;
    let word = req(ins, 1, "word_embedding")?;
    let pos = req(ins, 2, "position_embedding")?;
    let gamma = req(ins, 3, "gamma")?;
    let beta = opt(ins, 4);
    let seg_ids = opt(ins, 5);
    let seg = opt(ins, 6);
    let mask = opt(ins, 7);
    let pos_ids = opt(ins, 8);
    let dt = word.dtype();
    if !dt.is_float() {
        return Err(format!("the embeddings must be float tensors, got {dt}"));
    }
    let (b, s) = dims2(ids, "input_ids")?;
    let (nw, h) = dims2(word, "word_embedding")?;
    let (np, hp) = dims2(pos, "position_embedding")?;
    if hp != h {
        return Err(format!("embedding widths differ: {h} and {hp}"));
    }
    for (t, what) in [(Some(gamma), "gamma"), (beta, "beta")] {
        if let Some(t) = t {
            if t.shape() != [h] {
                return Err(format!("{what} must be [{h}], got {:?}", t.shape()));
            }
        }
    }
    for (t, what) in [(seg_ids, "segment_ids"), (mask, "mask")] {
        if let Some(t) = t {
            if t.shape() != [b, s] {
                return Err(format!("{what} must be [{b}, {s}], got {:?}", t.shape()));
            }
        }
    }
    let seg_table = match (seg_ids, seg) {
        (Some(i), Some(t)) => {
            let (ns, hs) = dims2(t, "segment_embedding")?;
            if hs != h {
                return Err(format!("segment embedding width {hs} is not {h}"));
            }
            Some((i.to_i64_vec(), t.to_f64_vec(), ns))
        }
        (None, None) => None,
        _ => return Err("segment_ids and segment_embedding must be given together".into()),
    };
    let pids = match pos_ids {
        Some(p) => {
            let (pb, ps) = dims2(p, "position_ids")?;
            if (pb != b && pb != 1) || ps != s {
                return Err(format!(
                    "position_ids must be [{b}, {s}] or [1, {s}], got {:?}",
                    p.shape()
                ));
            }
            Some((p.to_i64_vec(), pb))
        }
        None => None,
    };
    let (idv, wv, pv) = (ids.to_i64_vec(), word.to_f64_vec(), pos.to_f64_vec());
    let gv = gamma.to_f64_vec();
    let bv = beta.map(|t| t.to_f64_vec());
    let mut out = vec![0.0f64; b * s * h];
    let mut sum = vec![0.0f64; if num_outputs > 2 { b * s * h } else { 0 }];
    let mut row = vec![0.0f64; h];
    for bi in 0..b {
        for si in 0..s {
            let t = bi * s + si;
            let wr = row_index(idv[t], nw, "input id")?;
            let p = match &pids {
                Some((p, pb)) => p[if *pb == 1 { si } else { t }],
                None => si as i64,
            };
            let pr = row_index(p, np, "position")?;
            for (k, r) in row.iter_mut().enumerate() {
                *r = wv[wr * h + k] + pv[pr * h + k];
            }
            if let Some((si_v, sv, ns)) = &seg_table {
                let sr = row_index(si_v[t], *ns, "segment id")?;
                for (k, r) in row.iter_mut().enumerate() {
                    *r += sv[sr * h + k];
                }
            }
            if !sum.is_empty() {
                sum[t * h..(t + 1) * h].copy_from_slice(&row);
            }
            let n = h.max(1) as f64;
            let mean = row.iter().sum::<f64>() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let inv = 1.0 / (var + epsilon as f64).sqrt();
            for k in 0..h {
                let mut y = (row[k] - mean) * inv * gv[k];
                if let Some(bv) = &bv {
                    y += bv[k];
                }
                out[t * h + k] = y;
            }
        }
    }
    let mut outs = vec![float_tensor(dt, vec![b, s, h], &out)?];
    if num_outputs > 1 {
        let counts: Vec<i32> = match mask {
            Some(m) => {
                let mv = m.to_i64_vec();
                (0..b)
                    .map(|bi| mv[bi * s..(bi + 1) * s].iter().filter(|&&v| v == 1).count() as i32)
                    .collect()
            }
            None => vec![0; b],
        };
        outs.push(Tensor::from_vec(vec![b], counts));
    }
    if num_outputs > 2 {
        outs.push(float_tensor(dt, vec![b, s, h], &sum)?);
    }
    Ok(outs)
}

/// How `mask_index` masks key `j` of query `i` in batch `b` (additive, per score).
enum Mask {
    None,
    /// `[B]`: keys at or after `end[b]` are masked.
    Ends(Vec<i64>),
    /// `[2B]`: keys at or after `end[b]` or before `start[b]` are masked.
    EndsStarts(Vec<i64>),
    /// `[B, S]`: a 0/1 mask of keys (0 masks).
    Keys(Vec<i64>),
    /// `[B, S, S]`: a 0/1 mask per query and key.
    Pairs(Vec<i64>),
}

impl Mask {
    fn new(m: Option<&Tensor>, b: usize, s: usize) -> Result<Mask, String> {
        let Some(m) = m else { return Ok(Mask::None) };
        if m.dtype().is_float() {
            return Err(format!(
                "mask_index must be an integer tensor, got {}",
                m.dtype()
            ));
        }
        let v = m.to_i64_vec();
        Ok(match m.shape() {
            [n] if *n == b => Mask::Ends(v),
            [n] if *n == 2 * b => Mask::EndsStarts(v),
            [x, y] if [*x, *y] == [b, s] => Mask::Keys(v),
            [x, y, z] if [*x, *y, *z] == [b, s, s] => Mask::Pairs(v),
            sh => {
                return Err(format!(
                    "mask_index of shape {sh:?} is not supported (batch {b}, sequence {s}): \
                     [B], [2B], [B, S] and [B, S, S] are"
                ))
            }
        })
    }

    fn masked(&self, b: usize, i: usize, j: usize, nb: usize, s: usize) -> bool {
        let j = j as i64;
        match self {
            Mask::None => false,
            Mask::Ends(e) => j >= e[b],
            Mask::EndsStarts(v) => j >= v[b] || j < v[b + nb].min(s as i64),
            Mask::Keys(v) => v[b * s + j as usize] <= 0,
            Mask::Pairs(v) => v[(b * s + i) * s + j as usize] <= 0,
        }
    }
}

/// See `Op::QkvAttention`: ports `input, weights, bias?, mask_index?, attention_bias?`.
pub fn qkv_attention(a: &QkvAttentionAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let x = req(ins, 0, "input")?;
    let w = req(ins, 1, "weights")?;
    let bias = opt(ins, 2);
    let dt = x.dtype();
    if !dt.is_float() || w.dtype() != dt {
        return Err(format!(
            "input and weights must be float tensors of one dtype, got {dt} and {}",
            w.dtype()
        ));
    }
    let [b, s, din] = match x.shape() {
        [b, s, d] => [*b, *s, *d],
        sh => return Err(format!("input must be 3-D, got shape {sh:?}")),
    };
    let (wr, cols) = dims2(w, "weights")?;
    if wr != din {
        return Err(format!("weights have {wr} rows, the input width is {din}"));
    }
    let [dq, _, dv] = qkv_widths(a, cols)?;
    if let Some(t) = bias {
        if t.shape() != [cols] || t.dtype() != dt {
            return Err(format!(
                "bias must be [{cols}] of {dt}, got {:?}",
                t.shape()
            ));
        }
    }
    let mask = Mask::new(opt(ins, 3), b, s)?;
    let h = a.num_heads;
    let scores_shape = [b, h, s, s];
    let abias = match opt(ins, 4) {
        Some(t) => {
            if t.dtype() != dt || t.rank() != 4 {
                return Err(format!("attention_bias must be 4-D of {dt}"));
            }
            let map = broadcast_index_map(t.shape(), &scores_shape)?;
            let v = t.to_f64_vec();
            Some((map, v))
        }
        None => None,
    };
    // The packed projection [B·S, cols] (its size is checked against the budget first).
    crate::limits::check_tensor(&[b * s, cols], 8, "the QKV projection")?;
    let p = matmul_plan(&[b * s, din], &[din, cols])?;
    let mut qkv = matmul_core(&p, &x.to_f64_vec(), &w.to_f64_vec());
    if let Some(t) = bias {
        let bv = t.to_f64_vec();
        for r in qkv.chunks_mut(cols.max(1)) {
            r.iter_mut().zip(&bv).for_each(|(v, b)| *v += b);
        }
    }
    let (d, dvh) = (dq / h, dv / h);
    let scale = a.scale.map_or(1.0 / (d as f64).sqrt(), |v| v as f64);
    let filter = a.mask_filter_value as f64;
    let lowest = f32::MIN as f64;
    let mut out = vec![0.0f64; b * s * dv];
    let mut sc = vec![0.0f64; s];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..s {
                let q = &qkv[(bi * s + i) * cols + hi * d..][..d];
                for (j, pj) in sc.iter_mut().enumerate() {
                    let k = &qkv[(bi * s + j) * cols + dq + hi * d..][..d];
                    let dot: f64 = q.iter().zip(k).map(|(x, y)| x * y).sum();
                    let mut v = scale * dot;
                    if mask.masked(bi, i, j, b, s) {
                        v += filter;
                    }
                    if a.unidirectional && j > i {
                        v += lowest;
                    }
                    if let Some((map, bv)) = &abias {
                        v += bv[map[((bi * h + hi) * s + i) * s + j]];
                    }
                    *pj = v;
                }
                let max = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut total = 0.0;
                for pj in sc.iter_mut() {
                    *pj = (*pj - max).exp();
                    total += *pj;
                }
                let o = &mut out[(bi * s + i) * dv + hi * dvh..][..dvh];
                for (j, pj) in sc.iter().enumerate() {
                    let wgt = pj / total;
                    let v = &qkv[(bi * s + j) * cols + 2 * dq + hi * dvh..][..dvh];
                    o.iter_mut().zip(v).for_each(|(o, x)| *o += wgt * x);
                }
            }
        }
    }
    Ok(vec![float_tensor(dt, vec![b, s, dv], &out)?])
}
