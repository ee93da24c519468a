//! Tensor files: NumPy `.npy` (one array) and `.npz` (a zip of named arrays).
//!
//! Reading parses and checks the header here (dtype, order, a shape whose byte size is
//! addressable, `whittle_ir::limits`), compares the size it needs with the data present and
//! the memory budget, and only then allocates. `npyz` writes files and opens `.npz` zips.

use half::f16;
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek};
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

/// Reads one `.npy` file. A regular file's length bounds the data before anything is
/// allocated; a FIFO or device named on purpose is read as a stream, never past the size
/// its header declares (which the memory budget checks first).
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let f = File::open(path).map_err(|e| err(path, e))?;
    let m = f.metadata().map_err(|e| err(path, e))?;
    if m.is_dir() {
        return Err(err(path, "is a directory, not a .npy file"));
    }
    let len = m.is_file().then_some(m.len());
    read_npy_from(BufReader::new(f), len, len.is_some()).map_err(|m| err(path, m))
}

/// Reads one `.npy` file held in memory (what the `npy_reader` fuzz target drives).
pub fn read_npy_bytes(bytes: &[u8]) -> Result<Tensor, String> {
    read_npy_from(bytes, Some(bytes.len() as u64), true)
}

/// Reads every array of an `.npz` archive, in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, NpyError> {
    let f = File::open(path).map_err(|e| err(path, e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(err(path, "is a directory, not a .npz archive"));
    }
    read_npz_from(BufReader::new(f)).map_err(|m| err(path, m))
}

/// Reads every array of an `.npz` archive held in memory.
pub fn read_npz_bytes(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    read_npz_from(std::io::Cursor::new(bytes))
}

fn read_npz_from<R: Read + Seek>(r: R) -> Result<Vec<(String, Tensor)>, String> {
    let mut zip = npyz::zip::ZipArchive::new(r)
        .map_err(|e| one_line(&format!("not a valid .npz archive ({e})")))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // By index, in archive order (the archive's name map is a hash map).
    for i in 0..zip.len() {
        let mut file = zip
            .by_index(i)
            .map_err(|e| one_line(&format!("not a valid .npz archive (entry {i}: {e})")))?;
        let Some(name) = npyz::npz::array_name_from_file_name(file.name()).map(str::to_string)
        else {
            continue; // not an array (a directory, another file)
        };
        let shown = one_line(&name).escape_debug().to_string();
        if !seen.insert(name.clone()) {
            return Err(format!("the archive holds array '{shown}' twice"));
        }
        // The entry's size is what the archive claims, not data at hand (it may be
        // compressed): it refuses a mismatched header early, but memory is only committed
        // as the data actually arrives.
        let len = file.size();
        let t = read_npy_from(&mut file, Some(len), false)
            .map_err(|m| format!("array '{shown}': {m}"))?;
        out.push((name, t));
    }
    Ok(out)
}

/// Messages from `npyz`/`zip`, and names from files, may span lines: keep errors to one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest header accepted (numpy itself refuses headers over 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 16;
/// Deepest nesting of brackets accepted in a header (structured dtypes nest a little).
const MAX_DEPTH: usize = 32;

/// A `.npy` header, checked: a supported dtype and a shape whose byte size is addressable.
struct Header {
    dtype: DType,
    /// The dtype as the file spells it (`<f4`), for messages.
    descr: String,
    big_endian: bool,
    shape: Vec<usize>,
    /// Bytes of data the shape needs.
    bytes: usize,
    /// Bytes of magic, version, header length and header text.
    preamble: u64,
}

