//! Plan images: a compiled plan's [`PlanParts`] (steps, packed weights, constants, arena
//! layout) as bytes, which `whittle compile` puts in an AOT object's read-only data and
//! `libwhittle_rt.a` decodes on the first call. Layout, integers little-endian:
//!
//! ```text
//! 0   magic        b"WHTLAOT\0"
//! 8   format       u32 (FORMAT)
//! 12  reserved     u32 (0)
//! 16  hash         u64, FNV-1a 64 over the 64-bit words of everything after the header
//! 24  meta_len     u64
//! 32  payload_len  u64
//! 40  meta         UTF-8 lines: "whittle <version>", "cpu <feature>,<feature>,..."
//! ..  payload      the PlanParts, postcard-encoded
//! ```
//!
//! The generated code is compiled for the compiling machine's CPU: `cpu` lists the
//! features it relied on, and decoding refuses (with a message naming them) on a CPU that
//! lacks any, as it refuses an image of another whittle version or format.

use crate::run::PlanParts;

/// First bytes of every image.
pub const MAGIC: &[u8; 8] = b"WHTLAOT\0";
/// Version of the layout above; the runtime refuses any other.
pub const FORMAT: u32 = 3;
const HEADER: usize = 40;
/// The whittle version that writes and reads images (the payload's schema follows it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// FNV-1a 64 over 64-bit little-endian words (then the trailing bytes one by one): a
/// stable, dependency-free fingerprint, eight times faster than byte-wise FNV.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let prime: u64 = 0x0000_0100_0000_01b3;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ v).wrapping_mul(prime);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(prime);
    }
    h
}

/// x86-64 features the generated code or host kernels may rely on, by their
/// `is_x86_feature_detected!` names.
const FEATURES: [&str; 12] = [
    "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt", "avx512f",
    "avx512vl", "avx512dq",
];

/// Whether this CPU has `feature` (one of [`FEATURES`]; unknown names are `false`).
pub fn host_has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
            "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
            "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
            "avx" => std::arch::is_x86_feature_detected!("avx"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
            "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
            "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        false
    }
}

/// The features of [`FEATURES`] this CPU has: what code compiled here may use.
pub fn host_features() -> Vec<&'static str> {
    FEATURES.into_iter().filter(|f| host_has(f)).collect()
}

