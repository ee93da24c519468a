//! Measures the single-core f32 FMA peak of this machine: independent chains of fused
//! multiply-adds on full-width vectors (AVX-512 when present, else AVX2), enough chains to
//! hide the FMA latency. The GEMM figures in BENCHMARKS.md are quoted against this peak.
//!
//! `cargo run --release -p whittle-cpu --example fma_peak`

use std::time::Instant;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chains_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let a = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, m, a);
        }
    }
    acc.iter().map(|r| _mm512_reduce_add_ps(*r)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let a = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, m, a);
        }
    }
    let mut out = [0f32; 8];
    let mut s = 0.0;
    for r in acc {
        _mm256_storeu_ps(out.as_mut_ptr(), r);
        s += out.iter().sum::<f32>();
    }
    s
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        let iters = 200_000_000u64 / 12;
        let mut runs = Vec::new();
        for (name, lanes, ok) in [
            ("avx512", 16.0, is_x86_feature_detected!("avx512f")),
            (
                "avx2+fma",
                8.0,
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            ),
        ] {
            if !ok {
                continue;
            }
            let mut best = 0.0f64;
            for _ in 0..5 {
                let t = Instant::now();
                // SAFETY: the features were detected above.
                let sink = unsafe {
                    if lanes == 16.0 {
                        chains_avx512(iters)
                    } else {
                        chains_avx2(iters)
                    }
                };
                let s = t.elapsed().as_secs_f64();
                std::hint::black_box(sink);
                best = best.max((iters * 12) as f64 * lanes * 2.0 / s / 1e9);
            }
            runs.push(format!("{name}: {best:.1} GFLOP/s"));
        }
        println!("single-core f32 FMA peak (best of 5): {}", runs.join(", "));
    }
}
