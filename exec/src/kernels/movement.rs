//! Data movement on raw bytes of any dtype: a strided copy (Transpose, Slice, Expand are all
//! one `StridedCopy` with different source strides), Concat, Gather with i64/i32 indices,
//! and Cast. Geometry is fixed at compile time; only Gather's indices are checked at run time.

use super::par::{par_for, SendPtr};
use whittle_ir::{DType, Tensor};

/// `out[i0, .., in] = src[offset + Σ i_d·strides[d]]` (strides in elements, may be 0 for
/// broadcast or negative for reversed slices), `out` dense row-major.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StridedCopy {
    pub elem: usize,
    pub dims: Vec<usize>,
    pub strides: Vec<isize>,
    pub offset: isize,
}

impl StridedCopy {
    /// Builds the copy and merges adjacent dims that are contiguous in the source too.
    pub fn new(elem: usize, dims: &[usize], strides: &[isize], offset: isize) -> StridedCopy {
        let mut d: Vec<usize> = Vec::new();
        let mut s: Vec<isize> = Vec::new();
        for (&n, &st) in dims.iter().zip(strides) {
            if n == 1 {
                continue;
            }
            match (d.last_mut(), s.last_mut()) {
                (Some(pn), Some(ps)) if *ps == st * n as isize => {
                    *pn *= n;
                    *ps = st;
                }
                _ => {
                    d.push(n);
                    s.push(st);
                }
            }
        }
        if dims.contains(&0) {
            d = vec![0];
            s = vec![1];
        }
        StridedCopy {
            elem,
            dims: d,
            strides: s,
            offset,
        }
    }

    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// # Safety
    /// Every source index the geometry addresses is readable from `src`, `dst` holds
    /// `numel()·elem` writable bytes, and the two do not overlap.
    pub unsafe fn run(&self, src: *const u8, dst: *mut u8) {
        let e = self.elem as isize;
        let r = self.dims.len();
        if r == 0 {
            std::ptr::copy_nonoverlapping(src.offset(self.offset * e), dst, self.elem);
            return;
        }
        let inner = self.dims[r - 1];
        let inner_st = self.strides[r - 1];
        let outer: usize = self.dims[..r - 1].iter().product();
        let (sp, dp) = (SendPtr(src as *mut u8), SendPtr(dst));
        let rows_per_task = (64 * 1024 / (inner * self.elem).max(1)).max(1);
        let tasks = outer.div_ceil(rows_per_task);
        par_for(tasks, |t| {
            let mut idx = vec![0usize; r - 1];
            let r0 = t * rows_per_task;
            let r1 = (r0 + rows_per_task).min(outer);
            // Unflatten r0 into outer indices.
            let mut rem = r0;
            for d in (0..r - 1).rev() {
                idx[d] = rem % self.dims[d];
                rem /= self.dims[d];
            }
            for row in r0..r1 {
                let so = self.offset
                    + idx
                        .iter()
                        .zip(&self.strides)
                        .map(|(&i, &st)| i as isize * st)
                        .sum::<isize>();
                // SAFETY: the caller's contract covers every addressed element.
                unsafe {
                    let s = sp.get().offset(so * e);
                    let o = dp.get().add(row * inner * self.elem);
                    copy_row(s, o, inner, inner_st, self.elem);
                }
                for d in (0..r - 1).rev() {
                    idx[d] += 1;
                    if idx[d] < self.dims[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        });
    }
}

/// Copies `n` elements of `elem` bytes from `s` (stride `st` elements) to dense `o`.
unsafe fn copy_row(s: *const u8, o: *mut u8, n: usize, st: isize, elem: usize) {
    if st == 1 {
        std::ptr::copy_nonoverlapping(s, o, n * elem);
        return;
    }
    macro_rules! typed {
        ($t:ty) => {{
            let (s, o) = (s as *const $t, o as *mut $t);
            for j in 0..n {
                *o.add(j) = std::ptr::read_unaligned(s.offset(j as isize * st));
            }
        }};
    }
    match elem {
        4 => typed!(u32),
        8 => typed!(u64),
        2 => typed!(u16),
        1 => typed!(u8),
        _ => {
            for j in 0..n {
                std::ptr::copy_nonoverlapping(
                    s.offset(j as isize * st * elem as isize),
                    o.add(j * elem),
                    elem,
                );
            }
        }
    }
}

/// Concat: `outer` blocks; input `i` contributes `chunk_bytes[i]` contiguous bytes per block.
///
/// # Safety
/// Input `i` holds `outer·chunk_bytes[i]` readable bytes; `dst` the sum, writable.
pub unsafe fn concat(srcs: &[*const u8], chunk_bytes: &[usize], outer: usize, dst: *mut u8) {
    let total: usize = chunk_bytes.iter().sum();
    for o in 0..outer {
        let mut at = o * total;
        for (s, &cb) in srcs.iter().zip(chunk_bytes) {
            std::ptr::copy_nonoverlapping(s.add(o * cb), dst.add(at), cb);
            at += cb;
        }
    }
}

/// Gather geometry: `data` is `outer × axis_len × inner_bytes`, `indices` has `count`
/// entries, `out` is `outer × count × inner_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatherGeom {
    pub outer: usize,
    pub axis_len: usize,
    pub inner_bytes: usize,
    pub count: usize,
    pub idx_dtype: DType,
}

/// # Safety
/// Buffers hold what [`GatherGeom`] says; `idx` holds `count` values of `idx_dtype`.
pub unsafe fn gather(
    g: &GatherGeom,
    data: *const u8,
    idx: *const u8,
    out: *mut u8,
) -> Result<(), String> {
    let mut rows = Vec::with_capacity(g.count);
    for j in 0..g.count {
        let v = match g.idx_dtype {
            DType::I64 => std::ptr::read_unaligned((idx as *const i64).add(j)),
            DType::I32 => std::ptr::read_unaligned((idx as *const i32).add(j)) as i64,
            d => return Err(format!("Gather indices of type {d} are not supported")),
        };
        let n = g.axis_len as i64;
        let k = if v < 0 { v + n } else { v };
        if k < 0 || k >= n {
            return Err(format!(
                "Gather index {v} is out of range for an axis of {n}"
            ));
        }
        rows.push(k as usize);
    }
    let ib = g.inner_bytes;
    let (dp, op) = (SendPtr(data as *mut u8), SendPtr(out));
    let rows = &rows;
    par_for(g.outer, |o| {
        for (j, &k) in rows.iter().enumerate() {
            // SAFETY: k < axis_len was checked; the geometry bounds every offset.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    dp.get().add((o * g.axis_len + k) * ib),
                    op.get().add((o * g.count + j) * ib),
                    ib,
                );
            }
        }
    });
    Ok(())
}

