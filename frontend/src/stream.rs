//! Streaming decode of an ONNX file: the `ModelProto` is read field by field from the file,
//! and its graph one field at a time (one initializer at a time), each merged into the
//! message as it arrives. The whole file is never in memory next to the decoded proto, so
//! loading peaks at about one copy of the weights plus the largest tensor, not two copies.

use crate::proto::{GraphProto, ModelProto};
use crate::FrontendError;
use prost::Message;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// `ModelProto.graph`'s field number.
const MODEL_GRAPH: u64 = 7;

fn decode_err(e: impl std::fmt::Display) -> FrontendError {
    FrontendError::Decode(e.to_string())
}

/// Reads one varint, appending its bytes to `raw`; `Ok(None)` at a clean end of input.
fn read_varint(r: &mut impl Read, raw: &mut Vec<u8>) -> Result<Option<u64>, FrontendError> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        match r.read(&mut b) {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => return Err(decode_err("truncated varint")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decode_err(e)),
        }
        raw.push(b[0]);
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(decode_err("varint longer than 10 bytes"))
}

/// Appends exactly `n` bytes of `r` to `raw`.
fn read_n(r: &mut impl Read, n: u64, raw: &mut Vec<u8>) -> Result<(), FrontendError> {
    let got = r.by_ref().take(n).read_to_end(raw).map_err(decode_err)?;
    if got as u64 != n {
        return Err(decode_err("truncated field"));
    }
    Ok(())
}

/// One field: its number, its wire type and, for length-delimited fields, the length.
/// `raw` receives the key (and length) bytes.
fn read_key(
    r: &mut impl Read,
    raw: &mut Vec<u8>,
) -> Result<Option<(u64, u64, u64)>, FrontendError> {
    let Some(key) = read_varint(r, raw)? else {
        return Ok(None);
    };
    let (field, wire) = (key >> 3, key & 7);
    let len = match wire {
        0 => 0,
        1 => 8,
        2 => read_varint(r, raw)?.ok_or_else(|| decode_err("truncated length"))?,
        5 => 4,
        w => return Err(decode_err(format!("unsupported wire type {w}"))),
    };
    Ok(Some((field, wire, len)))
}

/// Copies the rest of a field whose key (and length) is in `raw`.
fn read_body(
    r: &mut impl Read,
    wire: u64,
    len: u64,
    raw: &mut Vec<u8>,
) -> Result<(), FrontendError> {
    if wire == 0 {
        read_varint(r, raw)?.ok_or_else(|| decode_err("truncated varint"))?;
        Ok(())
    } else {
        read_n(r, len, raw)
    }
}

/// Decodes a `ModelProto` from `r`, merging each top-level field, and each field of the
/// graph, as it is read.
pub fn decode_model(r: &mut impl Read) -> Result<ModelProto, FrontendError> {
    let mut model = ModelProto::default();
    let mut raw = Vec::new();
    let mut empty = true;
    loop {
        raw.clear();
        let Some((field, wire, len)) = read_key(r, &mut raw)? else {
            break;
        };
        empty = false;
        if field == MODEL_GRAPH && wire == 2 {
            let graph = model.graph.get_or_insert_with(GraphProto::default);
            let mut g = r.by_ref().take(len);
            loop {
                raw.clear();
                let Some((_, gwire, glen)) = read_key(&mut g, &mut raw)? else {
                    break;
                };
                read_body(&mut g, gwire, glen, &mut raw)?;
                graph.merge(raw.as_slice()).map_err(decode_err)?;
            }
            if g.limit() != 0 {
                return Err(decode_err("truncated graph"));
            }
            continue;
        }
        read_body(r, wire, len, &mut raw)?;
        model.merge(raw.as_slice()).map_err(decode_err)?;
    }
    if empty {
        return Err(FrontendError::Decode("the model is empty (0 bytes)".into()));
    }
    Ok(model)
}

/// Decodes the ONNX file at `path` (see [`decode_model`]).
pub fn decode_file(path: &Path) -> Result<ModelProto, FrontendError> {
    let f = std::fs::File::open(path).map_err(|e| FrontendError::io(path, e))?;
    // A FIFO or device named on purpose is read as a stream; a directory is no model.
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(FrontendError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "is a directory"),
        ));
    }
    decode_model(&mut BufReader::with_capacity(1 << 16, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{NodeProto, TensorProto};

    #[test]
    fn streamed_decode_equals_whole_decode() {
        let t = |name: &str, n: usize| TensorProto {
            name: Some(name.into()),
            dims: vec![n as i64],
            data_type: Some(1),
            raw_data: Some((0..n * 4).map(|i| i as u8).collect()),
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: Some(8),
            producer_name: Some("test".into()),
            graph: Some(GraphProto {
                name: Some("g".into()),
                node: vec![NodeProto {
                    op_type: Some("Relu".into()),
                    input: vec!["w".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                initializer: vec![t("w", 3), t("v", 70)],
                ..Default::default()
            }),
            model_version: Some(3),
            ..Default::default()
        };
        let bytes = model.encode_to_vec();
        let got = decode_model(&mut bytes.as_slice()).unwrap();
        assert_eq!(got, model);
        assert!(decode_model(&mut [].as_slice()).is_err());
        assert!(decode_model(&mut &bytes[..bytes.len() - 3]).is_err());
    }
}
