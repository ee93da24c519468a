//! Packed f32 GEMM, `C = alpha·op(A)·op(B) + bias`, BLIS-style: B packed into `k × NR`
//! column strips (once, at compile time, when it is a constant), A packed per `MC × KC`
//! block, a register-tile micro-kernel, and the epilogue (alpha, broadcast bias) applied to
//! each tile right after its last K block, while it is in cache; `gemm_then` also applies
//! the `FusedMatMul` post-ops (`epilogue::Finish`) per `MC × NC` block of C. Single-threaded.

use super::epilogue::Finish;
pub use super::ukernel::Ukr;

/// Longest K block: a `KC × NR` strip of B (48 KB) stays in L1/L2 while the kernel sweeps
/// A. Measured (2026-11-28, MiniLM-L6 1 thread, alternating): 384 → 13.33 ms, 288 → 13.9,
/// the former fixed 256 → 13.74; `gemm_bench` cold B 233–237 vs 221–229 GFLOP/s.
const KC: usize = 384;

/// The K block length for depth `k`: `k` in equal blocks of at most [`KC`] (a multiple of
/// 8), so no short last block costs an extra pass over C (576 = 2 × 288, not 384 + 192).
/// Packing and the driver both block K with it (the packed layout depends on it).
fn kc_for(k: usize) -> usize {
    let blocks = k.div_ceil(KC).max(1);
    k.div_ceil(blocks).div_ceil(8) * 8
}
/// Rows of A packed at a time (rounded down to a multiple of MR).
const MC: usize = 128;
/// Columns of C finished at a time: an `MC × NC` block of C stays in L2 across K blocks.
const NC: usize = 384;

/// A strided read-only matrix view: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// B packed for one micro-kernel width: for each K block starting at `p0` (length `kc`),
/// strip `s` is `kc × NR` row-major at `p0·strips·NR + s·kc·NR`; padding columns are zero.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    pub nr: usize,
    /// Owned when packed here, borrowed from the object when loaded from a plan image.
    data: crate::store::F32s,
}

impl PackedB {
    fn strips(n: usize, nr: usize) -> usize {
        n.div_ceil(nr)
    }

    /// Packs the `k × n` matrix `b`.
    ///
    /// # Safety
    /// `b` must address `k × n` readable elements with its strides.
    pub unsafe fn pack(b: MatRef, k: usize, n: usize, nr: usize) -> PackedB {
        let mut p = PackedB {
            k,
            n,
            nr,
            data: Default::default(),
        };
        p.repack(b);
        p
    }

    /// Packs `b` (same `k`, `n`, `nr` as before) reusing the allocation.
    ///
    /// # Safety
    /// As [`PackedB::pack`].
    pub unsafe fn repack(&mut self, b: MatRef) {
        let (k, n, nr) = (self.k, self.n, self.nr);
        let strips = Self::strips(n, nr);
        // Written in layout order (K block, strip, row): every element of the first
        // `k·strips·nr` exactly once, so the buffer needs no zero fill first.
        let len = k * strips * nr;
        let data = self.data.make_mut();
        data.clear();
        data.reserve(len);
        let dst = data.as_mut_ptr();
        let mut off = 0;
        let mut p0 = 0;
        while p0 < k {
            let kc = kc_for(k).min(k - p0);
            for s in 0..strips {
                let j0 = s * nr;
                let nc = nr.min(n - j0);
                #[cfg(target_arch = "x86_64")]
                if b.rs == 1
                    && nc == nr
                    && nr % 8 == 0
                    && std::arch::is_x86_feature_detected!("avx")
                {
                    // A transposed B (Kᵀ in attention): 8×8 register transposes, 8
                    // columns at a time, instead of a scalar strided gather.
                    for g8 in 0..nr / 8 {
                        let src = b.ptr.add(p0 + (j0 + g8 * 8) * b.cs);
                        // SAFETY: 8 columns of `kc` contiguous elements each; the strip's
                        // `kc × nr` destination rows are inside the reserved buffer.
                        pack_strip_8_avx(src, b.cs, kc, dst.add(off + g8 * 8), nr);
                    }
                    off += kc * nr;
                    continue;
                }
                for p in 0..kc {
                    let src = b.ptr.add((p0 + p) * b.rs + j0 * b.cs);
                    let d = dst.add(off);
                    if b.cs == 1 && nc == 32 {
                        // A fixed-size copy is inlined (no memcpy call per 128-byte row).
                        let row = std::ptr::read_unaligned(src as *const [f32; 32]);
                        std::ptr::write_unaligned(d as *mut [f32; 32], row);
                    } else if b.cs == 1 {
                        std::ptr::copy_nonoverlapping(src, d, nc);
                    } else {
                        for j in 0..nc {
                            *d.add(j) = *src.add(j * b.cs);
                        }
                    }
                    for j in nc..nr {
                        *d.add(j) = 0.0;
                    }
                    off += nr;
                }
            }
            p0 += kc;
        }
        debug_assert_eq!(off, len);
        // SAFETY: the loops above initialised elements 0..len (capacity reserved).
        data.set_len(len);
    }

