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
    let len = f.metadata().map_err(|e| err(path, e))?.len();
    read_npy_from(BufReader::new(f), len).map_err(|m| err(path, m))
}

/// Reads one `.npy` file held in memory (what the fuzz target drives).
pub fn read_npy_bytes(bytes: &[u8]) -> Result<Tensor, String> {
    read_npy_from(bytes, bytes.len() as u64)
}

/// Reads every array of an `.npz` archive, in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, NpyError> {
    let f = File::open(path).map_err(|e| err(path, e))?;
    read_npz_from(BufReader::new(f)).map_err(|m| err(path, m))
}

/// Reads every array of an `.npz` archive held in memory.
pub fn read_npz_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    read_npz_from(std::io::Cursor::new(bytes))
}

fn read_npz_from<R: Read + std::io::Seek>(r: R) -> Result<Vec<(String, Tensor)>, String> {
    let mut zip = npyz::npz::NpzArchive::new(r)
        .map_err(|e| one_line(format!("not a valid .npz archive ({e})")))?;
    let names: Vec<String> = zip.array_names().map(str::to_string).collect();
    let mut out = Vec::new();
    for name in names {
        // The entry is read raw and its header checked here: npyz multiplies the header's
        // dims without overflow checks.
        let entry = npyz::npz::file_name_from_array_name(&name);
        let mut file = zip
            .zip_archive()
            .by_name(&entry)
            .map_err(|e| one_line(format!("array '{name}': {e}")))?;
        let len = file.size();
        let t = read_npy_from(&mut file, len).map_err(|m| format!("array '{name}': {m}"))?;
        out.push((name, t));
    }
    Ok(out)
}

/// npyz's messages may span lines (a parser report): keep errors to one.
fn one_line(s: String) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Bytes of the `.npy` preamble (magic, version, header length, header) read so far, and
/// the header's shape, checked: the element count must fit memory (see `limits`).
fn read_preamble<R: Read>(r: &mut R) -> Result<(Vec<u8>, usize), String> {
    let bad = |m: &str| format!("not a valid .npy file ({m})");
    let mut head = vec![0u8; 10];
    r.read_exact(&mut head).map_err(|_| bad("too short"))?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let hlen = match head[6] {
        1 => u16::from_le_bytes([head[8], head[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more).map_err(|_| bad("too short"))?;
            head.extend(more);
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize
        }
        v => return Err(bad(&format!("format version {v}"))),
    };
    if hlen > 1 << 20 {
        return Err(bad("header over 1 MiB"));
    }
    let start = head.len();
    head.resize(start + hlen, 0);
    r.read_exact(&mut head[start..])
        .map_err(|_| bad("header cut short"))?;
    let text = String::from_utf8_lossy(&head[start..]);
    let shape_at = text
        .find("'shape'")
        .ok_or_else(|| bad("no 'shape' in the header"))?;
    let rest = &text[shape_at..];
    let open = rest
        .find('(')
        .ok_or_else(|| bad("the shape is not a tuple"))?;
    let close = rest[open..]
        .find(')')
        .ok_or_else(|| bad("the shape is not a tuple"))?;
    let dims: Vec<usize> = rest[open + 1..open + close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| bad(&format!("shape dimension '{d}'")))
        })
        .collect::<Result<_, _>>()?;
    let n = whittle_ir::limits::numel(&dims)
        .ok_or_else(|| format!("shape {dims:?} has more elements than memory can address"))?;
    Ok((head, n))
}

/// Reads one array: `len` is the size of what `r` holds (file or archive entry), so a
/// header promising more data than there is fails before anything is allocated.
fn read_npy_from<R: Read>(mut r: R, len: u64) -> Result<Tensor, String> {
    let (head, n) = read_preamble(&mut r)?;
    let data_len = len.saturating_sub(head.len() as u64);
    let npy = npyz::NpyFile::new(std::io::Cursor::new(head).chain(r))
        .map_err(|e| one_line(format!("not a valid .npy file ({e})")))?;
    let elem = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.size_field() as u64,
        _ => 1,
    };
    let bytes = (n as u64).saturating_mul(elem.max(1));
    if bytes > data_len {
        return Err(format!(
            "the header's shape needs {bytes} bytes of data, the file holds {data_len}"
        ));
    }
    whittle_ir::limits::check_alloc(bytes, "the array")?;
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

    /// A version-1 `.npy` with this header dict and payload.
    fn npy_bytes(dict: &str, payload: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(payload);
        b
    }

    #[test]
    fn crafted_headers_are_refused_before_allocating() {
        let f4 =
            |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        // (2^63 + 1) × 2 wraps to 2 elements, which 8 bytes would satisfy.
        let e = read_npy_bytes(&npy_bytes(&f4("(9223372036854775809, 2)"), &[0; 8])).unwrap_err();
        assert!(e.contains("more elements than memory can address"), "{e}");
        let e = read_npy_bytes(&npy_bytes(&f4("(18446744073709551616,)"), &[0; 8])).unwrap_err();
        assert!(e.contains("shape dimension"), "{e}");
        // A valid shape of 4 TB with 8 bytes behind it: refused by the length, no allocation.
        let e = read_npy_bytes(&npy_bytes(&f4("(1000000, 1000000)"), &[0; 8])).unwrap_err();
        assert!(e.contains("needs 4000000000000 bytes"), "{e}");
        // Too little data for a small shape.
        assert!(read_npy_bytes(&npy_bytes(&f4("(3,)"), &[0; 8])).is_err());
        // And the right amount reads.
        let t = read_npy_bytes(&npy_bytes(&f4("(2,)"), &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        assert_eq!(t.as_slice::<f32>().unwrap(), &[1.0, 2.0]);
        // Truncated preambles and junk headers are errors, never panics.
        let good = npy_bytes(&f4("(2,)"), &[0; 8]);
        for cut in 0..good.len() {
            let _ = read_npy_bytes(&good[..cut]);
        }
        let e = read_npy_bytes(&npy_bytes(
            "{'descr': '<f4',\n 'shape': (2,)\n oops",
            &[0; 8],
        ));
        assert!(!e.unwrap_err().contains('\n'));
    }

    #[test]
    fn npz_entries_are_checked_too() {
        let dir = std::env::temp_dir().join(format!("whittle-npz-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npz");
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut npz = npyz::npz::NpzWriter::new(f);
            let mut w = npz
                .array("x", Default::default())
                .unwrap()
                .default_dtype()
                .shape(&[2])
                .begin_nd()
                .unwrap();
            w.push(&1.0f32).unwrap();
            w.push(&2.0f32).unwrap();
            w.finish().unwrap();
        }
        let got = read_npz(&p).unwrap();
        assert_eq!(got[0].0, "x");
        assert_eq!(got[0].1.as_slice::<f32>().unwrap(), &[1.0, 2.0]);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(read_npz_bytes(&bytes).unwrap(), got);
    }
}
