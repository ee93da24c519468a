//! Fused multi-head attention (`Op::Attention`) for f32: per (batch, head) task, run on the
//! thread pool, K and V of the head are packed once for the GEMM micro-kernel, then each
//! block of `QB` query rows computes its scores `Q·Kᵀ` into a `QB × Sk` tile, scales, adds
//! the mask and exponentiates in place (the unnormalised softmax), multiplies the tile by V
//! straight into the head's columns of the output, and divides each output row by its
//! softmax sum (Dv multiplies per row instead of Sk). Q, K, V and the output are in their
//! natural `[B, S, H·D]` layout; no more than one score tile per thread exists at a time.

use super::epilogue;
use super::gemm::{self, Epilogue, MatRef, PackedB, Scratch, Ukr};
use super::par::{par_for, SendPtr};
use super::vmath512;

/// Query rows per score tile.
const QB: usize = 32;

/// Geometry of one attention call.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttnGeom {
    pub batch: usize,
    pub heads: usize,
    pub q_len: usize,
    pub k_len: usize,
    /// Head size of Q and K.
    pub head: usize,
    /// Head size of V (and the output).
    pub v_head: usize,
    pub scale: f32,
    /// Element strides of the additive mask over `[B, H, Sq, Sk]` (0 on broadcast axes).
    pub mask_strides: Option<[usize; 4]>,
    /// Where Q, K and V start in their buffers and their row strides, `(offset, row
    /// stride)` in elements, when they are column blocks of wider rows (one fused QKV GEMM
    /// output read in place); `None`: each is its own dense `[B, S, H·D]` tensor.
    pub qkv_layout: Option<[(usize, usize); 3]>,
    /// Where the output starts in its buffer (elements): packed sequences write their
    /// rows of one `[T, H·Dv]` output.
    pub out_offset: usize,
}

impl AttnGeom {
    /// `(offset, row stride)` of Q, K and V.
    fn layout(&self) -> [(usize, usize); 3] {
        self.qkv_layout.unwrap_or([
            (0, self.heads * self.head),
            (0, self.heads * self.head),
            (0, self.heads * self.v_head),
        ])
    }
}

/// Runs attention; `q`, `k`, `v`, `mask` (null when `mask_strides` is `None`) and `out`.
///
/// # Safety
/// The pointers address tensors of the shapes `g` states (`q`/`k`: `[B,S,H·D]`, `v`:
/// `[B,Sk,H·Dv]`, or column blocks of wider rows as `qkv_layout` says; `out`:
/// `[B,Sq,H·Dv]`, the mask reachable through its strides); `out` overlaps none of the
/// inputs; the CPU supports `ukr`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn attention(
    ukr: &Ukr,
    g: &AttnGeom,
    q: *const f32,
    k: *const f32,
    v: *const f32,
    mask: *const f32,
    out: *mut f32,
) {
    let (q, k, v, mask, out) = (
        SendPtr(q as *mut f32),
        SendPtr(k as *mut f32),
        SendPtr(v as *mut f32),
        SendPtr(mask as *mut f32),
        SendPtr(out),
    );
    let ukr = *ukr;
    par_for(g.batch * g.heads, |task| {
        let (b, h) = (task / g.heads, task % g.heads);
        // SAFETY: each task writes only its own head's columns of the output.
        unsafe {
            one_head(
                &ukr,
                g,
                b,
                h,
                q.get(),
                k.get(),
                v.get(),
                mask.get(),
                out.get(),
            )
        };
    });
}

