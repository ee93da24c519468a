//! whittle-exec: the CPU execution engine — plan steps ([`steps`]), host kernels
//! ([`kernels`]: packed GEMM, attention, row kernels, data movement), the liveness-based
//! arena planner ([`plan`]), the executor ([`run::Plan`]) and binary plan images
//! ([`image`]) for AOT objects. It has no Cranelift: the JIT (`whittle-cpu`) and AOT
//! objects hand it the generated kernels' entry points, so `libwhittle_rt.a` links this
//! crate and not the compiler.

pub mod consts;
pub mod image;
pub mod kernels;
pub mod plan;
pub mod profile;
pub mod run;
pub mod steps;
pub mod store;

use whittle_runtime::RuntimeError;

pub use run::{KernelFn, Plan, PlanParts};

/// Status codes of the AOT entry points (`PREFIX_run`, `whittle_rt_run`; the generated
/// header repeats them per model).
pub mod status {
    pub const OK: i32 = 0;
    pub const NULL_POINTER: i32 = 1;
    pub const WORKSPACE_TOO_SMALL: i32 = 2;
    pub const BAD_MODEL: i32 = 3;
    pub const RUN: i32 = 4;
    pub const PANIC: i32 = 5;
}

/// Compile-time statistics for `inspect`/`bench`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanStats {
    pub steps: usize,
    pub fused_kernels: usize,
    pub gemm_calls: usize,
    pub host_calls: usize,
    /// Arena bytes after liveness planning.
    pub arena_bytes: usize,
    /// Bytes if every intermediate had its own buffer.
    pub unplanned_bytes: usize,
    /// Bytes of pre-packed constant B matrices.
    pub packed_weight_bytes: usize,
}

/// A run-time or internal failure of the CPU backend (not an unsupported op: lowering
/// names the node for those).
pub fn internal(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Run {
        backend: "cpu".into(),
        msg: msg.into(),
    }
}

/// A rayon pool of `threads` threads (at least one) named `whittle-cpu-N`.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, RuntimeError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("whittle-cpu-{i}"))
        .build()
        .map_err(|e| internal(format!("thread pool: {e}")))
}

/// Threads to use when the caller does not say: `WHITTLE_THREADS`, else one per core.
pub fn default_threads() -> usize {
    std::env::var("WHITTLE_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
