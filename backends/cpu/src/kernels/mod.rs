//! Host-side kernels that the execution plan calls: the f32 GEMM (packing, micro-kernels
//! for AVX-512 / AVX2+FMA / portable Rust, and the per-tile epilogue).

pub mod gemm;
mod ukernel;
