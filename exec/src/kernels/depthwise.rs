//! Conv epilogues and the fast depthwise 2-D kernel. `ConvAct` is the activation a Conv
//! absorbs from its single consumer (Relu, HardSigmoid, HardSwish, Clip), applied with the
//! bias while the output row is still in registers / L1. `DwPlane` computes one channel of
//! a depthwise conv with W-stride 1: the channel's input plane is copied once into a
//! zero-padded scratch (so every tap is an in-bounds unaligned load and borders need no
//! branches), then each output row is swept in blocks of up to four 16-lane AVX-512
//! accumulators, every (ky, kx) tap one broadcast FMA per vector; the tail of a row is a
//! masked store.

/// An activation fused into a convolution's output (after the bias).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ConvAct {
    None,
    /// `x if x > 0 or x is NaN else 0` (as `ir::eval`).
    Relu,
    /// `clamp(alpha·x + beta, 0, 1)`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `min(max(x, lo), hi)`.
    Clip {
        lo: f32,
        hi: f32,
    },
}

impl ConvAct {
    /// The activation of one value, written like `ir::eval` computes it.
    #[inline(always)]
    pub fn scalar(self, v: f32) -> f32 {
        match self {
            ConvAct::None => v,
            ConvAct::Relu => {
                if v > 0.0 || v.is_nan() {
                    v
                } else {
                    0.0
                }
            }
            ConvAct::HardSigmoid { alpha, beta } => clamp01(alpha * v + beta),
            ConvAct::HardSwish => v * clamp01(v / 6.0 + 0.5),
            ConvAct::Clip { lo, hi } => {
                let v = if v < lo { lo } else { v };
                if v > hi {
                    hi
                } else {
                    v
                }
            }
        }
    }
}

/// `clamp(x, 0, 1)` as selects (NaN stays NaN; vectorises).
#[inline(always)]
fn clamp01(x: f32) -> f32 {
    let x = if x < 0.0 { 0.0 } else { x };
    if x > 1.0 {
        1.0
    } else {
        x
    }
}

