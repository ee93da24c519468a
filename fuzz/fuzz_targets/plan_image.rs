//! Fuzz target: the plan-image decoder (`whittle_exec::image`) on arbitrary bytes returns a
//! plan or an error, never panics or aborts. The first byte picks the mode:
//!
//! - bit 0 clear: the rest is a whole image, decoded as it is (magic, format, lengths,
//!   hash; random bytes rarely get past the hash, which is the point of this mode);
//! - bit 0 set: the rest is `weights_len: u16 LE`, then the postcard payload and the
//!   weight section (its last `weights_len` bytes); the harness wraps them in a valid
//!   header, metadata (this whittle version, no CPU features) and hash, as
//!   `exec/src/image.rs`'s mutation test does, so the fuzzer reaches payload decoding.
//!
//! Bit 1 set decodes with `decode_static` (weights borrowed in place from an aligned
//! buffer), clear with `decode` (copied). A plan that decodes must encode and decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whittle_exec::image;

/// The header's size (`exec/src/image.rs`: magic, format, reserved, hash, three lengths).
const HEADER: usize = 48;
/// Room for the largest image the harness builds (inputs are at most `-max_len`).
const CAP: usize = 1 << 20;

fn wrap(payload: &[u8], weights: &[u8]) -> Vec<u8> {
    let meta = format!("whittle {}\ncpu \n", image::VERSION);
    let mut out = Vec::with_capacity(HEADER + meta.len() + payload.len() + 64 + weights.len());
    out.extend_from_slice(image::MAGIC);
    out.extend_from_slice(&image::FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    for n in [meta.len(), payload.len(), weights.len()] {
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(64) * 64, 0);
    out.extend_from_slice(weights);
    let h = image::fingerprint(&out[HEADER..]);
    out[16..24].copy_from_slice(&h.to_le_bytes());
    out
}

/// A 64-byte-aligned buffer that lives for the whole run, for `decode_static`.
fn static_buf() -> *mut u8 {
    static AT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        let b: &'static mut [u8] = Box::leak(vec![0u8; CAP + 64].into_boxed_slice());
        let skew = b.as_ptr().align_offset(64);
        b[skew..].as_mut_ptr() as usize
    }) as *mut u8
}

fn decode(img: &[u8], in_place: bool) -> Result<whittle_exec::PlanParts, String> {
    if !in_place || img.len() > CAP {
        return image::decode(img);
    }
    let p = static_buf();
    // SAFETY: `p` has room for CAP bytes and lives forever. `decode_static` requires the
    // bytes never change while a plan borrows them: every plan decoded from this buffer is
    // dropped before the next input overwrites it (one input at a time, one thread).
    let b: &'static [u8] = unsafe {
        std::ptr::copy_nonoverlapping(img.as_ptr(), p, img.len());
        std::slice::from_raw_parts(p, img.len())
    };
    image::decode_static(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let in_place = mode & 2 != 0;
    let img = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let Some((w, body)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let w = (u16::from_le_bytes(*w) as usize).min(body.len());
        let (payload, weights) = body.split_at(body.len() - w);
        wrap(payload, weights)
    };
    if let Ok(parts) = decode(&img, in_place) {
        let again = image::encode(&parts, &[]).expect("a decoded plan re-encodes");
        drop(parts);
        if let Err(e) = image::decode(&again) {
            panic!("a decoded plan, re-encoded, does not decode: {e}");
        }
    }
});