/// [`attention`] on the plan's argument list: q, k, v, the mask if `g` has one, the output.
///
/// # Safety
/// As [`attention`].
pub unsafe fn run_step(ukr: &Ukr, g: &AttnGeom, p: &[*mut f32]) -> Result<(), String> {
    let want = if g.mask_strides.is_some() { 5 } else { 4 };
    if p.len() != want {
        return Err(format!("attention takes {want} buffers, got {}", p.len()));
    }
    let mask = if want == 5 {
        p[3] as *const f32
    } else {
        std::ptr::null()
    };
    attention(ukr, g, p[0], p[1], p[2], mask, p[want - 1]);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
unsafe fn one_head(
    ukr: &Ukr,
    g: &AttnGeom,
    b: usize,
    h: usize,
    q: *const f32,
    k: *const f32,
    v: *const f32,
    mask: *const f32,
    out: *mut f32,
) {
    let (lq, lk, d, dv) = (g.q_len, g.k_len, g.head, g.v_head);
    let ev = g.heads * dv;
    if lq == 0 || dv == 0 {
        return;
    }
    let [(qo, qs), (ko, ks), (vo, vs)] = g.layout();
    let q0 = q.add(qo + b * lq * qs + h * d);
    let k0 = k.add(ko + b * lk * ks + h * d);
    let v0 = v.add(vo + b * lk * vs + h * dv);
    let o0 = out.add(g.out_offset + b * lq * ev + h * dv);
    if lk == 0 {
        for i in 0..lq {
            std::slice::from_raw_parts_mut(o0.add(i * ev), dv).fill(0.0);
        }
        return;
    }
    // B operands: Kᵀ (d × Sk, element (p, j) = K[j][p]) and V (Sk × dv).
    let kt = PackedB::pack(
        MatRef {
            ptr: k0,
            rs: 1,
            cs: ks,
        },
        d,
        lk,
        ukr.nr,
    );
    let vp = PackedB::pack(
        MatRef {
            ptr: v0,
            rs: vs,
            cs: 1,
        },
        lk,
        dv,
        ukr.nr,
    );
    let mut scratch = Scratch::default();
    let mut tile = vec![0.0f32; QB.min(lq) * lk];
    let mut inv = [0.0f32; QB];
    let mut i0 = 0;
    while i0 < lq {
        let rows = QB.min(lq - i0);
        let s = tile.as_mut_ptr();
        let qa = MatRef {
            ptr: q0.add(i0 * qs),
            rs: qs,
            cs: 1,
        };
        gemm::gemm(ukr, rows, qa, &kt, s, lk, &Epilogue::NONE, &mut scratch);
        for r in 0..rows {
            let row = &mut tile[r * lk..(r + 1) * lk];
            let m = g
                .mask_strides
                .map(|st| (mask.add(b * st[0] + h * st[1] + (i0 + r) * st[2]), st[3]));
            inv[r] = softmax_row(row, g.scale, m);
        }
        let pa = MatRef {
            ptr: tile.as_ptr(),
            rs: lk,
            cs: 1,
        };
        gemm::gemm(
            ukr,
            rows,
            pa,
            &vp,
            o0.add(i0 * ev),
            ev,
            &Epilogue::NONE,
            &mut scratch,
        );
        // The softmax denominators, applied to Dv outputs per row instead of Sk weights.
        for (r, &w) in inv[..rows].iter().enumerate() {
            let o = std::slice::from_raw_parts_mut(o0.add((i0 + r) * ev), dv);
            o.iter_mut().for_each(|x| *x *= w);
        }
        i0 += rows;
    }
}

/// `row = exp(scale·row + mask − max)` (the unnormalised softmax); returns 1/Σ, the factor
/// that normalises it. `mask` is the row's first element and its stride.
///
/// # Safety
/// The mask addresses `row.len()` elements with its stride.
unsafe fn softmax_row(row: &mut [f32], scale: f32, mask: Option<(*const f32, usize)>) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if vmath512::available() {
        match mask {
            None => return vmath512::scaled_softmax_row(row, scale, None),
            Some((m, 1)) => {
                let m = std::slice::from_raw_parts(m, row.len());
                return vmath512::scaled_softmax_row(row, scale, Some(m));
            }
            Some(_) => {}
        }
    }
    match mask {
        Some((m, 1)) => {
            let m = std::slice::from_raw_parts(m, row.len());
            scale_add(row, scale, m);
        }
        Some((m, st)) => {
            for (j, x) in row.iter_mut().enumerate() {
                *x = *x * scale + *m.add(j * st);
            }
        }
        None => row.iter_mut().for_each(|x| *x *= scale),
    }
    softmax_in_place(row)
}

#[inline(always)]
fn scale_add_impl(row: &mut [f32], scale: f32, m: &[f32]) {
    for (x, y) in row.iter_mut().zip(m) {
        *x = *x * scale + *y;
    }
}

/// `row = exp(row − max)` with a 16-lane max; returns 1/Σ. A row that is all `-inf` (every
/// key masked out) gives NaN, as in the reference.
#[inline(always)]
fn softmax_impl(row: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (x, m) in c.iter().zip(lanes.iter_mut()) {
            *m = if *x > *m { *x } else { *m };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &x in chunks.remainder().iter().chain(lanes.iter()) {
        max = if x > max { x } else { max };
    }
    if max == f32::NEG_INFINITY {
        row.fill(f32::NAN);
        return f32::NAN;
    }
    let mut acc = [0.0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (x, a) in c.iter_mut().zip(acc.iter_mut()) {
            *x = epilogue::exp(*x - max);
            *a += *x;
        }
    }
    let mut tail = 0.0f32;
    for x in chunks.into_remainder() {
        *x = epilogue::exp(*x - max);
        tail += *x;
    }
    let sum = acc.iter().map(|&a| a as f64).sum::<f64>() as f32 + tail;
    1.0 / sum
}

fn scale_add(row: &mut [f32], scale: f32, m: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn v512(row: &mut [f32], scale: f32, m: &[f32]) {
            scale_add_impl(row, scale, m)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the clone was compiled for.
            return unsafe { v512(row, scale, m) };
        }
    }
    scale_add_impl(row, scale, m)
}

