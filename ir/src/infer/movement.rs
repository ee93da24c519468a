//! Shape inference for the data-movement ops: Reshape, Transpose, Flatten, Squeeze,
//! Unsqueeze, Concat, Split, Slice, Gather, GatherND, Expand, Tile and Pad. Sizes that
//! come from constant inputs are computed; others become fresh symbols.

use super::dims::{
    broadcast_shapes, dim_add, dim_product, norm_axes, norm_axis, show_dims, to_size, unify_dim,
    Ins, SymGen,
};
use super::values::SymElem;
use crate::{Dim, TensorType};

/// `data, shape → reshaped`: `0` copies the input dim (unless `allowzero`), `-1` is
/// inferred from the element count, symbolically when the symbols cancel out.
pub fn reshape(allowzero: bool, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let data = ins.ty(0, "data")?;
    let dtype = data.dtype;
    let Some(elems) = ins.sym_value(1) else {
        return Ok(match ins.len_1d(1) {
            Some(n) => TensorType::new(dtype, gen.fresh_dims(n)),
            None => TensorType::unknown_rank(dtype),
        });
    };
    let in_dims = data.shape.as_deref();
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(elems.len());
    let mut infer_at = None;
    let shown: Vec<String> = elems.iter().map(|e| e.to_string()).collect();
    let target = format!("[{}]", shown.join(","));
    for (i, v) in elems.into_iter().enumerate() {
        let v = match v {
            SymElem::Sym(s) => {
                out.push(Some(Dim::Sym(s)));
                continue;
            }
            SymElem::Int(v) => v,
        };
        out.push(match v {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(format!("shape {target} has more than one -1"));
                }
                None
            }
            0 if !allowzero => match in_dims {
                Some(d) => Some(d.get(i).cloned().ok_or_else(|| {
                    format!(
                        "shape {target} copies dim {i} but the input has rank {}",
                        d.len()
                    )
                })?),
                None => Some(gen.fresh()),
            },
            v if v < -1 => return Err(format!("shape {target} has a negative size {v}")),
            v => Some(Dim::Known(v as usize)),
        });
    }
    let known_out: Vec<Dim> = out.iter().flatten().cloned().collect();
    let Some(in_dims) = in_dims else {
        return Ok(TensorType::new(
            dtype,
            out.into_iter()
                .map(|d| d.unwrap_or_else(|| gen.fresh()))
                .collect(),
        ));
    };
    // Element counts split into known factors and symbol multisets.
    let split = |dims: &[Dim]| -> (u128, Vec<String>) {
        let mut k: u128 = 1;
        let mut syms = Vec::new();
        for d in dims {
            match d {
                Dim::Known(n) => k = k.saturating_mul(*n as u128),
                Dim::Sym(s) => syms.push(s.clone()),
            }
        }
        (k, syms)
    };
    let (k_in, s_in) = split(in_dims);
    let (k_out, s_out) = split(&known_out);
    let mut rest = s_in.clone();
    let mut covered = true;
    for s in &s_out {
        match rest.iter().position(|r| r == s) {
            Some(p) => {
                rest.remove(p);
            }
            None => covered = false,
        }
    }
    let mismatch = || {
        format!(
            "cannot reshape {} into {target} (the element counts differ)",
            show_dims(in_dims)
        )
    };
    let inferred = match infer_at {
        None => {
            if covered && rest.is_empty() && k_in != k_out {
                return Err(mismatch());
            }
            None
        }
        Some(_) if covered && rest.is_empty() && k_out != 0 => {
            if k_in % k_out != 0 {
                return Err(mismatch());
            }
            Some(Dim::Known((k_in / k_out) as usize))
        }
        Some(_) if covered && rest.len() == 1 && k_in == k_out && k_out != 0 => {
            Some(Dim::Sym(rest[0].clone()))
        }
        Some(_) => Some(gen.fresh()),
    };
    let mut inferred = inferred;
    Ok(TensorType::new(
        dtype,
        out.into_iter()
            .map(|d| d.or_else(|| inferred.take()).unwrap_or_else(|| gen.fresh()))
            .collect(),
    ))
}

