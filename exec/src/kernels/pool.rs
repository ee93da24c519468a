//! MaxPool (with optional indices) and AveragePool for any numeric dtype, over window
//! tables computed at compile time (the ONNX reference's window rules, including
//! `ceil_mode` and auto-padding, are applied by the lowering). Values are compared and
//! summed in f64.

use super::ewise::{ld_f, st_f};
use super::par::{par_for, SendPtr};
use whittle_ir::DType;

/// One pooling step over `channels` planes of `in_len` inputs and `out_len` windows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub max: bool,
    pub count_include_pad: bool,
    pub channels: usize,
    pub in_len: usize,
    /// Window `o` visits `offs[start[o]..start[o + 1]]` (`usize::MAX` = padding).
    pub start: Vec<usize>,
    pub offs: Vec<usize>,
    pub dt: DType,
    /// For MaxPool indices: the index-output spatial offset of each input position.
    pub idx_map: Option<Vec<usize>>,
}

impl Pool {
    fn out_len(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// # Safety
    /// `x` holds `channels·in_len` values of `dt`; `outs` = y (`channels·out_len` of
    /// `dt`), then the i64 indices when `idx_map` is set.
    pub unsafe fn run(&self, x: *const u8, outs: &[*mut u8]) -> Result<(), String> {
        let y = SendPtr(*outs.first().ok_or("missing output")?);
        let yi = match &self.idx_map {
            Some(_) => Some(SendPtr(*outs.get(1).ok_or("missing indices output")?)),
            None => None,
        };
        let xp = SendPtr(x as *mut u8);
        let (ol, il, dt) = (self.out_len(), self.in_len, self.dt);
        if dt == DType::F32 && self.max {
            par_for(self.channels, |ch| {
                // SAFETY: plane ch of x; outputs ch·ol.. of y (and of the indices).
                unsafe {
                    let xs = std::slice::from_raw_parts((xp.get() as *const f32).add(ch * il), il);
                    let ys = (y.get() as *mut f32).add(ch * ol);
                    for o in 0..ol {
                        let win = &self.offs[self.start[o]..self.start[o + 1]];
                        let mut best: Option<(usize, f32)> = None;
                        for &f in win {
                            if let Some(&v) = xs.get(f) {
                                if best.is_none_or(|(_, b)| v > b) {
                                    best = Some((f, v));
                                }
                            }
                        }
                        *ys.add(o) = best.map_or(0.0, |b| b.1);
                        if let (Some(p), Some(map)) = (yi, &self.idx_map) {
                            let idx = best.map_or(-1, |(f, _)| (ch * il + map[f]) as i64);
                            std::ptr::write_unaligned((p.get() as *mut i64).add(ch * ol + o), idx);
                        }
                    }
                }
            });
            return Ok(());
        }
        par_for(self.channels, |ch| {
            let base = ch * il;
            for o in 0..ol {
                let win = &self.offs[self.start[o]..self.start[o + 1]];
                // SAFETY: offsets index inside the plane; outputs inside their buffers.
                unsafe {
                    if self.max {
                        let mut best: Option<(usize, f64)> = None;
                        for &f in win.iter().filter(|&&f| f != usize::MAX) {
                            let v = ld_f(dt, xp.get(), base + f);
                            if best.is_none_or(|(_, b)| v > b) {
                                best = Some((f, v));
                            }
                        }
                        st_f(dt, y.get(), ch * ol + o, best.map_or(0.0, |b| b.1));
                        if let (Some(p), Some(map)) = (yi, &self.idx_map) {
                            let idx = best.map_or(-1, |(f, _)| (base + map[f]) as i64);
                            std::ptr::write_unaligned((p.get() as *mut i64).add(ch * ol + o), idx);
                        }
                    } else {
                        let mut sum = 0.0;
                        let mut cnt = 0usize;
                        for &f in win {
                            if f != usize::MAX {
                                sum += ld_f(dt, xp.get(), base + f);
                                cnt += 1;
                            }
                        }
                        let n = if self.count_include_pad {
                            win.len()
                        } else {
                            cnt
                        };
                        let v = if n == 0 { f64::NAN } else { sum / n as f64 };
                        st_f(dt, y.get(), ch * ol + o, v);
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_average_with_padding() {
        // One plane [1, 5, 3]; windows {pad, 0}, {1, 2}.
        let x = [1f32, 5.0, 3.0];
        let mut p = Pool {
            max: true,
            count_include_pad: true,
            channels: 1,
            in_len: 3,
            start: vec![0, 2, 4],
            offs: vec![usize::MAX, 0, 1, 2],
            dt: DType::F32,
            idx_map: Some(vec![0, 1, 2]),
        };
        let (mut y, mut i) = ([0f32; 2], [0i64; 2]);
        unsafe {
            p.run(x.as_ptr() as _, &[y.as_mut_ptr() as _, i.as_mut_ptr() as _])
                .unwrap()
        };
        assert_eq!((y, i), ([1.0, 5.0], [0, 1]));
        p.max = false;
        p.idx_map = None;
        unsafe { p.run(x.as_ptr() as _, &[y.as_mut_ptr() as _]).unwrap() };
        assert_eq!(y, [0.5, 4.0]);
    }
}
