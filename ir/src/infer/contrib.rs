//! Shape inference for the onnxruntime contrib ops without an IR equivalent: `BiasGelu`,
//! `ScaledMatMul` (com.microsoft FusedMatMul), `EmbedLayerNorm` and `QkvAttention`.

use super::dims::{broadcast_shapes, unify_dim, Ins, SymGen};
use super::linalg;
use crate::{DType, Dim, QkvAttentionAttrs, TensorType};

/// `x, bias → gelu(x + bias)`: the broadcast of both, of x's float dtype.
pub fn bias_gelu(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "x")?;
    let b = ins.ty(1, "bias")?;
    if !x.dtype.is_float() {
        return Err(format!("x must be a float tensor, got {}", x.dtype));
    }
    if b.dtype != x.dtype {
        return Err(format!("bias has dtype {} but x has {}", b.dtype, x.dtype));
    }
    Ok(TensorType {
        dtype: x.dtype,
        shape: broadcast_shapes(&[x.shape.as_deref(), b.shape.as_deref()], gen)?,
    })
}

/// The axis order `ScaledMatMul` reads an operand of rank `rank` in (`None`: as it is).
pub fn scaled_matmul_perm(rank: usize, trans: bool, trans_batch: bool) -> Option<Vec<usize>> {
    if !trans && !trans_batch {
        return None;
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    if trans_batch && rank >= 3 {
        // [d0, d1.., dk, n] → [d1.., dk, d0, n]
        perm = (1..rank - 1).chain([0, rank - 1]).collect();
    }
    if trans && rank >= 2 {
        perm.swap(rank - 2, rank - 1);
    }
    Some(perm)
}

fn permuted(t: &TensorType, trans: bool, trans_batch: bool) -> TensorType {
    let Some(s) = &t.shape else {
        return t.clone();
    };
    match scaled_matmul_perm(s.len(), trans, trans_batch) {
        None => t.clone(),
        Some(p) => TensorType::new(t.dtype, p.iter().map(|&i| s[i].clone()).collect()),
    }
}

/// With a batch transpose, both operands must have one rank of at least 3 (as onnxruntime).
pub fn check_batch_ranks(ra: usize, rb: usize) -> Result<(), String> {
    if ra != rb || ra < 3 {
        return Err(format!(
            "transBatchA/B need operands of one rank of at least 3, got ranks {ra} and {rb}"
        ));
    }
    Ok(())
}

/// `alpha·op(a)·op(b)`: the numpy matmul of the permuted operands.
pub fn scaled_matmul(trans: [bool; 4], ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let [ta, tb, tba, tbb] = trans;
    let (a, b) = (ins.ty(0, "A")?, ins.ty(1, "B")?);
    if tba || tbb {
        if let (Some(ra), Some(rb)) = (a.rank(), b.rank()) {
            check_batch_ranks(ra, rb)?;
        }
    }
    let a = permuted(a, ta, tba);
    let b = permuted(b, tb, tbb);
    let types = [Some(&a), Some(&b)];
    let p = Ins {
        types: &types,
        consts: &[],
        vals: &[],
    };
    if !a.dtype.is_float() {
        return Err(format!("A must be a float tensor, got {}", a.dtype));
    }
    linalg::matmul(&p, 0, 1, None, gen)
}

/// The shape of a 2-D input, or fresh dims; an error for another rank.
fn dims2(t: &TensorType, what: &str, gen: &mut SymGen) -> Result<[Dim; 2], String> {
    match &t.shape {
        Some(s) if s.len() == 2 => Ok([s[0].clone(), s[1].clone()]),
        Some(s) => Err(format!("{what} must be 2-D, got rank {}", s.len())),
        None => Ok([gen.fresh(), gen.fresh()]),
    }
}

fn check_1d(t: &TensorType, what: &str, len: &Dim) -> Result<(), String> {
    if let Some(s) = &t.shape {
        if s.len() != 1 {
            return Err(format!("{what} must be 1-D, got rank {}", s.len()));
        }
        unify_dim(
            &s[0],
            len,
            &format!("{what} length differs from the hidden size"),
        )?;
    }
    Ok(())
}

/// `input_ids, word_emb, pos_emb, gamma, beta?, segment_ids?, seg_emb?, mask?,
/// position_ids? → output [B,S,H], mask_index i32 [B], embedding_sum [B,S,H]`.
pub fn embed_layer_norm(
    ins: &Ins,
    num_outputs: usize,
    gen: &mut SymGen,
) -> Result<Vec<TensorType>, String> {
    let ids = ins.ty(0, "input_ids")?;
    let word = ins.ty(1, "word_embedding")?;
    let pos = ins.ty(2, "position_embedding")?;
    let gamma = ins.ty(3, "gamma")?;
    let dtype = word.dtype;
    if !dtype.is_float() {
        return Err(format!(
            "word_embedding must be a float tensor, got {dtype}"
        ));
    }
    let [b, s] = dims2(ids, "input_ids", gen)?;
    let [_, h] = dims2(word, "word_embedding", gen)?;
    let [_, hp] = dims2(pos, "position_embedding", gen)?;
    let h = unify_dim(&h, &hp, "word and position embeddings differ in width")?;
    for (i, what) in [
        (0, "input_ids"),
        (5, "segment_ids"),
        (7, "mask"),
        (8, "position_ids"),
    ] {
        if let Some(t) = ins.opt_ty(i) {
            if t.dtype.is_float() || t.dtype == DType::Bool {
                return Err(format!("{what} must be an integer tensor, got {}", t.dtype));
            }
        }
    }
    for (i, what) in [(5, "segment_ids"), (7, "mask")] {
        if let Some(t) = ins.opt_ty(i) {
            let [tb, ts] = dims2(t, what, gen)?;
            unify_dim(
                &tb,
                &b,
                &format!("{what} and input_ids differ in batch size"),
            )?;
            unify_dim(
                &ts,
                &s,
                &format!("{what} and input_ids differ in sequence length"),
            )?;
        }
    }
    if ins.opt_ty(5).is_some() != ins.opt_ty(6).is_some() {
        return Err("segment_ids and segment_embedding must be given together".into());
    }
    if let Some(t) = ins.opt_ty(6) {
        let [_, hs] = dims2(t, "segment_embedding", gen)?;
        unify_dim(
            &hs,
            &h,
            "segment embedding width differs from the hidden size",
        )?;
    }
    if let Some(t) = ins.opt_ty(8) {
        let [_, ts] = dims2(t, "position_ids", gen)?;
        unify_dim(
            &ts,
            &s,
            "position_ids and input_ids differ in sequence length",
        )?;
    }
    for (i, what) in [(3, "gamma"), (4, "beta")] {
        let Some(t) = ins.opt_ty(i) else { continue };
        if t.dtype != dtype {
            return Err(format!(
                "{what} has dtype {} but the embeddings {dtype}",
                t.dtype
            ));
        }
        check_1d(t, what, &h)?;
    }
    for (i, what) in [(2, "position_embedding"), (6, "segment_embedding")] {
        if let Some(t) = ins.opt_ty(i) {
            if t.dtype != dtype {
                return Err(format!(
                    "{what} has dtype {} but the words {dtype}",
                    t.dtype
                ));
            }
        }
    }
    let _ = gamma;
    let out = TensorType::new(dtype, vec![b.clone(), s, h]);
    let mut outs = vec![out.clone(), TensorType::new(DType::I32, vec![b]), out];
    outs.truncate(num_outputs.clamp(1, 3));
    Ok(outs)
}

/// The widths of Q, K and V in a packed projection of `cols` columns.
pub fn qkv_widths(a: &QkvAttentionAttrs, cols: usize) -> Result<[usize; 3], String> {
    let w = match a.qkv_hidden_sizes {
        Some(w) => w,
        None => {
            if cols % 3 != 0 {
                return Err(format!("the weights' {cols} columns do not split in three"));
            }
            [cols / 3; 3]
        }
    };
    let total = w[0].checked_add(w[1]).and_then(|s| s.checked_add(w[2]));
    if total != Some(cols) {
        return Err(format!(
            "qkv_hidden_sizes {w:?} do not add up to the weights' {cols} columns"
        ));
    }
    if w[0] != w[1] {
        return Err(format!("Q and K widths differ ({} and {})", w[0], w[1]));
    }
    let h = a.num_heads;
    if h == 0 || w[0] % h != 0 || w[2] % h != 0 {
        return Err(format!("widths {w:?} are not multiples of num_heads {h}"));
    }
    if w[0] == 0 {
        return Err("the Q width is 0".into());
    }
    Ok(w)
}

/// `input [B,S,Din], weights [Din, Dq+Dk+Dv], bias?, mask_index?, attention_bias? →
/// [B,S,Dv]`.
pub fn qkv_attention(
    a: &QkvAttentionAttrs,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let w = ins.ty(1, "weights")?;
    if !x.dtype.is_float() {
        return Err(format!("input must be a float tensor, got {}", x.dtype));
    }
    if w.dtype != x.dtype {
        return Err(format!(
            "weights have dtype {} but input {}",
            w.dtype, x.dtype
        ));
    }
    if a.num_heads == 0 {
        return Err("num_heads must be positive".into());
    }
    let [din, cols] = dims2(w, "weights", gen)?;
    let dv = match &cols {
        Dim::Known(c) => Dim::Known(qkv_widths(a, *c)?[2]),
        _ => match a.qkv_hidden_sizes {
            Some(s) => Dim::Known(s[2]),
            None => gen.fresh(),
        },
    };
    if let Some(t) = ins.opt_ty(2) {
        if t.dtype != x.dtype {
            return Err(format!("bias has dtype {} but input {}", t.dtype, x.dtype));
        }
        if let Some(s) = &t.shape {
            if s.len() != 1 {
                return Err(format!("bias must be 1-D, got rank {}", s.len()));
            }
            unify_dim(
                &s[0],
                &cols,
                "bias length differs from the weights' columns",
            )?;
        }
    }
    if let Some(t) = ins.opt_ty(3) {
        if t.dtype.is_float() || t.dtype == DType::Bool {
            return Err(format!(
                "mask_index must be an integer tensor, got {}",
                t.dtype
            ));
        }
        if t.shape
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 3)
        {
            return Err("mask_index must have rank 1, 2 or 3".into());
        }
    }
    if let Some(t) = ins.opt_ty(4) {
        if t.dtype != x.dtype {
            return Err(format!(
                "attention_bias has dtype {} but input {}",
                t.dtype, x.dtype
            ));
        }
        if t.shape.as_ref().is_some_and(|s| s.len() != 4) {
            return Err("attention_bias must have rank 4".into());
        }
    }
    match &x.shape {
        Some(s) if s.len() == 3 => {
            unify_dim(&s[2], &din, "input width differs from the weights' rows")?;
            Ok(TensorType::new(
                x.dtype,
                vec![s[0].clone(), s[1].clone(), dv],
            ))
        }
        Some(s) => Err(format!("input must be 3-D, got rank {}", s.len())),
        None => Ok(TensorType::new(x.dtype, vec![gen.fresh(), gen.fresh(), dv])),
    }
}
