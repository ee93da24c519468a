//! The model compiled ahead of time by `build.rs`, callable from Rust: [`run`] wraps the
//! object's C entry point `model_run` (resolved against `libwhittle_rt`'s `whittle_rt_run`).

use std::ffi::c_void;

include!(concat!(env!("OUT_DIR"), "/model_info.rs"));

// Keep the runtime library linked: the model object calls `whittle_rt_run` from it.
use whittle_rt as _;

extern "C" {
    fn model_run(
        inputs: *const *const c_void,
        outputs: *const *mut c_void,
        workspace: *mut c_void,
        workspace_size: usize,
    ) -> i32;
}

/// Bytes of tensor `(dtype, shape)`.
fn bytes(dtype: &str, shape: &[usize]) -> usize {
    let size = match dtype {
        "f64" | "i64" | "u64" => 8,
        "f32" | "i32" | "u32" => 4,
        "f16" | "bf16" | "i16" | "u16" => 2,
        _ => 1,
    };
    shape.iter().product::<usize>() * size
}

/// Runs the model on raw little-endian inputs (one per [`INPUTS`] entry, in order) and
/// returns the raw outputs; `Err(status)` with the entry point's status code otherwise.
pub fn run(inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>, i32> {
    if inputs.len() != INPUTS.len()
        || inputs
            .iter()
            .zip(INPUTS)
            .any(|(b, (_, dt, shape))| b.len() != bytes(dt, shape))
    {
        return Err(-1);
    }
    let mut outs: Vec<Vec<u8>> = OUTPUTS
        .iter()
        .map(|(_, dt, shape)| vec![0u8; bytes(dt, shape)])
        .collect();
    let in_ptrs: Vec<*const c_void> = inputs.iter().map(|b| b.as_ptr() as *const c_void).collect();
    let out_ptrs: Vec<*mut c_void> = outs
        .iter_mut()
        .map(|b| b.as_mut_ptr() as *mut c_void)
        .collect();
    let mut ws = vec![0u8; WORKSPACE_BYTES.max(1)];
    // SAFETY: one buffer of the declared size per input and output, and a workspace of
    // WORKSPACE_BYTES, as the generated entry point requires.
    let status = unsafe {
        model_run(
            in_ptrs.as_ptr(),
            out_ptrs.as_ptr(),
            ws.as_mut_ptr() as *mut c_void,
            WORKSPACE_BYTES,
        )
    };
    if status == 0 {
        Ok(outs)
    } else {
        Err(status)
    }
}
