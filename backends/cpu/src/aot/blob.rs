//! The model blob that an AOT object carries in its read-only data, and its decoder (used
//! by `libwhittle_rt.a`). Layout, all integers little-endian:
//!
//! ```text
//! 0   magic    b"WHTLAOT\0"
//! 8   format   u32 (FORMAT)
//! 12  reserved u32 (0)
//! 16  hash     u64, FNV-1a 64 of the text
//! 24  len      u64, bytes of text
//! 32  text     the specialized graph in whittle's IR text format (UTF-8)
//! ```

/// First bytes of every blob.
pub const MAGIC: &[u8; 8] = b"WHTLAOT\0";
/// Version of the layout above; the runtime refuses any other.
pub const FORMAT: u32 = 1;
const HEADER: usize = 32;

/// FNV-1a, 64 bits: a stable, dependency-free fingerprint of the model.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Builds the blob for `text` whose hash is `hash`.
pub fn encode(text: &str, hash: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + text.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&hash.to_le_bytes());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// Checks magic, format, length and hash; returns the graph text.
pub fn decode(b: &[u8]) -> Result<&str, String> {
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
    let hash = u64_at(b, 16).ok_or("truncated blob")?;
    let len = usize::try_from(u64_at(b, 24).ok_or("truncated blob")?)
        .map_err(|_| "blob length overflows")?;
    let text = HEADER
        .checked_add(len)
        .and_then(|end| b.get(HEADER..end))
        .ok_or("truncated blob")?;
    if fnv1a(text) != hash {
        return Err("model blob hash mismatch (corrupted object?)".into());
    }
    std::str::from_utf8(text).map_err(|_| "model text is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn round_trip_and_corruption() {
        let b = encode("graph", fnv1a(b"graph"));
        assert_eq!(b.len(), 32 + 5);
        assert_eq!(decode(&b), Ok("graph"));
        let mut bad = b.clone();
        bad[33] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("hash"));
        assert!(decode(&b[..20]).is_err());
        let mut fmt = b;
        fmt[8] = 9;
        assert!(decode(&fmt).unwrap_err().contains("format 9"));
    }
}
