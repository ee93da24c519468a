//! Shape inference for the compiler-made fused ops: `FusedMatMul` (a MatMul whose result
//! is broadcast-added to the bias and residual) and `Attention` (`[B,S,H·D]` in and out).

use super::dims::{broadcast_shapes, unify_dim, Ins, SymGen};
use super::linalg;
use crate::{Dim, TensorType};

/// `activation(matmul(a, b) + bias) + residual`: the MatMul type broadcast with the adds.
pub fn fused_matmul(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let mm = linalg::matmul(ins, 0, 1, None, gen)?;
    let mut shapes: Vec<Option<&[Dim]>> = vec![mm.shape.as_deref()];
    for (port, what) in [(2, "bias"), (3, "residual")] {
        if let Some(t) = ins.opt_ty(port) {
            if t.dtype != mm.dtype {
                return Err(format!(
                    "{what} has dtype {} but the product has dtype {}",
                    t.dtype, mm.dtype
                ));
            }
            shapes.push(t.shape.as_deref());
        }
    }
    Ok(TensorType {
        dtype: mm.dtype,
        shape: broadcast_shapes(&shapes, gen)?,
    })
}

/// `x, residual, gamma, beta?, bias? → y (and sum)`, all of `x`'s type; the 1-D operands
/// must have the last dimension's length.
pub fn add_norm(rms: bool, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "x")?;
    let r = ins.ty(1, "residual")?;
    if r.dtype != x.dtype {
        return Err(format!(
            "residual has dtype {} but x has {}",
            r.dtype, x.dtype
        ));
    }
    if let (Some(sx), Some(sr)) = (&x.shape, &r.shape) {
        if sx.len() != sr.len() {
            return Err("x and residual must have the same rank".into());
        }
        for (a, b) in sx.iter().zip(sr) {
            unify_dim(a, b, "x and residual shapes differ")?;
        }
    }
    if rms && ins.opt_ty(3).is_some() {
        return Err("an RMS AddNorm has no beta".into());
    }
    let last = x.shape.as_ref().and_then(|s| s.last().cloned());
    if x.shape.as_ref().is_some_and(|s| s.is_empty()) {
        return Err("x must have rank ≥ 1".into());
    }
    for (port, what) in [(2, "gamma"), (3, "beta"), (4, "bias")] {
        let Some(t) = ins.opt_ty(port) else { continue };
        if t.dtype != x.dtype {
            return Err(format!(
                "{what} has dtype {} but x has {}",
                t.dtype, x.dtype
            ));
        }
        if let (Some(s), Some(l)) = (&t.shape, &last) {
            if s.len() != 1 {
                return Err(format!("{what} must be 1-D"));
            }
            unify_dim(
                &s[0],
                l,
                &format!("{what} length differs from the last dimension"),
            )?;
        }
    }
    Ok(x.clone())
}

/// `mask [B,S] → offsets [T], inverse [B,S], cu_seqlens [B+1]` (all i64; `T` fresh).
pub fn padding_offsets(ins: &Ins, gen: &mut SymGen) -> Result<Vec<TensorType>, String> {
    let m = ins.ty(0, "mask")?;
    let dims = match &m.shape {
        Some(s) if s.len() == 2 => s.clone(),
        Some(s) => {
            return Err(format!(
                "the mask must be [batch, seq], got rank {}",
                s.len()
            ))
        }
        None => gen.fresh_dims(2),
    };
    let cu = match &dims[0] {
        Dim::Known(b) => Dim::Known(b + 1),
        _ => gen.fresh(),
    };
    Ok(vec![
        TensorType::new(crate::DType::I64, vec![gen.fresh()]),
        TensorType::new(crate::DType::I64, dims),
        TensorType::new(crate::DType::I64, vec![cu]),
    ])
}

