//! Bulk read-only data of a plan — pre-packed weights ([`F32s`]) and constants
//! ([`ConstBuf`]) — held in memory the plan owns, or borrowed from a plan image that lives
//! for the whole program, so that an AOT object's weights are used where they lie in its
//! read-only data instead of being copied to the heap.
//!
//! How they travel in an image (`crate::image`): while [`with_sink`] runs, serializing one
//! appends its bytes, 64-byte aligned, to a side buffer (the image's weight section) and
//! writes only `(offset, length)`; while [`with_source`] runs, deserializing one borrows
//! those bytes when the image is `'static` and suitably aligned, and copies them otherwise.
//! Outside both, they serialize inline.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use whittle_ir::{DType, Tensor};

/// Alignment of every blob in an image's weight section.
pub const BLOB_ALIGN: usize = 64;

thread_local! {
    static SINK: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// The weight section being decoded: address, length, and whether it lives forever.
    static SOURCE: Cell<Option<(*const u8, usize, bool)>> = const { Cell::new(None) };
}

/// Runs `f` with blobs going to a side buffer; returns `f`'s result and the buffer.
pub fn with_sink<R>(f: impl FnOnce() -> R) -> (R, Vec<u8>) {
    SINK.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let r = f();
    let blobs = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    (r, blobs)
}

/// Runs `f` with blob references resolved against `section`, borrowed in place when
/// `forever` (the caller guarantees `section` is never freed or written).
pub fn with_source<R>(section: &[u8], forever: bool, f: impl FnOnce() -> R) -> R {
    SOURCE.with(|s| s.set(Some((section.as_ptr(), section.len(), forever))));
    let r = f();
    SOURCE.with(|s| s.set(None));
    r
}

/// Appends `bytes` to the sink, if one is active; returns its offset.
fn sink(bytes: &[u8]) -> Option<usize> {
    SINK.with(|s| {
        let mut s = s.borrow_mut();
        let v = s.as_mut()?;
        v.resize(v.len().div_ceil(BLOB_ALIGN) * BLOB_ALIGN, 0);
        let at = v.len();
        v.extend_from_slice(bytes);
        Some(at)
    })
}

/// A resolved blob reference: bytes that live for the rest of the program, or a copy
/// (made while the section was still valid).
enum Blob {
    Forever(&'static [u8]),
    Copied(Vec<u8>),
}

impl Blob {
    fn bytes(&self) -> &[u8] {
        match self {
            Blob::Forever(b) => b,
            Blob::Copied(v) => v,
        }
    }

    /// The bytes as a `'static` slice when they live forever and are aligned to `align`.
    fn lendable(&self, align: usize) -> Option<&'static [u8]> {
        match self {
            Blob::Forever(b) if (b.as_ptr() as usize).is_multiple_of(align) => Some(*b),
            _ => None,
        }
        .filter(|_| cfg!(target_endian = "little"))
    }
}

/// The bytes `offset..offset + len` of the weight section being decoded.
fn source(offset: u64, len: u64) -> Result<Blob, String> {
    let (ptr, size, forever) = SOURCE
        .with(|s| s.get())
        .ok_or("a blob reference outside a plan image")?;
    let (at, n) = (
        usize::try_from(offset).map_err(|_| "blob offset overflows")?,
        usize::try_from(len).map_err(|_| "blob length overflows")?,
    );
    if at.checked_add(n).is_none_or(|end| end > size) {
        return Err(format!(
            "blob {at}+{n} lies outside the {size}-byte weight section"
        ));
    }
    // SAFETY: in bounds of the section, which `with_source` keeps valid while decoding runs
    // (and for the rest of the program when `forever`, as its caller guarantees).
    let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(ptr.add(at), n) };
    Ok(if forever {
        Blob::Forever(bytes)
    } else {
        Blob::Copied(bytes.to_vec())
    })
}

/// How a blob-backed value is written.
#[derive(Serialize, Deserialize)]
enum Wire<T> {
    Inline(T),
    Blob { offset: u64, len: u64 },
}

/// A read-only f32 array: owned, or borrowed from a `'static` image.
#[derive(Clone, Debug)]
pub struct F32s(F32Repr);

#[derive(Clone, Debug)]
enum F32Repr {
    Owned(Vec<f32>),
    Static(&'static [f32]),
}

impl Default for F32s {
    fn default() -> F32s {
        F32s(F32Repr::Owned(Vec::new()))
    }
}

impl F32s {
    pub fn as_slice(&self) -> &[f32] {
        match &self.0 {
            F32Repr::Owned(v) => v,
            F32Repr::Static(s) => s,
        }
    }

    /// The owned vector (a borrowed array is copied first), for repacking in place.
    pub fn make_mut(&mut self) -> &mut Vec<f32> {
        if let F32Repr::Static(s) = self.0 {
            self.0 = F32Repr::Owned(s.to_vec());
        }
        match &mut self.0 {
            F32Repr::Owned(v) => v,
            F32Repr::Static(_) => unreachable!("converted above"),
        }
    }

