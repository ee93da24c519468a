//! Vision ops: GridSample, AffineGrid, RoiAlign and NonMaxSuppression, following the ONNX
//! reference (`op_grid_sample.py`, `op_affine_grid.py`, `op_roi_align.py`,
//! `op_non_max_suppression.py`). Interpolation and accumulation run in f64; GridSample's
//! coordinate denormalisation runs in f32 as the reference does (it decides which pixel
//! `nearest` picks).

use super::util::{next_index, strides};
use super::{opt, req, OpResult};
use crate::limits::try_vec;
use crate::{GridPadding, ResizeMode, RoiMode, Tensor};

fn check_float(t: &Tensor, what: &str) -> Result<(), String> {
    if !t.dtype().is_float() {
        return Err(format!("{what} must be floating point, got {}", t.dtype()));
    }
    Ok(())
}

/// Reflects `x` into `[lo, hi]` by the nearer border until it lies inside.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 || !x.is_finite() {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

/// Keys' cubic convolution weights (a = -0.75) of the 4 taps around a point at fraction `t`.
fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let t = t.abs();
    let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// `X [N, C, D1..Dk], grid [N, O1..Ok, k] → Y [N, C, O1..Ok]`. The grid's last axis holds
/// normalised coordinates in reverse axis order (x = width first).
pub fn grid_sample(
    mode: ResizeMode,
    padding: GridPadding,
    align_corners: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "X")?;
    let grid = req(ins, 1, "grid")?;
    check_float(x, "X")?;
    check_float(grid, "grid")?;
    let r = x.rank();
    if r < 3 {
        return Err(format!(
            "X must have rank >= 3 (N, C, spatial...), got shape {:?}",
            x.shape()
        ));
    }
    let nd = r - 2;
    let gs = grid.shape();
    if grid.rank() != r || gs[0] != x.shape()[0] || gs[r - 1] != nd {
        return Err(format!(
            "grid shape {gs:?} must be [{}, spatial..., {nd}] for X {:?}",
            x.shape()[0],
            x.shape()
        ));
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let in_sp = &x.shape()[2..];
    let out_sp = &gs[1..r - 1];
    let in_len: usize = in_sp.iter().product();
    let out_len: usize = out_sp.iter().product();
    let in_st = strides(in_sp);
    let xv = x.to_f64_vec();
    let gv = grid.to_f64_vec();
    let mut y = try_vec(n * c * out_len, 0.0f64, "GridSample output")?;
    if in_sp.contains(&0) && !y.is_empty() {
        return Err(format!(
            "X {:?} has an empty spatial axis to sample from",
            x.shape()
        ));
    }
    // Per axis: (pixel index, weight) taps, after padding resolved the index.
    let mut taps: Vec<Vec<(usize, f64)>> = vec![Vec::new(); nd];
    for b in 0..n {
        for o in 0..out_len {
            let g = &gv[(b * out_len + o) * nd..(b * out_len + o + 1) * nd];
            for (i, axis_taps) in taps.iter_mut().enumerate() {
                let dim = in_sp[i];
                let v = g[nd - 1 - i] as f32;
                let d = dim as f32;
                let mut p = if align_corners {
                    (v + 1.0) / 2.0 * (d - 1.0)
                } else {
                    ((v + 1.0) * d - 1.0) / 2.0
                } as f64;
                if mode == ResizeMode::Nearest {
                    p = p.round_ties_even();
                }
                let (lo, hi) = if align_corners {
                    (0.0, dim as f64 - 1.0)
                } else {
                    (-0.5, dim as f64 - 0.5)
                };
                if padding == GridPadding::Zeros {
                    // Far outside reads only zeros; keep the tap arithmetic small.
                    p = p.clamp(-8.0, dim as f64 + 8.0);
                }
                if p < lo || p > hi {
                    match padding {
                        GridPadding::Border => p = p.clamp(0.0, (dim as f64 - 1.0).max(0.0)),
                        GridPadding::Reflection => p = reflect(p, lo, hi),
                        GridPadding::Zeros => {}
                    }
                }
                let raw: Vec<(i64, f64)> = match mode {
                    ResizeMode::Nearest => vec![(p as i64, 1.0)],
                    ResizeMode::Linear => {
                        let f = p.floor();
                        let t = p - f;
                        vec![(f as i64, 1.0 - t), (f as i64 + 1, t)]
                    }
                    ResizeMode::Cubic => {
                        let f = p.floor();
                        let w = cubic_coeffs(p - f);
                        (0..4).map(|k| (f as i64 - 1 + k as i64, w[k])).collect()
                    }
                };
                axis_taps.clear();
                for (idx, w) in raw {
                    let resolved = match padding {
                        GridPadding::Zeros => (idx >= 0 && idx < dim as i64).then_some(idx),
                        GridPadding::Border => Some(idx.clamp(0, dim as i64 - 1)),
                        GridPadding::Reflection => {
                            Some((reflect(idx as f64, lo, hi) as i64).clamp(0, dim as i64 - 1))
                        }
                    };
                    if let Some(k) = resolved.filter(|&k| k >= 0) {
                        axis_taps.push((k as usize, w));
                    }
                }
            }
            // Every combination of one tap per axis.
            let mut acc = vec![0.0f64; c];
            if taps.iter().all(|t| !t.is_empty()) {
                let counts: Vec<usize> = taps.iter().map(Vec::len).collect();
                let mut sel = vec![0usize; nd];
                loop {
                    let mut w = 1.0;
                    let mut off = 0;
                    for i in 0..nd {
                        let (k, wi) = taps[i][sel[i]];
                        w *= wi;
                        off += k * in_st[i];
                    }
                    for (ch, a) in acc.iter_mut().enumerate() {
                        *a += w * xv[(b * c + ch) * in_len + off];
                    }
                    if !next_index(&mut sel, &counts) {
                        break;
                    }
                }
            }
            for (ch, a) in acc.into_iter().enumerate() {
                y[(b * c + ch) * out_len + o] = a;
            }
        }
    }
    let mut shape = vec![n, c];
    shape.extend_from_slice(out_sp);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

/// The normalised base coordinates of `size` points along one axis.
fn base_coords(size: usize, align_corners: bool) -> Vec<f64> {
    (0..size)
        .map(|i| {
            if align_corners {
                if size == 1 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i as f64 / (size - 1) as f64
                }
            } else {
                (2 * i + 1) as f64 / size as f64 - 1.0
            }
        })
        .collect()
}

