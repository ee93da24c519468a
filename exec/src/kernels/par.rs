//! Work splitting on the executable's thread pool (rayon): `par_for` runs `n` independent
//! tasks, in parallel when the current pool has more than one thread, and `SendPtr` lets
//! tasks share raw buffer pointers whose disjointness the caller guarantees.

use rayon::prelude::*;

/// A raw pointer that may cross threads. The task that uses it must only touch memory no
/// other task touches (or only read).
#[derive(Clone, Copy, Debug)]
pub struct SendPtr<T>(pub *mut T);

// SAFETY: see the type's contract: callers split buffers into disjoint parts per task.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// Threads of the pool the caller runs in (1 outside any pool is not assumed: rayon's
/// global pool answers then; the executable always runs inside its own pool).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `f(0..n)`, spread over the current pool's threads when there is more than one.
pub fn par_for(n: usize, f: impl Fn(usize) + Sync + Send) {
    if n <= 1 || threads() <= 1 {
        (0..n).for_each(f);
    } else {
        (0..n).into_par_iter().for_each(f);
    }
}

/// Splits `rows` into at most `threads()` chunks of at least `min_rows` rows (a multiple of
/// `align`, except the last); returns `(start, len)` per chunk.
pub fn row_chunks(rows: usize, min_rows: usize, align: usize) -> Vec<(usize, usize)> {
    let t = threads().max(1);
    let align = align.max(1);
    let parts = t.min(rows / min_rows.max(1)).max(1);
    let per = rows.div_ceil(parts).div_ceil(align) * align;
    let mut v = Vec::with_capacity(parts);
    let mut s = 0;
    while s < rows {
        let len = per.min(rows - s);
        v.push((s, len));
        s += len;
    }
    if v.is_empty() {
        v.push((0, 0));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_chunks_cover_every_row_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(row_chunks(128, 8, 8), vec![(0, 48), (48, 48), (96, 32)]);
            assert_eq!(row_chunks(5, 8, 1), vec![(0, 5)]);
            assert_eq!(row_chunks(0, 8, 1), vec![(0, 0)]);
        });
    }
}
