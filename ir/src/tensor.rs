//! Dense host tensors (`Tensor`): constants in the graph and values in the reference evaluator.

use crate::{DType, IrError};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

/// Element storage, one variant per [`DType`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the `Vec` inside any `TensorData` variant.
#[macro_export]
macro_rules! dispatch_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::BF16($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::Bool($v) => $body,
        }
    };
}

/// Runs `$body` with the type alias `$t` bound to the Rust element type of `$dtype`.
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F16 => {
                type $t = $crate::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $t = $crate::half::bf16;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            $crate::DType::I8 => {
                type $t = i8;
                $body
            }
            $crate::DType::U8 => {
                type $t = u8;
                $body
            }
            $crate::DType::I16 => {
                type $t = i16;
                $body
            }
            $crate::DType::U16 => {
                type $t = u16;
                $body
            }
            $crate::DType::I32 => {
                type $t = i32;
                $body
            }
            $crate::DType::U32 => {
                type $t = u32;
                $body
            }
            $crate::DType::I64 => {
                type $t = i64;
                $body
            }
            $crate::DType::U64 => {
                type $t = u64;
                $body
            }
            $crate::DType::Bool => {
                type $t = bool;
                $body
            }
        }
    };
}

/// A scalar element type that can live in a [`Tensor`]. Conversions follow ONNX `Cast`:
/// float → int truncates toward zero, anything → bool is `x != 0`.
pub trait Element: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn wrap(v: Vec<Self>) -> TensorData;
    fn unwrap(d: &TensorData) -> Option<&Vec<Self>>;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(b: &[u8]) -> Self;
}

macro_rules! element_num {
    ($t:ty, $dt:ident, $n:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$dt(v)
            }
            fn unwrap(d: &TensorData) -> Option<&Vec<Self>> {
                match d {
                    TensorData::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes())
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(a)
            }
        }
    };
}
element_num!(f32, F32, 4);
element_num!(f64, F64, 8);
element_num!(i8, I8, 1);
element_num!(u8, U8, 1);
element_num!(i16, I16, 2);
element_num!(u16, U16, 2);
element_num!(i32, I32, 4);
element_num!(u32, U32, 4);
element_num!(i64, I64, 8);
element_num!(u64, U64, 8);

macro_rules! element_half {
    ($t:ty, $dt:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            fn to_f64(self) -> f64 {
                self.to_f64()
            }
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            fn to_i64(self) -> i64 {
                self.to_f64() as i64
            }
            fn from_i64(v: i64) -> Self {
                <$t>::from_f64(v as f64)
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$dt(v)
            }
            fn unwrap(d: &TensorData) -> Option<&Vec<Self>> {
                match d {
                    TensorData::$dt(v) => Some(v),
                    _ => None,
                }
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes())
            }
            fn read_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes([b[0], b[1]])
            }
        }
    };
}
element_half!(f16, F16);
element_half!(bf16, BF16);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn wrap(v: Vec<Self>) -> TensorData {
        TensorData::Bool(v)
    }
    fn unwrap(d: &TensorData) -> Option<&Vec<Self>> {
        match d {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8)
    }
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}

/// A dense, row-major tensor held in host memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor; the element count must match the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, IrError> {
        let len = dispatch_data!(&data, v => v.len());
        let n = crate::limits::numel(&shape).ok_or_else(|| {
            IrError::Tensor(format!(
                "shape {shape:?} has more elements than memory can address"
            ))
        })?;
        if n != len {
            return Err(IrError::Tensor(format!(
                "shape {shape:?} holds {n} elements but {len} were given"
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// Builds a tensor from a typed vector. Panics if the length does not match the shape
    /// (a programming error, not an input error: use [`Tensor::new`] for untrusted data).
    pub fn from_vec<T: Element>(shape: Vec<usize>, v: Vec<T>) -> Tensor {
        Tensor::new(shape, T::wrap(v)).expect("from_vec: length does not match shape")
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_vec(vec![], vec![v])
    }

    /// All-zero tensor of any dtype.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f64(dtype, shape, &vec![0.0; n])
    }

    /// Converts f64 values to `dtype` (ONNX `Cast` semantics).
    pub fn from_f64(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
        fn conv<T: Element>(v: &[f64]) -> TensorData {
            T::wrap(v.iter().map(|&x| T::from_f64(x)).collect())
        }
        let data = with_dtype!(dtype, T => conv::<T>(v));
        Tensor::new(shape, data).expect("from_f64: length does not match shape")
    }

    /// Converts i64 values to `dtype` (exact for every integer dtype).
    pub fn from_i64(dtype: DType, shape: Vec<usize>, v: &[i64]) -> Tensor {
        fn conv<T: Element>(v: &[i64]) -> TensorData {
            T::wrap(v.iter().map(|&x| T::from_i64(x)).collect())
        }
        let data = with_dtype!(dtype, T => conv::<T>(v));
        Tensor::new(shape, data).expect("from_i64: length does not match shape")
    }

    /// Decodes little-endian raw bytes (ONNX `raw_data`, `.npy` payloads).
    pub fn from_le_bytes(dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Result<Tensor, IrError> {
        fn conv<T: Element>(b: &[u8], sz: usize) -> TensorData {
            T::wrap(b.chunks_exact(sz).map(T::read_le).collect())
        }
        let sz = dtype.size_of();
        let need = crate::limits::byte_size(&shape, sz).map_err(IrError::Tensor)?;
        if bytes.len() != need {
            return Err(IrError::Tensor(format!(
                "{dtype}{shape:?} needs {need} bytes of data, found {}",
                bytes.len()
            )));
        }
        let data = with_dtype!(dtype, T => conv::<T>(bytes, sz));
        Tensor::new(shape, data)
    }

    /// Little-endian raw bytes of the elements.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.dtype().size_of());
        dispatch_data!(&self.data, v => for x in v { x.write_le(&mut out) });
        out
    }

    pub fn dtype(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// The typed elements, if the dtype is `T`.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::unwrap(&self.data).map(|v| v.as_slice())
    }

    /// Every element as f64 (bool → 0/1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        dispatch_data!(&self.data, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// Every element as i64 (floats truncate toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        dispatch_data!(&self.data, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// Element `i` (row-major) as f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        dispatch_data!(&self.data, v => v[i].to_f64())
    }

    /// ONNX `Cast`: integers go through i64 so that no precision is lost between them.
    pub fn cast(&self, to: DType) -> Tensor {
        if to == self.dtype() {
            return self.clone();
        }
        if self.dtype().is_float() || to.is_float() {
            Tensor::from_f64(to, self.shape.clone(), &self.to_f64_vec())
        } else if self.dtype() == DType::U64 {
            let v: Vec<u64> = self.as_slice::<u64>().unwrap().to_vec();
            let as_i: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Tensor::from_i64(to, self.shape.clone(), &as_i)
        } else {
            Tensor::from_i64(to, self.shape.clone(), &self.to_i64_vec())
        }
    }

    /// Same elements under a new shape with the same element count.
    pub fn reshape(&self, shape: Vec<usize>) -> Result<Tensor, IrError> {
        Tensor::new(shape, self.data.clone())
    }
}