/// `y = act(y + bias)` over a row.
pub fn bias_act(act: ConvAct, bias: f32, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn v512(act: ConvAct, bias: f32, y: &mut [f32]) {
            bias_act_impl(act, bias, y)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v256(act: ConvAct, bias: f32, y: &mut [f32]) {
            bias_act_impl(act, bias, y)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the clone was compiled for.
            return unsafe { v512(act, bias, y) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { v256(act, bias, y) };
        }
    }
    bias_act_impl(act, bias, y)
}

#[inline(always)]
fn bias_act_impl(act: ConvAct, bias: f32, y: &mut [f32]) {
    // One loop per activation so each one vectorises.
    match act {
        ConvAct::None => y.iter_mut().for_each(|v| *v += bias),
        ConvAct::Relu => y
            .iter_mut()
            .for_each(|v| *v = ConvAct::Relu.scalar(*v + bias)),
        ConvAct::HardSwish => y
            .iter_mut()
            .for_each(|v| *v = ConvAct::HardSwish.scalar(*v + bias)),
        a @ ConvAct::HardSigmoid { .. } => y.iter_mut().for_each(|v| *v = a.scalar(*v + bias)),
        a @ ConvAct::Clip { .. } => y.iter_mut().for_each(|v| *v = a.scalar(*v + bias)),
    }
}

thread_local! {
    /// Per-thread padded-plane scratch, reused across runs (`DwPlane::fill` writes every
    /// element it reads, so it is never cleared).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch of at least `len` elements.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        // Re-entered on this thread (not expected): a fresh buffer.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Lanes per vector of the fast kernel (AVX-512).
const L: usize = 16;

/// Geometry of one depthwise plane with W-stride 1 (any H-stride, dilations, pads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DwPlane {
    pub ih: usize,
    pub iw: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub dh: usize,
    pub dw: usize,
    /// Begin pads (rows, columns).
    pub ph: usize,
    pub pw: usize,
}

impl DwPlane {
    /// Vectors per output row.
    fn nvec(&self) -> usize {
        self.ow.div_ceil(L)
    }

    /// Padded scratch width: every vector of every tap reads inside it.
    fn pwid(&self) -> usize {
        self.nvec() * L + (self.kw - 1) * self.dw
    }

    /// Padded scratch rows.
    fn prows(&self) -> usize {
        (self.oh.max(1) - 1) * self.sh + (self.kh - 1) * self.dh + 1
    }

    /// Scratch elements one plane needs.
    pub fn scratch_len(&self) -> usize {
        self.pwid() * self.prows()
    }

    /// Whether the fast kernel runs on this CPU (else use the generic path).
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Copies plane `x` (`ih × iw`) into `pad` with the zero border.
    fn fill(&self, x: &[f32], pad: &mut [f32]) {
        let (pwid, prows) = (self.pwid(), self.prows());
        for r in 0..prows {
            let row = &mut pad[r * pwid..(r + 1) * pwid];
            let iy = r as isize - self.ph as isize;
            if iy < 0 || iy >= self.ih as isize {
                row.fill(0.0);
                continue;
            }
            let xrow = &x[iy as usize * self.iw..(iy as usize + 1) * self.iw];
            // Padded column c reads input column c − pw.
            let c0 = self.pw.min(pwid);
            let c1 = (self.pw + self.iw).min(pwid);
            row[..c0].fill(0.0);
            row[c0..c1].copy_from_slice(&xrow[..c1 - c0]);
            row[c1..].fill(0.0);
        }
    }

    /// `out = act(conv(x, w) + bias)` for one channel; `pad` holds `scratch_len()` elements.
    /// Returns false (nothing written) when the fast kernel is not available.
    pub fn run(
        &self,
        x: &[f32],
        w: &[f32],
        bias: f32,
        act: ConvAct,
        pad: &mut [f32],
        out: &mut [f32],
    ) -> bool {
        if x.len() < self.ih * self.iw
            || w.len() < self.kh * self.kw
            || out.len() < self.oh * self.ow
            || pad.len() < self.scratch_len()
            || self.kh == 0
            || self.kw == 0
        {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        if Self::available() {
            self.fill(x, pad);
            // SAFETY: AVX-512F is present; the sizes were checked above, and every load
            // lies inside the padded plane (see `pwid`/`prows`).
            unsafe { self.rows_avx512(pad.as_ptr(), w.as_ptr(), bias, act, out.as_mut_ptr()) };
            return true;
        }
        false
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(
        &self,
        pad: *const f32,
        w: *const f32,
        bias: f32,
        act: ConvAct,
        out: *mut f32,
    ) {
        let pwid = self.pwid();
        // Two output rows at a time: twice the independent FMA chains per tap.
        let mut oy = 0;
        while oy < self.oh {
            let base = pad.add(oy * self.sh * pwid);
            let orow = out.add(oy * self.ow);
            if self.oh - oy >= 2 {
                self.row_blocks::<2>(base, w, bias, act, orow);
                oy += 2;
            } else {
                self.row_blocks::<1>(base, w, bias, act, orow);
                oy += 1;
            }
        }
    }

    /// `R` output rows starting at padded row `base`, in blocks of up to four vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn row_blocks<const R: usize>(
        &self,
        base: *const f32,
        w: *const f32,
        bias: f32,
        act: ConvAct,
        orow: *mut f32,
    ) {
        let nvec = self.nvec();
        let mut c = 0;
        while c < nvec {
            let nb = (nvec - c).min(4);
            // Kernel widths 3 and 5 get their tap loop unrolled (KW = 0: any width).
            match (nb, self.kw) {
                (4, 3) => self.block::<4, 3, R>(base, w, c, bias, act, orow),
                (3, 3) => self.block::<3, 3, R>(base, w, c, bias, act, orow),
                (2, 3) => self.block::<2, 3, R>(base, w, c, bias, act, orow),
                (1, 3) => self.block::<1, 3, R>(base, w, c, bias, act, orow),
                (4, 5) => self.block::<4, 5, R>(base, w, c, bias, act, orow),
                (3, 5) => self.block::<3, 5, R>(base, w, c, bias, act, orow),
                (2, 5) => self.block::<2, 5, R>(base, w, c, bias, act, orow),
                (1, 5) => self.block::<1, 5, R>(base, w, c, bias, act, orow),
                (4, _) => self.block::<4, 0, R>(base, w, c, bias, act, orow),
                (3, _) => self.block::<3, 0, R>(base, w, c, bias, act, orow),
                (2, _) => self.block::<2, 0, R>(base, w, c, bias, act, orow),
                _ => self.block::<1, 0, R>(base, w, c, bias, act, orow),
            }
            c += nb;
        }
    }

    /// Output vectors `c0..c0+NB` of `R` rows; `KW` is the kernel width (0: `self.kw`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const NB: usize, const KW: usize, const R: usize>(
        &self,
        base: *const f32,
        w: *const f32,
        c0: usize,
        bias: f32,
        act: ConvAct,
        orow: *mut f32,
    ) {
        use std::arch::x86_64::*;
        let pwid = self.pwid();
        let kw = if KW == 0 { self.kw } else { KW };
        let rstep = self.sh * pwid;
        let mut acc = [[_mm512_set1_ps(bias); NB]; R];
        for ky in 0..self.kh {
            let r = base.add(ky * self.dh * pwid + c0 * L);
            let wr = w.add(ky * kw);
            for kx in 0..kw {
                let wv = _mm512_set1_ps(*wr.add(kx));
                for (ri, accr) in acc.iter_mut().enumerate() {
                    let xp = r.add(ri * rstep + kx * self.dw);
                    for (j, a) in accr.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(j * L)), wv, *a);
                    }
                }
            }
        }
        for (ri, accr) in acc.iter().enumerate() {
            let orow = orow.add(ri * self.ow);
            for (j, a) in accr.iter().enumerate() {
                let v = act_avx512(act, *a);
                let col = (c0 + j) * L;
                if col + L <= self.ow {
                    _mm512_storeu_ps(orow.add(col), v);
                } else {
                    let m: __mmask16 = ((1u32 << (self.ow - col)) - 1) as __mmask16;
                    _mm512_mask_storeu_ps(orow.add(col), m, v);
                }
            }
        }
    }
}

