//! Single-threaded f32 GEMM throughput of the backend's packed kernel (B pre-packed, as
//! for constant weights) vs the `gemm` and `matrixmultiply` crates, on transformer shapes.
//! Run: `cargo run --release -p whittle-cpu --features bench-gemm --example gemm_bench`.

use std::time::Instant;
use whittle_cpu::kernels::gemm::{gemm, Epilogue, MatRef, PackedB, Scratch, Ukr};

fn time(mut f: impl FnMut(), flops: f64) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..7 {
        let reps = 10;
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    flops / best / 1e9
}

fn main() {
    for &(m, n, k) in &[
        (128usize, 384usize, 384usize),
        (128, 1536, 384),
        (128, 384, 1536),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 16.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) / 16.0).collect();
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        println!("m={m} n={n} k={k}");
        for ukr in Ukr::all_available() {
            let pb = unsafe {
                PackedB::pack(
                    MatRef {
                        ptr: b.as_ptr(),
                        rs: n,
                        cs: 1,
                    },
                    k,
                    n,
                    ukr.nr,
                )
            };
            let mut s = Scratch::default();
            let g = time(
                || unsafe {
                    gemm(
                        &ukr,
                        m,
                        MatRef {
                            ptr: a.as_ptr(),
                            rs: k,
                            cs: 1,
                        },
                        &pb,
                        c.as_mut_ptr(),
                        n,
                        &Epilogue::NONE,
                        &mut s,
                    )
                },
                flops,
            );
            println!("  whittle {:<14} {g:6.1} GFLOP/s", ukr.name);
        }
        // As inside a model: every call reads another B from memory (≥ 64 MB of weights
        // cycled, beyond the last-level cache), not the B the previous call left cached.
        let ukr = Ukr::best();
        let copies = (64 << 20) / (k * n * 4) + 1;
        let cold: Vec<PackedB> = (0..copies)
            .map(|_| unsafe {
                PackedB::pack(
                    MatRef {
                        ptr: b.as_ptr(),
                        rs: n,
                        cs: 1,
                    },
                    k,
                    n,
                    ukr.nr,
                )
            })
            .collect();
        let mut s = Scratch::default();
        let mut next = 0;
        let g = time(
            || unsafe {
                next = (next + 1) % cold.len();
                gemm(
                    &ukr,
                    m,
                    MatRef {
                        ptr: a.as_ptr(),
                        rs: k,
                        cs: 1,
                    },
                    &cold[next],
                    c.as_mut_ptr(),
                    n,
                    &Epilogue::NONE,
                    &mut s,
                )
            },
            flops,
        );
        println!(
            "  whittle {:<14} {g:6.1} GFLOP/s  (cold B: {copies} weights cycled)",
            ukr.name
        );
        let g = time(
            || unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            },
            flops,
        );
        println!("  gemm crate             {g:6.1} GFLOP/s");
        let g = time(
            || unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            },
            flops,
        );
        println!("  matrixmultiply         {g:6.1} GFLOP/s");
    }
}
