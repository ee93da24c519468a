//! Shape inference for reductions (Reduce*, ArgMax/ArgMin, TopK) and for the ops whose
//! output shape is computed from input values: Shape, ConstantOfShape, Range, Resize and
//! OneHot.

use super::dims::{norm_axes, norm_axis, show_dims, to_size, Ins, SymGen};
use crate::{AspectPolicy, DType, Dim, ResizeAttrs, Tensor, TensorType};

/// `x, axes? → y`. Empty or absent axes reduce everything, or nothing with
/// `noop_with_empty_axes`.
pub fn reduce(
    keepdims: bool,
    noop_with_empty_axes: bool,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let axes: Vec<usize> = match ins.const_i64(1) {
        Some(a) if !a.is_empty() => norm_axes(&a, s.len())?,
        Some(_) => vec![],
        None if ins.present(1) => {
            // Axes unknown: with keepdims every dim is itself or 1; without, only the rank
            // may be known.
            if keepdims {
                let out = s
                    .iter()
                    .map(|d| {
                        if *d == Dim::Known(1) {
                            d.clone()
                        } else {
                            gen.fresh()
                        }
                    })
                    .collect();
                return Ok(TensorType::new(x.dtype, out));
            }
            return Ok(match ins.len_1d(1) {
                Some(k) if k > 0 && k <= s.len() => {
                    TensorType::new(x.dtype, gen.fresh_dims(s.len() - k))
                }
                _ => TensorType::unknown_rank(x.dtype),
            });
        }
        None => vec![],
    };
    if axes.is_empty() && noop_with_empty_axes {
        return Ok(x.clone());
    }
    let all = axes.is_empty();
    let mut out = Vec::with_capacity(s.len());
    for (i, d) in s.iter().enumerate() {
        if all || axes.contains(&i) {
            if keepdims {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(d.clone());
        }
    }
    Ok(TensorType::new(x.dtype, out))
}

/// ArgMax / ArgMin: i64 indices, the axis kept as 1 or removed.
pub fn arg_extreme(axis: i64, keepdims: bool, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(TensorType::unknown_rank(DType::I64));
    };
    let a = norm_axis(axis, s.len())?;
    let mut out = s.clone();
    if keepdims {
        out[a] = Dim::Known(1);
    } else {
        out.remove(a);
    }
    Ok(TensorType::new(DType::I64, out))
}

/// `x, k → values, indices (i64)`, the axis replaced by `k`.
pub fn top_k(axis: i64, ins: &Ins, gen: &mut SymGen) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "X")?;
    let Some(s) = &x.shape else {
        return Ok(vec![x.clone(), TensorType::unknown_rank(DType::I64)]);
    };
    let a = norm_axis(axis, s.len())?;
    let k = match ins.const_i64(1).as_deref() {
        Some([k]) => {
            let k = to_size(*k, "k")?;
            if let Dim::Known(d) = s[a] {
                if k > d {
                    return Err(format!("k = {k} is larger than axis {a} of size {d}"));
                }
            }
            Dim::Known(k)
        }
        Some(v) => return Err(format!("k must hold one value, got {} values", v.len())),
        None => gen.fresh(),
    };
    let mut out = s.clone();
    out[a] = k;
    Ok(vec![
        TensorType::new(x.dtype, out.clone()),
        TensorType::new(DType::I64, out),
    ])
}

/// The `[start, end)` range of axes that `Shape` reports, clamped like ONNX does.
pub fn shape_range(start: i64, end: Option<i64>, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(start);
    let e = end.map(clamp).unwrap_or(rank);
    (s, e.max(s))
}

pub fn shape(
    start: i64,
    end: Option<i64>,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let len = match x.rank() {
        Some(r) => {
            let (s, e) = shape_range(start, end, r);
            Dim::Known(e - s)
        }
        None => gen.fresh(),
    };
    Ok(TensorType::new(DType::I64, vec![len]))
}

pub fn constant_of_shape(
    value: &Tensor,
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    ins.ty(0, "input")?;
    let dtype = value.dtype();
    if let Some(v) = ins.sym_value(0) {
        let dims = v
            .iter()
            .map(|d| d.to_dim().ok_or(format!("shape has a negative size {d}")))
            .collect::<Result<_, _>>()?;
        return Ok(TensorType::new(dtype, dims));
    }
    Ok(match ins.len_1d(0) {
        Some(n) => TensorType::new(dtype, gen.fresh_dims(n)),
        None => TensorType::unknown_rank(dtype),
    })
}

