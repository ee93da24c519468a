//! Reference semantics of the control-flow ops `If`, `Loop` and `Scan`: their bodies run
//! through the same evaluator ([`super::run_body`]), iteration by iteration.

use super::{eval_op, opt, req, run_body, OpResult};
use crate::control::MAX_LOOP_ITERATIONS;
use crate::infer::dims::norm_axis;
use crate::{Body, Op, ScanAttrs, Tensor};

fn cond_value(t: &Tensor, what: &str) -> Result<bool, String> {
    if t.len() != 1 {
        return Err(format!(
            "{what} must hold one element, got shape {:?}",
            t.shape()
        ));
    }
    Ok(t.get_f64(0) != 0.0)
}

fn body_run(body: &Body, ins: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
    let g = body.graph();
    run_body(g, ins).map_err(|e| format!("in body '{}': {e}", g.name))
}

fn present(ins: &[Option<&Tensor>], from: usize) -> Result<Vec<Tensor>, String> {
    ins.iter()
        .skip(from)
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| (*t).clone())
                .ok_or_else(|| format!("missing input {}", from + i))
        })
        .collect()
}

/// `If`: the chosen branch on the captured values.
pub(super) fn if_(then_b: &Body, else_b: &Body, ins: &[Option<&Tensor>]) -> OpResult {
    let c = cond_value(req(ins, 0, "cond")?, "the condition")?;
    let captured = present(ins, 1)?;
    body_run(if c { then_b } else { else_b }, captured)
}

/// Stacks equally shaped `slices` along a new axis `axis` (of the result's rank).
fn stack(slices: &[Tensor], axis: usize) -> Result<Tensor, String> {
    let axes = Tensor::from_vec(vec![1], vec![axis as i64]);
    let mut parts = Vec::with_capacity(slices.len());
    for (i, s) in slices.iter().enumerate() {
        if s.shape() != slices[0].shape() || s.dtype() != slices[0].dtype() {
            return Err(format!(
                "iteration {i} gives a scan output of {}{:?}, iteration 0 gave {}{:?}",
                s.dtype(),
                s.shape(),
                slices[0].dtype(),
                slices[0].shape()
            ));
        }
        parts.push(eval_op(&Op::Unsqueeze, &[Some(s), Some(&axes)], 1)?.remove(0));
    }
    let refs: Vec<Option<&Tensor>> = parts.iter().map(Some).collect();
    Ok(eval_op(&Op::Concat { axis: axis as i64 }, &refs, 1)?.remove(0))
}

/// An empty scan output: `[0]` followed by the body output's declared dims where known.
fn empty_scan(body: &Body, port: usize) -> Tensor {
    let ty = body.graph().value_type(body.graph().outputs()[port].value);
    let mut shape = vec![0];
    if let Some(s) = ty.concrete_shape() {
        shape.extend(s);
    }
    Tensor::zeros(ty.dtype, shape)
}

/// Adds `t`'s bytes to the running total of collected scan slices, within the budget.
fn account(total: &mut u64, t: &Tensor) -> Result<(), String> {
    *total = total.saturating_add((t.len() * t.dtype().size_of()) as u64);
    crate::limits::check_alloc(*total, "the loop's scan outputs")
}

