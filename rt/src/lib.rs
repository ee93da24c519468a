//! whittle-rt: the static runtime library (`libwhittle_rt.a`) that objects made by
//! `whittle compile` link against. It holds `whittle-exec` (host kernels, plan executor)
//! and no compiler: the object brings its generated kernels and its plan image. It
//! exports [`whittle_rt_run`], which the generated entry point `PREFIX_run` calls, plus
//! [`whittle_rt_set_threads`] and [`whittle_rt_last_error`]. The first call for an image
//! decodes it (cached per image); every call runs the plan on the caller's buffers, with
//! the caller's workspace as the arena. Panics are caught and become a status.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use whittle_exec::{image, KernelFn, Plan};

pub use whittle_exec::status;

/// A decoded plan and the pool it runs on.
struct Loaded {
    plan: Plan,
    pool: rayon::ThreadPool,
}

/// Decoded images by address (each object's image is a distinct static).
fn cache() -> &'static Mutex<HashMap<usize, Arc<Loaded>>> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Loaded>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Threads for plans loaded from now on (0: `WHITTLE_THREADS`, else one per core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: impl Into<String>) {
    let c = CString::new(msg.into().replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// # Safety
/// `kernels` addresses `count` code addresses (the object's kernel table).
unsafe fn load(
    bytes: &'static [u8],
    kernels: *const *const c_void,
    count: usize,
) -> Result<Loaded, String> {
    // The image is a static of the object: the plan reads its weights where they lie.
    let parts = image::decode_static(bytes)?;
    if count > 0 && kernels.is_null() {
        return Err("the object's kernel table is missing".into());
    }
    let mut fns = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: the caller's contract.
        let p = unsafe { *kernels.add(i) };
        if p.is_null() {
            return Err(format!("kernel {i} of the object's table is null"));
        }
        // SAFETY: the object's kernels all have the KernelFn signature.
        fns.push(unsafe { std::mem::transmute::<*const c_void, KernelFn>(p) });
    }
    let plan = Plan::new(parts, fns, Box::new(())).map_err(|e| e.to_string())?;
    let threads = match THREADS.load(Ordering::Relaxed) {
        0 => whittle_exec::default_threads(),
        n => n,
    };
    let pool = whittle_exec::thread_pool(threads).map_err(|e| e.to_string())?;
    Ok(Loaded { plan, pool })
}

/// # Safety
/// As [`load`]; `bytes` lives for the whole program.
unsafe fn loaded(
    bytes: &'static [u8],
    kernels: *const *const c_void,
    count: usize,
) -> Result<Arc<Loaded>, i32> {
    let key = bytes.as_ptr() as usize;
    let mut m = cache().lock().map_err(|_| status::PANIC)?;
    if let Some(l) = m.get(&key) {
        return Ok(l.clone());
    }
    // Decoding under the lock: concurrent first calls decode once.
    // SAFETY: the caller's contract.
    let l = Arc::new(unsafe { load(bytes, kernels, count) }.map_err(|e| {
        set_error(format!("whittle_rt: cannot load the embedded model: {e}"));
        status::BAD_MODEL
    })?);
    m.insert(key, l.clone());
    Ok(l)
}

/// One call's buffers, handed to the pool's thread for the duration of the call.
struct Call<'a> {
    ins: &'a [*const u8],
    outs: &'a [*mut u8],
    workspace: *mut u8,
}

// SAFETY: the caller of `whittle_rt_run` owns these buffers for the whole call, which
// blocks until the pool has finished with them.
unsafe impl Sync for Call<'_> {}

