//! Host kernels called by the execution plan: packed GEMM and its micro-kernels, row
//! kernels (LayerNorm, Softmax, reductions), data movement, and the thread-pool helpers.

pub mod attention;
pub mod conv;
pub mod depthwise;
pub mod epilogue;
pub mod ewise;
pub mod gemm;
pub mod igemm;
pub mod index;
pub mod movement;
pub mod norm;
pub mod par;
pub mod pool;
pub mod quant;
pub mod reference;
pub mod resize;
pub mod rows;
pub mod ukernel;
pub mod vmath512;
