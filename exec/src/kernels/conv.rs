//! f32 convolution: im2col + the packed GEMM for general (grouped) convolutions, and a
//! direct kernel for depthwise convolutions (one input channel per group); transposed
//! convolution by direct accumulation for any float dtype. Both share a
//! tap table computed at compile time: for each kernel position and output position, the
//! input spatial offset, or `usize::MAX` where the tap falls in the padding.

use super::depthwise::{bias_act, with_scratch, ConvAct, DwPlane};
use super::ewise::{ld_f, st_f};
use super::gemm::{self, Epilogue, MatRef, PackedB, Scratch, Ukr};
use super::par::{par_for, row_chunks, SendPtr};
use whittle_ir::DType;

/// Geometry of one convolution (`x [n, c, in_len] * w [m, cg, k_len] → y [n, m, out_len]`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub group: usize,
    pub in_len: usize,
    pub k_len: usize,
    pub out_len: usize,
    /// `taps[kf * out_len + of]`: input spatial offset of kernel tap `kf` at output `of`.
    pub taps: Vec<usize>,
    pub has_bias: bool,
    /// 2-D geometry for the row-wise depthwise kernel, when the conv is 2-D.
    pub dw2d: Option<Dw2d>,
    /// Activation applied with the bias (absorbed from the conv's single consumer).
    pub act: ConvAct,
}

/// 2-D window geometry: input/output/kernel sizes, strides, dilations, begin pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dw2d {
    pub ih: usize,
    pub iw: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Dw2d {
    /// `out[oy, ox] += w[ky, kx] · x[oy·sh + ky·dh − ph, ox·sw + kx·dw − pw]` over the
    /// in-bounds taps, one output row and kernel tap at a time (the inner loop is a
    /// contiguous axpy for stride 1).
    fn plane(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            unsafe { self.plane_avx2(x, w, out) };
            return;
        }
        self.plane_body(x, w, out);
    }

    /// [`Dw2d::plane`] compiled for AVX2 (8-wide rows).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn plane_avx2(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        self.plane_body(x, w, out);
    }

    /// im2col of one input plane: `col[(ky·kw + kx)·oh·ow + oy·ow + ox]` is the input under
    /// tap `(ky, kx)` at output `(oy, ox)`, 0 in the padding. Row by row, so the stride-1
    /// case is a copy.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let d = *self;
        let ol = d.oh * d.ow;
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let rows = &mut col[(ky * d.kw + kx) * ol..(ky * d.kw + kx + 1) * ol];
                let (lo, hi, start) = d.col_span(kx);
                for oy in 0..d.oh {
                    let orow = &mut rows[oy * d.ow..(oy + 1) * d.ow];
                    let iy = (oy * d.sh + ky * d.dh) as isize - d.ph as isize;
                    if iy < 0 || iy >= d.ih as isize || lo >= hi {
                        orow.fill(0.0);
                        continue;
                    }
                    let xrow = &x[iy as usize * d.iw..(iy as usize + 1) * d.iw];
                    orow[..lo].fill(0.0);
                    orow[hi..].fill(0.0);
                    if d.sw == 1 {
                        orow[lo..hi].copy_from_slice(&xrow[start..start + (hi - lo)]);
                    } else {
                        for (j, o) in orow[lo..hi].iter_mut().enumerate() {
                            *o = xrow[start + j * d.sw];
                        }
                    }
                }
            }
        }
    }

    /// Output columns `lo..hi` whose tap `kx` lands inside the input row, and the input
    /// column of output `lo` (meaningful when `lo < hi`).
    fn col_span(&self, kx: usize) -> (usize, usize, usize) {
        let d = *self;
        let shift = (kx * d.dw) as isize - d.pw as isize;
        let lo = if shift >= 0 {
            0
        } else {
            ((-shift) as usize).div_ceil(d.sw)
        }
        .min(d.ow);
        let hi_num = d.iw as isize - shift;
        let hi = if hi_num <= 0 {
            0
        } else {
            ((hi_num as usize).div_ceil(d.sw)).min(d.ow)
        };
        let start = ((lo * d.sw) as isize + shift).max(0) as usize;
        (lo, hi.max(lo), start)
    }

    #[inline(always)]
    fn plane_body(&self, x: &[f32], w: &[f32], out: &mut [f32]) {
        let d = *self;
        for oy in 0..d.oh {
            let orow = &mut out[oy * d.ow..(oy + 1) * d.ow];
            for ky in 0..d.kh {
                let iy = (oy * d.sh + ky * d.dh) as isize - d.ph as isize;
                if iy < 0 || iy >= d.ih as isize {
                    continue;
                }
                let xrow = &x[iy as usize * d.iw..(iy as usize + 1) * d.iw];
                for kx in 0..d.kw {
                    let wv = w[ky * d.kw + kx];
                    let shift = (kx * d.dw) as isize - d.pw as isize;
                    // ox·sw + shift ∈ [0, iw).
                    let lo = if shift >= 0 {
                        0
                    } else {
                        ((-shift) as usize).div_ceil(d.sw)
                    };
                    let hi_num = d.iw as isize - shift;
                    let hi = if hi_num <= 0 {
                        0
                    } else {
                        ((hi_num as usize).div_ceil(d.sw)).min(d.ow)
                    };
                    if lo >= hi {
                        continue;
                    }
                    let start = (lo * d.sw) as isize + shift;
                    let start = start as usize;
                    if d.sw == 1 {
                        let xs = &xrow[start..start + (hi - lo)];
                        for (o, &xv) in orow[lo..hi].iter_mut().zip(xs) {
                            *o += wv * xv;
                        }
                    } else {
                        for (j, o) in orow[lo..hi].iter_mut().enumerate() {
                            *o += wv * xrow[start + j * d.sw];
                        }
                    }
                }
            }
        }
    }
}

