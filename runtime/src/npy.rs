//! Tensor files: NumPy `.npy` (one array) and `.npz` (a zip of named arrays), via `npyz`.

use half::f16;
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;
use whittle_ir::{DType, Element, Tensor, TensorData};

/// An error reading or writing a tensor file; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct NpyError {
    pub path: String,
    pub msg: String,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> NpyError {
    NpyError {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// Reads one `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let f = File::open(path).map_err(|e| err(path, e))?;
    read_npy_from(BufReader::new(f)).map_err(|m| err(path, m))
}

/// Reads every array of an `.npz` archive, in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, NpyError> {
    let f = File::open(path).map_err(|e| err(path, e))?;
    let mut zip = npyz::npz::NpzArchive::new(BufReader::new(f))
        .map_err(|e| err(path, format!("not a valid .npz archive ({e})")))?;
    let names: Vec<String> = zip.array_names().map(str::to_string).collect();
    let mut out = Vec::new();
    for name in names {
        let arr = zip
            .by_name(&name)
            .map_err(|e| err(path, format!("array '{name}': {e}")))?
            .ok_or_else(|| err(path, format!("array '{name}' is missing")))?;
        let t = tensor_from_npy(arr).map_err(|m| err(path, format!("array '{name}': {m}")))?;
        out.push((name, t));
    }
    Ok(out)
}

fn read_npy_from<R: Read>(r: R) -> Result<Tensor, String> {
    let npy = npyz::NpyFile::new(r).map_err(|e| format!("not a valid .npy file ({e})"))?;
    tensor_from_npy(npy)
}

fn tensor_from_npy<R: Read>(npy: npyz::NpyFile<R>) -> Result<Tensor, String> {
    if npy.order() == npyz::Order::Fortran {
        return Err(
            "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)".into(),
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = match npy.dtype() {
        npyz::DType::Plain(ts) => {
            dtype_of(&ts).ok_or_else(|| format!("unsupported array dtype '{ts}'"))?
        }
        other => {
            return Err(format!(
                "unsupported array dtype '{}' (structured arrays are not tensors)",
                other.descr()
            ))
        }
    };
    fn typed<T: Element + npyz::Deserialize, R: Read>(
        npy: npyz::NpyFile<R>,
    ) -> Result<Vec<T>, String> {
        npy.into_vec::<T>()
            .map_err(|e| format!("cannot read the array data ({e})"))
    }
    let data = match dtype {
        DType::F32 => TensorData::F32(typed(npy)?),
        DType::F16 => TensorData::F16(typed::<f16, _>(npy)?),
        DType::F64 => TensorData::F64(typed(npy)?),
        DType::I8 => TensorData::I8(typed(npy)?),
        DType::U8 => TensorData::U8(typed(npy)?),
        DType::I16 => TensorData::I16(typed(npy)?),
        DType::U16 => TensorData::U16(typed(npy)?),
        DType::I32 => TensorData::I32(typed(npy)?),
        DType::U32 => TensorData::U32(typed(npy)?),
        DType::I64 => TensorData::I64(typed(npy)?),
        DType::U64 => TensorData::U64(typed(npy)?),
        DType::Bool => TensorData::Bool(typed(npy)?),
        DType::BF16 => return Err("bfloat16 has no .npy dtype".into()),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

fn dtype_of(ts: &npyz::TypeStr) -> Option<DType> {
    use npyz::TypeChar::*;
    Some(match (ts.type_char(), ts.size_field()) {
        (Float, 2) => DType::F16,
        (Float, 4) => DType::F32,
        (Float, 8) => DType::F64,
        (Int, 1) => DType::I8,
        (Int, 2) => DType::I16,
        (Int, 4) => DType::I32,
        (Int, 8) => DType::I64,
        (Uint, 1) => DType::U8,
        (Uint, 2) => DType::U16,
        (Uint, 4) => DType::U32,
        (Uint, 8) => DType::U64,
        (Bool, 1) => DType::Bool,
        _ => return None,
    })
}

/// Writes one `.npy` file.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    let f = File::create(path).map_err(|e| err(path, e))?;
    let mut w = BufWriter::new(f);
    write_npy_to(&mut w, t).map_err(|m| err(path, m))
}

fn write_npy_to<W: std::io::Write>(w: W, t: &Tensor) -> Result<(), String> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    fn typed<T: npyz::Serialize + npyz::AutoSerialize + Copy, W: std::io::Write>(
        w: W,
        shape: &[u64],
        v: &[T],
    ) -> Result<(), String> {
        let mut wr = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(w)
            .begin_nd()
            .map_err(|e| e.to_string())?;
        wr.extend(v.iter().copied()).map_err(|e| e.to_string())?;
        wr.finish().map_err(|e| e.to_string())
    }
    match t.data() {
        TensorData::F32(v) => typed(w, &shape, v),
        TensorData::F16(v) => typed(w, &shape, v),
        TensorData::F64(v) => typed(w, &shape, v),
        TensorData::I8(v) => typed(w, &shape, v),
        TensorData::U8(v) => typed(w, &shape, v),
        TensorData::I16(v) => typed(w, &shape, v),
        TensorData::U16(v) => typed(w, &shape, v),
        TensorData::I32(v) => typed(w, &shape, v),
        TensorData::U32(v) => typed(w, &shape, v),
        TensorData::I64(v) => typed(w, &shape, v),
        TensorData::U64(v) => typed(w, &shape, v),
        TensorData::Bool(v) => typed(w, &shape, v),
        TensorData::BF16(_) => {
            let as_f32 = t.cast(DType::F32);
            typed(w, &shape, as_f32.as_slice::<f32>().unwrap_or(&[]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_every_dtype() {
        let dir = std::env::temp_dir().join(format!("whittle-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for dt in DType::ALL {
            if dt == DType::BF16 {
                continue;
            }
            let t = Tensor::from_f64(dt, vec![2, 3], &[0.0, 1.0, 2.0, 3.0, 1.0, 0.0]);
            let p = dir.join(format!("{dt}.npy"));
            write_npy(&p, &t).unwrap();
            assert_eq!(read_npy(&p).unwrap(), t, "{dt}");
        }
        let scalar = Tensor::scalar(7i64);
        let p = dir.join("scalar.npy");
        write_npy(&p, &scalar).unwrap();
        assert_eq!(read_npy(&p).unwrap(), scalar);
    }

    #[test]
    fn bad_files_give_errors() {
        let dir = std::env::temp_dir().join(format!("whittle-npy-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("junk.npy");
        std::fs::write(&p, b"this is not numpy").unwrap();
        let e = read_npy(&p).unwrap_err();
        assert!(e.to_string().contains("not a valid .npy"), "{e}");
        assert!(read_npy(&dir.join("missing.npy")).is_err());
        assert!(read_npz(&p).is_err());
    }
}