    fn block(&self, p0: usize, kc: usize, strip: usize) -> *const f32 {
        let strips = Self::strips(self.n, self.nr);
        self.data.as_slice()[p0 * strips * self.nr + strip * kc * self.nr..].as_ptr()
    }

    /// The packed elements.
    pub fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// Whether the packed data lies in a plan image (borrowed) rather than on the heap.
    pub fn is_borrowed(&self) -> bool {
        self.data.is_borrowed()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.as_slice().len() * 4
    }
}

/// What happens to each finished tile: `c = alpha·c + beta·bias[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue {
    pub alpha: f32,
    pub beta: f32,
    /// The (broadcast) bias, strides 0 on broadcast axes.
    pub bias: Option<MatRef>,
}

impl Epilogue {
    pub const NONE: Epilogue = Epilogue {
        alpha: 1.0,
        beta: 1.0,
        bias: None,
    };

    fn is_identity(&self) -> bool {
        self.alpha == 1.0 && self.bias.is_none()
    }

    /// Applies to rows `r0..r0+rows`, columns `j0..j0+cols` of `c` (row stride `ldc`).
    unsafe fn apply(
        &self,
        c: *mut f32,
        ldc: usize,
        r0: usize,
        rows: usize,
        j0: usize,
        cols: usize,
    ) {
        if self.is_identity() {
            return;
        }
        for i in r0..r0 + rows {
            let row = std::slice::from_raw_parts_mut(c.add(i * ldc + j0), cols);
            match self.bias {
                None => row.iter_mut().for_each(|v| *v *= self.alpha),
                Some(b) if self.alpha == 1.0 && self.beta == 1.0 && b.cs == 1 => {
                    // The common per-column bias: a plain (vectorised) row add.
                    let bias = std::slice::from_raw_parts(b.ptr.add(i * b.rs + j0), cols);
                    row.iter_mut().zip(bias).for_each(|(v, x)| *v += *x);
                }
                Some(b) => {
                    let bp = b.ptr.add(i * b.rs + j0 * b.cs);
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = self.alpha * *v + self.beta * *bp.add(j * b.cs);
                    }
                }
            }
        }
    }
}

/// Reusable packing buffers.
#[derive(Default)]
pub struct Scratch {
    apack: Vec<f32>,
    tile: Vec<f32>,
}

/// `C[m×n] = epilogue(A[m×k] · B)` with B packed for `ukr`.
///
/// # Safety
/// `a` addresses `m × k` readable elements, `c` an `m × n` writable row-major matrix with row
/// stride `ldc ≥ n` that does not overlap `a`, the bias, or `b`; `b` was packed with
/// `ukr.nr`, `b.k == k`, `b.n == n`; and the CPU supports `ukr`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    ukr: &Ukr,
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    scratch: &mut Scratch,
) {
    gemm_then(ukr, m, a, b, c, ldc, epi, &Finish::NONE, scratch)
}

/// [`gemm`], then the `FusedMatMul` post-ops `fin` on each `MC × NC` block of C right after
/// its last K block, while the block is still in L2. `fin`'s residual has row stride `ldc`.
///
/// Loop order: row blocks of `MC` (all of their K blocks of A packed once), then column
/// blocks of `NC`, then K blocks, so a `MC × NC` block of C stays in L2 across the K blocks
/// (with one K loop outside, a wide C — 128 × 1536 — went to L3 and back per K block).
///
/// # Safety
/// As [`gemm`]; the residual addresses the same rows and columns as `c`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_then(
    ukr: &Ukr,
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    fin: &Finish,
    scratch: &mut Scratch,
) {
    let strips = b.n.div_ceil(ukr.nr);
    gemm_then_strips(ukr, m, a, b, c, ldc, epi, fin, scratch, 0..strips)
}