/// Tap table for `nd` spatial axes (see [`ConvGeom::taps`]); `pads` are the begin pads.
pub fn tap_table(
    in_sp: &[usize],
    out_sp: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
) -> Vec<usize> {
    let nd = in_sp.len();
    let k_len: usize = kernel.iter().product();
    let out_len: usize = out_sp.iter().product();
    let mut in_st = vec![1usize; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        in_st[d] = in_st[d + 1] * in_sp[d + 1];
    }
    let mut taps = vec![usize::MAX; k_len * out_len];
    for kf in 0..k_len {
        // Unravel kf into kernel coordinates.
        let mut kc = vec![0usize; nd];
        let mut r = kf;
        for d in (0..nd).rev() {
            kc[d] = r % kernel[d];
            r /= kernel[d];
        }
        for of in 0..out_len {
            let mut r = of;
            let mut off = 0usize;
            let mut inside = true;
            for d in (0..nd).rev() {
                let o = r % out_sp[d];
                r /= out_sp[d];
                let p = (o * strides[d] + kc[d] * dilations[d]) as i64 - pads[d] as i64;
                if p < 0 || p >= in_sp[d] as i64 {
                    inside = false;
                    break;
                }
                off += p as usize * in_st[d];
            }
            if inside {
                taps[kf * out_len + of] = off;
            }
        }
    }
    taps
}

impl ConvGeom {
    fn cg(&self) -> usize {
        self.c / self.group.max(1)
    }

    fn mg(&self) -> usize {
        self.m / self.group.max(1)
    }

    /// Whether the direct depthwise kernel applies.
    pub fn depthwise(&self) -> bool {
        self.cg() == 1 && self.mg() == 1
    }

    /// # Safety
    /// `x`, `w`, `bias` (when `has_bias`) and `y` hold the sizes of the geometry.
    pub unsafe fn run(
        &self,
        ukr: &Ukr,
        x: *const f32,
        w: *const f32,
        bias: *const f32,
        y: *mut f32,
    ) {
        if self.depthwise() {
            self.run_depthwise(x, w, bias, y);
        } else {
            self.run_gemm(ukr, x, w, bias, y);
        }
    }

    unsafe fn run_depthwise(&self, x: *const f32, w: *const f32, bias: *const f32, y: *mut f32) {
        let (xp, wp, bp, yp) = (
            SendPtr(x as *mut f32),
            SendPtr(w as *mut f32),
            SendPtr(bias as *mut f32),
            SendPtr(y),
        );
        let (ol, kl, il) = (self.out_len, self.k_len, self.in_len);
        let fast = self
            .dw2d
            .filter(|d| d.sw == 1 && DwPlane::available())
            .map(|d| DwPlane {
                ih: d.ih,
                iw: d.iw,
                oh: d.oh,
                ow: d.ow,
                kh: d.kh,
                kw: d.kw,
                sh: d.sh,
                dh: d.dh,
                dw: d.dw,
                ph: d.ph,
                pw: d.pw,
            });
        // Channels per task: at least ~32k multiply-adds each, so tiny convs stay on one
        // thread.
        let planes = self.n * self.m;
        let per_plane = (ol * kl).max(1);
        let chunks = row_chunks(planes, (32_768 / per_plane).max(1), 1);
        par_for(chunks.len(), |t| {
            let (p0, len) = chunks[t];
            with_scratch(fast.map_or(0, |f| f.scratch_len()), |pad| {
                for p in p0..p0 + len {
                    let ch = p % self.m.max(1);
                    // SAFETY: the geometry bounds every offset; tasks write disjoint planes.
                    unsafe {
                        let out = std::slice::from_raw_parts_mut(yp.get().add(p * ol), ol);
                        let b = if self.has_bias {
                            *bp.get().add(ch)
                        } else {
                            0.0
                        };
                        let xs = std::slice::from_raw_parts(xp.get().add(p * il), il);
                        let ws = std::slice::from_raw_parts(wp.get().add(ch * kl), kl);
                        if let Some(f) = &fast {
                            if f.run(xs, ws, b, self.act, pad, out) {
                                continue;
                            }
                        }
                        out.fill(0.0);
                        if let Some(d) = &self.dw2d {
                            d.plane(xs, ws, out);
                        } else {
                            for (kf, &wv) in ws.iter().enumerate() {
                                let taps = &self.taps[kf * ol..(kf + 1) * ol];
                                for (o, &tp) in out.iter_mut().zip(taps) {
                                    if tp != usize::MAX {
                                        *o += wv * xs[tp];
                                    }
                                }
                            }
                        }
                        bias_act(self.act, b, out);
                    }
                }
            });
        });
    }

