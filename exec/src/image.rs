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
//! 40  weights_len  u64
//! 48  meta         UTF-8 lines: "whittle <version>", "cpu <feature>,<feature>,..."
//! ..  payload      the PlanParts, postcard-encoded; packed weights and constants are
//!                  (offset, length) references into the weight section (`crate::store`)
//! ..  zero padding to a multiple of 64 bytes from the image's start
//! ..  weights      each blob 64-byte aligned (relative to the image's start)
//! ```
//!
//! [`decode_static`] leaves the weights where they lie (an AOT object's read-only data,
//! 64-byte aligned): the plan reads them in place; [`decode`] copies them.
//!
//! The generated code is compiled for the compiling machine's CPU: `cpu` lists the
//! features it relied on, and decoding refuses (with a message naming them) on a CPU that
//! lacks any, as it refuses an image of another whittle version or format.

use crate::run::PlanParts;
use crate::store::{self, BLOB_ALIGN};

/// First bytes of every image.
pub const MAGIC: &[u8; 8] = b"WHTLAOT\0";
/// Version of the layout above; the runtime refuses any other.
pub const FORMAT: u32 = 3;
const HEADER: usize = 48;
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
pub const FEATURES: [&str; 12] = [
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
    let (payload, weights) = store::with_sink(|| postcard::to_stdvec(parts));
    let payload = payload.map_err(|e| format!("encode plan: {e}"))?;
    let mut out =
        Vec::with_capacity(HEADER + meta.len() + payload.len() + BLOB_ALIGN + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // hash, filled in below
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(&payload);
    out.resize(weights_at(out.len()), 0);
    out.extend_from_slice(&weights);
    let hash = fingerprint(&out[HEADER..]);
    out[16..24].copy_from_slice(&hash.to_le_bytes());
    Ok(out)
}

/// Where the weight section starts after `end` bytes of header, metadata and payload.
fn weights_at(end: usize) -> usize {
    end.div_ceil(BLOB_ALIGN) * BLOB_ALIGN
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

/// Checks magic, format, lengths, hash, version and CPU features; decodes the plan with
/// its weights copied to the heap.
pub fn decode(b: &[u8]) -> Result<PlanParts, String> {
    decode_in(b, false)
}

/// As [`decode`], but packed weights and constants stay in `b` and the plan reads them in
/// place (where `b` is aligned for them; copied otherwise). For images in a program's
/// read-only data.
pub fn decode_static(b: &'static [u8]) -> Result<PlanParts, String> {
    decode_in(b, true)
}

fn decode_in(b: &[u8], forever: bool) -> Result<PlanParts, String> {
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
    let (meta_len, payload_len, weights_len) = (len_at(b, 24)?, len_at(b, 32)?, len_at(b, 40)?);
    let payload_end = HEADER
        .checked_add(meta_len)
        .and_then(|m| m.checked_add(payload_len))
        .ok_or("plan image length overflows")?;
    let weights_start = weights_at(payload_end);
    let end = weights_start
        .checked_add(weights_len)
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
    let payload = &b[HEADER + meta_len..payload_end];
    store::with_source(&b[weights_start..], forever, || {
        postcard::from_bytes(payload)
    })
    .map_err(|e| format!("decode plan: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::Ukr;
    use crate::kernels::gemm::{MatRef, PackedB};
    use crate::plan::{plan_arena, Buf, BufferReq};
    use crate::steps::{BSource, HostOp, InputSpec, MatMulStep, OutputSpec, Step};
    use crate::store::ConstBuf;
    use std::sync::Arc;
    use whittle_ir::{DType, Tensor};

    fn parts() -> PlanParts {
        PlanParts {
            steps: vec![Step::Host {
                op: HostOp::Softmax { rows: 1, cols: 2 },
                args: vec![Buf::Input(0), Buf::Arena(0)],
                name: "sm".into(),
            }],
            consts: vec![ConstBuf::Tensor(Arc::new(
                Tensor::new(vec![2], whittle_ir::TensorData::F32(vec![1.0, -2.5])).unwrap(),
            ))],
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

    /// A plan with a packed B (k = 3, n = 5) and one constant.
    fn gemm_parts() -> PlanParts {
        let b: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 3.0).collect();
        let ukr = Ukr::best();
        // SAFETY: `b` is a row-major 3 × 5 matrix.
        let packed = unsafe {
            PackedB::pack(
                MatRef {
                    ptr: b.as_ptr(),
                    rs: 5,
                    cs: 1,
                },
                3,
                5,
                ukr.nr,
            )
        };
        let mut p = parts();
        p.steps.push(Step::MatMul(Box::new(MatMulStep {
            m: 1,
            k: 3,
            n: 5,
            a: Buf::Input(0),
            a_rs: 3,
            a_cs: 1,
            a_offsets: vec![0],
            b_index: vec![0],
            b: BSource::Packed(vec![packed]),
            out: Buf::Arena(0),
            alpha: 1.0,
            beta: 0.0,
            bias: None,
            act: whittle_ir::Activation::Linear,
            residual: None,
        })));
        p
    }

    /// A `'static` copy of `img` at a 64-byte-aligned address (as in an object).
    fn leak_aligned(img: &[u8]) -> &'static [u8] {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; img.len() + 64].into_boxed_slice());
        let skew = buf.as_ptr().align_offset(64);
        let out = &mut buf[skew..skew + img.len()];
        out.copy_from_slice(img);
        out
    }

    fn packed_of(p: &PlanParts) -> &PackedB {
        match p.steps.last() {
            Some(Step::MatMul(mm)) => match &mm.b {
                BSource::Packed(v) => &v[0],
                BSource::Runtime { .. } => panic!("packed"),
            },
            _ => panic!("the last step is the GEMM"),
        }
    }

    #[test]
    fn static_images_lend_their_weights_and_copies_own_them() {
        let p = gemm_parts();
        let img = encode(&p, &[]).expect("encodes");
        let lent = decode_static(leak_aligned(&img)).expect("decodes in place");
        assert!(packed_of(&lent).is_borrowed());
        assert!(matches!(lent.consts[0], ConstBuf::Static { .. }));
        let owned = decode(&img).expect("decodes");
        assert!(!packed_of(&owned).is_borrowed());
        assert!(matches!(owned.consts[0], ConstBuf::Tensor(_)));
        // Same values either way, and the same as before encoding.
        assert_eq!(
            format!("{:?}", packed_of(&p).data()),
            format!("{:?}", packed_of(&lent).data())
        );
        assert_eq!(packed_of(&owned).data(), packed_of(&lent).data());
        // SAFETY: both constants hold two f32 values.
        let read =
            |c: &ConstBuf| unsafe { std::slice::from_raw_parts(c.ptr() as *const f32, 2).to_vec() };
        assert_eq!(read(&lent.consts[0]), vec![1.0, -2.5]);
        assert_eq!(read(&owned.consts[0]), vec![1.0, -2.5]);
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
    fn mutated_payloads_with_a_valid_hash_never_panic() {
        let img = encode(&gemm_parts(), &[]).expect("encodes");
        let meta_len = len_at(&img, 24).unwrap();
        let start = HEADER + meta_len;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            let mut m = img.clone();
            for _ in 0..1 + round % 4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = start + (seed >> 33) as usize % (m.len() - start);
                m[at] ^= (seed >> 24) as u8 | 1;
            }
            let h = fingerprint(&m[HEADER..]);
            m[16..24].copy_from_slice(&h.to_le_bytes());
            // Either a plan or a reason; a panic or an abort fails the test.
            let _ = decode(&m);
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
