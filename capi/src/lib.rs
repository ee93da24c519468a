//! whittle-capi: the C ABI of whittle (`include/whittle.h`). Load an ONNX model, pick a
//! backend and thread count, run it on plain pointers + shapes, read the outputs.
//!
//! Every function returns an `int` status (`WHITTLE_OK` = 0, or one of the `WHITTLE_ERR_*`
//! codes below), checks its pointers, and never unwinds into C: each body runs inside
//! `guard`, which turns a panic into `WHITTLE_ERR_PANIC`. The message of the last failed
//! call is kept per thread for `whittle_last_error()`.
//! Only `whittle_last_error` and `whittle_version` return something else (a string).

mod model;
mod run;

pub use model::WhittleModel;
pub use run::{WhittleOutputs, WhittleTensor};

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Success.
pub const WHITTLE_OK: c_int = 0;
/// A required pointer argument was NULL.
pub const WHITTLE_ERR_NULL_POINTER: c_int = 1;
/// An argument is out of range or malformed (index, dtype code, negative dim, non-UTF-8
/// string, unknown backend name, ...).
pub const WHITTLE_ERR_INVALID_ARGUMENT: c_int = 2;
/// The model file could not be read or decoded.
pub const WHITTLE_ERR_LOAD: c_int = 3;
/// Optimizing or compiling the model failed (e.g. an op the backend does not support).
pub const WHITTLE_ERR_COMPILE: c_int = 4;
/// An input name the model does not have, or a model input missing or given twice.
pub const WHITTLE_ERR_INPUT_NAME: c_int = 5;
/// An input tensor's shape does not match the model.
pub const WHITTLE_ERR_SHAPE_MISMATCH: c_int = 6;
/// An input tensor's dtype does not match the model.
pub const WHITTLE_ERR_DTYPE_MISMATCH: c_int = 7;
/// The model failed while running.
pub const WHITTLE_ERR_RUN: c_int = 8;
/// An internal error (a Rust panic, caught at the boundary).
pub const WHITTLE_ERR_PANIC: c_int = 9;

/// A failed call: its status code and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: c_int,
    pub msg: String,
}

impl Failure {
    pub fn new(code: c_int, msg: impl Into<String>) -> Failure {
        Failure {
            code,
            msg: msg.into(),
        }
    }

    pub fn null(what: &str) -> Failure {
        Failure::new(WHITTLE_ERR_NULL_POINTER, format!("{what} is NULL"))
    }

    pub fn invalid(msg: impl Into<String>) -> Failure {
        Failure::new(WHITTLE_ERR_INVALID_ARGUMENT, msg)
    }
}

impl From<whittle::Error> for Failure {
    fn from(e: whittle::Error) -> Failure {
        use whittle::Error as E;
        let code = match &e {
            E::Load(_) | E::Graph(_) => WHITTLE_ERR_LOAD,
            E::Pass(_) | E::Compile { .. } => WHITTLE_ERR_COMPILE,
            E::UnknownInput { .. } | E::BadInputSet { .. } => WHITTLE_ERR_INPUT_NAME,
            E::ShapeMismatch { .. } => WHITTLE_ERR_SHAPE_MISMATCH,
            E::DTypeMismatch { .. } => WHITTLE_ERR_DTYPE_MISMATCH,
            E::InvalidArgument(_) => WHITTLE_ERR_INVALID_ARGUMENT,
            _ => WHITTLE_ERR_RUN,
        };
        Failure::new(code, e.to_string())
    }
}

pub(crate) type CResult<T = ()> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // `try_with`: during thread teardown there is nowhere to keep the message.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Runs one API body: clears the thread's last error, catches panics, and turns the
/// outcome into a status code (recording the message of a failure).
pub(crate) fn guard(body: impl FnOnce() -> CResult) -> c_int {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => WHITTLE_OK,
        Ok(Err(f)) => {
            set_last_error(&f.msg);
            f.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (panic): {what}"));
            WHITTLE_ERR_PANIC
        }
    }
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> CResult<&'a str> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Writes `v` through an out pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, v: T, what: &str) -> CResult {
    if out.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { out.write(v) };
    Ok(())
}

/// The message of the last failed `whittle_*` call on this thread, or `""` if the last
/// call succeeded. Never NULL; valid until the next `whittle_*` call on this thread.
#[no_mangle]
pub extern "C" fn whittle_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(EMPTY.as_ptr())
}

/// Sets the memory budget of the whole process: the most bytes one allocation sized by a
/// model or an input may take (tensors, the arena). Over it, loading, compiling or running
/// fails with a message naming the node and the bytes. 0 restores the default (the
/// machine's physical memory).
#[no_mangle]
pub extern "C" fn whittle_set_max_memory(bytes: u64) -> c_int {
    guard(|| {
        whittle::ir::limits::set_max_memory(bytes);
        Ok(())
    })
}

/// The library version (`"0.1.0"`), a static string.
#[no_mangle]
pub extern "C" fn whittle_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: whittle_last_error never returns NULL and the string is NUL-terminated.
        unsafe { CStr::from_ptr(whittle_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_a_status_code_and_a_message() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, WHITTLE_ERR_PANIC);
        assert_eq!(last_error(), "internal error (panic): boom");
        assert_eq!(guard(|| Ok(())), WHITTLE_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn failures_keep_their_code_and_message() {
        let code = guard(|| Err(Failure::invalid("bad\0thing")));
        assert_eq!(code, WHITTLE_ERR_INVALID_ARGUMENT);
        assert_eq!(last_error(), "bad thing");
    }

    #[test]
    fn version_matches_the_crate() {
        // SAFETY: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(whittle_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_exported_function_is_declared_in_the_header_and_back() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let header = include_str!("../include/whittle.h");
        let mut exported = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for chunk in text.split("#[no_mangle]").skip(1) {
                let after_fn = chunk.split_once("fn ").unwrap().1;
                let name: String = after_fn
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                exported.push(name);
            }
        }
        assert!(exported.len() > 20, "found only {exported:?}");
        for name in &exported {
            assert!(
                header.contains(&format!(" {name}(")),
                "{name} is exported but not declared in include/whittle.h"
            );
        }
        for piece in header.split(" whittle_").skip(1) {
            if let Some((name, _)) = piece.split_once('(') {
                if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    let name = format!("whittle_{name}");
                    assert!(
                        exported.contains(&name),
                        "{name} is declared but not exported"
                    );
                }
            }
        }
    }
}