    /// im2col of batch `b`, group `g`: `col[(ci·k_len + kf), of]`.
    unsafe fn im2col(&self, x: *const f32, b: usize, g: usize, col: &mut [f32]) {
        let cg = self.cg();
        let (ol, kl, il) = (self.out_len, self.k_len, self.in_len);
        let cp = SendPtr(col.as_mut_ptr());
        let xp = SendPtr(x as *mut f32);
        par_for(cg, |ci| {
            // SAFETY: each task writes its own rows of col.
            unsafe {
                let xs = xp.get().add((b * self.c + g * cg + ci) * il);
                if let Some(d) = &self.dw2d {
                    let x = std::slice::from_raw_parts(xs as *const f32, il);
                    let rows = std::slice::from_raw_parts_mut(cp.get().add(ci * kl * ol), kl * ol);
                    d.im2col(x, rows);
                    return;
                }
                for kf in 0..kl {
                    let row = cp.get().add((ci * kl + kf) * ol);
                    let taps = &self.taps[kf * ol..(kf + 1) * ol];
                    for (o, &tp) in taps.iter().enumerate() {
                        *row.add(o) = if tp == usize::MAX { 0.0 } else { *xs.add(tp) };
                    }
                }
            }
        });
    }

    unsafe fn run_gemm(
        &self,
        ukr: &Ukr,
        x: *const f32,
        w: *const f32,
        bias: *const f32,
        y: *mut f32,
    ) {
        let (cg, mg) = (self.cg(), self.mg());
        let (ol, kl, il) = (self.out_len, self.k_len, self.in_len);
        let kdim = cg * kl;
        // A 1×1, stride-1, unpadded conv reads x itself as the K × P matrix.
        let direct = kl == 1 && il == ol && self.taps.iter().enumerate().all(|(i, &t)| t == i);
        // The im2col buffer is this thread's reused scratch (im2col writes every element).
        with_scratch(if direct { 0 } else { kdim * ol }, |col| {
            for b in 0..self.n {
                for g in 0..self.group {
                    let src = if direct {
                        MatRef {
                            ptr: x.add((b * self.c + g * cg) * il),
                            rs: il,
                            cs: 1,
                        }
                    } else {
                        self.im2col(x, b, g, col);
                        MatRef {
                            ptr: col.as_ptr(),
                            rs: ol,
                            cs: 1,
                        }
                    };
                    let pb = PackedB::pack(src, kdim, ol, ukr.nr);
                    let a0 = SendPtr(w.add(g * mg * kdim) as *mut f32);
                    let c0 = SendPtr(y.add((b * self.m + g * mg) * ol));
                    let b0 = SendPtr(if self.has_bias {
                        bias.add(g * mg) as *mut f32
                    } else {
                        std::ptr::null_mut()
                    });
                    // At least ~64k multiply-adds per task: tiny convs (squeeze-excite) stay on
                    // one thread.
                    let min_rows = (65_536 / (kdim * ol).max(1)).max(2 * ukr.mr);
                    let chunks = row_chunks(mg, min_rows, ukr.mr);
                    let pbr = &pb;
                    par_for(chunks.len(), |t| {
                        let (r0, len) = chunks[t];

                        // SAFETY: disjoint row blocks of W and y; bias has mg entries.
                        unsafe {
                            let a = MatRef {
                                ptr: a0.get().add(r0 * kdim),
                                rs: kdim,
                                cs: 1,
                            };
                            let c = c0.get().add(r0 * ol);
                            with_gemm_scratch(|s| {
                                gemm::gemm(ukr, len, a, pbr, c, ol, &Epilogue::NONE, s)
                            });
                            if self.has_bias || self.act != ConvAct::None {
                                for r in 0..len {
                                    let bv = if self.has_bias {
                                        *b0.get().add(r0 + r)
                                    } else {
                                        0.0
                                    };
                                    let row = std::slice::from_raw_parts_mut(c.add(r * ol), ol);
                                    bias_act(self.act, bv, row);
                                }
                            }
                        }
                    });
                }
            }
        });
    }
}

