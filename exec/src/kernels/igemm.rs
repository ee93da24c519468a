//! Integer GEMM: u8 × s8 → i32 with zero points, on a B packed once at compile time.
//!
//! Every u8/i8 × u8/i8 product is brought to u8 × s8 (an i8 A is shifted by +128, a u8 B
//! by −128, and the zero points with them), so one micro-kernel serves all four. Two
//! layouts: with AVX-512 VNNI, groups of four k bytes per u32 for `vpdpbusd` (8 rows × 32
//! columns); else (AVX2, and the portable tile) pairs of k as i16 per u32 for `vpmaddwd`,
//! which is exact where `vpmaddubsw` would saturate its i16 pair sums (255·127·2 > 2¹⁵).
//! The layout is chosen when B is packed and recorded with it. With `A' = A + sa`, `B' = B + sb`
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

/// How k is grouped into the u32 words of packed A and B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QLayout {
    /// Four k per word, one byte each (A u8, B s8): `vpdpbusd`.
    Quad8,
    /// Two k per word, one 16-bit lane each (A as u16, B as i16): `vpmaddwd`.
    Pair16,
}

impl QLayout {
    /// k values per word.
    pub fn per_word(self) -> usize {
        match self {
            QLayout::Quad8 => 4,
            QLayout::Pair16 => 2,
        }
    }

    /// The layout this CPU's fastest kernel reads.
    pub fn preferred() -> QLayout {
        if has_vnni() {
            QLayout::Quad8
        } else {
            QLayout::Pair16
        }
    }

    /// `v` (a shifted A or B value, u8 or s8 as its byte) placed as k `t` of its word.
    #[inline]
    fn place(self, v: u8, signed: bool, t: usize) -> u32 {
        match self {
            QLayout::Quad8 => (v as u32) << (8 * (t % 4)),
            QLayout::Pair16 => {
                let h = if signed {
                    v as i8 as i16 as u16
                } else {
                    v as u16
                };
                (h as u32) << (16 * (t % 2))
            }
        }
    }
}