/// [`gemm_then`] restricted to the columns of B's strips `cols` (strip `s` is columns
/// `s·NR..(s+1)·NR`): threads that split N call it with disjoint ranges.
///
/// # Safety
/// As [`gemm_then`]; `cols` is within B's strips.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_then_strips(
    ukr: &Ukr,
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    fin: &Finish,
    scratch: &mut Scratch,
    cols: std::ops::Range<usize>,
) {
    let (k, n, mr, nr) = (b.k, b.n, ukr.mr, ukr.nr);
    debug_assert_eq!(b.nr, nr);
    if m == 0 || n == 0 || cols.is_empty() {
        return;
    }
    if k == 0 {
        let (j0, j1) = (cols.start * nr, (cols.end * nr).min(n));
        for i in 0..m {
            std::slice::from_raw_parts_mut(c.add(i * ldc + j0), j1 - j0).fill(0.0);
        }
        epi.apply(c, ldc, 0, m, j0, j1 - j0);
        fin.apply_block(c, ldc, 0, m, j0, j1 - j0);
        return;
    }
    // A per-column bias (the usual one) seeds the micro-kernel's accumulators on full
    // tiles instead of costing a pass over each finished tile.
    let col_bias = match epi.bias {
        Some(b) if epi.alpha == 1.0 && epi.beta == 1.0 && b.rs == 0 && b.cs == 1 => Some(b.ptr),
        _ => None,
    };
    let mc_max = (MC / mr).max(1) * mr;
    let strips = cols.end;
    let block_strips = (NC / nr).max(1);
    scratch.tile.resize(mr * nr, 0.0);
    let mut i0 = 0;
    while i0 < m {
        let mc = mc_max.min(m - i0);
        let ms = mc.div_ceil(mr);
        // Every K block of these rows: the block at p0 starts at p0·ms·MR. (`pack_a` writes
        // every element, padding included, so the buffer is not cleared first.)
        if scratch.apack.len() < ms * mr * k {
            scratch.apack.resize(ms * mr * k, 0.0);
        }
        // Row-major A with full row strips is read in place by the direct kernel.
        let direct = ukr.direct.filter(|_| a.cs == 1 && mc.is_multiple_of(mr));
        let mut p0 = 0;
        while p0 < k && direct.is_none() {
            let kc = kc_for(k).min(k - p0);
            let dst = &mut scratch.apack[p0 * ms * mr..(p0 + kc) * ms * mr];
            pack_a(a, i0, mc, p0, kc, mr, dst);
            p0 += kc;
        }
        let mut js = cols.start;
        while js < strips {
            let je = (js + block_strips).min(strips);
            let mut p0 = 0;
            while p0 < k {
                let kc = kc_for(k).min(k - p0);
                let (first, last) = (p0 == 0, p0 + kc == k);
                let apk = scratch.apack.as_ptr().add(p0 * ms * mr);
                for s in js..je {
                    let j0 = s * nr;
                    let nc = nr.min(n - j0);
                    let bp = b.block(p0, kc, s);
                    for t in 0..ms {
                        let r0 = i0 + t * mr;
                        let rc = mr.min(m - r0);
                        let ap = apk.add(t * kc * mr);
                        let cp = c.add(r0 * ldc + j0);
                        let full = rc == mr && nc == nr;
                        if full {
                            let init = match col_bias {
                                Some(bias) if first => bias.add(j0),
                                _ => std::ptr::null(),
                            };
                            match direct {
                                Some(d) => {
                                    let ar = a.ptr.add(r0 * a.rs + p0);
                                    d(kc, ar, a.rs, bp, cp, ldc, !first, init)
                                }
                                None => (ukr.f)(kc, ap, bp, cp, ldc, !first, init),
                            }
                        } else {
                            let tile = scratch.tile.as_mut_ptr();
                            let none = std::ptr::null();
                            match direct {
                                // Full rows (mc is a multiple of MR), a partial column strip:
                                // B's padding columns are zero.
                                Some(d) => {
                                    let ar = a.ptr.add(r0 * a.rs + p0);
                                    d(kc, ar, a.rs, bp, tile, nr, false, none)
                                }
                                None => (ukr.f)(kc, ap, bp, tile, nr, false, none),
                            }
                            for r in 0..rc {
                                let dst = std::slice::from_raw_parts_mut(cp.add(r * ldc), nc);
                                let src = std::slice::from_raw_parts(tile.add(r * nr), nc);
                                if first {
                                    dst.copy_from_slice(src);
                                } else {
                                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                                }
                            }
                        }
                        if last && !(full && col_bias.is_some()) {
                            epi.apply(c, ldc, r0, rc, j0, nc);
                        }
                    }
                }
                p0 += kc;
            }
            let j0 = js * nr;
            fin.apply_block(c, ldc, i0, mc, j0, (je * nr).min(n) - j0);
            js = je;
        }
        i0 += mc;
    }
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `a` into `MR`-row strips (`kc × MR` each)
/// in `out` (`mc.div_ceil(mr)·kc·mr` elements; padding rows are written as 0).
unsafe fn pack_a(
    a: MatRef,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    out: &mut [f32],
) {
    let strips = mc.div_ceil(mr);
    for t in 0..strips {
        let base = t * kc * mr;
        let rows = mr.min(mc - t * mr);
        #[cfg(target_arch = "x86_64")]
        if rows == 8 && mr == 8 && a.cs == 1 && std::arch::is_x86_feature_detected!("avx") {
            let src = a.ptr.add((i0 + t * mr) * a.rs + p0);
            // SAFETY: 8 full rows of `kc` elements from `src`; `out` holds the strip.
            pack_strip_8_avx(src, a.rs, kc, out[base..base + kc * 8].as_mut_ptr(), 8);
            continue;
        }
        for r in 0..rows {
            let src = a.ptr.add((i0 + t * mr + r) * a.rs + p0 * a.cs);
            for p in 0..kc {
                out[base + p * mr + r] = *src.add(p * a.cs);
            }
        }
        for r in rows..mr {
            for p in 0..kc {
                out[base + p * mr + r] = 0.0;
            }
        }
    }
}

/// One full 8-row strip of a row-major A: `out[p·os + r] = src[r·rs + p]` for `p < kc`,
/// by 8×8 register transposes (the scalar scatter costs ~10% of a transformer's time).
///
/// # Safety
/// `src` addresses 8 rows of `kc` elements at row stride `rs`, `out` rows `0..kc` of 8
/// writable elements at stride `os`,
/// and the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn pack_strip_8_avx(src: *const f32, rs: usize, kc: usize, out: *mut f32, os: usize) {
    use std::arch::x86_64::*;
    let mut p = 0;
    while p + 8 <= kc {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * rs + p)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let o = out.add(p * os);
        _mm256_storeu_ps(o, _mm256_permute2f128_ps::<0x20>(u0, u4));
        _mm256_storeu_ps(o.add(os), _mm256_permute2f128_ps::<0x20>(u1, u5));
        _mm256_storeu_ps(o.add(2 * os), _mm256_permute2f128_ps::<0x20>(u2, u6));
        _mm256_storeu_ps(o.add(3 * os), _mm256_permute2f128_ps::<0x20>(u3, u7));
        _mm256_storeu_ps(o.add(4 * os), _mm256_permute2f128_ps::<0x31>(u0, u4));
        _mm256_storeu_ps(o.add(5 * os), _mm256_permute2f128_ps::<0x31>(u1, u5));
        _mm256_storeu_ps(o.add(6 * os), _mm256_permute2f128_ps::<0x31>(u2, u6));
        _mm256_storeu_ps(o.add(7 * os), _mm256_permute2f128_ps::<0x31>(u3, u7));
        p += 8;
    }
    for q in p..kc {
        for r in 0..8 {
            *out.add(q * os + r) = *src.add(r * rs + q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        c
    }

    #[test]
    fn every_kernel_matches_naive_on_odd_shapes() {
        for ukr in Ukr::all_available() {
            for &(m, k, n) in &[
                (1, 1, 1),
                (7, 3, 5),
                (9, 300, 33),
                (17, 513, 70),
                (3, 0, 4),
                (8, 300, 33),
                (136, 520, 70),
                (16, 5, 64),
            ] {
                let a: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                    .collect();
                let b: Vec<f32> = (0..k * n)
                    .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
                    .collect();
                let want = naive(m, k, n, &a, &b);
                let mut c = vec![f32::NAN; m * n];
                unsafe {
                    let pb = PackedB::pack(
                        MatRef {
                            ptr: b.as_ptr(),
                            rs: n,
                            cs: 1,
                        },
                        k,
                        n,
                        ukr.nr,
                    );
                    let ar = MatRef {
                        ptr: a.as_ptr(),
                        rs: k,
                        cs: 1,
                    };
                    gemm(
                        &ukr,
                        m,
                        ar,
                        &pb,
                        c.as_mut_ptr(),
                        n,
                        &Epilogue::NONE,
                        &mut Scratch::default(),
                    );
                }
                for (g, w) in c.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{} {m}x{k}x{n}: {g} vs {w}",
                        ukr.name
                    );
                }
            }
        }
    }

    #[test]
    fn epilogue_adds_a_broadcast_row_bias() {
        // [[1,2],[3,4]] · I + alpha/beta with bias row [10, 20]: hand-checked.
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [1.0f32, 0.0, 0.0, 1.0];
        let bias = [10.0f32, 20.0];
        let mut c = [0.0f32; 4];
        let ukr = Ukr::portable();
        unsafe {
            let pb = PackedB::pack(
                MatRef {
                    ptr: b.as_ptr(),
                    rs: 2,
                    cs: 1,
                },
                2,
                2,
                ukr.nr,
            );
            let epi = Epilogue {
                alpha: 2.0,
                beta: 0.5,
                bias: Some(MatRef {
                    ptr: bias.as_ptr(),
                    rs: 0,
                    cs: 1,
                }),
            };
            gemm(
                &ukr,
                2,
                MatRef {
                    ptr: a.as_ptr(),
                    rs: 2,
                    cs: 1,
                },
                &pb,
                c.as_mut_ptr(),
                2,
                &epi,
                &mut Scratch::default(),
            );
        }
        assert_eq!(c, [7.0, 14.0, 11.0, 18.0]);
    }
}
