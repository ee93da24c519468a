//! `whittle_model_run` and `whittle_outputs`: C tensors (dtype code, shape, data pointer)
//! in, owned output tensors out, with accessors and `whittle_outputs_free`.

use crate::model::{model_ref, WhittleModel};
use crate::{c_str, guard, write_out, CResult, Failure};
use std::ffi::{c_char, c_int, c_void, CString};
use whittle::ir::dispatch_data;
use whittle::{Tensor, TensorView};

/// Ranks above this are rejected (a guard against garbage `rank` values).
const MAX_RANK: usize = 32;

/// `whittle_tensor`: a borrowed input tensor (row-major, little-endian elements).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WhittleTensor {
    /// `WHITTLE_DTYPE_*` (ONNX `TensorProto.DataType` codes).
    pub dtype: c_int,
    /// Number of dims; `shape` may be NULL when it is 0.
    pub rank: usize,
    /// `rank` dims, each >= 0.
    pub shape: *const i64,
    /// The elements; may be NULL when the tensor has none.
    pub data: *const c_void,
}

/// One output: its name, dtype code, shape and data.
struct Output {
    name: CString,
    dtype: c_int,
    shape: Vec<i64>,
    tensor: Tensor,
}

/// The opaque `whittle_outputs`: the outputs of one run, in the model's output order.
pub struct WhittleOutputs {
    items: Vec<Output>,
}

/// Copies a C tensor into an owned tensor, checking every field.
///
/// # Safety
/// `t.shape` points to `t.rank` dims and `t.data` to the bytes the shape and dtype imply.
unsafe fn tensor_from_c(t: &WhittleTensor, name: &str) -> CResult<Tensor> {
    let bad = |msg: String| Failure::invalid(format!("input '{name}': {msg}"));
    let dtype = whittle::frontend::dtype_from_onnx(t.dtype, name)
        .map_err(|e| Failure::invalid(e.to_string()))?;
    if t.rank > MAX_RANK {
        return Err(bad(format!("rank {} is larger than {MAX_RANK}", t.rank)));
    }
    let dims: &[i64] = if t.rank == 0 {
        &[]
    } else if t.shape.is_null() {
        return Err(Failure::null(&format!("input '{name}': shape")));
    } else {
        // SAFETY: non-NULL, `rank` dims per the contract.
        unsafe { std::slice::from_raw_parts(t.shape, t.rank) }
    };
    let shape = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dim {d} in {dims:?}"))))
        .collect::<CResult<Vec<usize>>>()?;
    let bytes = shape
        .iter()
        .try_fold(dtype.size_of(), |acc, &d| acc.checked_mul(d))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
    let data: &[u8] = if bytes == 0 {
        &[]
    } else if t.data.is_null() {
        return Err(Failure::null(&format!("input '{name}': data")));
    } else {
        // SAFETY: non-NULL, `bytes` readable bytes per the contract.
        unsafe { std::slice::from_raw_parts(t.data.cast::<u8>(), bytes) }
    };
    Tensor::from_le_bytes(dtype, shape, data).map_err(|e| bad(e.to_string()))
}

fn output(name: String, tensor: Tensor) -> Output {
    Output {
        name: CString::new(name.replace('\0', " ")).unwrap_or_default(),
        dtype: whittle::frontend::dtype_to_onnx(tensor.dtype()),
        shape: tensor
            .shape()
            .iter()
            .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
            .collect(),
        tensor,
    }
}