/// B (`k × n`, u8 or i8) as s8, in strips of [`NR`] columns; within a strip, for each group
/// of k (four or two, by `layout`), one u32 per column holding its values (k order, low
/// lane first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackedQB {
    pub k: usize,
    pub n: usize,
    pub layout: QLayout,
    /// `k.div_ceil(layout.per_word())`.
    pub kg: usize,
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
        Self::pack_as(b, k, n, signed, QLayout::preferred())
    }

    /// `batches` consecutive `k × n` matrices of `b`, each packed on its own.
    pub fn pack_batches(
        b: &[u8],
        k: usize,
        n: usize,
        batches: usize,
        signed: bool,
    ) -> Result<Vec<PackedQB>, String> {
        let size = k.checked_mul(n).ok_or("packed integer weights overflow")?;
        (0..batches)
            .map(|i| {
                let part = b
                    .get(i * size..(i + 1) * size)
                    .ok_or("integer weights shorter than their batches")?;
                Self::pack(part, k, n, signed)
            })
            .collect()
    }

    /// [`PackedQB::pack`] in a given layout.
    pub fn pack_as(
        b: &[u8],
        k: usize,
        n: usize,
        signed: bool,
        layout: QLayout,
    ) -> Result<PackedQB, String> {
        let kg = k.div_ceil(layout.per_word());
        let strips = n.div_ceil(NR);
        let words = strips
            .checked_mul(kg)
            .and_then(|w| w.checked_mul(NR))
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
                let w = &mut data[(s * kg + t / layout.per_word()) * NR + j];
                *w |= layout.place(v as u8, true, t);
            }
        }
        Ok(PackedQB {
            k,
            n,
            layout,
            kg,
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

/// A packed as u8 rows of `kg` u32 groups (in B's layout), with the shift applied and row
/// sums.
pub struct PackedQA {
    pub m: usize,
    pub layout: QLayout,
    pub kg: usize,
    pub data: Vec<u32>,
    pub rowsum: Vec<i32>,
    /// The shift applied to A's values (+128 for i8, 0 for u8).
    pub shift: i32,
}

impl PackedQA {
    /// # Safety
    /// `a` addresses `m × k` bytes, row-major.
    pub unsafe fn pack(
        a: *const u8,
        m: usize,
        k: usize,
        signed: bool,
        layout: QLayout,
    ) -> Result<PackedQA, String> {
        let per = layout.per_word();
        let kg = k.div_ceil(per);
        let words = m
            .checked_mul(kg)
            .ok_or("packed integer activations overflow")?;
        let mut data = try_vec(words, 0u32, "packed integer activations")?;
        let mut rowsum = try_vec(m, 0i32, "packed integer activations")?;
        let x = if signed { 0x80u8 } else { 0 };
        for r in 0..m {
            let row = std::slice::from_raw_parts(a.add(r * k), k);
            let dst = data.as_mut_ptr().add(r * kg);
            // Little-endian words: lane t of a row's words is k t, in either layout.
            rowsum[r] = match layout {
                QLayout::Quad8 => {
                    let lanes = std::slice::from_raw_parts_mut(dst as *mut u8, kg * 4);
                    pack_row_u8(row, x, lanes)
                }
                QLayout::Pair16 => {
                    let lanes = std::slice::from_raw_parts_mut(dst as *mut u16, kg * 2);
                    pack_row_u16(row, x, lanes)
                }
            };
        }
        Ok(PackedQA {
            m,
            layout,
            kg,
            data,
            rowsum,
            shift: if signed { 128 } else { 0 },
        })
    }
}

#[cfg(target_endian = "big")]
compile_error!("the integer GEMM packs little-endian words");

multiversion!(pack_row_u8, pack_row_u8_impl, (row: &[u8], x: u8, lanes: &mut [u8]) -> i32);
multiversion!(pack_row_u16, pack_row_u16_impl, (row: &[u8], x: u8, lanes: &mut [u16]) -> i32);

/// `lanes[t] = row[t] ^ x`; returns the sum of the lanes.
#[inline(always)]
fn pack_row_u8_impl(row: &[u8], x: u8, lanes: &mut [u8]) -> i32 {
    let mut s = 0u32;
    for (o, &v) in lanes.iter_mut().zip(row) {
        *o = v ^ x;
        s = s.wrapping_add((v ^ x) as u32);
    }
    s as i32
}

/// `lanes[t] = row[t] ^ x` widened to u16; returns the sum of the lanes.
#[inline(always)]
fn pack_row_u16_impl(row: &[u8], x: u8, lanes: &mut [u16]) -> i32 {
    let mut s = 0u32;
    for (o, &v) in lanes.iter_mut().zip(row) {
        *o = (v ^ x) as u16;
        s = s.wrapping_add((v ^ x) as u32);
    }
    s as i32
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
        "avx2-vpmaddwd-4x16"
    } else {
        "portable-8x32"
    }
}

/// `C = (A − za)(B − zb)` for packed A and B, written through `out`.
pub fn igemm(a: &PackedQA, b: &PackedQB, z: &ZeroPoints, out: &dyn QOut) {
    debug_assert_eq!((a.kg, a.layout), (b.kg, b.layout));
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
    // v = acc − zb[c]·(rowsum[r] − k·za[r]) − za[r]·colsum[c], all wrapping.
    let expand = |v: &[i32], len: usize| -> Vec<i32> {
        if v.len() == 1 {
            vec![v[0]; len]
        } else {
            v.to_vec()
        }
    };
    let (za, zb) = (expand(z.za, a.m), expand(z.zb, b.n));
    let k = b.k as i32;
    let rr: Vec<i32> = (0..a.m)
        .map(|r| a.rowsum[r].wrapping_sub(k.wrapping_mul(za[r])))
        .collect();
    par_for(tasks, |task| {
        let (lo, hi) = (tiles * task / tasks, tiles * (task + 1) / tasks);
        let mut acc = [0i32; MR * NR];
        for t in lo..hi {
            // Column strips outermost within a task, so a strip of B stays in cache.
            let (s, rt) = (t / row_tiles, t % row_tiles);
            let (r0, c0) = (rt * MR, s * NR);
            let rows = MR.min(a.m - r0);
            let cols = NR.min(b.n - c0);
            let bp = &b.data[s * b.kg * NR..(s + 1) * b.kg * NR];
            let ap = &a.data[r0 * a.kg..(r0 + rows) * a.kg];
            unsafe { tile(b.layout, (vnni, avx2), ap, bp, a.kg, rows, &mut acc) };
            for i in 0..rows {
                let r = r0 + i;
                let row = &mut acc[i * NR..i * NR + cols];
                correct_row(
                    row,
                    &zb[c0..c0 + cols],
                    &b.colsum[c0..c0 + cols],
                    rr[r],
                    za[r],
                );
            }
            unsafe { out.write(r0, c0, rows, cols, &acc) };
        }
    });
}

multiversion!(correct_row, correct_row_impl, (acc: &mut [i32], zb: &[i32], colsum: &[i32], rr: i32, za: i32));

/// The zero-point correction of one row of a tile (see `igemm`).
#[inline(always)]
fn correct_row_impl(acc: &mut [i32], zb: &[i32], colsum: &[i32], rr: i32, za: i32) {
    for ((v, &zbc), &cs) in acc.iter_mut().zip(zb).zip(colsum) {
        *v = v
            .wrapping_sub(zbc.wrapping_mul(rr))
            .wrapping_sub(za.wrapping_mul(cs));
    }
}

/// One tile on the best kernel for the layout and the CPU (`(vnni, avx2)` detected).
///
/// # Safety
/// The detected features are present.
#[inline]
unsafe fn tile(
    layout: QLayout,
    (vnni, avx2): (bool, bool),
    a: &[u32],
    b: &[u32],
    kg: usize,
    rows: usize,
    acc: &mut [i32; MR * NR],
) {
    #[cfg(target_arch = "x86_64")]
    match layout {
        QLayout::Quad8 if vnni => return tile_vnni(a, b, kg, rows, acc),
        QLayout::Pair16 if avx2 => return tile_avx2(a, b, kg, rows, acc),
        _ => {}
    }
    let _ = (vnni, avx2);
    tile_portable(layout, a, b, kg, rows, acc)
}

/// The exact sum of one tile in plain code, for either layout.
fn tile_portable(
    layout: QLayout,
    a: &[u32],
    b: &[u32],
    kg: usize,
    rows: usize,
    acc: &mut [i32; MR * NR],
) {
    acc.fill(0);
    for g in 0..kg {
        let bg = &b[g * NR..(g + 1) * NR];
        for i in 0..rows {
            let aw = a[i * kg + g];
            let row = &mut acc[i * NR..(i + 1) * NR];
            for (o, &bw) in row.iter_mut().zip(bg) {
                let s = match layout {
                    QLayout::Quad8 => {
                        let (ab, bb) = (aw.to_le_bytes(), bw.to_le_bytes());
                        (0..4)
                            .map(|q| ab[q] as i32 * bb[q] as i8 as i32)
                            .sum::<i32>()
                    }
                    QLayout::Pair16 => {
                        let lane = |w: u32, h: u32| (w >> (16 * h)) as u16;
                        (0..2)
                            .map(|h| lane(aw, h) as i32 * lane(bw, h) as i16 as i32)
                            .sum::<i32>()
                    }
                };
                *o = o.wrapping_add(s);
            }
        }
    }
}

/// Pair16 on AVX2: four rows × sixteen columns at a time (eight accumulators), `vpmaddwd`
/// of a broadcast A pair with eight B column pairs, summed in i32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(a: &[u32], b: &[u32], kg: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    use std::arch::x86_64::*;
    let bp = b.as_ptr();
    let ap = a.as_ptr();
    macro_rules! run {
        ($r0:expr, $rows:expr, $half:expr) => {{
            let mut c = [[_mm256_setzero_si256(); 2]; 4];
            let col = $half * 16;
            for g in 0..kg {
                let b0 = _mm256_loadu_si256(bp.add(g * NR + col) as *const _);
                let b1 = _mm256_loadu_si256(bp.add(g * NR + col + 8) as *const _);
                for i in 0..$rows {
                    let av = _mm256_set1_epi32(*ap.add(($r0 + i) * kg + g) as i32);
                    c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(av, b0));
                    c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(av, b1));
                }
            }
            for (i, ci) in c.iter().enumerate().take($rows) {
                let dst = acc.as_mut_ptr().add(($r0 + i) * NR + col);
                _mm256_storeu_si256(dst as *mut _, ci[0]);
                _mm256_storeu_si256(dst.add(8) as *mut _, ci[1]);
            }
        }};
    }
    let mut r0 = 0;
    while r0 < rows {
        let left = rows - r0;
        for half in 0..2 {
            match left {
                1 => run!(r0, 1, half),
                2 => run!(r0, 2, half),
                3 => run!(r0, 3, half),
                _ => run!(r0, 4, half),
            }
        }
        r0 += 4;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni(a: &[u32], b: &[u32], kg: usize, rows: usize, acc: &mut [i32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut c = [[_mm512_setzero_si512(); 2]; MR];
    let bp = b.as_ptr();
    let ap = a.as_ptr();
    macro_rules! run {
        ($rows:expr) => {
            for g in 0..kg {
                let b0 = _mm512_loadu_si512(bp.add(g * NR) as *const _);
                let b1 = _mm512_loadu_si512(bp.add(g * NR + 16) as *const _);
                for i in 0..$rows {
                    let av = _mm512_set1_epi32(*ap.add(i * kg + g) as i32);
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
                for layout in [QLayout::Quad8, QLayout::Pair16] {
                    let pa = unsafe { PackedQA::pack(a.as_ptr(), m, k, sa, layout) }.unwrap();
                    let pb = PackedQB::pack_as(&b, k, n, sb, layout).unwrap();
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
                            let at = format!("{layout:?} {m}x{k}x{n} {sa} {sb} at {r},{c}");
                            assert_eq!(y[r * n + c], e as i32, "{at}");
                        }
                    }
                    // The portable tile agrees with each SIMD kernel this CPU has.
                    let mut acc = [0i32; MR * NR];
                    let rows = m.min(MR);
                    tile_portable(layout, &pa.data, &pb.data, pa.kg, rows, &mut acc);
                    #[cfg(target_arch = "x86_64")]
                    {
                        let mut acc2 = [0i32; MR * NR];
                        let simd = match layout {
                            QLayout::Quad8 if has_vnni() => {
                                unsafe { tile_vnni(&pa.data, &pb.data, pa.kg, rows, &mut acc2) };
                                true
                            }
                            QLayout::Pair16 if has_avx2() => {
                                unsafe { tile_avx2(&pa.data, &pb.data, pa.kg, rows, &mut acc2) };
                                true
                            }
                            _ => false,
                        };
                        if simd {
                            assert_eq!(acc[..rows * NR], acc2[..rows * NR], "{layout:?}");
                        }
                    }
                }
            }
        }
    }
}