/// [`ConvAct`] on 16 lanes (NaN handling as the scalar form for Relu and the clamps).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn act_avx512(act: ConvAct, v: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_ps(1.0);
    // `_mm512_max_ps(a, b)` / `min` return b when either is NaN: NaN in b passes through.
    let clamp01 = |t: __m512| _mm512_min_ps(one, _mm512_max_ps(zero, t));
    match act {
        ConvAct::None => v,
        ConvAct::Relu => _mm512_max_ps(zero, v),
        ConvAct::HardSigmoid { alpha, beta } => clamp01(_mm512_add_ps(
            _mm512_mul_ps(_mm512_set1_ps(alpha), v),
            _mm512_set1_ps(beta),
        )),
        ConvAct::HardSwish => {
            let t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.0)), _mm512_set1_ps(0.5));
            _mm512_mul_ps(v, clamp01(t))
        }
        ConvAct::Clip { lo, hi } => {
            _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_hand_values() {
        assert_eq!(ConvAct::Relu.scalar(-2.0), 0.0);
        assert!(ConvAct::Relu.scalar(f32::NAN).is_nan());
        assert_eq!(ConvAct::HardSwish.scalar(3.0), 3.0);
        assert_eq!(ConvAct::HardSwish.scalar(-3.0), 0.0);
        assert_eq!(ConvAct::HardSwish.scalar(0.0), 0.0);
        assert_eq!(ConvAct::HardSwish.scalar(1.5), 1.5 * 0.75);
        let hs = ConvAct::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        assert_eq!(hs.scalar(10.0), 1.0);
        assert_eq!(hs.scalar(0.0), 0.5);
        let cl = ConvAct::Clip { lo: 0.0, hi: 6.0 };
        assert_eq!(cl.scalar(7.0), 6.0);
        let mut y = [-1.0f32, 0.0, 2.0];
        bias_act(ConvAct::Relu, 0.5, &mut y);
        assert_eq!(y, [0.0, 0.5, 2.5]);
    }

    #[test]
    fn plane_matches_hand_values() {
        // 3×3 input 1..9, 3×3 kernel of ones, pad 1: the centre sums all (45), the corner
        // 1+2+4+5 = 12; bias 1, Relu.
        let p = DwPlane {
            ih: 3,
            iw: 3,
            oh: 3,
            ow: 3,
            kh: 3,
            kw: 3,
            sh: 1,
            dh: 1,
            dw: 1,
            ph: 1,
            pw: 1,
        };
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut pad = vec![0f32; p.scratch_len()];
        let mut out = [0f32; 9];
        if p.run(&x, &[1.0; 9], 1.0, ConvAct::Relu, &mut pad, &mut out) {
            assert_eq!(out, [13.0, 22.0, 17.0, 28.0, 46.0, 34.0, 25.0, 40.0, 29.0]);
        }
    }
}
