//! Size arithmetic and the memory budget: the one place where element counts, byte sizes
//! and allocations sized by a model or an input are checked.
//!
//! Invariant: a shape is *valid* when the product of its non-zero dims fits in `isize`
//! (counted in bytes for its dtype). Then every partial product of its dims (outer and inner
//! extents, strides) fits too, so kernels may multiply a valid shape's dims unchecked.
//! Every `Tensor` has a valid shape; shape inference refuses a node whose output shape is
//! not valid; allocations sized by a model go through [`check_alloc`] / [`try_vec`], which
//! refuse more than the process-wide budget ([`max_memory`], `--max-memory`) and report a
//! failed allocation instead of aborting.

use std::sync::atomic::{AtomicU64, Ordering};

/// 0 means "not set yet": the first read fills in the machine's memory.
static MAX_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Allocations at least this large are tried for real before a kernel relies on them, so
/// that an address-space limit (`ulimit -v`) below the budget gives an error, not an abort.
const PROBE_BYTES: u64 = 64 << 20;

/// The largest single allocation (bytes) a model or input may ask for. Defaults to the
/// machine's physical memory (`MemTotal`), or 16 GiB where that cannot be read.
pub fn max_memory() -> u64 {
    match MAX_MEMORY.load(Ordering::Relaxed) {
        0 => {
            let m = machine_memory().unwrap_or(16 << 30);
            // Another thread may have set a limit meanwhile: keep theirs.
            let _ = MAX_MEMORY.compare_exchange(0, m, Ordering::Relaxed, Ordering::Relaxed);
            MAX_MEMORY.load(Ordering::Relaxed)
        }
        m => m,
    }
}

/// Sets the memory budget for the whole process (`--max-memory`, `whittle::set_max_memory`,
/// `whittle_set_max_memory`). 0 restores the default.
pub fn set_max_memory(bytes: u64) {
    let v = if bytes == 0 {
        machine_memory().unwrap_or(16 << 30)
    } else {
        bytes
    };
    MAX_MEMORY.store(v, Ordering::Relaxed);
}

fn machine_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Parses a memory size as the CLI takes it: bytes, or a number with a K/M/G/T suffix
/// (binary units, optional `B`/`iB`): `8G`, `512MiB`, `1000000`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let stripped = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match stripped.chars().last() {
        Some('K') => (&stripped[..stripped.len() - 1], 10),
        Some('M') => (&stripped[..stripped.len() - 1], 20),
        Some('G') => (&stripped[..stripped.len() - 1], 30),
        Some('T') => (&stripped[..stripped.len() - 1], 40),
        _ => (stripped, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a memory size (e.g. 8G, 512M, 1000000)"))?;
    let v = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("memory size '{s}' is too large"))?;
    if v == 0 {
        return Err("the memory limit must be positive".into());
    }
    Ok(v)
}

/// Element count of a shape, or `None` when it overflows. A shape with a zero dim counts 0
/// elements only if its other dims alone do not overflow (see the module invariant).
pub fn numel(shape: &[usize]) -> Option<usize> {
    let mut nonzero: usize = 1;
    let mut zero = false;
    for &d in shape {
        if d == 0 {
            zero = true;
        } else {
            nonzero = nonzero.checked_mul(d)?;
        }
    }
    if nonzero > isize::MAX as usize {
        return None;
    }
    Some(if zero { 0 } else { nonzero })
}

/// Bytes that `shape` of elements of `elem_size` bytes take, with the same validity rule
/// as [`numel`]; the error says which shape overflowed.
pub fn byte_size(shape: &[usize], elem_size: usize) -> Result<usize, String> {
    let err = || format!("shape {shape:?} has more elements than memory can address");
    let n = numel(shape).ok_or_else(err)?;
    // The non-zero dims' product times the element size must fit as well.
    let nonzero = shape.iter().filter(|&&d| d != 0).product::<usize>();
    match nonzero.checked_mul(elem_size.max(1)) {
        Some(b) if b <= isize::MAX as usize => Ok(n * elem_size),
        _ => Err(err()),
    }
}

/// Checks that one allocation of `bytes` is within the budget and can be had; `what` says
/// what it is for. Small requests are only compared with the budget; large ones are also
/// tried (allocated and released untouched), so a failed allocation is an error here
/// instead of an abort later.
pub fn check_alloc(bytes: u64, what: &str) -> Result<(), String> {
    let max = max_memory();
    if bytes > max {
        return Err(format!(
            "{what} needs {bytes} bytes, over the memory limit of {max} bytes (--max-memory)"
        ));
    }
    if bytes >= PROBE_BYTES {
        let n = usize::try_from(bytes).map_err(|_| format!("{what} needs {bytes} bytes"))?;
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| format!("{what} needs {bytes} bytes, and the allocation failed"))?;
    }
    Ok(())
}

/// Checks a tensor of `shape` and `elem_size`-byte elements: valid shape, within budget.
pub fn check_tensor(shape: &[usize], elem_size: usize, what: &str) -> Result<usize, String> {
    let bytes = byte_size(shape, elem_size).map_err(|e| format!("{what}: {e}"))?;
    check_alloc(bytes as u64, what)?;
    Ok(bytes)
}

/// A vector of `n` copies of `fill`, allocated fallibly against the budget.
pub fn try_vec<T: Clone>(n: usize, fill: T, what: &str) -> Result<Vec<T>, String> {
    let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    check_alloc(bytes, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("{what} needs {bytes} bytes, and the allocation failed"))?;
    v.resize(n, fill);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(numel(&[]), Some(1));
        assert_eq!(numel(&[2, 3]), Some(6));
        assert_eq!(numel(&[0, 5]), Some(0));
        assert_eq!(numel(&[1 << 32, 1 << 32]), None);
        assert_eq!(numel(&[1 << 32, 1 << 32, 0]), None);
        assert_eq!(numel(&[(1 << 63) + 1, 2]), None);
        assert!(byte_size(&[1 << 62], 4).is_err());
        assert_eq!(byte_size(&[3, 4], 4), Ok(48));
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_memory("8G"), Ok(8 << 30));
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("1000"), Ok(1000));
        assert!(parse_memory("x").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("99999999999T").is_err());
    }

    #[test]
    fn budget() {
        assert!(check_alloc(u64::MAX, "t")
            .unwrap_err()
            .contains("memory limit"));
        assert!(try_vec(1usize << 61, 0u8, "t").is_err());
        assert_eq!(try_vec(3, 1u8, "t").unwrap(), vec![1, 1, 1]);
    }
}
