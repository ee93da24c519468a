//! Shape inference for the windowed ops: Conv, ConvTranspose, MaxPool and AveragePool,
//! with explicit pads, `auto_pad` (SAME_UPPER / SAME_LOWER / VALID), dilations, strides,
//! `ceil_mode` and ConvTranspose's `output_padding` / `output_shape`.

use super::dims::{show_dims, Ins, SymGen};
use crate::{AutoPad, Dim, TensorType, Window};

/// The per-axis geometry of a window op with `n` spatial axes, defaults filled in.
struct Geometry {
    kernel: Vec<Dim>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    /// All begins, then all ends.
    pads: Vec<usize>,
}

fn geometry(w: &Window, n: usize, kernel_from_weight: Option<&[Dim]>) -> Result<Geometry, String> {
    let kernel: Vec<Dim> = if !w.kernel_shape.is_empty() {
        w.kernel_shape.iter().map(|&k| Dim::Known(k)).collect()
    } else if let Some(k) = kernel_from_weight {
        k.to_vec()
    } else {
        return Err("kernel_shape is required".into());
    };
    let fill =
        |v: &[usize], len: usize, default: usize, what: &str| -> Result<Vec<usize>, String> {
            if v.is_empty() {
                Ok(vec![default; len])
            } else if v.len() == len {
                Ok(v.to_vec())
            } else {
                Err(format!(
                    "{what} has {} values but the input has {n} spatial axes",
                    v.len()
                ))
            }
        };
    if kernel.len() != n {
        return Err(format!(
            "kernel_shape has {} values but the input has {n} spatial axes",
            kernel.len()
        ));
    }
    if kernel.contains(&Dim::Known(0)) {
        return Err(format!(
            "kernel shape {} must have {n} positive entries",
            show_dims(&kernel)
        ));
    }
    let strides = fill(&w.strides, n, 1, "strides")?;
    if strides.contains(&0) {
        return Err(format!("strides must be positive, got {:?}", w.strides));
    }
    let dilations = fill(&w.dilations, n, 1, "dilations")?;
    if dilations.contains(&0) {
        return Err(format!("dilations must be positive, got {:?}", w.dilations));
    }
    let pads = fill(&w.pads, 2 * n, 0, "pads")?;
    Ok(Geometry {
        kernel,
        strides,
        dilations,
        pads,
    })
}

/// Output size of one spatial axis of Conv / pooling (the formula of ONNX's shape
/// inference, which also fixes the SAME pads).
#[allow(clippy::too_many_arguments)]
fn window_out(
    auto_pad: AutoPad,
    ceil_mode: bool,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
) -> Result<usize, String> {
    let (input, stride) = (input as i64, stride as i64);
    let eff_k = (kernel as i64 - 1)
        .saturating_mul(dilation as i64)
        .saturating_add(1);
    let (pb, pe) = match auto_pad {
        AutoPad::NotSet => (pad_begin as i64, pad_end as i64),
        AutoPad::Valid => (0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let residual = input % stride;
            let total = (if residual == 0 {
                eff_k - stride
            } else {
                eff_k - residual
            })
            .max(0);
            let small = total / 2;
            if auto_pad == AutoPad::SameUpper {
                (small, total - small)
            } else {
                (total - small, small)
            }
        }
    };
    let mut numerator = input + pb + pe - eff_k;
    if numerator < 0 {
        return Err(format!(
            "the window (kernel {kernel}, dilation {dilation}) is larger than the padded input ({} + {pb} + {pe})",
            input
        ));
    }
    // `ceil_mode` applies to explicit pads only: with `auto_pad` the ONNX reference ignores
    // it (MaxPool: VALID gives `ceil((in - eff_k + 1) / s)`, the floor-mode size) or rejects
    // it (AveragePool), and the SAME pads above make the division exact anyway.
    let ceil_mode = ceil_mode && auto_pad == AutoPad::NotSet;
    if ceil_mode {
        numerator += stride - 1;
    }
    let mut out = numerator / stride + 1;
    // Windows that would start in the right padding are dropped (PyTorch / ONNX rule).
    if ceil_mode && (out - 1) * stride >= input + pb {
        out -= 1;
    }
    Ok(out as usize)
}

/// Whether the output of an axis equals its input whatever the input size (so a symbolic
/// input dim passes through).
fn preserves_size(
    auto_pad: AutoPad,
    kernel: &Dim,
    stride: usize,
    dilation: usize,
    pb: usize,
    pe: usize,
) -> bool {
    if stride != 1 {
        return false;
    }
    match (auto_pad, kernel) {
        (AutoPad::SameUpper | AutoPad::SameLower, _) => true,
        (AutoPad::NotSet, Dim::Known(k)) => {
            pb.saturating_add(pe) == k.saturating_sub(1).saturating_mul(dilation)
        }
        (AutoPad::Valid, Dim::Known(k)) => *k == 1,
        _ => false,
    }
}