/// `Loop`: runs the body while the trip count and the condition allow.
pub(super) fn loop_(
    body: &Body,
    carried: usize,
    ins: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let trip = match opt(ins, 0) {
        Some(m) if m.len() == 1 => Some(m.to_i64_vec()[0].max(0) as u64),
        Some(m) => {
            return Err(format!(
                "the trip count must be a scalar, got {:?}",
                m.shape()
            ))
        }
        None => None,
    };
    let mut cond = match opt(ins, 1) {
        Some(c) => cond_value(c, "the condition")?,
        None => true,
    };
    if ins.len() < 2 + carried {
        return Err(format!(
            "expects {carried} loop-carried inputs, got {}",
            ins.len().saturating_sub(2)
        ));
    }
    let mut v: Vec<Tensor> = present(&ins[..2 + carried], 2)?;
    let captured = present(ins, 2 + carried)?;
    let k = num_outputs.saturating_sub(carried);
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); k];
    let mut total = 0u64;
    let mut i: u64 = 0;
    while cond && trip.is_none_or(|m| i < m) {
        if i as usize >= MAX_LOOP_ITERATIONS {
            return Err(format!(
                "ran {MAX_LOOP_ITERATIONS} iterations without stopping (whittle's limit)"
            ));
        }
        let mut bins = Vec::with_capacity(2 + carried + captured.len());
        bins.push(Tensor::scalar(i as i64));
        bins.push(Tensor::scalar(true));
        bins.append(&mut v);
        bins.extend(captured.iter().cloned());
        let mut outs = body_run(body, bins)?;
        if outs.len() != 1 + carried + k {
            return Err(format!(
                "the body gives {} outputs, expected {}",
                outs.len(),
                1 + carried + k
            ));
        }
        let rest = outs.split_off(1 + carried);
        cond = cond_value(&outs[0], "the body's condition")?;
        v = outs.split_off(1);
        for (j, t) in rest.into_iter().enumerate() {
            account(&mut total, &t)?;
            scans[j].push(t);
        }
        i += 1;
    }
    let mut result = v;
    for (j, s) in scans.iter().enumerate() {
        result.push(if s.is_empty() {
            empty_scan(body, 1 + carried + j)
        } else {
            stack(s, 0)?
        });
    }
    Ok(result)
}

/// `Scan`: slices the scan inputs along their axes and threads the state through the body.
pub(super) fn scan(a: &ScanAttrs, ins: &[Option<&Tensor>]) -> OpResult {
    let (s, n) = (a.num_state, a.num_scan_inputs);
    if ins.len() < s + n || a.input_axes.len() != n || a.input_reverse.len() != n {
        return Err(format!(
            "expects {s} state and {n} scan inputs with one axis and direction each"
        ));
    }
    let mut state = present(&ins[..s], 0)?;
    let xs = present(&ins[..s + n], s)?;
    let captured = present(ins, s + n)?;
    let mut axes = Vec::with_capacity(n);
    let mut len: Option<usize> = None;
    for (j, x) in xs.iter().enumerate() {
        let ax = norm_axis(a.input_axes[j], x.rank())?;
        let l = x.shape()[ax];
        if len.is_some_and(|p| p != l) {
            return Err(format!(
                "scan input {j} has {l} steps along axis {ax}, another has {}",
                len.unwrap_or(0)
            ));
        }
        len = Some(l);
        axes.push(ax);
    }
    let len = len.unwrap_or(0);
    let k = a.output_axes.len();
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::with_capacity(len); k];
    let mut total = 0u64;
    for t in 0..len {
        let mut bins = Vec::with_capacity(s + n + captured.len());
        bins.append(&mut state);
        for (j, x) in xs.iter().enumerate() {
            let step = if a.input_reverse[j] { len - 1 - t } else { t };
            let idx = Tensor::scalar(step as i64);
            let gather = Op::Gather {
                axis: axes[j] as i64,
            };
            bins.push(eval_op(&gather, &[Some(x), Some(&idx)], 1)?.remove(0));
        }
        bins.extend(captured.iter().cloned());
        let mut outs = body_run(&a.body, bins)?;
        if outs.len() != s + k {
            return Err(format!(
                "the body gives {} outputs, expected {}",
                outs.len(),
                s + k
            ));
        }
        let rest = outs.split_off(s);
        state = outs;
        for (j, o) in rest.into_iter().enumerate() {
            account(&mut total, &o)?;
            scans[j].push(o);
        }
    }
    let mut result = state;
    for (j, mut sl) in scans.into_iter().enumerate() {
        if sl.is_empty() {
            result.push(empty_scan(&a.body, s + j));
            continue;
        }
        if a.output_reverse.get(j).copied().unwrap_or(false) {
            sl.reverse();
        }
        let ax = norm_axis(a.output_axes[j], sl[0].rank() + 1)?;
        result.push(stack(&sl, ax)?);
    }
    Ok(result)
}
