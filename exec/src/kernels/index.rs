//! Index-driven host kernels for any dtype: a gathered copy whose source offsets are
//! computed at compile time (Split, Tile, Pad, Trilu, Resize-nearest, ...), GatherElements
//! with run-time indices, reductions over any axes, ArgMax/ArgMin, and per-axis kernels
//! (Softmax/LogSoftmax on any axis, CumSum, TopK) on an `outer × axis × inner` layout.

use super::ewise::{ld_f, ld_i, st_f, st_i};
use super::par::{par_for, SendPtr};
use whittle_ir::{DType, ReduceOp};

/// Offsets (in elements) of every element of a dense tensor of `shape` read through
/// `strides` from `base`.
pub fn strided_offsets(shape: &[usize], strides: &[usize], base: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(base + idx.iter().zip(strides).map(|(&i, &s)| i * s).sum::<usize>());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Dense row-major strides of `shape` in elements.
pub fn dense(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// `out[i] = src[src_idx[i]]`, or `fill` where the index is `usize::MAX`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexCopy {
    pub elem: usize,
    pub src_idx: Vec<usize>,
    pub fill: Vec<u8>,
}

impl IndexCopy {
    /// # Safety
    /// `src` covers every index, `dst` holds `src_idx.len()·elem` bytes.
    pub unsafe fn run(&self, src: *const u8, dst: *mut u8) {
        let e = self.elem;
        for (i, &k) in self.src_idx.iter().enumerate() {
            if k == usize::MAX {
                let n = self.fill.len().min(e);
                std::ptr::copy_nonoverlapping(self.fill.as_ptr(), dst.add(i * e), n);
            } else {
                std::ptr::copy_nonoverlapping(src.add(k * e), dst.add(i * e), e);
            }
        }
    }
}

/// GatherElements: for output element `o`, `src = base[o] + idx[o]·axis_stride`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GatherElems {
    pub elem: usize,
    pub base: Vec<usize>,
    pub axis_len: usize,
    pub axis_stride: usize,
    pub idx_dt: DType,
}

impl GatherElems {
    /// # Safety
    /// Buffers as the geometry states; indices are checked here.
    pub unsafe fn run(&self, src: *const u8, idx: *const u8, dst: *mut u8) -> Result<(), String> {
        let e = self.elem;
        let n = self.axis_len as i128;
        for (o, &b) in self.base.iter().enumerate() {
            let v = ld_i(self.idx_dt, idx, o);
            let k = if v < 0 { v + n } else { v };
            if k < 0 || k >= n {
                return Err(format!("index {v} is out of range for an axis of {n}"));
            }
            let s = b + k as usize * self.axis_stride;
            std::ptr::copy_nonoverlapping(src.add(s * e), dst.add(o * e), e);
        }
        Ok(())
    }
}

/// GatherND: each index tuple of length `k` picks a slice of `slice` elements.
/// Batch `b` of the data starts at `b·batch_stride`; its tuples are `tuples` consecutive
/// rows of the index tensor, and their slices fill consecutive output slots.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GatherNd {
    pub elem: usize,
    pub batches: usize,
    pub batch_stride: usize,
    pub tuples: usize,
    /// Sizes and strides (in elements) of the `k` indexed data dims.
    pub dims: Vec<usize>,
    pub strides: Vec<usize>,
    pub slice: usize,
    pub idx_dt: DType,
}

impl GatherNd {
    /// # Safety
    /// Buffers as the geometry states; indices are checked here.
    pub unsafe fn run(&self, src: *const u8, idx: *const u8, dst: *mut u8) -> Result<(), String> {
        let (e, k) = (self.elem, self.dims.len());
        for b in 0..self.batches {
            for t in 0..self.tuples {
                let row = b * self.tuples + t;
                let mut off = b * self.batch_stride;
                for j in 0..k {
                    let n = self.dims[j] as i128;
                    let v = ld_i(self.idx_dt, idx, row * k + j);
                    let i = if v < 0 { v + n } else { v };
                    if i < 0 || i >= n {
                        return Err(format!(
                            "GatherND index {v} is out of range for a dim of {n}"
                        ));
                    }
                    off += i as usize * self.strides[j];
                }
                let bytes = self.slice * e;
                std::ptr::copy_nonoverlapping(src.add(off * e), dst.add(row * bytes), bytes);
            }
        }
        Ok(())
    }
}