/// The spatial sizes an AffineGrid `size` input asks for (`[N, C, H, W]` or
/// `[N, C, D, H, W]`), checked against theta `[N, 2, 3]` / `[N, 3, 4]`.
pub(crate) fn affine_grid_dims(theta: &[usize], size: &[i64]) -> Result<Vec<usize>, String> {
    if size.len() != 4 && size.len() != 5 {
        return Err(format!(
            "size {size:?} must have 4 (N, C, H, W) or 5 (N, C, D, H, W) entries"
        ));
    }
    let nd = size.len() - 2;
    let dims = size
        .iter()
        .map(|&v| usize::try_from(v).map_err(|_| format!("size {size:?} has a negative entry")))
        .collect::<Result<Vec<_>, _>>()?;
    if theta.len() != 3 || theta[1] != nd || theta[2] != nd + 1 || theta[0] != dims[0] {
        return Err(format!(
            "theta shape {theta:?} must be [{}, {nd}, {}] for size {size:?}",
            dims[0],
            nd + 1
        ));
    }
    Ok(dims)
}

/// `theta [N, k, k+1], size → grid [N, spatial..., k]`: each output point is theta times
/// the homogeneous base coordinates `(x, y[, z], 1)`.
pub fn affine_grid(align_corners: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let theta = req(ins, 0, "theta")?;
    let size = req(ins, 1, "size")?;
    check_float(theta, "theta")?;
    if !size.dtype().is_int() || size.rank() != 1 {
        return Err(format!(
            "size must be a 1-D integer tensor, got {} {:?}",
            size.dtype(),
            size.shape()
        ));
    }
    let dims = affine_grid_dims(theta.shape(), &size.to_i64_vec())?;
    let nd = dims.len() - 2;
    let n = dims[0];
    let sp = &dims[2..];
    let mut shape = vec![n];
    shape.extend_from_slice(sp);
    shape.push(nd);
    let total = crate::limits::numel(&shape).ok_or("the grid shape overflows")?;
    let th = theta.to_f64_vec();
    // Coordinates per axis, in the grid's order (x = last spatial axis first).
    let coords: Vec<Vec<f64>> = sp.iter().map(|&s| base_coords(s, align_corners)).collect();
    let mut out = try_vec(total, 0.0f64, "AffineGrid output")?;
    let pts: usize = sp.iter().product();
    let mut idx = vec![0usize; nd];
    for p in 0..pts {
        // Homogeneous point: reversed spatial coords, then 1.
        let mut h: Vec<f64> = (0..nd)
            .map(|k| coords[nd - 1 - k][idx[nd - 1 - k]])
            .collect();
        h.push(1.0);
        for b in 0..n {
            for j in 0..nd {
                let row = &th[(b * nd + j) * (nd + 1)..(b * nd + j + 1) * (nd + 1)];
                let v: f64 = row.iter().zip(&h).map(|(a, c)| a * c).sum();
                out[(b * pts + p) * nd + j] = v;
            }
        }
        next_index(&mut idx, sp);
    }
    Ok(vec![Tensor::from_f64(theta.dtype(), shape, &out)])
}

