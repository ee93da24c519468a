//! `whittle_model`: loading, settings (backend, threads, optimization), lazy compilation
//! and the input/output metadata accessors of the C ABI.

use crate::{c_str, guard, write_out, CResult, Failure};
use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, Mutex};
use whittle::{CompiledModel, Model, Target, TensorInfo};

/// `whittle_model_input_shape` reports this rank when even the rank is unknown.
pub const WHITTLE_UNKNOWN_RANK: usize = usize::MAX;

/// A model input or output as C sees it: owned C strings and `int64_t` dims (-1 symbolic).
struct IoMeta {
    name: CString,
    dtype: c_int,
    dims: Option<Vec<i64>>,
}

impl IoMeta {
    fn new(info: &TensorInfo) -> IoMeta {
        IoMeta {
            name: CString::new(info.name.replace('\0', " ")).unwrap_or_default(),
            dtype: whittle::frontend::dtype_to_onnx(info.dtype),
            dims: info.shape.as_ref().map(|s| {
                s.iter()
                    .map(|d| d.known().map_or(-1, |n| i64::try_from(n).unwrap_or(-1)))
                    .collect()
            }),
        }
    }
}

/// Settings that take effect at the next compilation, and the compiled model.
struct State {
    backend: &'static str,
    threads: Option<usize>,
    optimize: bool,
    compiled: Option<Arc<CompiledModel>>,
}

/// The opaque `whittle_model`.
pub struct WhittleModel {
    model: Model,
    inputs: Vec<IoMeta>,
    outputs: Vec<IoMeta>,
    state: Mutex<State>,
}

impl WhittleModel {
    fn new(model: Model) -> WhittleModel {
        WhittleModel {
            inputs: model.inputs().iter().map(IoMeta::new).collect(),
            outputs: model.outputs().iter().map(IoMeta::new).collect(),
            model,
            state: Mutex::new(State {
                backend: "cpu",
                threads: None,
                optimize: true,
                compiled: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The compiled model, compiling it (under the lock, once) if needed.
    pub(crate) fn compiled(&self) -> CResult<Arc<CompiledModel>> {
        let mut st = self.state();
        if let Some(c) = &st.compiled {
            return Ok(c.clone());
        }
        let target = match st.backend {
            "reference" => Target::Reference,
            _ => Target::Cpu {
                threads: st.threads,
            },
        };
        let model = if st.optimize {
            self.model.clone().optimize_exact()?
        } else {
            self.model.clone()
        };
        let c = Arc::new(model.compile(target)?);
        st.compiled = Some(c.clone());
        Ok(c)
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.state();
        f(&mut st);
        st.compiled = None;
    }
}

/// Borrows the model behind a C pointer.
///
/// # Safety
/// `m` is NULL or a live pointer from `whittle_model_load_*`.
pub(crate) unsafe fn model_ref<'a>(m: *const WhittleModel) -> CResult<&'a WhittleModel> {
    // SAFETY: per the caller's contract.
    unsafe { m.as_ref() }.ok_or_else(|| Failure::null("model"))
}

fn io_at<'a>(list: &'a [IoMeta], i: usize, what: &str) -> CResult<&'a IoMeta> {
    list.get(i).ok_or_else(|| {
        Failure::invalid(format!(
            "{what} index {i} is out of range (the model has {})",
            list.len()
        ))
    })
}

/// Loads an ONNX file. On success `*out` owns a new model (free it with `whittle_model_free`).
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_load_file(
    path: *const c_char,
    out: *mut *mut WhittleModel,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: per the function's contract.
        let path = unsafe { c_str(path, "path") }?;
        let m = Model::load(path)?;
        let p = Box::into_raw(Box::new(WhittleModel::new(m)));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, p, "out") }
    })
}

/// Decodes an ONNX model from memory (the bytes are copied; external data is unsupported).
///
/// # Safety
/// `data` points to `len` readable bytes; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_load_bytes(
    data: *const u8,
    len: usize,
    out: *mut *mut WhittleModel,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        if len > isize::MAX as usize {
            return Err(Failure::invalid(format!("len {len} is too large")));
        }
        // SAFETY: non-NULL, `len` readable bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let m = Model::from_bytes(bytes)?;
        let p = Box::into_raw(Box::new(WhittleModel::new(m)));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, p, "out") }
    })
}