/// A Python literal, as far as `.npy` headers use them.
enum Lit {
    Str(String),
    Bool(bool),
    None,
    /// Digits, with a leading `-` when negative (range-checked where used).
    Int(String),
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

/// A strict parser for the header's dict literal (`{'descr': '<f4', 'fortran_order':
/// False, 'shape': (2, 3), }`). Parsed here rather than by `npyz`, which multiplies the
/// shape's dims unchecked (a panic in debug builds, a wrapped count in release ones).
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {} of the header", self.at))
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return self.fail("nesting too deep");
        }
        self.skip_ws();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'(') => self.seq(b')', depth),
            Some(b'[') => self.seq(b']', depth),
            Some(b'{') => self.dict(depth),
            Some(b'0'..=b'9' | b'-' | b'+') => self.int(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.at += 1;
                }
                match &self.s[start..self.at] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    _ => {
                        self.at = start;
                        self.fail("unexpected name")
                    }
                }
            }
            Some(_) => self.fail("unexpected character"),
            None => self.fail("unexpected end"),
        }
    }

    fn string(&mut self, quote: u8) -> Result<Lit, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.fail("unterminated string"),
                Some(c) if c == quote => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    // Escapes only occur in structured field names, which are refused
                    // later anyway: keep the escaped byte as it is.
                    self.at += 1;
                    match self.peek() {
                        None => return self.fail("unterminated string"),
                        Some(c) => out.push(c),
                    }
                    self.at += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
        String::from_utf8(out)
            .map(Lit::Str)
            .or_else(|_| self.fail("a string that is not UTF-8"))
    }

    fn int(&mut self) -> Result<Lit, String> {
        let mut digits = String::new();
        match self.peek() {
            Some(b'-') => {
                digits.push('-');
                self.at += 1;
            }
            Some(b'+') => self.at += 1,
            _ => {}
        }
        let start = self.at;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            digits.push(c as char);
            self.at += 1;
        }
        if self.at == start {
            return self.fail("a sign without digits");
        }
        // Python 2's long suffix, which old numpy versions wrote into shapes.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.at += 1;
        }
        Ok(Lit::Int(digits))
    }

    /// A tuple or list; `(x)` without a comma is `x` itself, as in Python.
    fn seq(&mut self, close: u8, depth: usize) -> Result<Lit, String> {
        self.at += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.at += 1;
                break;
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    comma = true;
                    self.at += 1;
                }
                Some(c) if c == close => {}
                _ => return self.fail("expected ',' or a closing bracket"),
            }
        }
        if close == b')' && items.len() == 1 && !comma {
            return Ok(items.pop().unwrap_or(Lit::None));
        }
        Ok(Lit::Seq(items))
    }

    fn dict(&mut self, depth: usize) -> Result<Lit, String> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.at += 1;
                break;
            }
            let k = self.value(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return self.fail("expected ':'");
            }
            self.at += 1;
            let v = self.value(depth + 1)?;
            items.push((k, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return self.fail("expected ',' or '}'"),
            }
        }
        Ok(Lit::Dict(items))
    }
}

/// The dtype a `descr` string names, and whether it is big-endian.
fn dtype_of_descr(descr: &str) -> Option<(DType, bool)> {
    let b = descr.as_bytes();
    let (order, rest) = match b.first()? {
        c @ (b'<' | b'>' | b'|' | b'=') => (*c, &descr[1..]),
        _ => (b'=', descr),
    };
    let dtype = match rest {
        "f2" | "e" => DType::F16,
        "f4" | "f" => DType::F32,
        "f8" | "d" => DType::F64,
        "i1" | "b" => DType::I8,
        "i2" | "h" => DType::I16,
        "i4" => DType::I32,
        "i8" | "q" => DType::I64,
        "u1" | "B" => DType::U8,
        "u2" | "H" => DType::U16,
        "u4" => DType::U32,
        "u8" | "Q" => DType::U64,
        "b1" | "?" => DType::Bool,
        _ => return None,
    };
    let big = match order {
        b'>' => true,
        b'=' => cfg!(target_endian = "big"),
        _ => false,
    };
    Some((dtype, big))
}

/// Reads and checks the preamble and header of a `.npy` stream, leaving `r` at the data.
fn read_header<R: Read>(r: &mut R) -> Result<Header, String> {
    let bad = |m: &str| format!("not a valid .npy file ({m})");
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre).map_err(|_| bad("too short"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let (hlen, preamble) = match (pre[6], pre[7]) {
        (1, 0) => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        (2 | 3, 0) => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more).map_err(|_| bad("too short"))?;
            let n = u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]);
            (usize::try_from(n).unwrap_or(usize::MAX), 12)
        }
        (major, minor) => return Err(bad(&format!("format version {major}.{minor}"))),
    };
    if hlen > MAX_HEADER {
        return Err(bad(&format!("a header of {hlen} bytes, over {MAX_HEADER}")));
    }
    let mut text = vec![0u8; hlen];
    r.read_exact(&mut text)
        .map_err(|_| bad("header cut short"))?;
    let mut p = Parser { s: &text, at: 0 };
    let dict = p.value(0).map_err(|e| bad(&e))?;
    p.skip_ws();
    if p.at != text.len() {
        return Err(bad(&p
            .fail::<()>("text after the header dict")
            .unwrap_err()));
    }
    let Lit::Dict(items) = dict else {
        return Err(bad("the header is not a dict"));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        let Lit::Str(k) = k else {
            return Err(bad("a header key is not a string"));
        };
        let slot = match k.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(bad(&format!("the header repeats '{k}'")));
        }
    }
    let descr = match descr {
        Some(Lit::Str(s)) => s,
        Some(Lit::Seq(_)) => {
            return Err("unsupported array dtype (structured arrays are not tensors)".into())
        }
        Some(_) => return Err(bad("'descr' is not a string")),
        None => return Err(bad("no 'descr' in the header")),
    };
    let descr_shown = one_line(&descr).escape_debug().to_string();
    let (dtype, big_endian) =
        dtype_of_descr(&descr).ok_or_else(|| format!("unsupported array dtype '{descr_shown}'"))?;
    match fortran {
        Some(Lit::Bool(false)) => {}
        Some(Lit::Bool(true)) => {
            return Err(
                "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)".into(),
            )
        }
        Some(_) => return Err(bad("'fortran_order' is not a bool")),
        None => return Err(bad("no 'fortran_order' in the header")),
    }
    let dims = match shape {
        Some(Lit::Seq(d)) => d,
        Some(_) => return Err(bad("'shape' is not a tuple")),
        None => return Err(bad("no 'shape' in the header")),
    };
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        let Lit::Int(s) = d else {
            return Err(bad("a shape dimension is not an integer"));
        };
        if s.starts_with('-') {
            return Err(bad(&format!("negative shape dimension {s}")));
        }
        let v = s.parse::<usize>().map_err(|_| {
            format!("shape dimension {s} has more elements than memory can address")
        })?;
        shape.push(v);
    }
    let bytes = whittle_ir::limits::byte_size(&shape, dtype.size_of())?;
    Ok(Header {
        dtype,
        descr: descr_shown,
        big_endian,
        shape,
        bytes,
        preamble: preamble + hlen as u64,
    })
}

