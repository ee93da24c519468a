//! ONNX `TensorProto` <-> IR `Tensor`: dtype codes, raw and typed data fields, external
//! data files, and `.pb` tensor files (the conformance tests' `input_0.pb`).
//!
//! Every size is checked against the bytes actually present before anything is allocated,
//! so a malformed tensor with absurd dims is an error, not an out-of-memory abort.

use crate::proto::{tensor_proto::DataLocation, tensor_proto::DataType, TensorProto};
use crate::FrontendError;
use half::{bf16, f16};
use prost::Message;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use whittle_ir::{DType, Tensor, TensorData};

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
/// element count overflows are errors.
pub(crate) fn checked_shape(
    dims: &[i64],
    name: &str,
) -> Result<(Vec<usize>, usize), FrontendError> {
    let mut shape = Vec::with_capacity(dims.len().min(64));
    let mut nonzero_product: usize = 1;
    let mut has_zero = false;
    for &d in dims {
        let u = usize::try_from(d)
            .map_err(|_| FrontendError::tensor(name, format!("negative dim {d}")))?;
        if u == 0 {
            has_zero = true;
        } else {
            nonzero_product = nonzero_product.checked_mul(u).ok_or_else(|| {
                FrontendError::tensor(name, format!("dims {dims:?} overflow the element count"))
            })?;
        }
        shape.push(u);
    }
    // Keep every reordering of the product finite, as the IR multiplies dims freely.
    if nonzero_product > isize::MAX as usize {
        return Err(FrontendError::tensor(
            name,
            format!("dims {dims:?} are too large"),
        ));
    }
    Ok((shape, if has_zero { 0 } else { nonzero_product }))
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
    if t.segment.is_some() {
        return Err(FrontendError::tensor(
            name,
            "segmented tensors are not supported",
        ));
    }
    let external = t.data_location == Some(DataLocation::External as i32);
    if external {
        let bytes = read_external(t, base_dir, n.checked_mul(dtype.size_of()))?;
        return Ok(Tensor::from_le_bytes(dtype, shape, &bytes)?);
    }
    if let Some(raw) = &t.raw_data {
        if !raw.is_empty() || n == 0 {
            let need = n.checked_mul(dtype.size_of());
            if need != Some(raw.len()) {
                return Err(FrontendError::tensor(
                    name,
                    format!(
                        "{dtype}{shape:?} needs {n} elements but raw_data has {} bytes",
                        raw.len()
                    ),
                ));
            }
            return Ok(Tensor::from_le_bytes(dtype, shape, raw)?);
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
    Ok(Tensor::new(shape, data)?)
}

/// Resolves `location` under `base_dir`, refusing absolute paths and paths that leave it.
fn resolve_external(name: &str, location: &str, base_dir: &Path) -> Result<PathBuf, FrontendError> {
    let err = |why: String| FrontendError::ExternalData {
        name: name.to_string(),
        why,
    };
    let rel = Path::new(location);
    if location.is_empty() {
        return Err(err("empty location".into()));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(err(format!(
                    "location '{location}' escapes the model's directory"
                )))
            }
        }
    }
    let path = base_dir.join(rel);
    // Symbolic links could still point outside: compare canonical paths.
    let canon_base = base_dir
        .canonicalize()
        .map_err(|e| err(format!("model directory '{}': {e}", base_dir.display())))?;
    let canon = path
        .canonicalize()
        .map_err(|e| err(format!("'{}': {e}", path.display())))?;
    if !canon.starts_with(&canon_base) {
        return Err(err(format!(
            "location '{location}' escapes the model's directory"
        )));
    }
    Ok(canon)
}

/// Reads an external-data tensor's bytes; `need` is the byte count its shape requires
/// (`None` when that overflows).
fn read_external(
    t: &TensorProto,
    base_dir: Option<&Path>,
    need: Option<usize>,
) -> Result<Vec<u8>, FrontendError> {
    let name = t.name();
    let err = |why: String| FrontendError::ExternalData {
        name: name.to_string(),
        why,
    };
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for kv in &t.external_data {
        let value = kv.value();
        match kv.key() {
            "location" => location = Some(value.to_string()),
            "offset" => {
                offset = value
                    .parse()
                    .map_err(|_| err(format!("bad offset '{value}'")))?
            }
            "length" => {
                length = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| err(format!("bad length '{value}'")))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or_else(|| err("no 'location' key".into()))?;
    let base_dir = base_dir
        .ok_or_else(|| err("the model was loaded from bytes without a base directory".into()))?;
    let path = resolve_external(name, &location, base_dir)?;
    let need = need.ok_or_else(|| err("shape too large".into()))? as u64;
    if let Some(len) = length {
        if len != need {
            return Err(err(format!(
                "length {len} does not match the {need} bytes the shape needs"
            )));
        }
    }
    let mut f = std::fs::File::open(&path).map_err(|e| FrontendError::io(&path, e))?;
    let file_len = f.metadata().map_err(|e| FrontendError::io(&path, e))?.len();
    let end = offset
        .checked_add(need)
        .ok_or_else(|| err("offset overflows".into()))?;
    if end > file_len {
        return Err(err(format!(
            "'{}' has {file_len} bytes, but the tensor needs bytes {offset}..{end}",
            path.display()
        )));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| FrontendError::io(&path, e))?;
    let mut buf = vec![0u8; need as usize];
    f.read_exact(&mut buf)
        .map_err(|e| FrontendError::io(&path, e))?;
    Ok(buf)
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
        let base = std::env::temp_dir();
        assert!(resolve_external("t", "../x.bin", &base).is_err());
        assert!(resolve_external("t", "/etc/passwd", &base).is_err());
    }
}