fn softmax_in_place(row: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn v512(row: &mut [f32]) -> f32 {
            softmax_impl(row)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v256(row: &mut [f32]) -> f32 {
            softmax_impl(row)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the clone was compiled for.
            return unsafe { v512(row) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { v256(row) };
        }
    }
    softmax_impl(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::{DType, Tensor};

    fn rand(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    fn tensor(shape: Vec<usize>, v: &[f32]) -> Tensor {
        Tensor::from_f64(
            DType::F32,
            shape,
            &v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        )
    }

    /// Compares with `ir::eval` on random shapes, with and without broadcast masks.
    #[test]
    fn matches_reference_on_random_shapes() {
        let ukr = Ukr::best();
        let mut seed = 3;
        for (b, h, lq, lk, d, dv, mask) in [
            (1, 1, 1, 1, 1, 1, None),
            (2, 3, 5, 7, 4, 2, Some(vec![2, 1, 1, 7])),
            (1, 2, 40, 33, 8, 8, Some(vec![1, 2, 40, 33])),
            (2, 2, 70, 70, 16, 16, Some(vec![70, 70])),
            (2, 3, 9, 9, 8, 4, Some(vec![2, 1, 1, 9])),
            (1, 4, 3, 9, 5, 3, Some(vec![1])),
        ] {
            let q = rand(b * lq * h * d, &mut seed);
            let k = rand(b * lk * h * d, &mut seed);
            let v = rand(b * lk * h * dv, &mut seed);
            let m = mask
                .as_ref()
                .map(|s: &Vec<usize>| rand(s.iter().product(), &mut seed));
            let scale = 0.3f32;
            let tq = tensor(vec![b, lq, h * d], &q);
            let tk = tensor(vec![b, lk, h * d], &k);
            let tv = tensor(vec![b, lk, h * dv], &v);
            let tm = mask
                .as_ref()
                .zip(m.as_ref())
                .map(|(s, m)| tensor(s.clone(), m));
            let want = whittle_ir::eval::eval_op(
                &whittle_ir::Op::Attention {
                    num_heads: h,
                    scale,
                },
                &[Some(&tq), Some(&tk), Some(&tv), tm.as_ref()],
                1,
            )
            .unwrap()[0]
                .to_f64_vec();
            let mask_strides = mask.as_ref().map(|s| {
                let mut full = vec![1usize; 4 - s.len()];
                full.extend(s);
                let mut st = [0usize; 4];
                let mut acc = 1;
                for a in (0..4).rev() {
                    st[a] = if full[a] == 1 { 0 } else { acc };
                    acc *= full[a];
                }
                st
            });
            let g = AttnGeom {
                batch: b,
                heads: h,
                q_len: lq,
                k_len: lk,
                head: d,
                v_head: dv,
                scale,
                mask_strides,
                qkv_layout: None,
                out_offset: 0,
            };
            let mut out = vec![0.0f32; b * lq * h * dv];
            let mp = m.as_ref().map_or(std::ptr::null(), |m| m.as_ptr());
            // SAFETY: buffers sized from the geometry.
            unsafe {
                attention(
                    &ukr,
                    &g,
                    q.as_ptr(),
                    k.as_ptr(),
                    v.as_ptr(),
                    mp,
                    out.as_mut_ptr(),
                )
            };
            let scale_ref = want.iter().fold(1e-30f64, |a, x| a.max(x.abs()));
            for (i, (o, w)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (*o as f64 - w).abs() <= 1e-5 * scale_ref,
                    "{b} {h} {lq} {lk} {d} {dv}: element {i}: {o} vs {w}"
                );
            }
            if lq == lk {
                // The same Q, K, V as column blocks of one [B, S, 2·H·D + H·Dv] tensor (a
                // fused QKV GEMM's output) give bit-identical results.
                let (e, ev) = (h * d, h * dv);
                let w = 2 * e + ev;
                let mut qkv = vec![0.0f32; b * lq * w];
                for r in 0..b * lq {
                    qkv[r * w..r * w + e].copy_from_slice(&q[r * e..(r + 1) * e]);
                    qkv[r * w + e..r * w + 2 * e].copy_from_slice(&k[r * e..(r + 1) * e]);
                    qkv[r * w + 2 * e..(r + 1) * w].copy_from_slice(&v[r * ev..(r + 1) * ev]);
                }
                let packed = AttnGeom {
                    qkv_layout: Some([(0, w), (e, w), (2 * e, w)]),
                    ..g.clone()
                };
                let mut out2 = vec![0.0f32; out.len()];
                let p = qkv.as_ptr();
                // SAFETY: `qkv` holds the three blocks at the layout's offsets and stride.
                unsafe { attention(&ukr, &packed, p, p, p, mp, out2.as_mut_ptr()) };
                assert_eq!(out, out2, "{b} {h} {lq} {d} {dv}: packed QKV differs");
            }
        }
    }
}
