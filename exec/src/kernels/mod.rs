//! Host kernels called by the execution plan: packed GEMM and its micro-kernels, row
//! kernels (LayerNorm, Softmax, reductions), data movement, and the thread-pool helpers.

/// `$vis fn $name(args) -> ret` calling the widest clone of `$impl_fn` (an
/// `#[inline(always)]` fn) the CPU runs: AVX-512, AVX2 + FMA, or the baseline. Clones differ
/// only in vector width; no clone contracts a multiply and an add into an FMA, so all round
/// alike.
macro_rules! multiversion {
    ($vis:vis $name:ident, $impl_fn:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v512($($arg: $ty),*) $(-> $ret)? { $impl_fn($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256($($arg: $ty),*) $(-> $ret)? { $impl_fn($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the clone was compiled for.
                    return unsafe { v512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { v256($($arg),*) };
                }
            }
            $impl_fn($($arg),*)
        }
    };
}

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
pub mod qmatmul;
pub mod quant;
pub mod reference;
pub mod resize;
pub mod rows;
pub mod ukernel;
pub mod vmath512;