/// A reduction: output `o` folds `x[kept[o] + r]` for `r` in `red`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reduce {
    pub op: ReduceOp,
    pub kept: Vec<usize>,
    pub red: Vec<usize>,
    pub dt: DType,
    /// For integer Max/Min of an empty set: the dtype's lowest and highest values.
    pub lo_hi: (i128, i128),
}

impl Reduce {
    /// # Safety
    /// `x` covers every offset, `y` holds `kept.len()` values of `dt`.
    pub unsafe fn run(&self, x: *const u8, y: *mut u8) {
        use ReduceOp::*;
        let (xp, yp) = (SendPtr(x as *mut u8), SendPtr(y));
        let dt = self.dt;
        let cnt = self.red.len() as f64;
        let contiguous = self.red.iter().enumerate().all(|(i, &r)| r == i);
        if dt == DType::F32 && contiguous && matches!(self.op, Sum | Mean | Max | Min) {
            // Fast path (e.g. global pooling): f32 rows, summed in f64.
            let n = self.red.len();
            par_for(self.kept.len(), |o| {
                // SAFETY: kept[o] + n - 1 is inside x; o inside y.
                unsafe {
                    let row =
                        std::slice::from_raw_parts((xp.get() as *const f32).add(self.kept[o]), n);
                    let r = match self.op {
                        Sum | Mean => {
                            // Eight f64 lanes (vectorizes), then the lanes and the tail.
                            let mut acc = [0f64; 8];
                            let chunks = row.chunks_exact(8);
                            let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
                            for c in chunks {
                                for (a, &v) in acc.iter_mut().zip(c) {
                                    *a += v as f64;
                                }
                            }
                            let s = acc.iter().sum::<f64>() + tail;
                            if self.op == Mean {
                                s / cnt
                            } else {
                                s
                            }
                        }
                        _ => {
                            let max = self.op == Max;
                            let init = if max {
                                f32::NEG_INFINITY
                            } else {
                                f32::INFINITY
                            };
                            row.iter().fold(init, |a, &v| {
                                if a.is_nan() || v.is_nan() {
                                    f32::NAN
                                } else if max {
                                    a.max(v)
                                } else {
                                    a.min(v)
                                }
                            }) as f64
                        }
                    };
                    *(yp.get() as *mut f32).add(o) = r as f32;
                }
            });
            return;
        }
        par_for(self.kept.len().div_ceil(256), |t| {
            let o1 = ((t + 1) * 256).min(self.kept.len());
            for o in t * 256..o1 {
                let b = self.kept[o];
                // SAFETY: offsets come from the checked geometry.
                unsafe {
                    if dt.is_float() {
                        let vals = self.red.iter().map(|&r| ld_f(dt, xp.get(), b + r));
                        let r = match self.op {
                            Sum => vals.sum(),
                            Mean => vals.sum::<f64>() / cnt,
                            Max => vals.fold(f64::NEG_INFINITY, |a, v| {
                                if a.is_nan() || v.is_nan() {
                                    f64::NAN
                                } else {
                                    a.max(v)
                                }
                            }),
                            Min => vals.fold(f64::INFINITY, |a, v| {
                                if a.is_nan() || v.is_nan() {
                                    f64::NAN
                                } else {
                                    a.min(v)
                                }
                            }),
                            Prod => vals.product(),
                            SumSquare => vals.map(|v| v * v).sum(),
                            L1 => vals.map(f64::abs).sum(),
                            L2 => vals.map(|v| v * v).sum::<f64>().sqrt(),
                            LogSum => vals.sum::<f64>().ln(),
                            LogSumExp => {
                                let mx = self
                                    .red
                                    .iter()
                                    .map(|&r| ld_f(dt, xp.get(), b + r))
                                    .filter(|v| v.is_finite())
                                    .fold(f64::NEG_INFINITY, f64::max);
                                let mx = if mx.is_finite() { mx } else { 0.0 };
                                vals.map(|v| (v - mx).exp()).sum::<f64>().ln() + mx
                            }
                        };
                        st_f(dt, yp.get(), o, r);
                    } else {
                        let vals = self.red.iter().map(|&r| ld_i(dt, xp.get(), b + r));
                        let r = match self.op {
                            Sum => vals.fold(0i128, i128::wrapping_add),
                            Mean => (vals.fold(0i128, i128::wrapping_add) as f64 / cnt) as i128,
                            Max => vals.max().unwrap_or(self.lo_hi.0),
                            Min => vals.min().unwrap_or(self.lo_hi.1),
                            Prod => vals.fold(1i128, i128::wrapping_mul),
                            SumSquare => vals.fold(0i128, |a, v| a.wrapping_add(v.wrapping_mul(v))),
                            L1 => vals.fold(0i128, |a, v| a.wrapping_add(v.abs())),
                            _ => {
                                (vals.map(|v| (v as f64) * (v as f64)).sum::<f64>()).sqrt() as i128
                            }
                        };
                        st_i(dt, yp.get(), o, r);
                    }
                }
            }
        });
    }
}

