//! GEMM micro-kernels: `MR × NR` register tiles over packed (or, `direct`, row-major) A and packed B
//! (`k × NR`) panels, one per instruction set, picked at run time by CPU feature detection.

// Register tiles read best as explicit index loops.
#![allow(clippy::needless_range_loop)]

/// `c[r][j] (=|+=) init[j] + Σ_p a[p*MR + r] * b[p*NR + j]` for one full tile; `ldc` is C's
/// row stride; `init` (a row of `NR` values, e.g. a bias, or null for zeros) seeds the
/// accumulators, so a broadcast bias costs no pass over the tile.
pub type UkrFn = unsafe fn(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
);

/// [`UkrFn`] reading A unpacked: row `r` of the tile is `a[r·lda ..]` (row-major A), so a
/// GEMM whose A is row-major skips packing it.
pub type DirectFn = unsafe fn(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
);

/// A micro-kernel and its tile shape.
#[derive(Clone, Copy, Debug)]
pub struct Ukr {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub f: UkrFn,
    /// The same tile reading row-major A in place, where the ISA has one.
    pub direct: Option<DirectFn>,
}

/// The kernels by name, fastest first (the portable one is last).
const NAMES: [&str; 3] = ["avx512-8x32", "avx2-6x16", "portable-4x8"];

impl Ukr {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Ukr {
        NAMES
            .iter()
            .find(|n| Ukr::runs_here(n))
            .and_then(|n| Ukr::known(n))
            .unwrap_or_else(Ukr::portable)
    }

    /// The plain-Rust kernel (any CPU).
    pub fn portable() -> Ukr {
        Ukr {
            name: "portable-4x8",
            mr: 4,
            nr: 8,
            f: portable_4x8,
            direct: None,
        }
    }

    /// Whether this CPU can run the kernel named `name`.
    pub fn runs_here(name: &str) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match name {
                "avx512-8x32" => std::arch::is_x86_feature_detected!("avx512f"),
                "avx2-6x16" => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                _ => name == "portable-4x8",
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            name == "portable-4x8"
        }
    }

    /// The kernel named `name`, whether or not this CPU can run it: for compiling plans
    /// for another CPU (the tile shape fixes the packed layout; nothing here calls it).
    pub fn known(name: &str) -> Option<Ukr> {
        #[cfg(target_arch = "x86_64")]
        {
            let k = match name {
                "avx512-8x32" => Some(Ukr {
                    name: "avx512-8x32",
                    mr: 8,
                    nr: 32,
                    f: avx512_8x32,
                    direct: Some(avx512_8x32_direct),
                }),
                "avx2-6x16" => Some(Ukr {
                    name: "avx2-6x16",
                    mr: 6,
                    nr: 16,
                    f: avx2_6x16,
                    direct: None,
                }),
                _ => None,
            };
            if k.is_some() {
                return k;
            }
        }
        (name == "portable-4x8").then(Ukr::portable)
    }

    /// Every kernel this CPU can run (for tests that compare them); the AVX-512 tile
    /// twice, reading packed A (`avx512-8x32`) and row-major A in place (`...-direct-a`).
    pub fn all_available() -> Vec<Ukr> {
        let mut v = Vec::new();
        for n in NAMES.iter().rev().filter(|n| Ukr::runs_here(n)) {
            let Some(k) = Ukr::known(n) else { continue };
            if k.direct.is_some() {
                v.push(Ukr { direct: None, ..k });
                v.push(Ukr {
                    name: "avx512-8x32-direct-a",
                    ..k
                });
            } else {
                v.push(k);
            }
        }
        v
    }
}

/// A plan image records its micro-kernel by name (the tile shape fixes the packed-B
/// layout); loading it picks the same kernel, or fails when this CPU cannot run it.
impl serde::Serialize for Ukr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

impl<'de> serde::Deserialize<'de> for Ukr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ukr, D::Error> {
        let name = String::deserialize(d)?;
        Ukr::known(&name)
            .filter(|_| Ukr::runs_here(&name))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "the plan uses the GEMM micro-kernel '{name}', which this CPU cannot run \
                     (compile the model on a machine like the one that runs it)"
                ))
            })
    }
}

