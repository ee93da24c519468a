//! Generic row normalizations for any float dtype, computed in f64: LayerNormalization
//! with its Mean / InvStdDev outputs and broadcast scale/bias, RMSNormalization, and
//! inference BatchNormalization.

use super::ewise::{ld_f, st_f};
use super::par::{par_for, SendPtr};
use whittle_ir::DType;

/// `rows × cols` normalization. Scale/bias offsets: element `i` reads `scale[s_off[i % len]]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NormRows {
    pub rms: bool,
    pub rows: usize,
    pub cols: usize,
    pub eps: f64,
    pub dt: DType,
    pub s_dt: DType,
    pub s_off: Vec<usize>,
    /// Bias offsets and dtype, when there is a bias.
    pub b_off: Option<(Vec<usize>, DType)>,
    /// Dtype of the Mean / InvStdDev outputs (LayerNorm), when they are written.
    pub stats_dt: Option<DType>,
}

impl NormRows {
    /// f32 RMSNormalization with one scale per column and no statistics: the fast row
    /// kernel of `rows.rs` (f32 arithmetic, lane-wise sums) applies.
    fn is_plain_f32_rms(&self) -> bool {
        self.rms
            && self.dt == DType::F32
            && self.s_dt == DType::F32
            && self.b_off.is_none()
            && self.stats_dt.is_none()
            && self.s_off.len() == self.cols
            && self.s_off.iter().enumerate().all(|(i, &o)| i == o)
    }

    /// # Safety
    /// `ins` = x, scale, bias?; `outs` = y, mean?, inv_std? sized by the geometry.
    pub unsafe fn run(&self, ins: &[*const u8], outs: &[*mut u8]) -> Result<(), String> {
        if self.is_plain_f32_rms() {
            let (x, s) = (
                *ins.first().ok_or("missing x")?,
                *ins.get(1).ok_or("missing scale")?,
            );
            let y = *outs.first().ok_or("missing y")?;
            let eps = self.eps as f32;
            super::rows::rms_norm(x as _, y as _, self.rows, self.cols, s as _, eps);
            return Ok(());
        }
        let x = SendPtr(*ins.first().ok_or("missing x")? as *mut u8);
        let s = SendPtr(*ins.get(1).ok_or("missing scale")? as *mut u8);
        let b = match &self.b_off {
            Some(_) => Some(SendPtr(*ins.get(2).ok_or("missing bias")? as *mut u8)),
            None => None,
        };
        let y = SendPtr(*outs.first().ok_or("missing y")?);
        let stats: Vec<SendPtr<u8>> = outs[1..].iter().map(|&p| SendPtr(p)).collect();
        let (cols, dt) = (self.cols, self.dt);
        par_for(self.rows, |r| {
            // SAFETY: offsets stay inside the geometry.
            unsafe {
                let v: Vec<f64> = (0..cols).map(|j| ld_f(dt, x.get(), r * cols + j)).collect();
                let n = cols as f64;
                let (mean, inv) = if self.rms {
                    let ms = v.iter().map(|a| a * a).sum::<f64>() / n;
                    (0.0, 1.0 / (ms + self.eps).sqrt())
                } else {
                    let m = v.iter().sum::<f64>() / n;
                    let var = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
                    (m, 1.0 / (var + self.eps).sqrt())
                };
                for (j, &a) in v.iter().enumerate() {
                    let i = r * cols + j;
                    let so = self.s_off[i % self.s_off.len().max(1)];
                    let mut o = (a - mean) * inv * ld_f(self.s_dt, s.get(), so);
                    if let (Some((bo, bdt)), Some(bp)) = (&self.b_off, b) {
                        o += ld_f(*bdt, bp.get(), bo[i % bo.len().max(1)]);
                    }
                    st_f(dt, y.get(), i, o);
                }
                if let Some(sdt) = self.stats_dt {
                    if let Some(p) = stats.first() {
                        st_f(sdt, p.get(), r, mean);
                    }
                    if let Some(p) = stats.get(1) {
                        st_f(sdt, p.get(), r, inv);
                    }
                }
            }
        });
        Ok(())
    }
}