pub fn transpose(perm: Option<&[usize]>, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let out = match perm {
        None => s.iter().rev().cloned().collect(),
        Some(p) => {
            let mut seen = vec![false; s.len()];
            if p.len() != s.len() {
                return Err(format!("perm {p:?} does not fit rank {}", s.len()));
            }
            for &a in p {
                match seen.get_mut(a) {
                    Some(f) if !*f => *f = true,
                    _ => return Err(format!("perm {p:?} is not a permutation of 0..{}", s.len())),
                }
            }
            p.iter().map(|&a| s[a].clone()).collect()
        }
    };
    Ok(TensorType::new(x.dtype, out))
}

pub fn flatten(axis: i64, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let Some(s) = &x.shape else {
        return Ok(TensorType::new(x.dtype, gen.fresh_dims(2)));
    };
    let r = s.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let a = a as usize;
    Ok(TensorType::new(
        x.dtype,
        vec![dim_product(&s[..a], gen), dim_product(&s[a..], gen)],
    ))
}

/// `data, axes? → y`: without axes, every dim known to be 1 goes (a symbolic dim makes
/// the rank unknown).
pub fn squeeze(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    if !ins.present(1) {
        if s.iter().any(|d| matches!(d, Dim::Sym(_))) {
            return Ok(TensorType::unknown_rank(x.dtype));
        }
        return Ok(TensorType::new(
            x.dtype,
            s.iter().filter(|d| **d != Dim::Known(1)).cloned().collect(),
        ));
    }
    let Some(axes) = ins.const_i64(1) else {
        return Ok(TensorType::unknown_rank(x.dtype));
    };
    let axes = norm_axes(&axes, s.len())?;
    for &a in &axes {
        if let Dim::Known(n) = s[a] {
            if n != 1 {
                return Err(format!(
                    "cannot squeeze axis {a} of size {n} (shape {})",
                    show_dims(s)
                ));
            }
        }
    }
    Ok(TensorType::new(
        x.dtype,
        s.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone())
            .collect(),
    ))
}

pub fn unsqueeze(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let Some(axes) = ins.const_i64(1) else {
        return Ok(match ins.len_1d(1) {
            Some(n) => TensorType::new(x.dtype, gen.fresh_dims(s.len() + n)),
            None => TensorType::unknown_rank(x.dtype),
        });
    };
    let rank = s.len() + axes.len();
    let axes = norm_axes(&axes, rank)?;
    let mut src = s.iter();
    let out = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                Some(Dim::Known(1))
            } else {
                src.next().cloned()
            }
        })
        .collect::<Option<Vec<Dim>>>()
        .ok_or("internal: unsqueeze ran out of input dims")?;
    Ok(TensorType::new(x.dtype, out))
}

pub fn concat(axis: i64, ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let first = ins.ty(0, "inputs")?;
    let dtype = first.dtype;
    let mut shapes = Vec::new();
    let mut any_unknown = false;
    for i in 0..ins.types.len() {
        let t = ins.ty(i, "inputs")?;
        if t.dtype != dtype {
            return Err(format!(
                "input {i} has dtype {} but input 0 has dtype {dtype}",
                t.dtype
            ));
        }
        match &t.shape {
            Some(s) => shapes.push((i, s)),
            None => any_unknown = true,
        }
    }
    let Some((_, s0)) = shapes.first() else {
        return Ok(TensorType::unknown_rank(dtype));
    };
    let rank = s0.len();
    let a = norm_axis(axis, rank)?;
    let mut out: Vec<Dim> = s0.to_vec();
    for (i, s) in &shapes[1..] {
        if s.len() != rank {
            return Err(format!(
                "input {i} has rank {} but input 0 has rank {rank}",
                s.len()
            ));
        }
        for (d, (o, x)) in out.iter_mut().zip(s.iter()).enumerate() {
            if d == a {
                *o = dim_add(o, x, gen);
            } else {
                *o = unify_dim(o, x, &format!("input {i} differs from input 0 on axis {d}"))?;
            }
        }
    }
    if any_unknown {
        out[a] = gen.fresh();
    }
    Ok(TensorType::new(dtype, out))
}

