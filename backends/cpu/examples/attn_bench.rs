//! Single-threaded fused attention time on MiniLM's geometry (1 × 12 heads × 128 × 32, a
//! broadcast key mask), median of repeated runs, with the GFLOP/s of its two GEMMs.
//! Run: `cargo run --release -p whittle-cpu --example attn_bench [SEQ] [HEADS] [HEAD]`.

use std::time::Instant;
use whittle_cpu::kernels::attention::{attention, AttnGeom};
use whittle_cpu::kernels::gemm::Ukr;

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (s, h, d) = (arg(1, 128), arg(2, 12), arg(3, 32));
    let g = AttnGeom {
        batch: 1,
        heads: h,
        q_len: s,
        k_len: s,
        head: d,
        v_head: d,
        scale: 1.0 / (d as f32).sqrt(),
        mask_strides: Some([0, 0, 0, 1]),
        qkv_layout: None,
        out_offset: 0,
    };
    let e = h * d;
    let q: Vec<f32> = (0..s * e)
        .map(|i| ((i * 7 % 23) as f32 - 11.0) / 23.0)
        .collect();
    let k: Vec<f32> = (0..s * e)
        .map(|i| ((i * 5 % 19) as f32 - 9.0) / 19.0)
        .collect();
    let v: Vec<f32> = (0..s * e)
        .map(|i| ((i * 3 % 17) as f32 - 8.0) / 17.0)
        .collect();
    let mask = vec![0.0f32; s];
    let mut out = vec![0.0f32; s * e];
    let ukr = Ukr::best();
    let mut times = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        // SAFETY: the buffers have the shapes `g` states.
        unsafe {
            attention(
                &ukr,
                &g,
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                mask.as_ptr(),
                out.as_mut_ptr(),
            )
        };
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let flops = 4.0 * (h * s * s * d) as f64;
    println!(
        "attention s={s} heads={h} d={d} ({}): median {:.1} µs, {:.1} GFLOP/s",
        ukr.name,
        med * 1e6,
        flops / med / 1e9
    );
}