fn spatial_out(
    w: &Window,
    ceil_mode: bool,
    geo: &Geometry,
    input: &[Dim],
    gen: &mut SymGen,
) -> Result<Vec<Dim>, String> {
    let n = input.len();
    let mut out = Vec::with_capacity(n);
    for (i, dim) in input.iter().enumerate() {
        let (pb, pe) = (geo.pads[i], geo.pads[n + i]);
        let (s, d) = (geo.strides[i], geo.dilations[i]);
        out.push(match (dim, &geo.kernel[i]) {
            (Dim::Known(x), Dim::Known(k)) => Dim::Known(
                window_out(w.auto_pad, ceil_mode, *x, *k, s, d, pb, pe)
                    .map_err(|e| format!("spatial axis {i}: {e}"))?,
            ),
            (x, k) if preserves_size(w.auto_pad, k, s, d, pb, pe) => x.clone(),
            _ => gen.fresh(),
        });
    }
    Ok(out)
}

/// `x [N, C, D...], w [M, C/group, k...] → [N, M, O...]`.
pub fn conv(w: &Window, group: usize, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let wt = ins.ty(1, "W")?;
    if x.dtype != wt.dtype {
        return Err(format!(
            "X has dtype {} but W has dtype {}",
            x.dtype, wt.dtype
        ));
    }
    if group == 0 {
        return Err("group must be positive".into());
    }
    let Some(xs) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    if xs.len() < 3 {
        return Err(format!("X must have rank >= 3, got {}", show_dims(xs)));
    }
    let n = xs.len() - 2;
    let ws = wt.shape.as_deref();
    if let Some(ws) = ws {
        if ws.len() != xs.len() {
            return Err(format!(
                "W {} and X {} must have the same rank",
                show_dims(ws),
                show_dims(xs)
            ));
        }
        if let (Dim::Known(c), Dim::Known(wc)) = (&xs[1], &ws[1]) {
            if *c != wc * group {
                return Err(format!(
                    "X has {c} channels but W expects {wc} per group x {group} groups"
                ));
            }
        }
    }
    let geo = geometry(w, n, ws.map(|s| &s[2..]))?;
    let m = match ws {
        Some(ws) => ws[0].clone(),
        None => gen.fresh(),
    };
    let mut out = vec![xs[0].clone(), m];
    out.extend(spatial_out(w, false, &geo, &xs[2..], gen)?);
    Ok(TensorType::new(x.dtype, out))
}

/// `x [N, C, D...], w [C, M/group, k...] → [N, M, O...]`.
pub fn conv_transpose(
    w: &Window,
    group: usize,
    output_padding: &[usize],
    output_shape: &[usize],
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let wt = ins.ty(1, "W")?;
    if x.dtype != wt.dtype {
        return Err(format!(
            "X has dtype {} but W has dtype {}",
            x.dtype, wt.dtype
        ));
    }
    if group == 0 {
        return Err("group must be positive".into());
    }
    let Some(xs) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    if xs.len() < 3 {
        return Err(format!("X must have rank >= 3, got {}", show_dims(xs)));
    }
    let n = xs.len() - 2;
    let ws = wt.shape.as_deref();
    if let Some(ws) = ws {
        if ws.len() != xs.len() {
            return Err(format!(
                "W {} and X {} must have the same rank",
                show_dims(ws),
                show_dims(xs)
            ));
        }
        if let (Dim::Known(c), Dim::Known(wc)) = (&xs[1], &ws[0]) {
            if c != wc {
                return Err(format!("X has {c} channels but W has {wc} input channels"));
            }
        }
    }
    let geo = geometry(w, n, ws.map(|s| &s[2..]))?;
    let m = match ws.map(|s| &s[1]) {
        Some(Dim::Known(k)) => Dim::Known(k * group),
        Some(d @ Dim::Sym(_)) if group == 1 => d.clone(),
        _ => gen.fresh(),
    };
    let mut out = vec![xs[0].clone(), m];
    if !output_shape.is_empty() {
        let spatial = match output_shape.len() {
            l if l == n => output_shape,
            l if l == n + 2 => &output_shape[2..],
            l => {
                return Err(format!(
                    "output_shape has {l} values but the input has {n} spatial axes"
                ))
            }
        };
        out.extend(spatial.iter().map(|&d| Dim::Known(d)));
        return Ok(TensorType::new(x.dtype, out));
    }
    if !output_padding.is_empty() && output_padding.len() != n {
        return Err(format!(
            "output_padding has {} values but the input has {n} spatial axes",
            output_padding.len()
        ));
    }
    for i in 0..n {
        let s = geo.strides[i];
        let op = output_padding.get(i).copied().unwrap_or(0);
        out.push(match (&xs[2 + i], &geo.kernel[i], w.auto_pad) {
            (Dim::Known(d), _, AutoPad::SameUpper | AutoPad::SameLower) => Dim::Known(d * s),
            (Dim::Known(d), Dim::Known(k), pad) => {
                let (pb, pe) = if pad == AutoPad::Valid {
                    (0, 0)
                } else {
                    (geo.pads[i], geo.pads[n + i])
                };
                let full = (s as i64)
                    .saturating_mul(*d as i64 - 1)
                    .saturating_add(op as i64)
                    .saturating_add((*k as i64 - 1).saturating_mul(geo.dilations[i] as i64))
                    .saturating_add(1);
                let o = full - pb as i64 - pe as i64;
                if o < 0 {
                    return Err(format!(
                        "spatial axis {i}: the output size would be negative ({o})"
                    ));
                }
                Dim::Known(o as usize)
            }
            (d, _, AutoPad::SameUpper | AutoPad::SameLower) if s == 1 => d.clone(),
            _ => gen.fresh(),
        });
    }
    Ok(TensorType::new(x.dtype, out))
}