/// Cast `n` elements from `from` to `to`, with the exact semantics of `Tensor::cast`
/// (fast paths for the conversions attention masks use).
///
/// # Safety
/// `src` holds `n` readable values of `from`, `dst` `n` writable values of `to`.
pub unsafe fn cast(
    src: *const u8,
    from: DType,
    dst: *mut u8,
    to: DType,
    n: usize,
) -> Result<(), String> {
    match (from, to) {
        (DType::I64, DType::F32) => {
            let s = std::slice::from_raw_parts(src as *const i64, n);
            let d = std::slice::from_raw_parts_mut(dst as *mut f32, n);
            d.iter_mut().zip(s).for_each(|(d, &s)| *d = s as f32);
        }
        (DType::Bool, DType::F32) | (DType::U8, DType::F32) => {
            let s = std::slice::from_raw_parts(src, n);
            let d = std::slice::from_raw_parts_mut(dst as *mut f32, n);
            d.iter_mut().zip(s).for_each(|(d, &s)| *d = s as f32);
        }
        _ if from == to => std::ptr::copy_nonoverlapping(src, dst, n * from.size_of()),
        _ => {
            let bytes = std::slice::from_raw_parts(src, n * from.size_of());
            let t = Tensor::from_le_bytes(from, vec![n], bytes).map_err(|e| e.to_string())?;
            let out = t.cast(to).to_le_bytes();
            std::ptr::copy_nonoverlapping(out.as_ptr(), dst, out.len().min(n * to.size_of()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_copy_transposes_and_merges_dims() {
        // [2,3] transposed: out [3,2] with source strides [1, 3].
        let src: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let c = StridedCopy::new(4, &[3, 2], &[1, 3], 0);
        let mut out = vec![0f32; 6];
        unsafe { c.run(src.as_ptr() as *const u8, out.as_mut_ptr() as *mut u8) };
        assert_eq!(out, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // A contiguous [2,3,4] copy merges to one dim.
        assert_eq!(
            StridedCopy::new(4, &[2, 3, 4], &[12, 4, 1], 0).dims,
            vec![24]
        );
        // Reversed slice: offset 5, stride -1.
        let c = StridedCopy::new(4, &[3], &[-2], 5);
        unsafe { c.run(src.as_ptr() as *const u8, out.as_mut_ptr() as *mut u8) };
        assert_eq!(&out[..3], &[5.0, 3.0, 1.0]);
    }

    #[test]
    fn gather_checks_indices_and_wraps_negatives() {
        let data: Vec<f32> = (0..6).map(|i| i as f32).collect(); // [3, 2]
        let g = GatherGeom {
            outer: 1,
            axis_len: 3,
            inner_bytes: 8,
            count: 2,
            idx_dtype: DType::I64,
        };
        let mut out = [0f32; 4];
        let idx = [-1i64, 0];
        unsafe {
            gather(
                &g,
                data.as_ptr() as _,
                idx.as_ptr() as _,
                out.as_mut_ptr() as _,
            )
            .unwrap();
        }
        assert_eq!(out, [4.0, 5.0, 0.0, 1.0]);
        let bad = [3i64, 0];
        let r = unsafe {
            gather(
                &g,
                data.as_ptr() as _,
                bad.as_ptr() as _,
                out.as_mut_ptr() as _,
            )
        };
        assert!(r.is_err());
    }
}
