//! Shape inference through control flow: a body is re-inferred on the types (and constant
//! values) its node gives it, so its outputs follow the outer graph's shapes; loop-carried
//! values are iterated to a fixed point, and a dim that differs between iterations or
//! branches becomes a fresh symbol.

use super::dims::{fresh_index, norm_axis, Ins, SymGen};
use crate::control::loop_condition_stays_true;
use crate::{Body, DType, Dim, Graph, Op, ScanAttrs, Tensor, TensorType, Value};
use std::collections::{HashMap, HashSet};

/// Output types of `body` when it reads `types` (and the constants `consts`, where given).
pub(crate) fn infer_body(
    gen: &mut SymGen,
    body: &Graph,
    types: &[TensorType],
    consts: &[Option<&Tensor>],
) -> Result<Vec<TensorType>, String> {
    if types.len() != body.inputs().len() {
        return Err(format!(
            "body '{}' takes {} inputs, the node gives {}",
            body.name,
            body.inputs().len(),
            types.len()
        ));
    }
    let mut g = body.clone();
    let ids: Vec<_> = g.node_ids().collect();
    for id in ids {
        let n = g.node_mut(id);
        if !matches!(n.op, Op::Input(_) | Op::Constant(_)) {
            for o in &mut n.outputs {
                o.ty.shape = None;
            }
        }
    }
    for (i, ty) in types.iter().enumerate() {
        let id = g.inputs()[i];
        let declared = g.input_type(i).dtype;
        if declared != ty.dtype {
            return Err(format!(
                "body '{}' input '{}' is {declared}, the node gives {ty}",
                body.name,
                g.input_name(i)
            ));
        }
        g.set_value_type(Value::new(id, 0), ty.clone());
        if let Some(t) = consts.get(i).copied().flatten() {
            let c = g.add_const(format!("{}__const", g.input_name(i)), t.clone());
            g.replace_all_uses(Value::new(id, 0), c);
        }
    }
    super::infer_graph(&mut g).map_err(|e| format!("in body '{}': {e}", body.name))?;
    // Symbols the body invented are renamed into the caller's generator.
    let known: HashSet<String> = types
        .iter()
        .flat_map(|t| t.shape.iter().flatten())
        .filter_map(|d| match d {
            Dim::Sym(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let mut renamed: HashMap<String, Dim> = HashMap::new();
    let outs = g
        .outputs()
        .iter()
        .map(|o| {
            let mut t = g.value_type(o.value).clone();
            for d in t.shape.iter_mut().flatten() {
                let invented = match &*d {
                    Dim::Sym(s) if fresh_index(d).is_some() && !known.contains(s.as_str()) => {
                        Some(s.clone())
                    }
                    _ => None,
                };
                if let Some(s) = invented {
                    *d = renamed.entry(s).or_insert_with(|| gen.fresh()).clone();
                }
            }
            t
        })
        .collect();
    Ok(outs)
}

/// The type that covers both `a` and `b` (branches, iterations): equal dims stay, others
/// become fresh symbols; different ranks give an unknown shape.
fn join(
    gen: &mut SymGen,
    a: &TensorType,
    b: &TensorType,
    what: &str,
) -> Result<TensorType, String> {
    if a.dtype != b.dtype {
        return Err(format!("{what}: {a} in one case, {b} in another (dtype)"));
    }
    let shape = match (&a.shape, &b.shape) {
        (Some(x), Some(y)) if x.len() == y.len() => Some(
            x.iter()
                .zip(y)
                .map(|(p, q)| if p == q { p.clone() } else { gen.fresh() })
                .collect(),
        ),
        _ => None,
    };
    Ok(TensorType {
        dtype: a.dtype,
        shape,
    })
}

fn types_from(ins: &Ins, from: usize, to: usize, what: &str) -> Result<Vec<TensorType>, String> {
    (from..to).map(|i| ins.ty(i, what).cloned()).collect()
}

fn consts_from<'a>(ins: &Ins<'a>, from: usize, to: usize) -> Vec<Option<&'a Tensor>> {
    (from..to).map(|i| ins.konst(i)).collect()
}

fn scalar(dtype: DType) -> TensorType {
    TensorType::fixed(dtype, &[])
}

pub(super) fn if_(
    gen: &mut SymGen,
    then_b: &Body,
    else_b: &Body,
    ins: &Ins,
    n_out: usize,
) -> Result<Vec<TensorType>, String> {
    let c = ins.ty(0, "cond")?;
    if c.dtype != DType::Bool {
        return Err(format!("the condition must be bool, got {c}"));
    }
    let n = ins.types.len();
    let caps = types_from(ins, 1, n, "captured value")?;
    let consts = consts_from(ins, 1, n);
    let known = ins
        .konst(0)
        .filter(|t| t.len() == 1)
        .map(|t| t.get_f64(0) != 0.0);
    let branch = |gen: &mut SymGen, b: &Body| -> Result<Vec<TensorType>, String> {
        let outs = infer_body(gen, b.graph(), &caps, &consts)?;
        if outs.len() != n_out {
            return Err(format!(
                "branch '{}' has {} outputs, the node {n_out}",
                b.graph().name,
                outs.len()
            ));
        }
        Ok(outs)
    };
    match known {
        Some(true) => branch(gen, then_b),
        Some(false) => branch(gen, else_b),
        None => {
            let t = branch(gen, then_b)?;
            let e = branch(gen, else_b)?;
            t.iter()
                .zip(&e)
                .enumerate()
                .map(|(p, (a, b))| join(gen, a, b, &format!("output {p}")))
                .collect()
        }
    }
}

/// Iterates the state types through `run` until they no longer change (at most a few
/// rounds; what still changes is joined into fresh symbols). Returns the final state types
/// and the body's last output types.
fn fixed_point(
    gen: &mut SymGen,
    mut state: Vec<TensorType>,
    offset: usize,
    mut run: impl FnMut(&mut SymGen, &[TensorType]) -> Result<Vec<TensorType>, String>,
) -> Result<(Vec<TensorType>, Vec<TensorType>), String> {
    for _ in 0..4 {
        let outs = run(gen, &state)?;
        let next = outs
            .get(offset..offset + state.len())
            .ok_or("the body has too few outputs")?;
        if next == state.as_slice() {
            return Ok((state, outs));
        }
        state = state
            .iter()
            .zip(next)
            .enumerate()
            .map(|(j, (a, b))| join(gen, a, b, &format!("loop-carried value {j}")))
            .collect::<Result<_, _>>()?;
    }
    let outs = run(gen, &state)?;
    Ok((state, outs))
}

fn stacked(dim: Dim, t: &TensorType, axis: Option<i64>) -> Result<TensorType, String> {
    let Some(s) = &t.shape else {
        return Ok(TensorType {
            dtype: t.dtype,
            shape: None,
        });
    };
    let ax = norm_axis(axis.unwrap_or(0), s.len() + 1)?;
    let mut s = s.clone();
    s.insert(ax, dim);
    Ok(TensorType {
        dtype: t.dtype,
        shape: Some(s),
    })
}

pub(super) fn loop_(
    gen: &mut SymGen,
    body: &Body,
    carried: usize,
    ins: &Ins,
    n_out: usize,
) -> Result<Vec<TensorType>, String> {
    let g = body.graph();
    let n = ins.types.len().max(2 + carried);
    let init = types_from(ins, 2, 2 + carried, "loop-carried value")?;
    let caps = types_from(ins, 2 + carried, n, "captured value")?;
    let cap_consts = consts_from(ins, 2 + carried, n);
    let k = n_out
        .checked_sub(carried)
        .ok_or("fewer outputs than loop-carried values")?;
    if g.outputs().len() != 1 + carried + k {
        return Err(format!(
            "the body has {} outputs, expected {}",
            g.outputs().len(),
            1 + carried + k
        ));
    }
    let (_, outs) = fixed_point(gen, init, 1, |gen, state| {
        let mut types = vec![scalar(DType::I64), scalar(DType::Bool)];
        types.extend(state.iter().cloned());
        types.extend(caps.iter().cloned());
        let mut consts = vec![None; 2 + carried];
        consts.extend(cap_consts.iter().copied());
        infer_body(gen, g, &types, &consts)
    })?;
    let trip = ins
        .konst(0)
        .filter(|t| t.len() == 1)
        .map(|t| t.to_i64_vec()[0].max(0));
    let cond = if ins.present(1) {
        ins.konst(1)
            .filter(|t| t.len() == 1)
            .map(|t| t.get_f64(0) != 0.0)
    } else {
        Some(true)
    };
    if !ins.present(0) && cond == Some(true) && loop_condition_stays_true(g) {
        return Err(
            "the loop never stops: it has no trip count and its condition stays true".into(),
        );
    }
    let dim = match (trip, cond) {
        (Some(0), _) | (_, Some(false)) => Dim::Known(0),
        (Some(m), Some(true)) if loop_condition_stays_true(g) => Dim::Known(m as usize),
        _ => gen.fresh(),
    };
    let mut result: Vec<TensorType> = outs[1..1 + carried].to_vec();
    for t in &outs[1 + carried..] {
        result.push(stacked(dim.clone(), t, None)?);
    }
    Ok(result)
}

pub(super) fn scan(
    gen: &mut SymGen,
    a: &ScanAttrs,
    ins: &Ins,
    n_out: usize,
) -> Result<Vec<TensorType>, String> {
    let g = a.body.graph();
    let (s, m) = (a.num_state, a.num_scan_inputs);
    let n = ins.types.len().max(s + m);
    let init = types_from(ins, 0, s, "state")?;
    let xs = types_from(ins, s, s + m, "scan input")?;
    let caps = types_from(ins, s + m, n, "captured value")?;
    let cap_consts = consts_from(ins, s + m, n);
    if a.input_axes.len() != m {
        return Err(format!(
            "{} scan input axes for {m} scan inputs",
            a.input_axes.len()
        ));
    }
    let mut len: Option<Dim> = None;
    let mut slices = Vec::with_capacity(m);
    for (j, x) in xs.iter().enumerate() {
        let Some(shape) = &x.shape else {
            slices.push(TensorType {
                dtype: x.dtype,
                shape: None,
            });
            continue;
        };
        let ax = norm_axis(a.input_axes[j], shape.len())?;
        let mut sl = shape.clone();
        let d = sl.remove(ax);
        match (&len, &d) {
            (Some(Dim::Known(p)), Dim::Known(q)) if p != q => {
                return Err(format!("scan inputs of {p} and {q} steps"))
            }
            (None, _) | (Some(Dim::Sym(_)), Dim::Known(_)) => len = Some(d),
            _ => {}
        }
        slices.push(TensorType {
            dtype: x.dtype,
            shape: Some(sl),
        });
    }
    let k = n_out
        .checked_sub(s)
        .ok_or("fewer outputs than state values")?;
    if g.outputs().len() != s + k || a.output_axes.len() != k {
        return Err(format!(
            "the body has {} outputs and {} output axes, expected {} and {k}",
            g.outputs().len(),
            a.output_axes.len(),
            s + k
        ));
    }
    let (_, outs) = fixed_point(gen, init, 0, |gen, state| {
        let mut types = state.to_vec();
        types.extend(slices.iter().cloned());
        types.extend(caps.iter().cloned());
        let mut consts = vec![None; s + m];
        consts.extend(cap_consts.iter().copied());
        infer_body(gen, g, &types, &consts)
    })?;
    let len = match len {
        Some(d) => d,
        None => gen.fresh(),
    };
    let mut result: Vec<TensorType> = outs[..s].to_vec();
    for (j, t) in outs[s..].iter().enumerate() {
        result.push(stacked(len.clone(), t, Some(a.output_axes[j]))?);
    }
    Ok(result)
}