/// `start, limit, delta → [max(ceil((limit - start) / delta), 0)]`.
pub fn range(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let dtype = ins.dtype(0, "start")?;
    for (i, what) in [(1, "limit"), (2, "delta")] {
        let d = ins.dtype(i, what)?;
        if d != dtype {
            return Err(format!("{what} has dtype {d} but start has dtype {dtype}"));
        }
    }
    let scalar = |i: usize| -> Option<Tensor> { ins.konst(i).filter(|t| t.len() == 1).cloned() };
    let (Some(s), Some(l), Some(d)) = (scalar(0), scalar(1), scalar(2)) else {
        // `Range(0, n, 1)` over a dim `n` read from a shape (exporters build position ids
        // and masks so) has exactly `n` elements: a dim is never negative.
        let unit = |i: usize, v: i64| scalar(i).is_some_and(|t| t.to_i64_vec() == [v]);
        if !dtype.is_float() && unit(0, 0) && unit(2, 1) {
            if let Some([super::values::SymElem::Sym(n)]) = ins.sym_value(1).as_deref() {
                return Ok(TensorType::new(dtype, vec![Dim::Sym(n.clone())]));
            }
        }
        return Ok(TensorType::new(dtype, vec![gen.fresh()]));
    };
    let n = if dtype.is_float() {
        let (s, l, d) = (s.get_f64(0), l.get_f64(0), d.get_f64(0));
        if d == 0.0 || !d.is_finite() {
            return Err(format!("delta must be finite and non-zero, got {d}"));
        }
        ((l - s) / d).ceil().max(0.0) as usize
    } else {
        let (s, l, d) = (
            s.to_i64_vec()[0] as i128,
            l.to_i64_vec()[0] as i128,
            d.to_i64_vec()[0] as i128,
        );
        if d == 0 {
            return Err("delta must be non-zero".into());
        }
        let num = l - s;
        let q = num / d;
        let ceil = if num % d != 0 && ((num > 0) == (d > 0)) {
            q + 1
        } else {
            q
        };
        ceil.max(0) as usize
    };
    Ok(TensorType::new(dtype, vec![Dim::Known(n)]))
}

/// `x, roi?, scales?, sizes? → y`: sizes (with the aspect-ratio policy) or
/// `floor(dim · scale)`, on `attrs.axes` or on every axis.
pub fn resize(attrs: &ResizeAttrs, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "X")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let r = s.len();
    let axes: Vec<usize> = match &attrs.axes {
        Some(a) => norm_axes(a, r)?,
        None => (0..r).collect(),
    };
    let nonempty = |i: usize| ins.konst(i).filter(|t| !t.is_empty());
    let sizes_given = ins.present(3) && ins.konst(3).is_none_or(|t| !t.is_empty());
    let mut out = s.clone();
    if let Some(sizes) = nonempty(3).map(|t| t.to_i64_vec()) {
        if sizes.len() != axes.len() {
            return Err(format!(
                "sizes {sizes:?} must have one value per resized axis ({})",
                axes.len()
            ));
        }
        let sizes: Vec<usize> = sizes
            .iter()
            .map(|&v| to_size(v, "sizes"))
            .collect::<Result<_, _>>()?;
        if attrs.aspect == AspectPolicy::Stretch {
            for (&a, &n) in axes.iter().zip(&sizes) {
                out[a] = Dim::Known(n);
            }
            return Ok(TensorType::new(x.dtype, out));
        }
        let ins_known: Option<Vec<usize>> = axes.iter().map(|&a| s[a].known()).collect();
        let Some(in_known) = ins_known else {
            for &a in &axes {
                out[a] = gen.fresh();
            }
            return Ok(TensorType::new(x.dtype, out));
        };
        let ratios = sizes
            .iter()
            .zip(&in_known)
            .map(|(&o, &i)| o as f64 / i as f64);
        let scale = if attrs.aspect == AspectPolicy::NotLarger {
            ratios.fold(f64::INFINITY, f64::min)
        } else {
            ratios.fold(f64::NEG_INFINITY, f64::max)
        };
        for (&a, &i) in axes.iter().zip(&in_known) {
            out[a] = Dim::Known((scale * i as f64 + 0.5) as usize);
        }
        return Ok(TensorType::new(x.dtype, out));
    }
    if sizes_given {
        for &a in &axes {
            out[a] = gen.fresh();
        }
        return Ok(TensorType::new(x.dtype, out));
    }
    let Some(scales) = nonempty(2).map(|t| t.to_f64_vec()) else {
        for &a in &axes {
            out[a] = gen.fresh();
        }
        return Ok(TensorType::new(x.dtype, out));
    };
    if scales.len() != axes.len() {
        return Err(format!(
            "scales {scales:?} must have one value per resized axis ({})",
            axes.len()
        ));
    }
    for (&a, &sc) in axes.iter().zip(&scales) {
        if !(sc > 0.0 && sc.is_finite()) {
            return Err(format!("scales must be positive, got {scales:?}"));
        }
        out[a] = match &s[a] {
            Dim::Known(d) => Dim::Known((*d as f64 * sc) as usize),
            d if sc == 1.0 => d.clone(),
            _ => gen.fresh(),
        };
    }
    Ok(TensorType::new(x.dtype, out))
}

/// `indices I, depth, values → I with depth inserted at axis` (dtype of `values`).
pub fn one_hot(axis: i64, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let idx = ins.ty(0, "indices")?;
    let dtype = ins.dtype(2, "values")?;
    let Some(s) = &idx.shape else {
        return Ok(TensorType::unknown_rank(dtype));
    };
    let depth = match ins.konst(1) {
        Some(t) if t.len() == 1 => {
            let d = t.get_f64(0);
            if d < 1.0 || !d.is_finite() {
                return Err(format!("depth must be positive, got {d}"));
            }
            Dim::Known(d as usize)
        }
        Some(t) => {
            return Err(format!(
                "depth must hold one value, got shape {:?}",
                t.shape()
            ))
        }
        None => gen.fresh(),
    };
    let a = norm_axis(axis, s.len() + 1).map_err(|e| format!("{e} (indices {})", show_dims(s)))?;
    let mut out = s.clone();
    out.insert(a, depth);
    Ok(TensorType::new(dtype, out))
}