/// Most bilinear samples RoiAlign takes per output bin (a bound against absurd ROIs).
const ROI_MAX_SAMPLES: i64 = 1 << 20;

/// The bilinear taps of one RoiAlign sample point: four (flat position, weight) pairs,
/// all weight 0 outside the feature map.
fn roi_taps(y: f64, x: f64, height: usize, width: usize) -> [(usize, f64); 4] {
    let (h, w) = (height as f64, width as f64);
    if y < -1.0 || y > h || x < -1.0 || x > w || height == 0 || width == 0 {
        return [(0, 0.0); 4];
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y_lo, mut x_lo) = (y as usize, x as usize);
    let (y_hi, x_hi);
    if y_lo >= height - 1 {
        y_lo = height - 1;
        y_hi = y_lo;
        y = y_lo as f64;
    } else {
        y_hi = y_lo + 1;
    }
    if x_lo >= width - 1 {
        x_lo = width - 1;
        x_hi = x_lo;
        x = x_lo as f64;
    } else {
        x_hi = x_lo + 1;
    }
    let (ly, lx) = (y - y_lo as f64, x - x_lo as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    [
        (y_lo * width + x_lo, hy * hx),
        (y_lo * width + x_hi, hy * lx),
        (y_hi * width + x_lo, ly * hx),
        (y_hi * width + x_hi, ly * lx),
    ]
}

/// `X [N, C, H, W], rois [R, 4], batch_indices [R] → Y [R, C, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn roi_align(
    mode: RoiMode,
    output_height: usize,
    output_width: usize,
    sampling_ratio: usize,
    spatial_scale: f32,
    half_pixel: bool,
    ins: &[Option<&Tensor>],
) -> OpResult {
    let x = req(ins, 0, "X")?;
    let rois = req(ins, 1, "rois")?;
    let bi = req(ins, 2, "batch_indices")?;
    check_float(x, "X")?;
    check_float(rois, "rois")?;
    if x.rank() != 4 {
        return Err(format!("X must have rank 4, got shape {:?}", x.shape()));
    }
    let nr = bi.len();
    if rois.rank() != 2 || rois.shape()[1] != 4 || rois.shape()[0] != nr || bi.rank() != 1 {
        return Err(format!(
            "rois {:?} must be [R, 4] and batch_indices {:?} [R]",
            rois.shape(),
            bi.shape()
        ));
    }
    if !bi.dtype().is_int() {
        return Err(format!(
            "batch_indices must be integers, got {}",
            bi.dtype()
        ));
    }
    if output_height == 0 || output_width == 0 {
        return Err("output_height and output_width must be positive".into());
    }
    let (n, c, height, width) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (ph_n, pw_n) = (output_height, output_width);
    let shape = vec![nr, c, ph_n, pw_n];
    let total = crate::limits::numel(&shape).ok_or("the output shape overflows")?;
    let xv = x.to_f64_vec();
    let rv = rois.to_f64_vec();
    let batch = bi.to_i64_vec();
    let scale = spatial_scale as f64;
    let offset = if half_pixel { 0.5 } else { 0.0 };
    let mut y = try_vec(total, 0.0f64, "RoiAlign output")?;
    for r in 0..nr {
        let b = usize::try_from(batch[r])
            .ok()
            .filter(|&b| b < n)
            .ok_or_else(|| format!("batch index {} is out of range for {n} images", batch[r]))?;
        let roi = &rv[r * 4..r * 4 + 4];
        let start_w = roi[0] * scale - offset;
        let start_h = roi[1] * scale - offset;
        let mut roi_w = roi[2] * scale - offset - start_w;
        let mut roi_h = roi[3] * scale - offset - start_h;
        if !half_pixel {
            roi_w = roi_w.max(1.0);
            roi_h = roi_h.max(1.0);
        }
        let bin_h = roi_h / ph_n as f64;
        let bin_w = roi_w / pw_n as f64;
        let grid = |extent: f64, bins: usize| -> i64 {
            if sampling_ratio > 0 {
                sampling_ratio as i64
            } else {
                (extent / bins as f64).ceil() as i64
            }
        };
        let (gh, gw) = (grid(roi_h, ph_n), grid(roi_w, pw_n));
        let (gh, gw) = (gh.max(0), gw.max(0));
        if gh.saturating_mul(gw) > ROI_MAX_SAMPLES {
            return Err(format!(
                "roi {r} asks for a {gh}x{gw} sampling grid per bin, more than {ROI_MAX_SAMPLES}"
            ));
        }
        let count = (gh * gw).max(1) as f64;
        for ph in 0..ph_n {
            for pw in 0..pw_n {
                let mut samples = Vec::new();
                for iy in 0..gh {
                    let yy = start_h + ph as f64 * bin_h + (iy as f64 + 0.5) * bin_h / gh as f64;
                    for ix in 0..gw {
                        let xx =
                            start_w + pw as f64 * bin_w + (ix as f64 + 0.5) * bin_w / gw as f64;
                        samples.push(roi_taps(yy, xx, height, width));
                    }
                }
                for ch in 0..c {
                    let base = (b * c + ch) * height * width;
                    let val = |(p, w): (usize, f64)| if w == 0.0 { 0.0 } else { w * xv[base + p] };
                    let out = match mode {
                        RoiMode::Avg => {
                            let s: f64 = samples
                                .iter()
                                .map(|t| t.iter().map(|&tp| val(tp)).sum::<f64>())
                                .sum();
                            s / count
                        }
                        RoiMode::Max => samples
                            .iter()
                            .map(|t| t.iter().map(|&tp| val(tp)).fold(f64::MIN, f64::max))
                            .reduce(f64::max)
                            .unwrap_or(0.0),
                    };
                    y[((r * c + ch) * ph_n + ph) * pw_n + pw] = out;
                }
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

/// Arithmetic NonMaxSuppression does in the boxes' precision (f32 boxes in f32, as the
/// reference, so that boundary IoUs compare the same).
trait BoxNum:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(v: f64) -> Self;
}
impl BoxNum for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
}
impl BoxNum for f64 {
    fn of(v: f64) -> f64 {
        v
    }
}

fn min_max<T: BoxNum>(a: T, b: T) -> (T, T) {
    if a >= b {
        (b, a)
    } else {
        (a, b)
    }
}

fn fmax<T: BoxNum>(a: T, b: T) -> T {
    if a >= b {
        a
    } else {
        b
    }
}

fn fmin<T: BoxNum>(a: T, b: T) -> T {
    if a <= b {
        a
    } else {
        b
    }
}

/// Whether box `b` suppresses box `a` (IoU above the threshold).
fn suppresses<T: BoxNum>(a: &[T], b: &[T], center: bool, iou_threshold: T) -> bool {
    let zero = T::of(0.0);
    let two = T::of(2.0);
    let ((ax0, ax1), (ay0, ay1), (bx0, bx1), (by0, by1)) = if center {
        let span = |c: T, e: T| (c - e / two, c + e / two);
        (
            span(a[0], a[2]),
            span(a[1], a[3]),
            span(b[0], b[2]),
            span(b[1], b[3]),
        )
    } else {
        (
            min_max(a[1], a[3]),
            min_max(a[0], a[2]),
            min_max(b[1], b[3]),
            min_max(b[0], b[2]),
        )
    };
    let (ix0, ix1) = (fmax(ax0, bx0), fmin(ax1, bx1));
    if ix1 <= ix0 {
        return false;
    }
    let (iy0, iy1) = (fmax(ay0, by0), fmin(ay1, by1));
    if iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    if inter <= zero {
        return false;
    }
    let area_a = (ax1 - ax0) * (ay1 - ay0);
    let area_b = (bx1 - bx0) * (by1 - by0);
    let union = area_a + area_b - inter;
    if area_a <= zero || area_b <= zero || union <= zero {
        return false;
    }
    inter / union > iou_threshold
}

/// `boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class?, iou_threshold?,
/// score_threshold? → selected_indices i64 [K, 3]` of `(batch, class, box)`.
pub fn non_max_suppression(center_point_box: bool, ins: &[Option<&Tensor>]) -> OpResult {
    let boxes = req(ins, 0, "boxes")?;
    let scores = req(ins, 1, "scores")?;
    check_float(boxes, "boxes")?;
    check_float(scores, "scores")?;
    let (bs, ss) = (boxes.shape(), scores.shape());
    if boxes.rank() != 3 || bs[2] != 4 || scores.rank() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
        return Err(format!(
            "boxes {bs:?} must be [B, N, 4] and scores {ss:?} [B, C, N]"
        ));
    }
    let first = |i: usize, what: &str| -> Result<Option<f64>, String> {
        match opt(ins, i) {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) if t.len() == 1 => Ok(Some(t.get_f64(0))),
            Some(t) => Err(format!(
                "{what} must hold one value, got shape {:?}",
                t.shape()
            )),
        }
    };
    let max_out = match opt(ins, 2) {
        Some(t) if t.len() == 1 => {
            if !t.dtype().is_int() {
                return Err(format!(
                    "max_output_boxes_per_class must be an integer, got {}",
                    t.dtype()
                ));
            }
            t.to_i64_vec()[0].max(0) as u64
        }
        Some(t) if !t.is_empty() => {
            return Err(format!(
                "max_output_boxes_per_class must hold one value, got shape {:?}",
                t.shape()
            ))
        }
        _ => 0,
    };
    let iou = first(3, "iou_threshold")?.unwrap_or(0.0);
    let score_thr = first(4, "score_threshold")?;
    let out = if boxes.dtype() == crate::DType::F32 {
        let bv: Vec<f32> = boxes.to_f64_vec().iter().map(|&v| v as f32).collect();
        nms_core(
            &bv,
            scores,
            bs,
            ss[1],
            center_point_box,
            max_out,
            iou,
            score_thr,
        )
    } else {
        nms_core(
            &boxes.to_f64_vec(),
            scores,
            bs,
            ss[1],
            center_point_box,
            max_out,
            iou,
            score_thr,
        )
    };
    let k = out.len() / 3;
    Ok(vec![Tensor::from_vec(vec![k, 3], out)])
}

