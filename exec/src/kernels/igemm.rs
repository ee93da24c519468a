//! Integer GEMM: u8 × s8 → i32 with zero points, on a B packed once at compile time.
//!
//! Every u8/i8 × u8/i8 product is brought to u8 × s8 (an i8 A is shifted by +128, a u8 B
//! by −128, and the zero points with them), so one micro-kernel serves all four: AVX-512
//! VNNI (`vpdpbusd`, 8 rows × 32 columns), else a portable tile (compiled a second time
//! with AVX2 enabled, so the compiler vectorises it there). With `A' = A + sa`, `B' = B + sb`
//! and `z'` the shifted zero points, the result is
//! `Σ A'B' − za'·colsum(B') − zb'·rowsum(A') + k·za'·zb'`, in wrapping i32 arithmetic —
//! which equals the exact sum wrapped to i32, as `ir::eval` computes it.

use super::par::{par_for, threads};
use serde::{Deserialize, Serialize};
use whittle_ir::limits::try_vec;

/// Columns per packed strip (two 16-lane i32 vectors).
pub const NR: usize = 32;
/// Rows per micro-tile.
pub const MR: usize = 8;

/// B (`k × n`, u8 or i8) as s8, in strips of [`NR`] columns; within a strip, for each group
/// of four k, one u32 per column holding its four bytes (k order, low byte first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackedQB {
    pub k: usize,
    pub n: usize,
    /// `k.div_ceil(4)`.
    pub k4: usize,
    data: Vec<u32>,
    /// Σ_k B'[k, c] per column.
    colsum: Vec<i32>,
    /// The shift applied to B's values (−128 for u8, 0 for i8).
    pub shift: i32,
}

impl PackedQB {
    /// Packs `b` (`k × n` row-major bytes; `signed` says i8, else u8). The packed strips
    /// (up to 32× B's bytes for a narrow B) are an allocation checked against the budget.
    pub fn pack(b: &[u8], k: usize, n: usize, signed: bool) -> Result<PackedQB, String> {
        let k4 = k.div_ceil(4);
        let strips = n.div_ceil(NR);
        let words = strips
            .checked_mul(k4 * NR)
            .ok_or("packed integer weights overflow")?;
        let mut data = try_vec(words, 0u32, "packed integer weights")?;
        let mut colsum = try_vec(n, 0i32, "packed integer weights")?;
        let conv = |v: u8| -> i8 {
            if signed {
                v as i8
            } else {
                (v ^ 0x80) as i8
            }
        };
        for t in 0..k {
            for c in 0..n {
                let v = conv(b[t * n + c]);
                colsum[c] = colsum[c].wrapping_add(v as i32);
                let (s, j) = (c / NR, c % NR);
                let w = &mut data[(s * k4 + t / 4) * NR + j];
                *w |= (v as u8 as u32) << (8 * (t % 4));
            }
        }
        Ok(PackedQB {
            k,
            n,
            k4,
            data,
            colsum,
            shift: if signed { 0 } else { -128 },
        })
    }
}

/// How the corrected i32 sums leave the kernel.
pub trait QOut: Sync {
    /// Writes the finished `rows × cols` block at (`r0`, `c0`); `acc[i * NR + j]`.
    ///
    /// # Safety
    /// The block lies inside the output the implementation addresses.
    unsafe fn write(&self, r0: usize, c0: usize, rows: usize, cols: usize, acc: &[i32; MR * NR]);
}

/// A packed as u8 rows of `k4` u32 groups, with the shift applied and row sums.
pub struct PackedQA {
    pub m: usize,
    pub k4: usize,
    pub data: Vec<u32>,
    pub rowsum: Vec<i32>,
    /// The shift applied to A's values (+128 for i8, 0 for u8).
    pub shift: i32,
}

impl PackedQA {
    /// # Safety
    /// `a` addresses `m × k` bytes, row-major.
    pub unsafe fn pack(a: *const u8, m: usize, k: usize, signed: bool) -> Result<PackedQA, String> {
        let k4 = k.div_ceil(4);
        let mut data = try_vec(m * k4, 0u32, "packed integer activations")?;
        let mut rowsum = try_vec(m, 0i32, "packed integer activations")?;
        let x = if signed { 0x80u8 } else { 0 };
        for r in 0..m {
            let row = std::slice::from_raw_parts(a.add(r * k), k);
            let dst = &mut data[r * k4..(r + 1) * k4];
            let mut s = 0i32;
            for (g, ch) in row.chunks(4).enumerate() {
                let mut w = 0u32;
                for (i, &v) in ch.iter().enumerate() {
                    let u = v ^ x;
                    s += u as i32;
                    w |= (u as u32) << (8 * i);
                }
                dst[g] = w;
            }
            rowsum[r] = s;
        }
        Ok(PackedQA {
            m,
            k4,
            data,
            rowsum,
            shift: if signed { 128 } else { 0 },
        })
    }
}

