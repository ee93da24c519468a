//! ONNX `TensorProto` <-> IR `Tensor`: dtype codes, raw and typed data fields, external
//! data files, and `.pb` tensor files (the conformance tests' `input_0.pb`).
//!
//! Every size is checked against the bytes actually present before anything is allocated,
//! so a malformed tensor with absurd dims is an error, not an out-of-memory abort.

use crate::external::read_external;
use crate::proto::{tensor_proto::DataLocation, tensor_proto::DataType, TensorProto};
use crate::FrontendError;
use half::{bf16, f16};
use prost::Message;
use std::path::Path;
use whittle_ir::{limits, DType, Tensor, TensorData};

/// The IR dtype for an ONNX `TensorProto.DataType` code; `what` names the tensor or
/// attribute for the error.
pub fn dtype_from_onnx(code: i32, what: &str) -> Result<DType, FrontendError> {
    let dt = DataType::try_from(code).ok();
    let d = match dt {
        Some(DataType::Float) => DType::F32,
        Some(DataType::Float16) => DType::F16,
        Some(DataType::Bfloat16) => DType::BF16,
        Some(DataType::Double) => DType::F64,
        Some(DataType::Int8) => DType::I8,
        Some(DataType::Uint8) => DType::U8,
        Some(DataType::Int16) => DType::I16,
        Some(DataType::Uint16) => DType::U16,
        Some(DataType::Int32) => DType::I32,
        Some(DataType::Uint32) => DType::U32,
        Some(DataType::Int64) => DType::I64,
        Some(DataType::Uint64) => DType::U64,
        Some(DataType::Bool) => DType::Bool,
        Some(other) => {
            return Err(FrontendError::UnsupportedDType {
                name: what.to_string(),
                dtype: other.as_str_name().to_string(),
            })
        }
        None => {
            return Err(FrontendError::UnsupportedDType {
                name: what.to_string(),
                dtype: format!("unknown data type code {code}"),
            })
        }
    };
    Ok(d)
}

/// The ONNX `TensorProto.DataType` code of an IR dtype.
pub fn dtype_to_onnx(d: DType) -> i32 {
    let dt = match d {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::F64 => DataType::Double,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::Uint32,
        DType::I64 => DataType::Int64,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
    };
    dt as i32
}

/// Validates dims and returns `(shape, element count)`. Negative dims and shapes whose
/// element count overflows (see `whittle_ir::limits`: the product of the non-zero dims must
/// fit in `isize`) are errors naming the tensor.
pub(crate) fn checked_shape(
    dims: &[i64],
    name: &str,
) -> Result<(Vec<usize>, usize), FrontendError> {
    let mut shape = Vec::with_capacity(dims.len().min(64));
    for &d in dims {
        let u = usize::try_from(d)
            .map_err(|_| FrontendError::tensor(name, format!("negative dim {d}")))?;
        shape.push(u);
    }
    let n = limits::numel(&shape).ok_or_else(|| {
        FrontendError::tensor(
            name,
            format!("dims {dims:?} have more elements than memory can address"),
        )
    })?;
    Ok((shape, n))
}

/// Bytes a tensor of `shape` and `dtype` takes (checked: an error naming the tensor when
/// the shape cannot be addressed in bytes).
pub(crate) fn checked_bytes(
    shape: &[usize],
    dtype: DType,
    name: &str,
) -> Result<usize, FrontendError> {
    limits::byte_size(shape, dtype.size_of()).map_err(|e| FrontendError::tensor(name, e))
}

/// Converts typed field values after checking the count against the shape.
fn typed<S: Copy, T>(
    name: &str,
    field: &str,
    v: &[S],
    n: usize,
    f: impl Fn(S) -> T,
) -> Result<Vec<T>, FrontendError> {
    if v.len() != n {
        return Err(FrontendError::tensor(
            name,
            format!("shape holds {n} elements but {field} has {}", v.len()),
        ));
    }
    Ok(v.iter().map(|&x| f(x)).collect())
}

/// Decodes an ONNX tensor. `base_dir` is the model's directory, needed only for tensors
/// whose data lives in an external file.
pub fn tensor_from_proto(
    t: &TensorProto,
    base_dir: Option<&Path>,
) -> Result<Tensor, FrontendError> {
    let name = t.name();
    let dtype = dtype_from_onnx(t.data_type(), name)?;
    let (shape, n) = checked_shape(&t.dims, name)?;
    // Every form of data (raw, typed fields, external) is sized from this checked count.
    let need = checked_bytes(&shape, dtype, name)?;
    if t.segment.is_some() {
        return Err(FrontendError::tensor(
            name,
            "segmented tensors are not supported",
        ));
    }
    let external = t.data_location == Some(DataLocation::External as i32);
    if external {
        let bytes = read_external(t, base_dir, need)?;
        return Tensor::from_le_bytes(dtype, shape, &bytes)
            .map_err(|e| FrontendError::tensor(name, e.to_string()));
    }
    if let Some(raw) = &t.raw_data {
        if !raw.is_empty() || n == 0 {
            if need != raw.len() {
                return Err(FrontendError::tensor(
                    name,
                    format!(
                        "{dtype}{shape:?} needs {n} elements but raw_data has {} bytes",
                        raw.len()
                    ),
                ));
            }
            return Tensor::from_le_bytes(dtype, shape, raw)
                .map_err(|e| FrontendError::tensor(name, e.to_string()));
        }
    }
    let data = match dtype {
        DType::F32 => TensorData::F32(typed(name, "float_data", &t.float_data, n, |x| x)?),
        DType::F64 => TensorData::F64(typed(name, "double_data", &t.double_data, n, |x| x)?),
        DType::I64 => TensorData::I64(typed(name, "int64_data", &t.int64_data, n, |x| x)?),
        DType::I32 => TensorData::I32(typed(name, "int32_data", &t.int32_data, n, |x| x)?),
        DType::I16 => TensorData::I16(typed(name, "int32_data", &t.int32_data, n, |x| x as i16)?),
        DType::U16 => TensorData::U16(typed(name, "int32_data", &t.int32_data, n, |x| x as u16)?),
        DType::I8 => TensorData::I8(typed(name, "int32_data", &t.int32_data, n, |x| x as i8)?),
        DType::U8 => TensorData::U8(typed(name, "int32_data", &t.int32_data, n, |x| x as u8)?),
        DType::Bool => TensorData::Bool(typed(name, "int32_data", &t.int32_data, n, |x| x != 0)?),
        DType::F16 => TensorData::F16(typed(name, "int32_data", &t.int32_data, n, |x| {
            f16::from_bits(x as u16)
        })?),
        DType::BF16 => TensorData::BF16(typed(name, "int32_data", &t.int32_data, n, |x| {
            bf16::from_bits(x as u16)
        })?),
        DType::U32 => TensorData::U32(typed(name, "uint64_data", &t.uint64_data, n, |x| x as u32)?),
        DType::U64 => TensorData::U64(typed(name, "uint64_data", &t.uint64_data, n, |x| x)?),
    };
    Tensor::new(shape, data).map_err(|e| FrontendError::tensor(name, e.to_string()))
}