#[allow(clippy::too_many_arguments)]
fn nms_core<T: BoxNum>(
    bv: &[T],
    scores: &Tensor,
    bs: &[usize],
    classes: usize,
    center: bool,
    max_out: u64,
    iou: f64,
    score_thr: Option<f64>,
) -> Vec<i64> {
    let (nb, nbox) = (bs[0], bs[1]);
    let sv = scores.to_f64_vec();
    let iou_t = T::of(iou);
    let mut out = Vec::new();
    for b in 0..nb {
        for cl in 0..classes {
            let row = &sv[(b * classes + cl) * nbox..(b * classes + cl + 1) * nbox];
            // Candidates above the score threshold, best score first, lower index first
            // among equal scores.
            let mut cand: Vec<usize> = (0..nbox)
                .filter(|&i| score_thr.is_none_or(|t| T::of(row[i]) > T::of(t)))
                .collect();
            cand.sort_by(|&i, &j| {
                row[j]
                    .partial_cmp(&row[i])
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(i.cmp(&j))
            });
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() as u64 >= max_out {
                    break;
                }
                let bi = &bv[(b * nbox + i) * 4..(b * nbox + i + 1) * 4];
                let hit = kept.iter().any(|&k| {
                    let bk = &bv[(b * nbox + k) * 4..(b * nbox + k + 1) * 4];
                    suppresses(bi, bk, center, iou_t)
                });
                if !hit {
                    kept.push(i);
                    out.extend([b as i64, cl as i64, i as i64]);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec())
    }

    #[test]
    fn reflect_folds_into_the_range() {
        assert_eq!(reflect(-1.0, 0.0, 3.0), 1.0);
        assert_eq!(reflect(4.0, 0.0, 3.0), 2.0);
        assert_eq!(reflect(7.0, 0.0, 3.0), 1.0);
        assert_eq!(reflect(5.0, 0.0, 0.0), 0.0);
    }

    #[test]
    fn grid_sample_at_pixel_centres_reads_the_pixels() {
        let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        // align_corners: -1 and 1 are the corner pixel centres.
        let g = t(&[1, 1, 2, 2], &[-1.0, -1.0, 1.0, 1.0]);
        for mode in [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic] {
            let y = grid_sample(mode, GridPadding::Border, true, &[Some(&x), Some(&g)]).unwrap();
            assert_eq!(y[0].shape(), &[1, 1, 1, 2]);
            assert_eq!(y[0].to_f64_vec(), vec![1.0, 4.0], "{mode:?}");
        }
        // Outside with zeros padding reads 0.
        let far = t(&[1, 1, 1, 2], &[5.0, 5.0]);
        let y = grid_sample(
            ResizeMode::Linear,
            GridPadding::Zeros,
            false,
            &[Some(&x), Some(&far)],
        );
        assert_eq!(y.unwrap()[0].to_f64_vec(), vec![0.0]);
        // A grid whose last axis is not the spatial rank is refused.
        let bad = t(&[1, 1, 1, 3], &[0.0; 3]);
        let e = grid_sample(
            ResizeMode::Linear,
            GridPadding::Zeros,
            false,
            &[Some(&x), Some(&bad)],
        );
        assert!(e.is_err());
    }

    #[test]
    fn affine_grid_identity_gives_the_base_grid() {
        let theta = t(&[1, 2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let size = Tensor::from_vec(vec![4], vec![1i64, 1, 1, 2]);
        let y = affine_grid(false, &[Some(&theta), Some(&size)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 2]);
        assert_eq!(y[0].to_f64_vec(), vec![-0.5, 0.0, 0.5, 0.0]);
        let bad = Tensor::from_vec(vec![4], vec![2i64, 1, 1, 2]);
        assert!(affine_grid(false, &[Some(&theta), Some(&bad)]).is_err());
    }

    #[test]
    fn roi_align_averages_and_checks_batch_indices() {
        let x = t(&[1, 1, 2, 2], &[1.0, 1.0, 1.0, 1.0]);
        let rois = t(&[1, 4], &[0.0, 0.0, 1.0, 1.0]);
        let ok = Tensor::from_vec(vec![1], vec![0i64]);
        let y = roi_align(
            RoiMode::Avg,
            1,
            1,
            2,
            1.0,
            false,
            &[Some(&x), Some(&rois), Some(&ok)],
        );
        assert_eq!(y.unwrap()[0].to_f64_vec(), vec![1.0]);
        let bad = Tensor::from_vec(vec![1], vec![3i64]);
        let e = roi_align(
            RoiMode::Max,
            1,
            1,
            0,
            1.0,
            true,
            &[Some(&x), Some(&rois), Some(&bad)],
        );
        assert!(e.unwrap_err().contains("batch index 3"));
    }

    #[test]
    fn nms_suppresses_overlaps_and_keeps_the_best() {
        let boxes = t(
            &[1, 3, 4],
            &[0.0, 0.0, 1.0, 1.0, 0.0, 0.1, 1.0, 1.1, 0.0, 5.0, 1.0, 6.0],
        );
        let scores = t(&[1, 1, 3], &[0.9, 0.95, 0.5]);
        let max = Tensor::from_vec(vec![1], vec![10i64]);
        let iou = t(&[1], &[0.5]);
        let y = non_max_suppression(
            false,
            &[Some(&boxes), Some(&scores), Some(&max), Some(&iou)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[2, 3]);
        assert_eq!(y[0].to_i64_vec(), vec![0, 0, 1, 0, 0, 2]);
        // No max_output_boxes_per_class: nothing is selected.
        let y = non_max_suppression(false, &[Some(&boxes), Some(&scores)]).unwrap();
        assert_eq!(y[0].shape(), &[0, 3]);
        assert!(non_max_suppression(false, &[Some(&boxes), Some(&boxes)]).is_err());
    }
}