/// # Safety
/// As [`whittle_rt_run`].
unsafe fn run(
    l: &Loaded,
    inputs: *const *const u8,
    outputs: *const *mut u8,
    workspace: *mut u8,
    workspace_len: usize,
) -> Result<(), i32> {
    let (ni, no) = (l.plan.inputs().len(), l.plan.outputs().len());
    if (inputs.is_null() && ni > 0) || (outputs.is_null() && no > 0) {
        set_error("whittle_rt: the input or output pointer array is NULL");
        return Err(status::NULL_POINTER);
    }
    // SAFETY: the caller passes one pointer per input and per output (the header's contract).
    let ins: Vec<*const u8> = (0..ni).map(|i| unsafe { *inputs.add(i) }).collect();
    let outs: Vec<*mut u8> = (0..no).map(|i| unsafe { *outputs.add(i) }).collect();
    if let Some(i) = ins.iter().position(|p| p.is_null()) {
        set_error(format!(
            "whittle_rt: input {i} ('{}') is NULL",
            l.plan.inputs()[i].name
        ));
        return Err(status::NULL_POINTER);
    }
    if let Some(o) = outs.iter().position(|p| p.is_null()) {
        set_error(format!(
            "whittle_rt: output {o} ('{}') is NULL",
            l.plan.outputs()[o].name
        ));
        return Err(status::NULL_POINTER);
    }
    let need = l.plan.workspace_bytes();
    if workspace_len < need {
        set_error(format!(
            "whittle_rt: workspace of {workspace_len} bytes, the model needs {need}"
        ));
        return Err(status::WORKSPACE_TOO_SMALL);
    }
    if workspace.is_null() {
        set_error("whittle_rt: the workspace is NULL");
        return Err(status::NULL_POINTER);
    }
    let call = Call {
        ins: &ins,
        outs: &outs,
        workspace,
    };
    l.pool
        .install(|| {
            let c = &call;
            // SAFETY: the caller's contract: buffers as the header states.
            unsafe { l.plan.run_raw(c.ins, c.outs, c.workspace, workspace_len) }
        })
        .map_err(|e| {
            set_error(format!("whittle_rt: run failed: {e}"));
            status::RUN
        })
}

/// Runs the model whose plan image is `image[..image_len]` with the generated kernels
/// `kernels[..kernel_count]` (called by generated entry points). `inputs`/`outputs` hold
/// one buffer pointer per model input/output in header order; `workspace` is the arena.
/// Returns a status code ([`status`]); on failure [`whittle_rt_last_error`] says why.
/// Never unwinds.
///
/// # Safety
/// `image` and `kernels` are the object's statics (they live for the whole program); the
/// pointer arrays, buffers and workspace are as the generated header states.
#[no_mangle]
pub unsafe extern "C" fn whittle_rt_run(
    image: *const u8,
    image_len: usize,
    kernels: *const *const c_void,
    kernel_count: usize,
    inputs: *const *const u8,
    outputs: *const *mut u8,
    workspace: *mut u8,
    workspace_len: usize,
) -> i32 {
    if image.is_null() {
        set_error("whittle_rt: the model image is NULL");
        return status::NULL_POINTER;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's contract.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(image, image_len) };
        // SAFETY: the caller's contract.
        let l = unsafe { loaded(bytes, kernels, kernel_count) }?;
        // SAFETY: the caller's contract.
        unsafe { run(&l, inputs, outputs, workspace, workspace_len) }
    }));
    match r {
        Ok(Ok(())) => status::OK,
        Ok(Err(code)) => code,
        Err(_) => {
            set_error("whittle_rt: internal error (panic caught at the boundary)");
            status::PANIC
        }
    }
}

/// Sets the number of threads for models first run after this call (0: `WHITTLE_THREADS`,
/// else one per core). Models already run keep their pool. Returns 0.
#[no_mangle]
pub extern "C" fn whittle_rt_set_threads(threads: usize) -> i32 {
    THREADS.store(threads, Ordering::Relaxed);
    status::OK
}

/// The message of this thread's last failed [`whittle_rt_run`] (empty if none). The
/// pointer stays valid until this thread's next failing call.
#[no_mangle]
pub extern "C" fn whittle_rt_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