/// # Safety
/// `a` holds `k*4` floats, `b` holds `k*8`, `c` addresses a 4×8 tile with row stride `ldc`,
/// `init` is null or holds 8 floats.
unsafe fn portable_4x8(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    let mut t = [[0f32; 8]; 4];
    if !init.is_null() {
        let row = std::slice::from_raw_parts(init, 8);
        t.iter_mut().for_each(|r| r.copy_from_slice(row));
    }
    for p in 0..k {
        let bp = std::slice::from_raw_parts(b.add(p * 8), 8);
        let ap = std::slice::from_raw_parts(a.add(p * 4), 4);
        for r in 0..4 {
            for j in 0..8 {
                t[r][j] += ap[r] * bp[j];
            }
        }
    }
    for (r, row) in t.iter().enumerate() {
        let cr = std::slice::from_raw_parts_mut(c.add(r * ldc), 8);
        for j in 0..8 {
            cr[j] = if acc { cr[j] + row[j] } else { row[j] };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// # Safety
/// AVX2+FMA present; `a` holds `k*6` floats, `b` `k*16`, `c` a 6×16 tile with row stride `ldc`,
/// `init` null or 16 floats.
unsafe fn avx2_6x16(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    use std::arch::x86_64::*;
    let seed = if init.is_null() {
        [_mm256_setzero_ps(); 2]
    } else {
        [_mm256_loadu_ps(init), _mm256_loadu_ps(init.add(8))]
    };
    let mut t = [seed; 6];
    for p in 0..k {
        let b0 = _mm256_loadu_ps(b.add(p * 16));
        let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
        for r in 0..6 {
            let av = _mm256_broadcast_ss(&*a.add(p * 6 + r));
            t[r][0] = _mm256_fmadd_ps(av, b0, t[r][0]);
            t[r][1] = _mm256_fmadd_ps(av, b1, t[r][1]);
        }
    }
    for (r, row) in t.iter().enumerate() {
        let cr = c.add(r * ldc);
        for (h, v) in row.iter().enumerate() {
            let p = cr.add(h * 8);
            let v = if acc {
                _mm256_add_ps(_mm256_loadu_ps(p), *v)
            } else {
                *v
            };
            _mm256_storeu_ps(p, v);
        }
    }
}

/// The AVX-512 8×32 tile over any layout of A: `a_at(p, r)` is the address of A's element
/// (row `r`, depth `p`). Both kernels below are this body, inlined with their layout.
///
/// # Safety
/// AVX-512F present; `a_at` addresses readable floats for `p < k`, `r < 8`; `b` holds
/// `k*32` floats, `c` an 8×32 tile with row stride `ldc`, `init` null or 32 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_8x32_tile(
    k: usize,
    a_at: impl Fn(usize, usize) -> *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    use std::arch::x86_64::*;
    let seed = if init.is_null() {
        [_mm512_setzero_ps(); 2]
    } else {
        [_mm512_loadu_ps(init), _mm512_loadu_ps(init.add(16))]
    };
    let mut t = [seed; 8];
    for p in 0..k {
        let b0 = _mm512_loadu_ps(b.add(p * 32));
        let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
        for r in 0..8 {
            let av = _mm512_set1_ps(*a_at(p, r));
            t[r][0] = _mm512_fmadd_ps(av, b0, t[r][0]);
            t[r][1] = _mm512_fmadd_ps(av, b1, t[r][1]);
        }
    }
    for (r, row) in t.iter().enumerate() {
        let cr = c.add(r * ldc);
        for (h, v) in row.iter().enumerate() {
            let p = cr.add(h * 16);
            let v = if acc {
                _mm512_add_ps(_mm512_loadu_ps(p), *v)
            } else {
                *v
            };
            _mm512_storeu_ps(p, v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
/// # Safety
/// AVX-512F present; `a` holds `k*8` floats (packed A), `b` `k*32`, `c` an 8×32 tile with
/// row stride `ldc`, `init` null or 32 floats.
unsafe fn avx512_8x32(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    avx512_8x32_tile(k, |p, r| a.add(p * 8 + r), b, c, ldc, acc, init)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
/// # Safety
/// AVX-512F present; `a` addresses 8 rows of `k` floats at row stride `lda`, `b` `k*32`
/// floats, `c` an 8×32 tile with row stride `ldc`, `init` null or 32 floats.
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_8x32_direct(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    let rows: [*const f32; 8] = std::array::from_fn(|r| a.add(r * lda));
    avx512_8x32_tile(k, |p, r| rows[r].add(p), b, c, ldc, acc, init)
}