/// `x, split? → y0..y{n-1}`: without `split`, equal parts of `ceil(d / n)`, the last ones
/// smaller when the size does not divide (clamped to what is left, as the ONNX reference).
pub fn split(axis: i64, n: usize, ins: &Ins, gen: &mut SymGen) -> Result<Vec<TensorType>, String> {
    let x = ins.ty(0, "input")?;
    let Some(s) = &x.shape else {
        return Ok(vec![x.clone(); n]);
    };
    let a = norm_axis(axis, s.len())?;
    let sizes: Vec<Dim> = match (ins.const_i64(1), &s[a]) {
        (Some(sp), d) => {
            if sp.len() != n {
                return Err(format!(
                    "split {sp:?} has {} parts but the node has {n} outputs",
                    sp.len()
                ));
            }
            let sizes: Vec<usize> = sp
                .iter()
                .map(|&v| to_size(v, "split"))
                .collect::<Result<_, _>>()?;
            if let Dim::Known(d) = d {
                if sizes.iter().sum::<usize>() != *d {
                    return Err(format!("split {sp:?} does not add up to the axis size {d}"));
                }
            }
            sizes.into_iter().map(Dim::Known).collect()
        }
        (None, _) if ins.present(1) => gen.fresh_dims(n),
        (None, Dim::Known(d)) => {
            if n == 0 {
                return Err("Split needs at least one output".into());
            }
            // Parts of ceil(d / n), each clamped to what is left: the ONNX reference slices
            // `[i·part, (i+1)·part)` with numpy, so 5 into 4 gives [2, 2, 1, 0].
            let part = d.div_ceil(n);
            (0..n)
                .map(|i| Dim::Known(d.saturating_sub(i * part).min(part)))
                .collect()
        }
        (None, d) if n == 1 => vec![d.clone()],
        (None, _) => gen.fresh_dims(n),
    };
    Ok(sizes
        .into_iter()
        .map(|d| {
            let mut o = s.clone();
            o[a] = d;
            TensorType::new(x.dtype, o)
        })
        .collect())
}

/// Number of elements of Python's `range(*slice(start, end, step).indices(dim))`.
pub fn slice_len(dim: usize, start: i64, end: i64, step: i64) -> Result<usize, String> {
    Ok(slice_range(start, end, step, dim)?.2)
}

/// ONNX/numpy Slice bounds for one axis of size `dim`: `(first index, step, count)`. The
/// arithmetic runs in i128, so steps and bounds at the i64 extremes clamp instead of
/// wrapping. The one definition that inference, `ir::eval` and the backends share.
pub fn slice_range(
    start: i64,
    end: i64,
    step: i64,
    dim: usize,
) -> Result<(i64, i64, usize), String> {
    if step == 0 {
        return Err("slice step cannot be 0".into());
    }
    let n = dim as i128;
    let (s, e, st) = (start as i128, end as i128, step as i128);
    let norm = |v: i128, lo: i128, hi: i128| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(lo, hi)
    };
    let (first, count) = if st > 0 {
        let (s, e) = (norm(s, 0, n), norm(e, 0, n));
        (s, if e > s { (e - s + st - 1) / st } else { 0 })
    } else {
        let (s, e) = (norm(s, -1, n - 1), norm(e, -1, n - 1));
        (
            s,
            if s > e {
                (s - e + (-st) - 1) / (-st)
            } else {
                0
            },
        )
    };
    // first ∈ [-1, n] and count ≤ n: both fit.
    Ok((first as i64, step, count as usize))
}

/// `data, starts, ends, axes?, steps? → y`.
pub fn slice(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let axes_known: Option<Vec<usize>> = if ins.present(3) {
        match ins.const_i64(3) {
            Some(a) => Some(norm_axes(&a, s.len())?),
            None => None,
        }
    } else {
        match ins.len_1d(1) {
            Some(n) if n > s.len() => {
                return Err(format!("{n} starts for an input of rank {}", s.len()));
            }
            n => n.map(|n| (0..n).collect()),
        }
    };
    if let (Some(starts), None, Some(ends), Some(axes)) = (
        ins.const_i64(1),
        ins.const_i64(2),
        ins.sym_value(2),
        axes_known.clone(),
    ) {
        return slice_to_symbolic_ends(x, s, &starts, &ends, &axes, ins, gen);
    }
    let (Some(starts), Some(ends), Some(axes)) =
        (ins.const_i64(1), ins.const_i64(2), axes_known.clone())
    else {
        // Values unknown: the sliced axes (all, if unknown) get fresh sizes.
        let out = s
            .iter()
            .enumerate()
            .map(|(i, d)| match &axes_known {
                Some(a) if !a.contains(&i) => d.clone(),
                _ => gen.fresh(),
            })
            .collect();
        return Ok(TensorType::new(x.dtype, out));
    };
    let steps = if ins.present(4) {
        ins.const_i64(4)
    } else {
        Some(vec![1; starts.len()])
    };
    if starts.len() != ends.len() || starts.len() != axes.len() {
        return Err(format!(
            "starts {starts:?}, ends {ends:?} and axes {axes:?} must have the same length"
        ));
    }
    let mut out = s.clone();
    for (j, &a) in axes.iter().enumerate() {
        let step = match &steps {
            Some(st) => *st
                .get(j)
                .ok_or_else(|| format!("steps {st:?} is shorter than starts"))?,
            None => {
                out[a] = gen.fresh();
                continue;
            }
        };
        let (b, e) = (starts[j], ends[j]);
        out[a] = match &s[a] {
            Dim::Known(d) => Dim::Known(slice_len(*d, b, e, step)?),
            // The whole axis, forwards or backwards, keeps a symbolic size.
            d if (step == 1 && b == 0 && e >= i32::MAX as i64)
                || (step == -1 && b == -1 && e <= i32::MIN as i64) =>
            {
                d.clone()
            }
            _ => gen.fresh(),
        };
    }
    Ok(TensorType::new(x.dtype, out))
}