/// `q [T,H·D], k [T,H·D], v [T,H·Dv], cu_seqlens [B+1] → [T,H·Dv]`.
pub fn packed_attention(num_heads: usize, ins: &Ins) -> Result<TensorType, String> {
    if num_heads == 0 {
        return Err("num_heads must be positive".into());
    }
    let q = ins.ty(0, "q")?;
    let k = ins.ty(1, "k")?;
    let v = ins.ty(2, "v")?;
    let cu = ins.ty(3, "cu_seqlens")?;
    if k.dtype != q.dtype || v.dtype != q.dtype {
        return Err("q, k and v dtypes differ".into());
    }
    if cu.dtype != crate::DType::I64 {
        return Err(format!("cu_seqlens must be i64, got {}", cu.dtype));
    }
    let (Some(sq), Some(sk), Some(sv)) = (&q.shape, &k.shape, &v.shape) else {
        return Ok(TensorType::unknown_rank(q.dtype));
    };
    if sq.len() != 2 || sk.len() != 2 || sv.len() != 2 {
        return Err("packed q, k and v must have rank 2 ([tokens, heads·head_size])".into());
    }
    for (d, what) in [(&sq[1], "q"), (&sv[1], "v")] {
        if let Dim::Known(n) = d {
            if n % num_heads != 0 {
                return Err(format!(
                    "{what} width {n} is not a multiple of {num_heads} heads"
                ));
            }
        }
    }
    unify_dim(&sq[1], &sk[1], "q and k widths differ")?;
    let t = unify_dim(&sq[0], &sk[0], "q and k token counts differ")?;
    let t = unify_dim(&t, &sv[0], "q and v token counts differ")?;
    Ok(TensorType::new(q.dtype, vec![t, sv[1].clone()]))
}

/// `q [B,Sq,H·D], k [B,Sk,H·D], v [B,Sk,H·Dv], mask? → [B,Sq,H·Dv]`.
pub fn attention(num_heads: usize, ins: &Ins) -> Result<TensorType, String> {
    if num_heads == 0 {
        return Err("num_heads must be positive".into());
    }
    let q = ins.ty(0, "q")?;
    let k = ins.ty(1, "k")?;
    let v = ins.ty(2, "v")?;
    for (t, what) in [(k, "k"), (v, "v")] {
        if t.dtype != q.dtype {
            return Err(format!(
                "{what} has dtype {} but q has dtype {}",
                t.dtype, q.dtype
            ));
        }
    }
    if let Some(m) = ins.opt_ty(3) {
        if m.dtype != q.dtype {
            return Err(format!(
                "mask has dtype {} but q has dtype {}",
                m.dtype, q.dtype
            ));
        }
        if m.shape.as_ref().is_some_and(|s| s.len() > 4) {
            return Err("mask rank must be at most 4".into());
        }
    }
    let (Some(sq), Some(sk), Some(sv)) = (&q.shape, &k.shape, &v.shape) else {
        return Ok(TensorType::unknown_rank(q.dtype));
    };
    if sq.len() != 3 || sk.len() != 3 || sv.len() != 3 {
        return Err("q, k and v must have rank 3 ([batch, seq, heads·head_size])".into());
    }
    for (d, what) in [(&sq[2], "q"), (&sk[2], "k"), (&sv[2], "v")] {
        if let Dim::Known(n) = d {
            if n % num_heads != 0 {
                return Err(format!(
                    "{what} width {n} is not a multiple of {num_heads} heads"
                ));
            }
        }
    }
    unify_dim(&sq[2], &sk[2], "q and k widths differ")?;
    unify_dim(&sk[1], &sv[1], "k and v lengths differ")?;
    let b = unify_dim(&sq[0], &sk[0], "q and k batches differ")?;
    let b = unify_dim(&b, &sv[0], "q and v batches differ")?;
    Ok(TensorType::new(
        q.dtype,
        vec![b, sq[1].clone(), sv[2].clone()],
    ))
}

#[cfg(test)]
mod tests {
    use crate::infer::infer_node;
    use crate::{Activation, DType, Op, TensorType};

    fn t(shape: &[usize]) -> TensorType {
        TensorType::fixed(DType::F32, shape)
    }

    #[test]
    fn fused_matmul_and_attention_types() {
        let fm = Op::FusedMatMul {
            activation: Activation::Relu,
        };
        let (a, b, bias, res) = (t(&[2, 3, 4]), t(&[4, 5]), t(&[5]), t(&[2, 3, 5]));
        let out = infer_node(&fm, &[Some(&a), Some(&b), Some(&bias), Some(&res)], &[], 1);
        assert_eq!(out.unwrap(), vec![t(&[2, 3, 5])]);
        assert!(infer_node(&fm, &[Some(&a), Some(&b), Some(&t(&[4])), None], &[], 1).is_err());
        let att = Op::Attention {
            num_heads: 2,
            scale: 1.0,
        };
        let (q, k, v) = (t(&[2, 3, 8]), t(&[2, 5, 8]), t(&[2, 5, 6]));
        let out = infer_node(&att, &[Some(&q), Some(&k), Some(&v), None], &[], 1);
        assert_eq!(out.unwrap(), vec![t(&[2, 3, 6])]);
        let odd = t(&[2, 5, 7]);
        assert!(infer_node(&att, &[Some(&q), Some(&k), Some(&odd), None], &[], 1).is_err());
    }
}