/// Zero points after the shifts: `za'` per row (1 or m values), `zb'` per column (1 or n).
pub struct ZeroPoints<'a> {
    pub za: &'a [i32],
    pub zb: &'a [i32],
}

fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The micro-kernel in use on this CPU.
pub fn kernel_name() -> &'static str {
    if has_vnni() {
        "avx512vnni-8x32"
    } else if has_avx2() {
        "avx2-8x32"
    } else {
        "portable-8x32"
    }
}

/// `C = (A − za)(B − zb)` for packed A and B, written through `out`.
pub fn igemm(a: &PackedQA, b: &PackedQB, z: &ZeroPoints, out: &dyn QOut) {
    debug_assert_eq!(a.k4, b.k4);
    let strips = b.n.div_ceil(NR);
    let row_tiles = a.m.div_ceil(MR);
    let tiles = strips * row_tiles;
    let tasks = if threads() > 1 {
        tiles.min(threads() * 4)
    } else {
        1
    };
    let vnni = has_vnni();
    let avx2 = has_avx2();
    let zero_a = z.za.len() == 1 && z.za[0] == 0;
    let za = |r: usize| if z.za.len() == 1 { z.za[0] } else { z.za[r] };
    let zb = |c: usize| if z.zb.len() == 1 { z.zb[0] } else { z.zb[c] };
    let k = b.k as i32;
    par_for(tasks, |task| {
        let (lo, hi) = (tiles * task / tasks, tiles * (task + 1) / tasks);
        let mut acc = [0i32; MR * NR];
        for t in lo..hi {
            // Column strips outermost within a task, so a strip of B stays in cache.
            let (s, rt) = (t / row_tiles, t % row_tiles);
            let (r0, c0) = (rt * MR, s * NR);
            let rows = MR.min(a.m - r0);
            let cols = NR.min(b.n - c0);
            let bp = &b.data[s * b.k4 * NR..(s + 1) * b.k4 * NR];
            let ap = &a.data[r0 * a.k4..(r0 + rows) * a.k4];
            unsafe {
                #[cfg(target_arch = "x86_64")]
                if vnni {
                    tile_vnni(ap, bp, a.k4, rows, &mut acc);
                } else if avx2 {
                    tile_avx2(ap, bp, a.k4, rows, &mut acc);
                } else {
                    tile_portable(ap, bp, a.k4, rows, &mut acc);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (vnni, avx2);
                    tile_portable(ap, bp, a.k4, rows, &mut acc);
                }
            }
            for i in 0..rows {
                let r = r0 + i;
                let zar = za(r);
                let rs = a.rowsum[r];
                for j in 0..cols {
                    let c = c0 + j;
                    let zbc = zb(c);
                    let mut v = acc[i * NR + j].wrapping_sub(zbc.wrapping_mul(rs));
                    if !zero_a {
                        v = v
                            .wrapping_sub(zar.wrapping_mul(b.colsum[c]))
                            .wrapping_add(k.wrapping_mul(zar).wrapping_mul(zbc));
                    }
                    acc[i * NR + j] = v;
                }
            }
            unsafe { out.write(r0, c0, rows, cols, &acc) };
        }
    });
}

#[inline(always)]
fn tile_generic(a: &[u32], b: &[u32], k4: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    acc.fill(0);
    for g in 0..k4 {
        let bg = &b[g * NR..(g + 1) * NR];
        for i in 0..rows {
            let aw = a[i * k4 + g].to_le_bytes();
            let row = &mut acc[i * NR..(i + 1) * NR];
            for (o, &bw) in row.iter_mut().zip(bg) {
                let bb = bw.to_le_bytes();
                let mut s = 0i32;
                for q in 0..4 {
                    s += aw[q] as i32 * bb[q] as i8 as i32;
                }
                *o = o.wrapping_add(s);
            }
        }
    }
}