/// Encodes a tensor as an ONNX `TensorProto` with little-endian `raw_data`.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype_to_onnx(t.dtype())),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}

/// Reads a serialized `TensorProto` file (ONNX test data `input_0.pb`); returns its name
/// and value. External data is resolved relative to the file's directory.
pub fn read_tensor_pb(path: &Path) -> Result<(String, Tensor), FrontendError> {
    let bytes = std::fs::read(path).map_err(|e| FrontendError::io(path, e))?;
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| FrontendError::Decode(format!("{}: {e}", path.display())))?;
    let t_val = tensor_from_proto(&t, path.parent())?;
    Ok((t.name().to_string(), t_val))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dims: Vec<i64>, dt: DataType) -> TensorProto {
        TensorProto {
            name: Some("t".into()),
            dims,
            data_type: Some(dt as i32),
            ..Default::default()
        }
    }

    #[test]
    fn typed_fields_decode() {
        let mut p = proto(vec![2], DataType::Float16);
        p.int32_data = vec![0x3c00, 0xc000]; // 1.0, -2.0
        let t = tensor_from_proto(&p, None).unwrap();
        assert_eq!(t.to_f64_vec(), vec![1.0, -2.0]);
        let mut p = proto(vec![3], DataType::Bool);
        p.int32_data = vec![0, 1, 2];
        assert_eq!(
            tensor_from_proto(&p, None)
                .unwrap()
                .as_slice::<bool>()
                .unwrap(),
            &[false, true, true]
        );
        let mut p = proto(vec![2], DataType::Uint32);
        p.uint64_data = vec![7, 9];
        assert_eq!(
            tensor_from_proto(&p, None).unwrap().to_i64_vec(),
            vec![7, 9]
        );
        let mut p = proto(vec![1], DataType::Int8);
        p.int32_data = vec![-3];
        assert_eq!(tensor_from_proto(&p, None).unwrap().to_i64_vec(), vec![-3]);
    }

    #[test]
    fn raw_roundtrip() {
        let t = Tensor::from_vec(vec![2, 2], vec![1i64, -2, 3, 4]);
        let p = tensor_to_proto("w", &t);
        assert_eq!(tensor_from_proto(&p, None).unwrap(), t);
    }

    #[test]
    fn absurd_dims_are_errors() {
        let mut p = proto(vec![1 << 62, 4], DataType::Float);
        p.raw_data = Some(vec![0; 16]);
        assert!(tensor_from_proto(&p, None).is_err());
        let mut p = proto(vec![1 << 40], DataType::Float);
        p.float_data = vec![1.0];
        assert!(tensor_from_proto(&p, None).is_err());
        let p = proto(vec![-1], DataType::Float);
        assert!(tensor_from_proto(&p, None).is_err());
    }

    #[test]
    fn string_tensor_is_unsupported() {
        let p = proto(vec![1], DataType::String);
        let e = tensor_from_proto(&p, None).unwrap_err().to_string();
        assert!(e.contains("STRING") && e.contains("'t'"), "{e}");
    }

    #[test]
    fn external_paths_cannot_escape() {
        use crate::external::resolve_external;
        let base = std::env::temp_dir();
        assert!(resolve_external("t", "../x.bin", &base).is_err());
        assert!(resolve_external("t", "/etc/passwd", &base).is_err());
    }

    #[test]
    fn overflowing_dims_name_the_tensor_in_every_form() {
        // 2^62 f32 elements: the count fits isize, the bytes do not.
        for dims in [
            vec![1i64 << 62],
            vec![(1 << 32) + 1, 1 << 32],
            vec![0, 1 << 62, 1 << 62],
        ] {
            let mut raw = proto(dims.clone(), DataType::Float);
            raw.raw_data = Some(vec![0; 8]);
            let mut typed = proto(dims.clone(), DataType::Float);
            typed.float_data = vec![0.0; 2];
            let mut ext = proto(dims.clone(), DataType::Float);
            ext.data_location = Some(DataLocation::External as i32);
            for p in [raw, typed, ext] {
                let e = tensor_from_proto(&p, None).unwrap_err().to_string();
                assert!(
                    e.contains("tensor 't'") && e.contains("memory can address"),
                    "{e}"
                );
                assert!(!e.contains('\n'), "{e}");
            }
        }
    }
}
