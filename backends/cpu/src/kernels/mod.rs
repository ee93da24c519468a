//! Host kernels called by the execution plan: packed GEMM and its micro-kernels, row
//! kernels (LayerNorm, Softmax, reductions), data movement, and the thread-pool helpers.

pub mod gemm;
pub mod movement;
pub mod par;
pub mod rows;
pub mod ukernel;