/// Slice whose ends are a shape computation (`x[:seq]` with `seq` read from another
/// input's shape, as exporters slice rotary and position tables): an axis sliced from 0
/// with step 1 to a symbolic end takes that symbol as its size. That assumes the end lies
/// within the axis, which inference cannot prove; it is what keeps one sequence symbol
/// through a decoder instead of a fresh `unk_N` per table. Run-time shapes are always
/// re-inferred from concrete values (`specialize`), so execution never relies on it.
fn slice_to_symbolic_ends(
    x: &TensorType,
    s: &[Dim],
    starts: &[i64],
    ends: &[SymElem],
    axes: &[usize],
    ins: &Ins,
    gen: &mut SymGen,
) -> Result<TensorType, String> {
    if starts.len() != ends.len() || starts.len() != axes.len() {
        return Err(format!(
            "{} starts, {} ends and {} axes must have the same length",
            starts.len(),
            ends.len(),
            axes.len()
        ));
    }
    let steps = if ins.present(4) {
        ins.const_i64(4)
    } else {
        Some(vec![1; starts.len()])
    };
    let mut out = s.to_vec();
    for (j, &a) in axes.iter().enumerate() {
        let step = steps.as_ref().and_then(|st| st.get(j).copied());
        out[a] = match (&ends[j], step, &s[a]) {
            (SymElem::Int(e), Some(step), Dim::Known(d)) => {
                Dim::Known(slice_len(*d, starts[j], *e, step)?)
            }
            (SymElem::Sym(sym), Some(1), _) if starts[j] == 0 => Dim::Sym(sym.clone()),
            _ => gen.fresh(),
        };
    }
    Ok(TensorType::new(x.dtype, out))
}

/// `data [.., d_axis, ..], indices I → data[..axis] ++ I ++ data[axis+1..]`.
pub fn gather(axis: i64, ins: &Ins) -> Result<TensorType, String> {
    let data = ins.ty(0, "data")?;
    let idx = ins.ty(1, "indices")?;
    if !idx.dtype.is_int() {
        return Err(format!("indices must be integers, got {}", idx.dtype));
    }
    let (Some(ds), Some(is)) = (&data.shape, &idx.shape) else {
        return Ok(TensorType::unknown_rank(data.dtype));
    };
    let a = norm_axis(axis, ds.len())?;
    let mut out: Vec<Dim> = ds[..a].to_vec();
    out.extend(is.iter().cloned());
    out.extend(ds[a + 1..].iter().cloned());
    Ok(TensorType::new(data.dtype, out))
}

/// `data, indices [.., q] → indices[..-1] ++ data[batch_dims + q..]`.
pub fn gather_nd(batch_dims: usize, ins: &Ins, _gen: &mut SymGen) -> Result<TensorType, String> {
    let data = ins.ty(0, "data")?;
    let idx = ins.ty(1, "indices")?;
    let (Some(ds), Some(is)) = (&data.shape, &idx.shape) else {
        return Ok(TensorType::unknown_rank(data.dtype));
    };
    let Some(last) = is.last() else {
        return Err("indices must have rank >= 1".into());
    };
    let Dim::Known(q) = last else {
        return Ok(TensorType::unknown_rank(data.dtype));
    };
    if batch_dims + q > ds.len() || batch_dims >= is.len() {
        return Err(format!(
            "indices {} with batch_dims {batch_dims} do not fit data {}",
            show_dims(is),
            show_dims(ds)
        ));
    }
    let mut out: Vec<Dim> = is[..is.len() - 1].to_vec();
    out.extend(ds[batch_dims + q..].iter().cloned());
    Ok(TensorType::new(data.dtype, out))
}

