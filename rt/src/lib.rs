//! whittle-rt: the static runtime library (`libwhittle_rt.a`) that objects made by
//! `whittle compile` link against. It exports one C function, [`whittle_rt_run`], which the
//! generated entry point `PREFIX_run` calls with the model blob from the object's read-only
//! data. The first call for a blob decodes it and compiles the plan with the CPU backend
//! (cached per blob); every call wraps the caller's input buffers, runs the plan and
//! copies the outputs into the caller's buffers. Panics are caught and become a status.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use whittle_cpu::aot::{blob, status, TensorSpec};
use whittle_cpu::CpuExecutable;
use whittle_ir::Tensor;
use whittle_runtime::Executable;

/// A decoded, compiled blob.
struct Loaded {
    exe: CpuExecutable,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

/// Compiled blobs by address (each object's blob is a distinct static).
fn cache() -> &'static Mutex<HashMap<usize, Arc<Loaded>>> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Loaded>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn load(bytes: &[u8]) -> Result<Loaded, String> {
    let (text, weights) = blob::decode(bytes)?;
    let g = whittle_ir::text::parse_graph_with_blobs(text, &weights).map_err(|e| e.to_string())?;
    let spec = |name: &str, ty: &whittle_ir::TensorType| -> Result<TensorSpec, String> {
        Ok(TensorSpec {
            name: name.to_string(),
            dtype: ty.dtype,
            shape: ty
                .concrete_shape()
                .ok_or_else(|| format!("'{name}' has no concrete shape"))?,
        })
    };
    let inputs = (0..g.inputs().len())
        .map(|i| spec(g.input_name(i), g.input_type(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = g
        .outputs()
        .iter()
        .map(|o| spec(&o.name, g.value_type(o.value)))
        .collect::<Result<Vec<_>, _>>()?;
    let exe = CpuExecutable::compile(&g).map_err(|e| e.to_string())?;
    Ok(Loaded {
        exe,
        inputs,
        outputs,
    })
}

fn loaded(bytes: &[u8]) -> Result<Arc<Loaded>, i32> {
    let key = bytes.as_ptr() as usize;
    if let Some(l) = cache().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(l);
    }
    let l = Arc::new(load(bytes).map_err(|e| {
        eprintln!("whittle_rt: cannot load the embedded model: {e}");
        status::BAD_MODEL
    })?);
    if let Ok(mut m) = cache().lock() {
        m.insert(key, l.clone());
    }
    Ok(l)
}

/// # Safety
/// As [`whittle_rt_run`].
unsafe fn run(model: &[u8], inputs: *const *const u8, outputs: *const *mut u8) -> Result<(), i32> {
    let l = loaded(model)?;
    if inputs.is_null() && !l.inputs.is_empty() || outputs.is_null() {
        return Err(status::NULL_POINTER);
    }
    let mut named = Vec::with_capacity(l.inputs.len());
    for (i, s) in l.inputs.iter().enumerate() {
        // SAFETY: the caller passes one pointer per input (the header's contract).
        let p = unsafe { *inputs.add(i) };
        if p.is_null() {
            return Err(status::NULL_POINTER);
        }
        // SAFETY: the buffer holds the input's stated bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, s.bytes()) };
        let t = Tensor::from_le_bytes(s.dtype, s.shape.clone(), bytes).map_err(|_| status::RUN)?;
        named.push((s.name.as_str(), t));
    }
    let res = l.exe.run(&named).map_err(|e| {
        eprintln!("whittle_rt: run failed: {e}");
        status::RUN
    })?;
    for (i, s) in l.outputs.iter().enumerate() {
        // SAFETY: one pointer per output.
        let p = unsafe { *outputs.add(i) };
        if p.is_null() {
            return Err(status::NULL_POINTER);
        }
        let t = res.get(i).map(|(_, t)| t).ok_or(status::RUN)?;
        let bytes = t.to_le_bytes();
        if t.shape() != s.shape.as_slice() || bytes.len() != s.bytes() {
            return Err(status::RUN);
        }
        // SAFETY: the output buffer holds the output's stated bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    Ok(())
}

/// Runs the model whose blob is `model[..model_len]` (called by generated entry points).
/// `inputs`/`outputs` hold one buffer pointer per model input/output in header order.
/// Returns a status code (`whittle_cpu::aot::status`); never unwinds.
///
/// # Safety
/// `model` points to `model_len` readable bytes that live for the whole program (a static
/// of the object); the pointer arrays and buffers are as the generated header states.
#[no_mangle]
pub unsafe extern "C" fn whittle_rt_run(
    model: *const u8,
    model_len: usize,
    inputs: *const *const u8,
    outputs: *const *mut u8,
    _workspace: *mut u8,
    _workspace_len: usize,
) -> i32 {
    if model.is_null() {
        return status::NULL_POINTER;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(model, model_len) };
        // SAFETY: the caller's contract.
        unsafe { run(bytes, inputs, outputs) }
    }));
    match r {
        Ok(Ok(())) => status::OK,
        Ok(Err(code)) => code,
        Err(_) => status::PANIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_blobs_are_statuses_not_crashes() {
        // SAFETY: null and short buffers are what the function must reject.
        unsafe {
            let null = std::ptr::null();
            assert_eq!(
                whittle_rt_run(null, 0, null as _, null as _, null as _, 0),
                status::NULL_POINTER
            );
            let junk = b"not a model";
            let outs: [*mut u8; 0] = [];
            assert_eq!(
                whittle_rt_run(
                    junk.as_ptr(),
                    junk.len(),
                    null as _,
                    outs.as_ptr(),
                    null as _,
                    0
                ),
                status::BAD_MODEL
            );
        }
    }

    #[test]
    fn a_blob_runs_and_null_buffers_are_refused() {
        // y = relu(x) + c, with c travelling as a binary weight.
        let text = "graph \"t\" {\n  input %x: f32[2]\n  %c = const f32[2] [0.5, -1.0]\n  \
                    %r = Unary(Relu) %x : f32[2]\n  %y = Binary(Add) %r, %c : f32[2]\n  \
                    output %y as \"y\"\n}\n";
        let g = whittle_ir::text::parse_graph(text).expect("test graph parses");
        let (text, weights) = whittle_ir::text::print_graph_with_blobs(&g, 2).expect("prints");
        assert!(text.contains("blob 0"), "{text}");
        let bytes: Vec<Vec<u8>> = weights.iter().map(|t| t.to_le_bytes()).collect();
        let b: &'static [u8] = Box::leak(blob::encode(&text, &bytes).into_boxed_slice());
        let x = [-1.0f32, 2.0];
        let mut y = [0f32; 2];
        let ins = [x.as_ptr() as *const u8];
        let outs = [y.as_mut_ptr() as *mut u8];
        let null_outs = [std::ptr::null_mut::<u8>()];
        // SAFETY: buffers match the graph's f32[2] input and output.
        unsafe {
            let ws = std::ptr::null_mut();
            assert_eq!(
                whittle_rt_run(b.as_ptr(), b.len(), ins.as_ptr(), outs.as_ptr(), ws, 0),
                status::OK
            );
            assert_eq!(
                whittle_rt_run(b.as_ptr(), b.len(), ins.as_ptr(), null_outs.as_ptr(), ws, 0),
                status::NULL_POINTER
            );
        }
        assert_eq!(y, [0.5, 1.0]);
    }
}