thread_local! {
    /// Per-thread GEMM packing buffers, reused across runs.
    static GEMM_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's GEMM scratch (a fresh one if it is already in use).
fn with_gemm_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    GEMM_SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Transposed convolution (`x [n, c, in_len]`, `w [c, mg, k_len]` → `y [n, m, out_len]`)
/// for any float dtype, accumulated in f64 per output plane.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvTGeom {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub group: usize,
    pub in_len: usize,
    pub k_len: usize,
    pub out_len: usize,
    /// `taps[xf * k_len + kf]`: output spatial offset hit by input `xf` through tap `kf`.
    pub taps: Vec<usize>,
    pub has_bias: bool,
    pub dt: DType,
}

impl ConvTGeom {
    /// # Safety
    /// Buffers hold the geometry's sizes (`bias` only read when `has_bias`).
    pub unsafe fn run(&self, x: *const u8, w: *const u8, bias: *const u8, y: *mut u8) {
        let (xp, wp, bp, yp) = (
            SendPtr(x as *mut u8),
            SendPtr(w as *mut u8),
            SendPtr(bias as *mut u8),
            SendPtr(y),
        );
        let g = self.group.max(1);
        let (cg, mg) = (self.c / g, self.m / g);
        let (il, kl, ol, dt) = (self.in_len, self.k_len, self.out_len, self.dt);
        par_for(self.n * self.m, |t| {
            let (b, mo) = (t / self.m.max(1), t % self.m.max(1));
            let (gi, mi) = (mo / mg.max(1), mo % mg.max(1));
            // SAFETY: offsets stay inside the geometry.
            unsafe {
                let b0 = if self.has_bias {
                    ld_f(dt, bp.get(), mo)
                } else {
                    0.0
                };
                let mut acc = vec![b0; ol];
                for ci in gi * cg..(gi + 1) * cg {
                    let xb = (b * self.c + ci) * il;
                    let wb = (ci * mg + mi) * kl;
                    for xf in 0..il {
                        let xv = ld_f(dt, xp.get(), xb + xf);
                        for kf in 0..kl {
                            let of = self.taps[xf * kl + kf];
                            if of != usize::MAX {
                                acc[of] += xv * ld_f(dt, wp.get(), wb + kf);
                            }
                        }
                    }
                }
                for (o, &v) in acc.iter().enumerate() {
                    st_f(dt, yp.get(), t * ol + o, v);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_table_marks_padding() {
        // 1-D: in 3, kernel 3, pad 1, stride 1 → out 3.
        let t = tap_table(&[3], &[3], &[3], &[1], &[1], &[1]);
        let m = usize::MAX;
        assert_eq!(t, vec![m, 0, 1, 0, 1, 2, 1, 2, m]);
    }

    #[test]
    fn depthwise_and_gemm_paths_agree_with_hand_values() {
        // x [1,1,3] = [1,2,3], w [1,1,3] = [1,1,1], pad 1: y = [3, 6, 5] (+ bias 1).
        let taps = tap_table(&[3], &[3], &[3], &[1], &[1], &[1]);
        let g = ConvGeom {
            n: 1,
            c: 1,
            m: 1,
            group: 1,
            in_len: 3,
            k_len: 3,
            out_len: 3,
            taps,
            has_bias: true,
            dw2d: None,
            act: ConvAct::None,
        };
        let (x, w, b) = ([1f32, 2.0, 3.0], [1f32; 3], [1f32]);
        let mut y = [0f32; 3];
        let ukr = Ukr::best();
        unsafe { g.run(&ukr, x.as_ptr(), w.as_ptr(), b.as_ptr(), y.as_mut_ptr()) };
        assert_eq!(y, [4.0, 7.0, 6.0]);
        let g2 = ConvGeom { m: 2, ..g };
        let w2 = [1f32, 1.0, 1.0, 0.0, 1.0, 0.0];
        let b2 = [1f32, 0.0];
        let mut y2 = [0f32; 6];
        unsafe { g2.run(&ukr, x.as_ptr(), w2.as_ptr(), b2.as_ptr(), y2.as_mut_ptr()) };
        assert_eq!(y2, [4.0, 7.0, 6.0, 1.0, 2.0, 3.0]);
    }
}