/// Reads one array. `len` is the size of what `r` holds (a file or an archive entry), so
/// that a header promising other than the data there is refused before anything is
/// allocated; when `exact`, `len` is data at hand and the whole array is allocated at
/// once, otherwise memory grows only as data arrives.
fn read_npy_from<R: Read>(mut r: R, len: Option<u64>, exact: bool) -> Result<Tensor, String> {
    let h = read_header(&mut r)?;
    let mismatch = |holds: u64| {
        format!(
            "the header's shape {:?} of '{}' needs {} bytes of data, the file holds {holds}",
            h.shape, h.descr, h.bytes
        )
    };
    if let Some(len) = len {
        let data = len.saturating_sub(h.preamble);
        if data != h.bytes as u64 {
            return Err(mismatch(data));
        }
    }
    whittle_ir::limits::check_alloc(h.bytes as u64, &format!("the array of shape {:?}", h.shape))?;
    let n = h.bytes / h.dtype.size_of();
    let exact = exact && len.is_some();
    let data = match h.dtype {
        DType::F32 => TensorData::F32(read_elems(&mut r, n, &h, exact)?),
        DType::F16 => TensorData::F16(read_elems::<f16, _>(&mut r, n, &h, exact)?),
        DType::F64 => TensorData::F64(read_elems(&mut r, n, &h, exact)?),
        DType::I8 => TensorData::I8(read_elems(&mut r, n, &h, exact)?),
        DType::U8 => TensorData::U8(read_elems(&mut r, n, &h, exact)?),
        DType::I16 => TensorData::I16(read_elems(&mut r, n, &h, exact)?),
        DType::U16 => TensorData::U16(read_elems(&mut r, n, &h, exact)?),
        DType::I32 => TensorData::I32(read_elems(&mut r, n, &h, exact)?),
        DType::U32 => TensorData::U32(read_elems(&mut r, n, &h, exact)?),
        DType::I64 => TensorData::I64(read_elems(&mut r, n, &h, exact)?),
        DType::U64 => TensorData::U64(read_elems(&mut r, n, &h, exact)?),
        DType::Bool => TensorData::Bool(read_elems(&mut r, n, &h, exact)?),
        DType::BF16 => return Err("bfloat16 has no .npy dtype".into()),
    };
    // Nothing may follow the data (a stream of unknown length is checked here).
    let mut rest = Vec::new();
    r.take(1)
        .read_to_end(&mut rest)
        .map_err(|e| one_line(&format!("cannot read the array data ({e})")))?;
    if !rest.is_empty() {
        return Err(mismatch(h.bytes as u64 + 1).replace("holds", "holds at least"));
    }
    Tensor::new(h.shape.clone(), data).map_err(|e| e.to_string())
}

/// Reads `n` elements in chunks, byte-swapped when the file is big-endian. When `exact`,
/// room for all `n` is reserved first; otherwise it grows with the data read.
fn read_elems<T: Element, R: Read>(
    r: &mut R,
    n: usize,
    h: &Header,
    exact: bool,
) -> Result<Vec<T>, String> {
    const CHUNK: usize = 1 << 16;
    let sz = h.dtype.size_of();
    let mut v: Vec<T> = Vec::new();
    let oom = || format!("the array of shape {:?} could not be allocated", h.shape);
    v.try_reserve_exact(if exact { n } else { n.min(CHUNK) })
        .map_err(|_| oom())?;
    let mut buf = vec![0u8; CHUNK * sz];
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK);
        let b = &mut buf[..k * sz];
        r.read_exact(b).map_err(|e| {
            let got = (n - left) * sz;
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => format!(
                    "the data ends within bytes {got}..{} of the {} the shape {:?} needs",
                    got + k * sz,
                    h.bytes,
                    h.shape
                ),
                _ => one_line(&format!("cannot read the array data ({e})")),
            }
        })?;
        if h.big_endian && sz > 1 {
            b.chunks_exact_mut(sz).for_each(<[u8]>::reverse);
        }
        v.try_reserve(k).map_err(|_| oom())?;
        v.extend(b.chunks_exact(sz).map(T::read_le));
        left -= k;
    }
    Ok(v)
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
