//! MatMul / Gemm lowering: the batched, broadcast geometry of numpy `matmul` and ONNX
//! `Gemm` as a [`MatMulStep`], with a constant B packed once at compile time.

pub use whittle_exec::steps::{BSource, MatMulStep};

use crate::kernels::gemm::{PackedB, Ukr};

/// Numpy matmul geometry for shapes `a`, `b`: `(m, k, n, per-output-batch (a batch, b batch),
/// number of b batches)`.
#[allow(clippy::type_complexity)]
pub fn matmul_geometry(
    a: &[usize],
    b: &[usize],
) -> Result<(usize, usize, usize, Vec<(usize, usize)>, usize), String> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul inputs must have rank ≥ 1".into());
    }
    let (a_lead, m, k) = if a.len() == 1 {
        (&a[..0], 1, a[0])
    } else {
        (&a[..a.len() - 2], a[a.len() - 2], a[a.len() - 1])
    };
    let (b_lead, kb, n) = if b.len() == 1 {
        (&b[..0], b[0], 1)
    } else {
        (&b[..b.len() - 2], b[b.len() - 2], b[b.len() - 1])
    };
    if k != kb {
        return Err(format!("MatMul inner dimensions differ: {a:?} × {b:?}"));
    }
    let r = a_lead.len().max(b_lead.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, r - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (pa, pb) = (pad(a_lead), pad(b_lead));
    let mut batch = Vec::with_capacity(r);
    for (&x, &y) in pa.iter().zip(&pb) {
        batch.push(match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(format!(
                    "MatMul batch dimensions do not broadcast: {a:?} × {b:?}"
                ))
            }
        });
    }
    let total: usize = batch.iter().product();
    let b_batches: usize = pb.iter().product();
    let mut pairs = Vec::with_capacity(total);
    for flat in 0..total {
        let (mut rem, mut ia, mut ib, mut sa, mut sb) = (flat, 0, 0, 1, 1);
        for d in (0..r).rev() {
            let idx = rem % batch[d];
            rem /= batch[d];
            if pa[d] != 1 {
                ia += idx * sa;
            }
            if pb[d] != 1 {
                ib += idx * sb;
            }
            sa *= pa[d];
            sb *= pb[d];
        }
        pairs.push((ia, ib));
    }
    Ok((m, k, n, pairs, b_batches))
}

/// Packs every batch of a constant row-major B of `batches × k × n` (or its transpose).
pub fn pack_const_b(
    data: &[f32],
    batches: usize,
    k: usize,
    n: usize,
    rs: usize,
    cs: usize,
    ukr: &Ukr,
) -> Result<Vec<PackedB>, String> {
    if data.len() < batches * k * n {
        return Err(format!(
            "constant B holds {} elements, {} needed",
            data.len(),
            batches * k * n
        ));
    }
    Ok((0..batches)
        .map(|bi| {
            let ptr = data[bi * k * n..].as_ptr();
            // SAFETY: the slice holds k·n elements from `ptr` and strides stay inside them.
            unsafe { PackedB::pack(crate::kernels::gemm::MatRef { ptr, rs, cs }, k, n, ukr.nr) }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_broadcasts_batches_and_promotes_vectors() {
        let (m, k, n, pairs, nb) = matmul_geometry(&[2, 1, 3, 4], &[5, 4, 6]).unwrap();
        assert_eq!((m, k, n, nb), (3, 4, 6, 5));
        assert_eq!(pairs.len(), 10);
        assert_eq!(pairs[0], (0, 0));
        assert_eq!(pairs[6], (1, 1)); // batch (1, 1): a batch 1, b batch 1
        let (m, k, n, pairs, _) = matmul_geometry(&[4], &[4]).unwrap();
        assert_eq!((m, k, n, pairs), (1, 4, 1, vec![(0, 0)]));
        assert!(matmul_geometry(&[2, 3], &[4, 5]).is_err());
        assert!(matmul_geometry(&[2, 2, 3], &[3, 3, 5]).is_err());
    }
}