/// Encodes `parts` for code compiled with the CPU features `cpu`.
pub fn encode(parts: &PlanParts, cpu: &[&str]) -> Result<Vec<u8>, String> {
    let meta = format!("whittle {VERSION}\ncpu {}\n", cpu.join(","));
    let payload = postcard::to_stdvec(parts).map_err(|e| format!("encode plan: {e}"))?;
    let mut out = Vec::with_capacity(HEADER + meta.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // hash, filled in below
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(&payload);
    let hash = fingerprint(&out[HEADER..]);
    out[16..24].copy_from_slice(&hash.to_le_bytes());
    Ok(out)
}

/// The hash an encoded image records (the model hash in the object's header).
pub fn hash_of(image: &[u8]) -> u64 {
    u64_at(image, 16).unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn len_at(b: &[u8], at: usize) -> Result<usize, String> {
    let v = u64_at(b, at).ok_or("truncated plan image")?;
    usize::try_from(v).map_err(|_| "plan image length overflows".to_string())
}

/// Checks magic, format, lengths, hash, version and CPU features; decodes the plan.
pub fn decode(b: &[u8]) -> Result<PlanParts, String> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err("not a whittle plan image (bad magic)".into());
    }
    let format = b
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("truncated plan image")?;
    if format != FORMAT {
        return Err(format!(
            "plan image format {format}, this runtime reads format {FORMAT}: rebuild the \
             object with the same whittle version as libwhittle_rt.a"
        ));
    }
    let (meta_len, payload_len) = (len_at(b, 24)?, len_at(b, 32)?);
    let end = HEADER
        .checked_add(meta_len)
        .and_then(|m| m.checked_add(payload_len))
        .ok_or("plan image length overflows")?;
    if end != b.len() {
        return Err(format!(
            "plan image of {} bytes, its header says {end}",
            b.len()
        ));
    }
    if Some(fingerprint(&b[HEADER..])) != u64_at(b, 16) {
        return Err("plan image hash mismatch (corrupted object?)".into());
    }
    let meta = std::str::from_utf8(&b[HEADER..HEADER + meta_len])
        .map_err(|_| "plan image metadata is not UTF-8")?;
    let mut version = None;
    let mut cpu = Vec::new();
    for line in meta.lines() {
        if let Some(v) = line.strip_prefix("whittle ") {
            version = Some(v);
        } else if let Some(f) = line.strip_prefix("cpu ") {
            cpu.extend(f.split(',').filter(|s| !s.is_empty()));
        }
    }
    if version != Some(VERSION) {
        return Err(format!(
            "the object was compiled by whittle {}, this libwhittle_rt.a is {VERSION}: \
             rebuild one to match the other",
            version.unwrap_or("(unknown)")
        ));
    }
    let missing: Vec<&str> = cpu.into_iter().filter(|f| !host_has(f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the object's code was compiled for a CPU with {}, which this CPU lacks; compile \
             the model on (or for) a machine like the one that runs it",
            missing.join(", ")
        ));
    }
    postcard::from_bytes(&b[HEADER + meta_len..]).map_err(|e| format!("decode plan: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::Ukr;
    use crate::plan::{plan_arena, Buf, BufferReq};
    use crate::steps::{HostOp, InputSpec, OutputSpec, Step};
    use std::sync::Arc;
    use whittle_ir::{DType, Tensor};

    fn parts() -> PlanParts {
        PlanParts {
            steps: vec![Step::Host {
                op: HostOp::Softmax { rows: 1, cols: 2 },
                args: vec![Buf::Input(0), Buf::Arena(0)],
                name: "sm".into(),
            }],
            consts: vec![Arc::new(
                Tensor::new(vec![2], whittle_ir::TensorData::F32(vec![1.0, -2.5])).unwrap(),
            )],
            inputs: vec![InputSpec {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![1, 2],
            }],
            outputs: vec![OutputSpec {
                name: "y".into(),
                buf: Buf::Arena(0),
                dtype: DType::F32,
                shape: vec![1, 2],
            }],
            arena: plan_arena(&[BufferReq {
                bytes: 8,
                def: 0,
                last_use: 1,
            }]),
            ukr: Ukr::best(),
            kernel_count: 0,
        }
    }

    #[test]
    fn images_round_trip() {
        let img = encode(&parts(), &host_features()).expect("encodes");
        let back = decode(&img).expect("decodes");
        assert_eq!(format!("{:?}", back), format!("{:?}", parts()));
        assert_eq!(hash_of(&img), fingerprint(&img[HEADER..]));
    }

    #[test]
    fn damaged_images_are_refused_with_a_reason() {
        let img = encode(&parts(), &[]).expect("encodes");
        let err = |b: &[u8]| decode(b).expect_err("must be refused");
        assert!(err(b"junk").contains("bad magic"));
        assert!(err(&img[..img.len() - 1]).contains("header says"));
        let mut flipped = img.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(err(&flipped).contains("hash mismatch"));
        let mut fmt = img.clone();
        fmt[8] = 99;
        assert!(err(&fmt).contains("format 99"));
        for cut in 0..img.len() {
            assert!(decode(&img[..cut]).is_err(), "a {cut}-byte prefix decoded");
        }
    }

    #[test]
    fn foreign_cpus_and_versions_are_refused() {
        let img = encode(&parts(), &["no-such-feature"]).expect("encodes");
        assert!(decode(&img)
            .expect_err("unknown feature")
            .contains("no-such-feature"));
        let mut p = encode(&parts(), &[]).expect("encodes");
        let at = HEADER + "whittle ".len();
        p[at] = b'9';
        let h = fingerprint(&p[HEADER..]);
        p[16..24].copy_from_slice(&h.to_le_bytes());
        assert!(decode(&p)
            .expect_err("other version")
            .contains("compiled by whittle 9"));
    }
}