/// Runs the model (compiling it first if needed) on `n_inputs` named tensors. On success
/// `*out` owns the outputs (free them with `whittle_outputs_free`).
///
/// # Safety
/// `m` is a live model; `names` and `inputs` point to `n_inputs` entries (may be NULL when
/// `n_inputs` is 0); every tensor satisfies the `whittle_tensor` contract; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn whittle_model_run(
    m: *mut WhittleModel,
    n_inputs: usize,
    names: *const *const c_char,
    inputs: *const WhittleTensor,
    out: *mut *mut WhittleOutputs,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { model_ref(m) }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if n_inputs > 0 && names.is_null() {
            return Err(Failure::null("names"));
        }
        if n_inputs > 0 && inputs.is_null() {
            return Err(Failure::null("inputs"));
        }
        if n_inputs > isize::MAX as usize / std::mem::size_of::<WhittleTensor>() {
            return Err(Failure::invalid(format!(
                "n_inputs {n_inputs} is too large"
            )));
        }
        let (names, tensors): (&[*const c_char], &[WhittleTensor]) = if n_inputs == 0 {
            (&[], &[])
        } else {
            // SAFETY: non-NULL, `n_inputs` entries each per the contract.
            unsafe {
                (
                    std::slice::from_raw_parts(names, n_inputs),
                    std::slice::from_raw_parts(inputs, n_inputs),
                )
            }
        };
        let mut owned: Vec<(&str, Tensor)> = Vec::with_capacity(n_inputs);
        for (i, (&name, t)) in names.iter().zip(tensors).enumerate() {
            // SAFETY: per the contract.
            let name = unsafe { c_str(name, &format!("names[{i}]")) }?;
            // SAFETY: per the contract.
            owned.push((name, unsafe { tensor_from_c(t, name) }?));
        }
        let views: Vec<(&str, TensorView)> = owned
            .iter()
            .map(|(n, t)| (*n, TensorView::tensor(t)))
            .collect();
        let outputs = m.compiled()?.run(&views)?;
        let items = outputs.into_iter().map(|(n, t)| output(n, t)).collect();
        let p = Box::into_raw(Box::new(WhittleOutputs { items }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, p, "out") }
    })
}

/// Borrows output `i` of a live outputs pointer.
///
/// # Safety
/// `o` is NULL or a live pointer from `whittle_model_run`.
unsafe fn item<'a>(o: *const WhittleOutputs, i: usize) -> CResult<&'a Output> {
    // SAFETY: per the contract.
    let o = unsafe { o.as_ref() }.ok_or_else(|| Failure::null("outputs"))?;
    o.items.get(i).ok_or_else(|| {
        Failure::invalid(format!(
            "output index {i} is out of range (there are {})",
            o.items.len()
        ))
    })
}

/// The number of outputs.
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_count(o: *const WhittleOutputs, out: *mut usize) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let o = unsafe { o.as_ref() }.ok_or_else(|| Failure::null("outputs"))?;
        // SAFETY: per the contract.
        unsafe { write_out(out, o.items.len(), "out") }
    })
}

/// The name of output `i` (valid until `whittle_outputs_free`).
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_name(
    o: *const WhittleOutputs,
    i: usize,
    out: *mut *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let it = unsafe { item(o, i) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, it.name.as_ptr(), "out") }
    })
}

/// The dtype code (`WHITTLE_DTYPE_*`) of output `i`.
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_dtype(
    o: *const WhittleOutputs,
    i: usize,
    out: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let it = unsafe { item(o, i) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, it.dtype, "out") }
    })
}

/// The rank of output `i`.
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_rank(
    o: *const WhittleOutputs,
    i: usize,
    out: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let it = unsafe { item(o, i) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, it.shape.len(), "out") }
    })
}

/// The dims of output `i` (`rank` of them; valid until `whittle_outputs_free`).
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_shape(
    o: *const WhittleOutputs,
    i: usize,
    out: *mut *const i64,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let it = unsafe { item(o, i) }?;
        // SAFETY: per the contract.
        unsafe { write_out(out, it.shape.as_ptr(), "out") }
    })
}

/// The elements of output `i` (row-major; valid until `whittle_outputs_free`) and, if
/// `nbytes` is not NULL, their size in bytes.
///
/// # Safety
/// `o` is NULL or a live outputs pointer; `out` is valid for a write; `nbytes` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_data(
    o: *const WhittleOutputs,
    i: usize,
    out: *mut *const c_void,
    nbytes: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let it = unsafe { item(o, i) }?;
        let t = &it.tensor;
        let p: *const c_void = dispatch_data!(t.data(), v => v.as_ptr().cast());
        // SAFETY: per the contract.
        unsafe { write_out(out, p, "out") }?;
        if !nbytes.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { nbytes.write(t.len() * t.dtype().size_of()) };
        }
        Ok(())
    })
}

/// Frees the outputs of a run. NULL is a no-op.
///
/// # Safety
/// `o` is NULL or a live outputs pointer, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn whittle_outputs_free(o: *mut WhittleOutputs) -> c_int {
    guard(|| {
        if !o.is_null() {
            // SAFETY: the pointer came from Box::into_raw and is freed once.
            drop(unsafe { Box::from_raw(o) });
        }
        Ok(())
    })
}