    /// Whether the data lies in a plan image rather than in memory this value owns.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, F32Repr::Static(_))
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Serialize for F32s {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.as_slice();
        match sink(&f32_bytes(v)) {
            Some(at) => Wire::<Vec<f32>>::Blob {
                offset: at as u64,
                len: (v.len() * 4) as u64,
            }
            .serialize(s),
            None => Wire::Inline(v).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for F32s {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F32s, D::Error> {
        match Wire::<Vec<f32>>::deserialize(d)? {
            Wire::Inline(v) => Ok(F32s(F32Repr::Owned(v))),
            Wire::Blob { offset, len } => {
                let blob = source(offset, len).map_err(D::Error::custom)?;
                if blob.bytes().len() % 4 != 0 {
                    return Err(D::Error::custom(
                        "an f32 blob of a length not a multiple of 4",
                    ));
                }
                if let Some(st) = blob.lendable(std::mem::align_of::<f32>()) {
                    // SAFETY: aligned, in bounds, unchanged for the rest of the program, and
                    // every bit pattern is an f32.
                    let s = unsafe {
                        std::slice::from_raw_parts(st.as_ptr() as *const f32, st.len() / 4)
                    };
                    return Ok(F32s(F32Repr::Static(s)));
                }
                let b = blob.bytes();
                let v = b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok(F32s(F32Repr::Owned(v)))
            }
        }
    }
}

/// The first byte of a tensor's data (kernels read through it; they never write inputs
/// or constants).
pub(crate) fn tensor_ptr(t: &Tensor) -> *mut u8 {
    whittle_ir::dispatch_data!(t.data(), v => v.as_ptr() as *mut u8)
}

/// A constant the plan reads: a tensor it owns, or little-endian bytes in a `'static`
/// image.
#[derive(Clone, Debug)]
pub enum ConstBuf {
    Tensor(Arc<Tensor>),
    Static {
        dtype: DType,
        shape: Vec<usize>,
        bytes: &'static [u8],
    },
}

impl ConstBuf {
    /// The first byte of the data (dangling but non-null when empty).
    pub fn ptr(&self) -> *mut u8 {
        match self {
            ConstBuf::Tensor(t) => tensor_ptr(t),
            ConstBuf::Static { bytes, .. } => bytes.as_ptr() as *mut u8,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ConstWire {
    dtype: DType,
    shape: Vec<usize>,
    data: Wire<Arc<Tensor>>,
}

impl Serialize for ConstBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (dtype, shape, bytes) = match self {
            ConstBuf::Tensor(t) => (t.dtype(), t.shape().to_vec(), t.to_le_bytes()),
            ConstBuf::Static {
                dtype,
                shape,
                bytes,
            } => (*dtype, shape.clone(), bytes.to_vec()),
        };
        let data = match sink(&bytes) {
            Some(at) => Wire::Blob {
                offset: at as u64,
                len: bytes.len() as u64,
            },
            None => Wire::Inline(
                Tensor::from_le_bytes(dtype, shape.clone(), &bytes)
                    .map(Arc::new)
                    .map_err(serde::ser::Error::custom)?,
            ),
        };
        ConstWire { dtype, shape, data }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConstBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ConstBuf, D::Error> {
        let w = ConstWire::deserialize(d)?;
        match w.data {
            Wire::Inline(t) => {
                // A derived `Tensor` decode does not check its data against its shape.
                let len = whittle_ir::dispatch_data!(t.data(), v => v.len());
                if whittle_ir::limits::numel(t.shape()) != Some(len) {
                    return Err(D::Error::custom(format!(
                        "constant of shape {:?} with {len} elements",
                        t.shape()
                    )));
                }
                Ok(ConstBuf::Tensor(t))
            }
            Wire::Blob { offset, len } => {
                let blob = source(offset, len).map_err(D::Error::custom)?;
                let bytes = blob.bytes();
                // A valid shape (see `whittle_ir::limits`), even when a dim is zero.
                let want = whittle_ir::limits::byte_size(&w.shape, w.dtype.size_of()).ok();
                if want != Some(bytes.len()) {
                    return Err(D::Error::custom(format!(
                        "constant {:?} {:?} with {} bytes of data",
                        w.dtype,
                        w.shape,
                        bytes.len()
                    )));
                }
                if let Some(st) = blob.lendable(w.dtype.size_of().max(1)) {
                    return Ok(ConstBuf::Static {
                        dtype: w.dtype,
                        shape: w.shape,
                        bytes: st,
                    });
                }
                Tensor::from_le_bytes(w.dtype, w.shape, bytes)
                    .map(|t| ConstBuf::Tensor(Arc::new(t)))
                    .map_err(D::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::TensorData;

    /// Found by the `plan_image` fuzz target: an inline constant whose data does not match
    /// its shape decoded (a derived `Tensor` decode checks nothing), and failed only later.
    #[test]
    fn inline_constants_must_match_their_shape() {
        // ConstWire { dtype, shape, data: Wire::Inline(Tensor { shape, data }) }.
        let wire = |shape: usize| {
            postcard::to_stdvec(&(
                DType::F32,
                vec![shape],
                0u32,
                vec![shape],
                TensorData::F32(vec![1.0, 2.0]),
            ))
            .unwrap()
        };
        let ok: ConstBuf = postcard::from_bytes(&wire(2)).expect("a valid inline constant");
        assert!(matches!(ok, ConstBuf::Tensor(_)));
        assert!(postcard::from_bytes::<ConstBuf>(&wire(3)).is_err());
        assert!(postcard::from_bytes::<ConstBuf>(&wire(0)).is_err());
    }

    /// A zero dim used to hide an overflowing shape from the blob length check.
    #[test]
    fn borrowed_constants_have_valid_shapes() {
        static SECTION: [u8; 64] = [0; 64];
        // ConstWire { dtype: U8, shape, data: Wire::Blob { offset: 0, len } }.
        let wire = |shape: Vec<usize>, len: u64| {
            postcard::to_stdvec(&(DType::U8, shape, 1u32, 0u64, len)).unwrap()
        };
        let decode = |b: &[u8]| with_source(&SECTION, true, || postcard::from_bytes::<ConstBuf>(b));
        let ok = decode(&wire(vec![2, 4], 8)).expect("a valid borrowed constant");
        assert!(matches!(ok, ConstBuf::Static { .. }));
        assert!(decode(&wire(vec![0, 1 << 40, 1 << 40], 0)).is_err());
        assert!(decode(&wire(vec![2, 4], 9)).is_err());
    }
}
