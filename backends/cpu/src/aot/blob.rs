//! The model blob that an AOT object carries in its read-only data, and its decoder (used
//! by `libwhittle_rt.a`). Layout, all integers little-endian:
//!
//! ```text
//! 0   magic     b"WHTLAOT\0"
//! 8   format    u32 (FORMAT)
//! 12  reserved  u32 (0)
//! 16  hash      u64, FNV-1a 64 of everything after the header
//! 24  text_len  u64
//! 32  n_weights u64
//! 40  text      the specialized graph in whittle's IR text format (UTF-8); big constants
//!               are `const T blob K` references (`ir::text::print_graph_with_blobs`)
//! ..  table     n_weights × (offset u64, len u64), offsets from the blob's start
//! ..  weights   each weight's little-endian bytes, 64-byte aligned
//! ```

/// First bytes of every blob.
pub const MAGIC: &[u8; 8] = b"WHTLAOT\0";
/// Version of the layout above; the runtime refuses any other.
pub const FORMAT: u32 = 2;
const HEADER: usize = 40;
const ALIGN: usize = 64;

/// FNV-1a, 64 bits: a stable, dependency-free fingerprint of the model.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_from(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Builds the blob for `text` and the weights it references (in `blob K` order).
pub fn encode(text: &str, weights: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // hash, filled in below
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    let table = out.len();
    out.resize(table + 16 * weights.len(), 0);
    for (k, w) in weights.iter().enumerate() {
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        let at = out.len();
        out[table + 16 * k..table + 16 * k + 8].copy_from_slice(&(at as u64).to_le_bytes());
        out[table + 16 * k + 8..table + 16 * k + 16]
            .copy_from_slice(&(w.len() as u64).to_le_bytes());
        out.extend_from_slice(w);
    }
    let hash = fnv1a(&out[HEADER..]);
    out[16..24].copy_from_slice(&hash.to_le_bytes());
    out
}

/// The hash an encoded blob records (the model hash of the object's header).
pub fn hash_of(blob: &[u8]) -> u64 {
    u64_at(blob, 16).unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn usize_at(b: &[u8], at: usize) -> Result<usize, String> {
    let v = u64_at(b, at).ok_or("truncated blob")?;
    usize::try_from(v).map_err(|_| "blob field overflows".to_string())
}

/// Checks magic, format, lengths and hash; returns the graph text and the weights' bytes.
pub fn decode(b: &[u8]) -> Result<(&str, Vec<&[u8]>), String> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err("not a whittle model blob (bad magic)".into());
    }
    let format = b
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("truncated blob")?;
    if format != FORMAT {
        return Err(format!(
            "model blob format {format}, this runtime reads format {FORMAT}: rebuild the object \
             with the same whittle version as libwhittle_rt.a"
        ));
    }
    let (hash, text_len, n) = (u64_at(b, 16), usize_at(b, 24)?, usize_at(b, 32)?);
    let text_end = HEADER
        .checked_add(text_len)
        .ok_or("blob length overflows")?;
    let table_end = n
        .checked_mul(16)
        .and_then(|t| t.checked_add(text_end))
        .ok_or("blob length overflows")?;
    if table_end > b.len() {
        return Err("truncated blob".into());
    }
    let mut weights = Vec::with_capacity(n);
    let mut end = table_end;
    for k in 0..n {
        let at = usize_at(b, text_end + 16 * k)?;
        let len = usize_at(b, text_end + 16 * k + 8)?;
        let w = at
            .checked_add(len)
            .filter(|_| at >= table_end)
            .and_then(|e| b.get(at..e))
            .ok_or("truncated blob")?;
        end = end.max(at + len);
        weights.push(w);
    }
    if Some(fnv1a(&b[HEADER..end])) != hash {
        return Err("model blob hash mismatch (corrupted object?)".into());
    }
    let text = std::str::from_utf8(&b[HEADER..text_end]).map_err(|_| "model text is not UTF-8")?;
    Ok((text, weights))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_from(fnv1a(b"a"), b"b"), fnv1a(b"ab"));
    }

    #[test]
    fn round_trip_and_corruption() {
        let weights = vec![vec![1u8, 2, 3, 4], vec![9u8; 100]];
        let b = encode("graph", &weights);
        let (text, ws) = decode(&b).unwrap();
        assert_eq!(text, "graph");
        assert_eq!(ws, vec![&weights[0][..], &weights[1][..]]);
        assert_eq!(b.len() % 64, 100 % 64);
        let mut bad = b.clone();
        bad[41] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("hash"));
        let mut bad = b.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode(&bad).unwrap_err().contains("hash"));
        assert!(decode(&b[..20]).is_err());
        assert!(decode(&b[..b.len() - 1]).is_err());
        let mut fmt = b;
        fmt[8] = 9;
        assert!(decode(&fmt).unwrap_err().contains("format 9"));
    }
}
