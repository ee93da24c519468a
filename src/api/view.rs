//! Borrowed input tensors for the embedding API: [`TensorView`] (a typed slice + a shape,
//! or a borrowed [`Tensor`]) and [`ViewElement`], the element types a view can hold.

use half::{bf16, f16};
use whittle_ir::{DType, Tensor, TensorData};

/// A borrowed slice of one of the element types a tensor can hold.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)] // one variant per `DType`, named alike
pub enum TensorSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    F64(&'a [f64]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    I16(&'a [i16]),
    U16(&'a [u16]),
    I32(&'a [i32]),
    U32(&'a [u32]),
    I64(&'a [i64]),
    U64(&'a [u64]),
    Bool(&'a [bool]),
}

/// An element type that a [`TensorView`] can borrow (every [`DType`] has one).
pub trait ViewElement: Sized {
    /// Wraps a slice of this type.
    fn slice(s: &[Self]) -> TensorSlice<'_>;
}

macro_rules! slice_impls {
    ($($v:ident($t:ty)),* $(,)?) => {
        impl TensorSlice<'_> {
            /// The element type.
            pub fn dtype(&self) -> DType {
                match self { $(TensorSlice::$v(_) => DType::$v,)* }
            }
            /// The number of elements.
            pub fn len(&self) -> usize {
                match self { $(TensorSlice::$v(s) => s.len(),)* }
            }
            /// Whether the slice has no elements.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            fn to_data(self) -> TensorData {
                match self { $(TensorSlice::$v(s) => TensorData::$v(s.to_vec()),)* }
            }
        }
        $(impl ViewElement for $t {
            fn slice(s: &[Self]) -> TensorSlice<'_> {
                TensorSlice::$v(s)
            }
        })*
    };
}

slice_impls!(
    F32(f32),
    F16(f16),
    BF16(bf16),
    F64(f64),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Bool(bool),
);

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Slice(TensorSlice<'a>, &'a [usize]),
    Tensor(&'a Tensor),
}

/// A borrowed input tensor: row-major data plus its shape. Building a view never fails;
/// a data length that does not match the shape is reported by `run` as
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch).
///
/// ```
/// use whittle::{DType, TensorView};
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let v = TensorView::f32(&x, &[2, 3]);
/// assert_eq!(v.dtype(), DType::F32);
/// assert_eq!(v.shape(), &[2, 3]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    src: Source<'a>,
}

impl<'a> TensorView<'a> {
    /// A view of `data` (row-major) with `shape`, for any element type.
    pub fn new<T: ViewElement>(data: &'a [T], shape: &'a [usize]) -> TensorView<'a> {
        TensorView {
            src: Source::Slice(T::slice(data), shape),
        }
    }

    /// An `f32` view.
    pub fn f32(data: &'a [f32], shape: &'a [usize]) -> TensorView<'a> {
        TensorView::new(data, shape)
    }

    /// An `i64` view (token ids, masks, shape tensors).
    pub fn i64(data: &'a [i64], shape: &'a [usize]) -> TensorView<'a> {
        TensorView::new(data, shape)
    }

    /// An `i32` view.
    pub fn i32(data: &'a [i32], shape: &'a [usize]) -> TensorView<'a> {
        TensorView::new(data, shape)
    }

    /// A `u8` view (e.g. quantized images).
    pub fn u8(data: &'a [u8], shape: &'a [usize]) -> TensorView<'a> {
        TensorView::new(data, shape)
    }

    /// A `bool` view.
    pub fn bool(data: &'a [bool], shape: &'a [usize]) -> TensorView<'a> {
        TensorView::new(data, shape)
    }

    /// A view of an existing [`Tensor`] (always consistent: tensors check their length).
    pub fn tensor(t: &'a Tensor) -> TensorView<'a> {
        TensorView {
            src: Source::Tensor(t),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.src {
            Source::Slice(s, _) => s.dtype(),
            Source::Tensor(t) => t.dtype(),
        }
    }

    /// The shape as given.
    pub fn shape(&self) -> &'a [usize] {
        match self.src {
            Source::Slice(_, shape) => shape,
            Source::Tensor(t) => t.shape(),
        }
    }

    /// The number of elements the data holds (which may disagree with the shape).
    pub fn data_len(&self) -> usize {
        match self.src {
            Source::Slice(s, _) => s.len(),
            Source::Tensor(t) => t.len(),
        }
    }

    /// Copies the view into an owned tensor; `Err(why)` when the data length does not
    /// match the shape.
    pub(crate) fn to_tensor(self) -> Result<Tensor, String> {
        match self.src {
            Source::Tensor(t) => Ok(t.clone()),
            Source::Slice(s, shape) => {
                let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
                match n {
                    Some(n) if n == s.len() => {
                        Tensor::new(shape.to_vec(), s.to_data()).map_err(|e| e.to_string())
                    }
                    Some(n) => Err(format!(
                        "shape {shape:?} needs {n} elements but the data holds {}",
                        s.len()
                    )),
                    None => Err(format!("shape {shape:?} overflows the address space")),
                }
            }
        }
    }
}

impl<'a> From<&'a Tensor> for TensorView<'a> {
    fn from(t: &'a Tensor) -> TensorView<'a> {
        TensorView::tensor(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_report_dtype_shape_and_length() {
        let d = [1i64, 2, 3];
        let v = TensorView::i64(&d, &[3]);
        assert_eq!(
            (v.dtype(), v.shape(), v.data_len()),
            (DType::I64, &[3][..], 3)
        );
        let t = v.to_tensor().unwrap();
        assert_eq!(t.as_slice::<i64>().unwrap(), &[1, 2, 3]);
        let b = [true, false];
        assert_eq!(TensorView::bool(&b, &[2, 1]).dtype(), DType::Bool);
        let h = [f16::from_f32(1.5)];
        assert_eq!(TensorView::new(&h, &[]).dtype(), DType::F16);
    }

    #[test]
    fn length_mismatch_is_an_error_not_a_panic() {
        let d = [1.0f32; 5];
        let err = TensorView::f32(&d, &[2, 3]).to_tensor().unwrap_err();
        assert!(
            err.contains("needs 6 elements but the data holds 5"),
            "{err}"
        );
        let err = TensorView::f32(&d, &[usize::MAX, 2])
            .to_tensor()
            .unwrap_err();
        assert!(err.contains("overflows"), "{err}");
    }

    #[test]
    fn tensor_views_round_trip() {
        let t = Tensor::from_vec(vec![2], vec![7u8, 9]);
        let v: TensorView = (&t).into();
        assert_eq!(v.to_tensor().unwrap(), t);
    }
}