/// `input, shape → broadcast(input, shape)`.
pub fn expand(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let Some(target) = ins.sym_value(1) else {
        let (Some(s), Some(k)) = (&x.shape, ins.len_1d(1)) else {
            return Ok(TensorType::unknown_rank(x.dtype));
        };
        let rank = s.len().max(k);
        let off = rank - s.len();
        let out = (0..rank)
            .map(|i| match i.checked_sub(off).map(|j| &s[j]) {
                Some(d @ Dim::Known(n)) if *n != 1 => d.clone(),
                _ => gen.fresh(),
            })
            .collect();
        return Ok(TensorType::new(x.dtype, out));
    };
    let t: Vec<Dim> = target
        .iter()
        .map(|v| v.to_dim().ok_or(format!("shape has a negative size {v}")))
        .collect::<Result<_, _>>()?;
    Ok(TensorType {
        dtype: x.dtype,
        shape: broadcast_shapes(&[x.shape.as_deref(), Some(&t)], gen)?,
    })
}

pub fn tile(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "input")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let Some(reps) = ins.const_i64(1) else {
        return Ok(TensorType::new(x.dtype, gen.fresh_dims(s.len())));
    };
    if reps.len() != s.len() {
        return Err(format!(
            "repeats {reps:?} must have one value per axis of {}",
            show_dims(s)
        ));
    }
    let mut out = Vec::with_capacity(s.len());
    for (d, &r) in s.iter().zip(&reps) {
        let r = to_size(r, "repeats")?;
        out.push(dim_product(&[d.clone(), Dim::Known(r)], gen));
    }
    Ok(TensorType::new(x.dtype, out))
}

/// `data, pads, constant_value?, axes? → y`; pads may be negative (cropping).
pub fn pad(ins: &Ins, gen: &mut SymGen) -> Result<TensorType, String> {
    let x = ins.ty(0, "data")?;
    let Some(s) = &x.shape else {
        return Ok(x.clone());
    };
    let axes: Option<Vec<usize>> = if ins.present(3) {
        match ins.const_i64(3) {
            Some(a) => Some(norm_axes(&a, s.len())?),
            None => None,
        }
    } else {
        Some((0..s.len()).collect())
    };
    let (Some(pads), Some(axes)) = (ins.const_i64(1), &axes) else {
        let out = s
            .iter()
            .enumerate()
            .map(|(i, d)| match &axes {
                Some(a) if !a.contains(&i) => d.clone(),
                _ => gen.fresh(),
            })
            .collect();
        return Ok(TensorType::new(x.dtype, out));
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(format!("pads {pads:?} must have 2 x {n} values"));
    }
    let mut out = s.clone();
    for (j, &a) in axes.iter().enumerate() {
        let total = pads[j] as i128 + pads[n + j] as i128;
        out[a] = match &s[a] {
            Dim::Known(d) => {
                let v = *d as i128 + total;
                if v < 0 {
                    return Err(format!("pads {pads:?} make axis {a} of size {d} negative"));
                }
                Dim::Known(v as usize)
            }
            d if total == 0 => d.clone(),
            _ => gen.fresh(),
        };
    }
    Ok(TensorType::new(x.dtype, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    /// Part sizes of a `num_outputs` Split (no `split` input) of a `[d]` tensor.
    fn parts(d: usize, n: usize) -> Vec<usize> {
        let x = TensorType::fixed(DType::F32, &[d]);
        let types = [Some(&x)];
        let ins = Ins {
            types: &types,
            consts: &[],
            vals: &[],
        };
        split(0, n, &ins, &mut SymGen::default())
            .unwrap()
            .iter()
            .map(|t| t.concrete_shape().unwrap()[0])
            .collect()
    }

    #[test]
    fn uneven_split_clamps_like_the_reference() {
        // ceil(d / n)-sized parts, clamped to what is left (ONNX reference, ir::eval).
        assert_eq!(parts(6, 3), [2, 2, 2]);
        assert_eq!(parts(7, 3), [3, 3, 1]);
        assert_eq!(parts(5, 4), [2, 2, 1, 0]);
        assert_eq!(parts(2, 4), [1, 1, 0, 0]);
        assert_eq!(parts(0, 2), [0, 0]);
    }
}