/// What a per-axis kernel computes on each `axis`-long line.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AxisFn {
    Softmax,
    LogSoftmax,
    CumSum {
        exclusive: bool,
        reverse: bool,
    },
    /// ArgMax/ArgMin: i64 output with one value per line.
    Arg {
        max: bool,
        last: bool,
    },
    /// TopK: values then i64 indices, `k` per line.
    TopK {
        k: usize,
        largest: bool,
    },
}

/// A per-axis kernel on `outer × axis × inner` (lines along `axis`, stride `inner`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AxisOp {
    pub f: AxisFn,
    pub outer: usize,
    pub axis: usize,
    pub inner: usize,
    pub dt: DType,
}

impl AxisOp {
    /// Length of each output line.
    fn out_len(&self) -> usize {
        match self.f {
            AxisFn::Arg { .. } => 1,
            AxisFn::TopK { k, .. } => k,
            _ => self.axis,
        }
    }

    /// # Safety
    /// `x` holds `outer·axis·inner` values of `dt`; `outs` the outputs of the geometry.
    pub unsafe fn run(&self, x: *const u8, outs: &[*mut u8]) -> Result<(), String> {
        let (ax, inner, dt) = (self.axis, self.inner, self.dt);
        let ol = self.out_len();
        let xp = SendPtr(x as *mut u8);
        let op: Vec<SendPtr<u8>> = outs.iter().map(|&p| SendPtr(p)).collect();
        if op.is_empty() || (matches!(self.f, AxisFn::TopK { .. }) && op.len() < 2) {
            return Err("missing output".into());
        }
        par_for(self.outer, |o| {
            let mut line = vec![0f64; ax];
            let mut iline = vec![0i128; ax];
            for i in 0..inner {
                let at = |j: usize| (o * ax + j) * inner + i;
                let ot = |j: usize| (o * ol + j) * inner + i;
                // SAFETY: indices stay inside the geometry.
                unsafe {
                    for j in 0..ax {
                        if dt.is_float() {
                            line[j] = ld_f(dt, xp.get(), at(j));
                        } else {
                            iline[j] = ld_i(dt, xp.get(), at(j));
                            line[j] = iline[j] as f64;
                        }
                    }
                    let y = op[0].get();
                    match self.f {
                        AxisFn::Softmax | AxisFn::LogSoftmax => {
                            let mx = line.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let s: f64 = line.iter().map(|v| (v - mx).exp()).sum();
                            for (j, &v) in line.iter().enumerate() {
                                let r = if self.f == AxisFn::Softmax {
                                    (v - mx).exp() / s
                                } else {
                                    v - mx - s.ln()
                                };
                                st_f(dt, y, ot(j), r);
                            }
                        }
                        AxisFn::CumSum { exclusive, reverse } => {
                            let (mut fa, mut ia) = (0f64, 0i128);
                            for s in 0..ax {
                                let j = if reverse { ax - 1 - s } else { s };
                                if exclusive {
                                    if dt.is_float() {
                                        st_f(dt, y, ot(j), fa);
                                    } else {
                                        st_i(dt, y, ot(j), ia);
                                    }
                                }
                                fa += line[j];
                                ia = ia.wrapping_add(iline[j]);
                                if !exclusive {
                                    if dt.is_float() {
                                        st_f(dt, y, ot(j), fa);
                                    } else {
                                        st_i(dt, y, ot(j), ia);
                                    }
                                }
                            }
                        }
                        AxisFn::Arg { max, last } => {
                            let mut best = 0usize;
                            for j in 1..ax {
                                let (v, b) = (line[j], line[best]);
                                let better = if max { v > b } else { v < b };
                                if better || (last && v == b) {
                                    best = j;
                                }
                            }
                            std::ptr::write_unaligned((y as *mut i64).add(ot(0)), best as i64);
                        }
                        AxisFn::TopK { k, largest } => {
                            let mut ord: Vec<usize> = (0..ax).collect();
                            ord.sort_by(|&a, &b| {
                                // numpy order, as ir::eval: integers exactly, NaN above
                                // every float (a total order, so the sort is sound).
                                let c = if dt.is_float() {
                                    line[a].is_nan().cmp(&line[b].is_nan()).then(
                                        line[a]
                                            .partial_cmp(&line[b])
                                            .unwrap_or(std::cmp::Ordering::Equal),
                                    )
                                } else {
                                    iline[a].cmp(&iline[b])
                                };
                                let c = if largest { c.reverse() } else { c };
                                c.then(a.cmp(&b))
                            });
                            let yi = op[1].get() as *mut i64;
                            for (j, &src) in ord.iter().take(k).enumerate() {
                                if dt.is_float() {
                                    st_f(dt, y, ot(j), line[src]);
                                } else {
                                    st_i(dt, y, ot(j), iline[src]);
                                }
                                std::ptr::write_unaligned(yi.add(ot(j)), src as i64);
                            }
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

/// Batched matrix product for dtypes other than f32: f64 accumulation rounded to the
/// dtype for floats, wrapping i128 for integers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenMatMul {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Per output batch: (A batch, B batch).
    pub pairs: Vec<(usize, usize)>,
    pub dt: DType,
}

impl GenMatMul {
    /// # Safety
    /// `a`, `b` hold every addressed batch; `y` `pairs.len()·m·n` values of `dt`.
    pub unsafe fn run(&self, a: *const u8, b: *const u8, y: *mut u8) {
        let (m, k, n, dt) = (self.m, self.k, self.n, self.dt);
        for (bi, &(ia, ib)) in self.pairs.iter().enumerate() {
            for r in 0..m {
                for c in 0..n {
                    let (ao, bo) = (ia * m * k + r * k, ib * k * n + c);
                    let o = bi * m * n + r * n + c;
                    if dt.is_float() {
                        let s: f64 = (0..k)
                            .map(|t| ld_f(dt, a, ao + t) * ld_f(dt, b, bo + t * n))
                            .sum();
                        st_f(dt, y, o, s);
                    } else {
                        let s = (0..k).fold(0i128, |acc, t| {
                            acc.wrapping_add(ld_i(dt, a, ao + t).wrapping_mul(ld_i(
                                dt,
                                b,
                                bo + t * n,
                            )))
                        });
                        st_i(dt, y, o, s);
                    }
                }
            }
        }
    }
}

/// A general contraction (Einsum): iteration axes `sizes` (the first `n_out` are the
/// output's, the rest summed), with each input's stride per axis.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contraction {
    pub sizes: Vec<usize>,
    pub strides: Vec<Vec<usize>>,
    pub n_out: usize,
    pub dt: DType,
}

impl Contraction {
    /// # Safety
    /// `ins[i]` covers every offset its strides address; `y` the output.
    pub unsafe fn run(&self, ins: &[*const u8], y: *mut u8) {
        let dt = self.dt;
        let out_len: usize = self.sizes[..self.n_out].iter().product();
        let inner: usize = self.sizes[self.n_out..].iter().product();
        let r = self.sizes.len();
        let mut idx = vec![0usize; r];
        let mut offs = vec![0usize; ins.len()];
        for o in 0..out_len {
            let (mut fa, mut ia) = (0f64, 0i128);
            for _ in 0..inner {
                if dt.is_float() {
                    fa += offs
                        .iter()
                        .zip(ins)
                        .map(|(&off, &p)| ld_f(dt, p, off))
                        .product::<f64>();
                } else {
                    let p = offs
                        .iter()
                        .zip(ins)
                        .fold(1i128, |acc, (&off, &p)| acc.wrapping_mul(ld_i(dt, p, off)));
                    ia = ia.wrapping_add(p);
                }
                for ax in (0..r).rev() {
                    idx[ax] += 1;
                    for (off, s) in offs.iter_mut().zip(&self.strides) {
                        *off += s[ax];
                    }
                    if idx[ax] < self.sizes[ax] {
                        break;
                    }
                    for (off, s) in offs.iter_mut().zip(&self.strides) {
                        *off -= s[ax] * self.sizes[ax];
                    }
                    idx[ax] = 0;
                }
            }
            if inner == 0 {
                // Skip this output's (empty) summation: advance the output index by hand.
                for ax in (0..self.n_out).rev() {
                    idx[ax] += 1;
                    for (off, s) in offs.iter_mut().zip(&self.strides) {
                        *off += s[ax];
                    }
                    if idx[ax] < self.sizes[ax] {
                        break;
                    }
                    for (off, s) in offs.iter_mut().zip(&self.strides) {
                        *off -= s[ax] * self.sizes[ax];
                    }
                    idx[ax] = 0;
                }
            }
            if dt.is_float() {
                st_f(dt, y, o, fa);
            } else {
                st_i(dt, y, o, ia);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_max_over_first_axis() {
        // x [2,3]; reduce axis 0 -> [3].
        let x = [1f32, 5.0, 3.0, 4.0, 2.0, 6.0];
        let r = Reduce {
            op: ReduceOp::Max,
            kept: vec![0, 1, 2],
            red: vec![0, 3],
            dt: DType::F32,
            lo_hi: (0, 0),
        };
        let mut y = [0f32; 3];
        unsafe { r.run(x.as_ptr() as _, y.as_mut_ptr() as _) };
        assert_eq!(y, [4.0, 5.0, 6.0]);
    }

    #[test]
    fn cumsum_exclusive_reverse_and_argmax() {
        let x = [1i32, 2, 3];
        let mut y = [0i32; 3];
        let c = AxisOp {
            f: AxisFn::CumSum {
                exclusive: true,
                reverse: true,
            },
            outer: 1,
            axis: 3,
            inner: 1,
            dt: DType::I32,
        };
        unsafe { c.run(x.as_ptr() as _, &[y.as_mut_ptr() as _]).unwrap() };
        assert_eq!(y, [5, 3, 0]);
        let a = AxisOp {
            f: AxisFn::Arg {
                max: true,
                last: false,
            },
            ..c
        };
        let z = [2f32, 7.0, 7.0];
        let mut i = [9i64];
        let a = AxisOp {
            dt: DType::F32,
            ..a
        };
        unsafe { a.run(z.as_ptr() as _, &[i.as_mut_ptr() as _]).unwrap() };
        assert_eq!(i, [1]);
    }

    #[test]
    fn strided_offsets_and_index_copy() {
        assert_eq!(strided_offsets(&[2, 2], &[1, 2], 1), vec![1, 3, 2, 4]);
        let c = IndexCopy {
            elem: 4,
            src_idx: vec![2, usize::MAX, 0],
            fill: 7f32.to_le_bytes().to_vec(),
        };
        let s = [1f32, 2.0, 3.0];
        let mut d = [0f32; 3];
        unsafe { c.run(s.as_ptr() as _, d.as_mut_ptr() as _) };
        assert_eq!(d, [3.0, 7.0, 1.0]);
    }
}
