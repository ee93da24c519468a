//! The execution plan's memory: where each tensor lives (`Buf`) and the liveness-based
//! arena planner that gives every intermediate buffer an offset in one shared arena.

/// Where a kernel argument lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Buf {
    /// Graph input `i` (read-only).
    Input(usize),
    /// Constant `i` of the executable (read-only, host memory owned by the executable).
    Const(usize),
    /// Intermediate buffer `i`, placed in the arena by [`plan_arena`].
    Arena(usize),
}

/// Arena offsets are multiples of this many bytes (a cache line, and AVX-512 friendly).
pub const ALIGN: usize = 64;

/// One intermediate buffer: its size and the steps that write it first and read it last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BufferReq {
    pub bytes: usize,
    pub def: usize,
    pub last_use: usize,
}

impl BufferReq {
    fn overlaps(&self, o: &BufferReq) -> bool {
        self.def <= o.last_use && o.def <= self.last_use
    }
}

/// The arena layout: one offset per buffer, the arena size, and the naive total.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArenaPlan {
    pub offsets: Vec<usize>,
    /// Bytes the arena needs (peak of simultaneously live buffers, with alignment).
    pub peak_bytes: usize,
    /// Bytes if every buffer had its own allocation (aligned sizes summed).
    pub total_bytes: usize,
}

/// `n` rounded up to [`ALIGN`], saturating (a plan that large is refused by the budget).
fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN).saturating_mul(ALIGN)
}

/// Greedy planner: buffers in order of decreasing size each take the lowest aligned offset
/// that does not collide with an already placed buffer whose live range overlaps its own.
/// Live ranges are inclusive, so a kernel's output never shares memory with its inputs.
pub fn plan_arena(reqs: &[BufferReq]) -> ArenaPlan {
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(reqs[i].bytes), i));
    let mut offsets = vec![0usize; reqs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut peak = 0;
    for &i in &order {
        let size = align_up(reqs[i].bytes);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| reqs[j].overlaps(&reqs[i]))
            .map(|&j| {
                (
                    offsets[j],
                    offsets[j].saturating_add(align_up(reqs[j].bytes)),
                )
            })
            .collect();
        busy.sort_unstable();
        let mut off: usize = 0;
        for (s, e) in busy {
            if off.saturating_add(size) <= s {
                break;
            }
            off = off.max(e);
        }
        offsets[i] = off;
        peak = peak.max(off.saturating_add(size));
        placed.push(i);
    }
    let total_bytes = reqs
        .iter()
        .fold(0usize, |t, r| t.saturating_add(align_up(r.bytes)));
    ArenaPlan {
        offsets,
        peak_bytes: peak,
        total_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_memory() {
        // a: steps 0..1, b: 1..2, c: 2..3. a and c never overlap, so they share offset 0.
        let r = |bytes, def, last_use| BufferReq {
            bytes,
            def,
            last_use,
        };
        let p = plan_arena(&[r(100, 0, 1), r(64, 1, 2), r(128, 2, 3)]);
        assert_eq!(p.total_bytes, 128 + 64 + 128);
        assert_eq!(p.offsets, vec![0, 128, 0]);
        assert_eq!(p.peak_bytes, 192);
    }

    #[test]
    fn overlapping_buffers_never_collide() {
        let reqs: Vec<BufferReq> = (0..20)
            .map(|i| BufferReq {
                bytes: 1 + (i * 37) % 300,
                def: i % 7,
                last_use: i % 7 + i % 3,
            })
            .collect();
        let p = plan_arena(&reqs);
        for i in 0..reqs.len() {
            for j in 0..i {
                if reqs[i].overlaps(&reqs[j]) {
                    let (a0, a1) = (p.offsets[i], p.offsets[i] + reqs[i].bytes);
                    let (b0, b1) = (p.offsets[j], p.offsets[j] + reqs[j].bytes);
                    assert!(a1 <= b0 || b1 <= a0, "{i} and {j} collide");
                }
            }
            assert_eq!(p.offsets[i] % ALIGN, 0);
        }
        assert!(p.peak_bytes <= p.total_bytes);
    }
}