/// Inference BatchNormalization on `n × c × inner`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchNorm {
    pub n: usize,
    pub c: usize,
    pub inner: usize,
    pub eps: f64,
    pub dt: DType,
    /// Dtypes of scale, B, mean, var.
    pub p_dt: [DType; 4],
}

impl BatchNorm {
    /// # Safety
    /// `ins` = x, scale, B, mean, var; `y` like x.
    pub unsafe fn run(&self, ins: &[*const u8], y: *mut u8) -> Result<(), String> {
        if ins.len() < 5 {
            return Err("BatchNormalization needs 5 inputs".into());
        }
        let mut coef = Vec::with_capacity(self.c);
        for ch in 0..self.c {
            let p = |k: usize| ld_f(self.p_dt[k], ins[k + 1], ch);
            let a = p(0) / (p(3) + self.eps).sqrt();
            coef.push((a, p(1) - a * p(2)));
        }
        let (x, yp) = (SendPtr(ins[0] as *mut u8), SendPtr(y));
        let (inner, dt) = (self.inner, self.dt);
        par_for(self.n * self.c, |t| {
            let (a, b) = coef[t % self.c.max(1)];
            if dt == DType::F32 {
                // SAFETY: plane t of x and y.
                unsafe {
                    let xs =
                        std::slice::from_raw_parts((x.get() as *const f32).add(t * inner), inner);
                    let ys = std::slice::from_raw_parts_mut(
                        (yp.get() as *mut f32).add(t * inner),
                        inner,
                    );
                    let (a, b) = (a as f32, b as f32);
                    ys.iter_mut().zip(xs).for_each(|(y, &v)| *y = a * v + b);
                }
                return;
            }
            for i in t * inner..(t + 1) * inner {
                // SAFETY: i < n·c·inner.
                unsafe { st_f(dt, yp.get(), i, a * ld_f(dt, x.get(), i) + b) };
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rms_norm_matches_the_generic_path() {
        // 3 rows of 37 columns (not a multiple of the 16 lanes); the generic path runs
        // when the scale is addressed through offsets that are not the identity.
        let (rows, cols) = (3, 37);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let s: Vec<f32> = (0..cols).map(|j| 0.5 + j as f32 / 10.0).collect();
        let mk = |s_off: Vec<usize>| NormRows {
            rms: true,
            rows,
            cols,
            eps: 1e-5,
            dt: DType::F32,
            s_dt: DType::F32,
            s_off,
            b_off: None,
            stats_dt: None,
        };
        let fast = mk((0..cols).collect());
        // Same values through a one-longer scale buffer: not plain, so the f64 path runs.
        let slow = mk((0..cols).map(|j| j + 1).collect());
        let mut s_shift = vec![0f32];
        s_shift.extend(&s);
        assert!(fast.is_plain_f32_rms() && !slow.is_plain_f32_rms());
        let (mut y1, mut y2) = (vec![0f32; rows * cols], vec![0f32; rows * cols]);
        unsafe {
            fast.run(&[x.as_ptr() as _, s.as_ptr() as _], &[y1.as_mut_ptr() as _])
                .unwrap();
            slow.run(
                &[x.as_ptr() as _, s_shift.as_ptr() as _],
                &[y2.as_mut_ptr() as _],
            )
            .unwrap();
        }
        for (a, b) in y1.iter().zip(&y2) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn layer_norm_with_stats() {
        let x = [1f32, 3.0];
        let s = [1f32];
        let (mut y, mut m, mut inv) = ([0f32; 2], [0f32], [0f32]);
        let n = NormRows {
            rms: false,
            rows: 1,
            cols: 2,
            eps: 0.0,
            dt: DType::F32,
            s_dt: DType::F32,
            s_off: vec![0],
            b_off: None,
            stats_dt: Some(DType::F32),
        };
        unsafe {
            n.run(
                &[x.as_ptr() as _, s.as_ptr() as _],
                &[
                    y.as_mut_ptr() as _,
                    m.as_mut_ptr() as _,
                    inv.as_mut_ptr() as _,
                ],
            )
            .unwrap()
        };
        assert_eq!(y, [-1.0, 1.0]);
        assert_eq!((m[0], inv[0]), (2.0, 1.0));
    }
}