/// MaxPool / AveragePool: `x [N, C, D...] → [N, C, O...]`; `kernel_shape` is required.
pub fn pool(
    w: &Window,
    ceil_mode: bool,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let Some(xs) = &x.shape else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    if xs.len() < 3 {
        return Err(format!("X must have rank >= 3, got {}", show_dims(xs)));
    }
    let geo = geometry(w, xs.len() - 2, None)?;
    let mut out = vec![xs[0].clone(), xs[1].clone()];
    out.extend(spatial_out(w, ceil_mode, &geo, &xs[2..], gen)?);
    Ok(TensorType::new(x.dtype, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_pads_and_strides() {
        // (5 + 1 + 1 - 3) / 2 + 1 = 3
        assert_eq!(
            window_out(AutoPad::NotSet, false, 5, 3, 2, 1, 1, 1).unwrap(),
            3
        );
        // dilation 2: effective kernel 5 → (7 - 5) / 1 + 1 = 3
        assert_eq!(
            window_out(AutoPad::NotSet, false, 7, 3, 1, 2, 0, 0).unwrap(),
            3
        );
        assert!(window_out(AutoPad::NotSet, false, 2, 3, 1, 1, 0, 0).is_err());
    }

    #[test]
    fn same_and_valid() {
        // SAME: ceil(in / stride).
        assert_eq!(
            window_out(AutoPad::SameUpper, false, 5, 3, 2, 1, 0, 0).unwrap(),
            3
        );
        assert_eq!(
            window_out(AutoPad::SameLower, false, 32, 2, 1, 1, 0, 0).unwrap(),
            32
        );
        assert_eq!(
            window_out(AutoPad::SameUpper, false, 7, 1, 2, 1, 0, 0).unwrap(),
            4
        );
        // VALID: floor((in - k) / s) + 1.
        assert_eq!(
            window_out(AutoPad::Valid, false, 32, 5, 1, 1, 9, 9).unwrap(),
            28
        );
        assert_eq!(
            window_out(AutoPad::Valid, false, 5, 2, 2, 1, 0, 0).unwrap(),
            2
        );
    }

    #[test]
    fn ceil_mode() {
        // maxpool_2d_ceil: 4x4, k 3, s 2 → ceil(1/2)+1 = 2 (floor mode gives 1).
        assert_eq!(
            window_out(AutoPad::NotSet, true, 4, 3, 2, 1, 0, 0).unwrap(),
            2
        );
        assert_eq!(
            window_out(AutoPad::NotSet, false, 4, 3, 2, 1, 0, 0).unwrap(),
            1
        );
        // The last window would start in the right padding: 5 + pad 1 + 1, k 2, s 2:
        // ceil((7 - 2) / 2) + 1 = 4, but window 3 starts at 6 >= 5 + 1 → 3.
        assert_eq!(
            window_out(AutoPad::NotSet, true, 5, 2, 2, 1, 1, 1).unwrap(),
            3
        );
    }

    #[test]
    fn ceil_mode_ignored_with_auto_pad() {
        // VALID: ceil((3 - 2 + 1) / 2) = 1 window of 2 over 3 elements, as the ONNX
        // reference (and ir::eval) give; ceil mode would add a second one.
        for ceil in [false, true] {
            assert_eq!(
                window_out(AutoPad::Valid, ceil, 3, 2, 2, 1, 0, 0).unwrap(),
                1
            );
            assert_eq!(
                window_out(AutoPad::Valid, ceil, 7, 3, 3, 1, 0, 0).unwrap(),
                2
            );
            // SAME: ceil(in / s) either way.
            for (ap, input, k, s) in [
                (AutoPad::SameUpper, 6, 1, 4),
                (AutoPad::SameLower, 5, 2, 4),
                (AutoPad::SameUpper, 7, 3, 2),
            ] {
                assert_eq!(
                    window_out(ap, ceil, input, k, s, 1, 0, 0).unwrap(),
                    input.div_ceil(s)
                );
            }
        }
    }
}