/// Frees a model. NULL is a no-op.
///
/// # Safety
/// `m` is NULL or a live model pointer, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_free(m: *mut WhittleModel) -> c_int {
    guard(|| {
        if !m.is_null() {
            // SAFETY: the pointer came from Box::into_raw and is freed once.
            drop(unsafe { Box::from_raw(m) });
        }
        Ok(())
    })
}

/// Sets the worker thread count (0: let the backend choose). Takes effect at the next compile.
///
/// # Safety
/// `m` is NULL or a live model pointer.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_set_threads(m: *mut WhittleModel, threads: c_int) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        let threads = usize::try_from(threads)
            .map_err(|_| Failure::invalid(format!("threads must be >= 0, got {threads}")))?;
        m.update(|st| st.threads = (threads > 0).then_some(threads));
        Ok(())
    })
}

/// Selects the backend by name: `"cpu"` (default) or `"reference"`.
///
/// # Safety
/// `m` is NULL or a live model pointer; `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_set_backend(
    m: *mut WhittleModel,
    name: *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        // SAFETY: per the contract.
        let name = unsafe { c_str(name, "name") }?;
        let backend = match name {
            "cpu" => "cpu",
            "reference" => "reference",
            other => {
                return Err(Failure::invalid(format!(
                    "unknown backend '{other}' (available: cpu, reference)"
                )))
            }
        };
        m.update(|st| st.backend = backend);
        Ok(())
    })
}

/// Turns the exact optimization pipeline on (1, the default) or off (0).
///
/// # Safety
/// `m` is NULL or a live model pointer.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_set_optimize(m: *mut WhittleModel, enabled: c_int) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        if enabled != 0 && enabled != 1 {
            return Err(Failure::invalid(format!(
                "enabled must be 0 or 1, got {enabled}"
            )));
        }
        m.update(|st| st.optimize = enabled == 1);
        Ok(())
    })
}

/// Optimizes and compiles now (otherwise the first `whittle_model_run` does it).
///
/// # Safety
/// `m` is NULL or a live model pointer.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_compile(m: *mut WhittleModel) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        unsafe { model_ref(m) }?.compiled().map(drop)
    })
}

/// The number of model inputs.
///
/// # Safety
/// `m` is NULL or a live model pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_num_inputs(
    m: *const WhittleModel,
    out: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, m.inputs.len(), "out") }
    })
}

/// The number of model outputs.
///
/// # Safety
/// `m` is NULL or a live model pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_num_outputs(
    m: *const WhittleModel,
    out: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, m.outputs.len(), "out") }
    })
}

/// The name of input `i` (valid while the model lives).
///
/// # Safety
/// `m` is NULL or a live model pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_input_name(
    m: *const WhittleModel,
    i: usize,
    out: *mut *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        let io = io_at(&m.inputs, i, "input")?;
        // SAFETY: per the contract.
        unsafe { write_out(out, io.name.as_ptr(), "out") }
    })
}

/// The name of output `i` (valid while the model lives).
///
/// # Safety
/// `m` is NULL or a live model pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_output_name(
    m: *const WhittleModel,
    i: usize,
    out: *mut *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        let io = io_at(&m.outputs, i, "output")?;
        // SAFETY: per the contract.
        unsafe { write_out(out, io.name.as_ptr(), "out") }
    })
}

/// The dtype code (`WHITTLE_DTYPE_*`) of input `i`.
///
/// # Safety
/// `m` is NULL or a live model pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_input_dtype(
    m: *const WhittleModel,
    i: usize,
    out: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        let io = io_at(&m.inputs, i, "input")?;
        // SAFETY: per the contract.
        unsafe { write_out(out, io.dtype, "out") }
    })
}

/// The declared shape of input `i`: `*rank` dims at `*dims` (valid while the model lives),
/// -1 for a symbolic dim; `*rank == WHITTLE_UNKNOWN_RANK` and `*dims == NULL` if unknown.
///
/// # Safety
/// `m` is NULL or a live model pointer; `dims` and `rank` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_input_shape(
    m: *const WhittleModel,
    i: usize,
    dims: *mut *const i64,
    rank: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        if dims.is_null() || rank.is_null() {
            return Err(Failure::null(if dims.is_null() { "dims" } else { "rank" }));
        }
        let io = io_at(&m.inputs, i, "input")?;
        let (p, r) = match &io.dims {
            Some(d) => (d.as_ptr(), d.len()),
            None => (std::ptr::null(), WHITTLE_UNKNOWN_RANK),
        };
        // SAFETY: both checked non-NULL above.
        unsafe {
            write_out(dims, p, "dims")?;
            write_out(rank, r, "rank")
        }
    })
}