fn tile_portable(a: &[u32], b: &[u32], k4: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    tile_generic(a, b, k4, rows, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(a: &[u32], b: &[u32], k4: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    tile_generic(a, b, k4, rows, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni(a: &[u32], b: &[u32], k4: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut c = [[_mm512_setzero_si512(); 2]; MR];
    let bp = b.as_ptr();
    let ap = a.as_ptr();
    macro_rules! run {
        ($rows:expr) => {
            for g in 0..k4 {
                let b0 = _mm512_loadu_si512(bp.add(g * NR) as *const _);
                let b1 = _mm512_loadu_si512(bp.add(g * NR + 16) as *const _);
                for i in 0..$rows {
                    let av = _mm512_set1_epi32(*ap.add(i * k4 + g) as i32);
                    c[i][0] = _mm512_dpbusd_epi32(c[i][0], av, b0);
                    c[i][1] = _mm512_dpbusd_epi32(c[i][1], av, b1);
                }
            }
        };
    }
    match rows {
        8 => run!(8),
        7 => run!(7),
        6 => run!(6),
        5 => run!(5),
        4 => run!(4),
        3 => run!(3),
        2 => run!(2),
        _ => run!(1),
    }
    for (i, ci) in c.iter().enumerate().take(rows) {
        _mm512_storeu_si512(acc.as_mut_ptr().add(i * NR) as *mut _, ci[0]);
        _mm512_storeu_si512(acc.as_mut_ptr().add(i * NR + 16) as *mut _, ci[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::par::SendPtr;
    use super::*;

    struct I32Out {
        y: SendPtr<i32>,
        n: usize,
    }
    impl QOut for I32Out {
        unsafe fn write(
            &self,
            r0: usize,
            c0: usize,
            rows: usize,
            cols: usize,
            acc: &[i32; MR * NR],
        ) {
            for i in 0..rows {
                for j in 0..cols {
                    *self.y.get().add((r0 + i) * self.n + c0 + j) = acc[i * NR + j];
                }
            }
        }
    }

    fn lcg(seed: &mut u64) -> u8 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as u8
    }

    #[test]
    fn every_sign_combination_and_ragged_size_matches_the_exact_sum() {
        let mut seed = 7u64;
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (9, 13, 33), (17, 64, 70), (8, 4, 32)] {
            for (sa, sb) in [(false, true), (false, false), (true, true), (true, false)] {
                let a: Vec<u8> = (0..m * k).map(|_| lcg(&mut seed)).collect();
                let b: Vec<u8> = (0..k * n).map(|_| lcg(&mut seed)).collect();
                let za: Vec<u8> = (0..m).map(|_| lcg(&mut seed)).collect();
                let zb: Vec<u8> = (0..n).map(|_| lcg(&mut seed)).collect();
                let val = |v: u8, s: bool| if s { v as i8 as i64 } else { v as i64 };
                let pa = unsafe { PackedQA::pack(a.as_ptr(), m, k, sa) }.unwrap();
                let pb = PackedQB::pack(&b, k, n, sb).unwrap();
                let zav: Vec<i32> = za.iter().map(|&v| val(v, sa) as i32 + pa.shift).collect();
                let zbv: Vec<i32> = zb.iter().map(|&v| val(v, sb) as i32 + pb.shift).collect();
                let mut y = vec![0i32; m * n];
                let out = I32Out {
                    y: SendPtr(y.as_mut_ptr()),
                    n,
                };
                igemm(&pa, &pb, &ZeroPoints { za: &zav, zb: &zbv }, &out);
                for r in 0..m {
                    for c in 0..n {
                        let e: i64 = (0..k)
                            .map(|t| {
                                (val(a[r * k + t], sa) - val(za[r], sa))
                                    * (val(b[t * n + c], sb) - val(zb[c], sb))
                            })
                            .sum();
                        assert_eq!(y[r * n + c], e as i32, "{m}x{k}x{n} {sa} {sb} at {r},{c}");
                    }
                }
                // The portable tile agrees with whichever kernel ran.
                let mut acc = [0i32; MR * NR];
                let mut acc2 = [0i32; MR * NR];
                let rows = m.min(MR);
                tile_portable(&pa.data, &pb.data, pa.k4, rows, &mut acc);
                #[cfg(target_arch = "x86_64")]
                if has_vnni() {
                    unsafe { tile_vnni(&pa.data, &pb.data, pa.k4, rows, &mut acc2) };
                    assert_eq!(acc[..rows * NR], acc2[..rows * NR]);
                }
                let _ = &mut acc2;
            }
        }
    }
}
