//! The ONNX recurrent ops RNN, GRU and LSTM (`Op::Recurrent`), step by step in f64, one
//! batch row at a time (rows are independent). `sequence_lens` shortens a row: its steps
//! past the length leave zeros in `Y`, and `Y_h` / `Y_c` are the states after its last
//! step. The reverse direction runs each row from its last valid step back to step 0.

use super::{opt, req, OpResult};
use crate::{RnnActivation, RnnAttrs, RnnCell, RnnDirection, Tensor};

/// Reads an optional `[dirs, batch, H]` state (`[batch, dirs, H]` when batch-major) as
/// `[dirs][batch][H]` in f64, zeros when absent.
fn read_state(
    t: Option<&Tensor>,
    what: &str,
    dirs: usize,
    batch: usize,
    hidden: usize,
    batch_major: bool,
) -> Result<Vec<f64>, String> {
    let mut out = vec![0.0; dirs * batch * hidden];
    let Some(t) = t else { return Ok(out) };
    let want = if batch_major {
        [batch, dirs, hidden]
    } else {
        [dirs, batch, hidden]
    };
    if t.shape() != want {
        return Err(format!(
            "{what} has shape {:?}, expected {want:?}",
            t.shape()
        ));
    }
    let v = t.to_f64_vec();
    for d in 0..dirs {
        for b in 0..batch {
            let src = if batch_major {
                (b * dirs + d) * hidden
            } else {
                (d * batch + b) * hidden
            };
            let dst = (d * batch + b) * hidden;
            out[dst..dst + hidden].copy_from_slice(&v[src..src + hidden]);
        }
    }
    Ok(out)
}

/// `rows × cols` matrix (row-major) times vector `v` (`cols`), added to `acc` (`rows`).
fn matvec_add(m: &[f64], rows: usize, cols: usize, v: &[f64], acc: &mut [f64]) {
    for (r, a) in acc.iter_mut().enumerate().take(rows) {
        let row = &m[r * cols..(r + 1) * cols];
        *a += row.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
    }
}

pub fn recurrent(a: &RnnAttrs, ins: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let x = req(ins, 0, "X")?;
    let w = req(ins, 1, "W")?;
    let r = req(ins, 2, "R")?;
    let dt = x.dtype();
    if !dt.is_float() {
        return Err(format!("X must be floating-point, got {dt}"));
    }
    let lstm = matches!(a.cell, RnnCell::Lstm { .. });
    let (b_in, lens_in, h0_in) = (opt(ins, 3), opt(ins, 4), opt(ins, 5));
    let (c0_in, p_in) = if lstm {
        (opt(ins, 6), opt(ins, 7))
    } else {
        (None, None)
    };
    if x.rank() != 3 || w.rank() != 3 || r.rank() != 3 {
        return Err(format!(
            "X, W and R must have rank 3, got shapes {:?}, {:?}, {:?}",
            x.shape(),
            w.shape(),
            r.shape()
        ));
    }
    let xs = x.shape();
    let (seq, batch, input) = if a.batch_major {
        (xs[1], xs[0], xs[2])
    } else {
        (xs[0], xs[1], xs[2])
    };
    let dirs = a.direction.num_directions();
    let g = a.cell.gates();
    let hidden = r.shape()[2];
    if a.hidden_size.is_some_and(|h| h != hidden) {
        return Err(format!(
            "hidden_size {} does not match R's last dimension {hidden}",
            a.hidden_size.unwrap_or(0)
        ));
    }
    let gh = g
        .checked_mul(hidden)
        .filter(|&n| n.checked_mul(6).is_some())
        .ok_or_else(|| format!("hidden size {hidden} is too large"))?;
    let sizes = [
        crate::limits::numel(&[seq, dirs, batch, hidden]),
        crate::limits::numel(&[dirs, batch, hidden]),
    ];
    if sizes.iter().any(Option::is_none) {
        return Err("the outputs' sizes overflow".into());
    }
    if w.shape() != [dirs, gh, input] {
        return Err(format!(
            "W has shape {:?}, expected {:?}",
            w.shape(),
            [dirs, gh, input]
        ));
    }
    if r.shape() != [dirs, gh, hidden] {
        return Err(format!(
            "R has shape {:?}, expected {:?}",
            r.shape(),
            [dirs, gh, hidden]
        ));
    }
    let na = a.cell.num_activations();
    if a.activations.len() != na * dirs {
        return Err(format!(
            "{} activations given, expected {}",
            a.activations.len(),
            na * dirs
        ));
    }
    let bias = match b_in {
        Some(b) if b.shape() != [dirs, 2 * gh] => {
            return Err(format!(
                "B has shape {:?}, expected {:?}",
                b.shape(),
                [dirs, 2 * gh]
            ))
        }
        Some(b) => b.to_f64_vec(),
        None => vec![0.0; dirs * 2 * gh],
    };
    let lens: Vec<usize> = match lens_in {
        Some(l) => {
            if l.shape() != [batch] {
                return Err(format!(
                    "sequence_lens has shape {:?}, expected [{batch}]",
                    l.shape()
                ));
            }
            l.to_i64_vec()
                .into_iter()
                .map(|v| {
                    usize::try_from(v)
                        .ok()
                        .filter(|&v| v <= seq)
                        .ok_or_else(|| format!("sequence length {v} is not in 0..={seq}"))
                })
                .collect::<Result<_, _>>()?
        }
        None => vec![seq; batch],
    };
    let h0 = read_state(h0_in, "initial_h", dirs, batch, hidden, a.batch_major)?;
    let c0 = read_state(c0_in, "initial_c", dirs, batch, hidden, a.batch_major)?;
    let peep = match p_in {
        Some(p) if p.shape() != [dirs, 3 * hidden] => {
            return Err(format!(
                "P has shape {:?}, expected {:?}",
                p.shape(),
                [dirs, 3 * hidden]
            ))
        }
        Some(p) => p.to_f64_vec(),
        None => vec![0.0; dirs * 3 * hidden],
    };
    let xv = x.to_f64_vec();
    let wv = w.to_f64_vec();
    let rv = r.to_f64_vec();
    let x_at = |t: usize, b: usize| {
        let off = if a.batch_major {
            (b * seq + t) * input
        } else {
            (t * batch + b) * input
        };
        &xv[off..off + input]
    };
    let clip = |v: f64| match a.clip {
        Some(c) => v.clamp(-(c as f64), c as f64),
        None => v,
    };

    // Y as [seq][dirs][batch][H]; states as [dirs][batch][H].
    let mut y = crate::limits::try_vec(seq * dirs * batch * hidden, 0.0, "Y")?;
    let mut yh = vec![0.0; dirs * batch * hidden];
    let mut yc = vec![0.0; dirs * batch * hidden];
    for d in 0..dirs {
        let reverse = a.direction == RnnDirection::Reverse || d == 1;
        let acts: &[RnnActivation] = &a.activations[d * na..(d + 1) * na];
        let wd = &wv[d * gh * input..(d + 1) * gh * input];
        let rd = &rv[d * gh * hidden..(d + 1) * gh * hidden];
        let wb = &bias[d * 2 * gh..d * 2 * gh + gh];
        let rb = &bias[d * 2 * gh + gh..(d + 1) * 2 * gh];
        let pd = &peep[d * 3 * hidden..(d + 1) * 3 * hidden];
        for b in 0..batch {
            let so = (d * batch + b) * hidden;
            let mut h = h0[so..so + hidden].to_vec();
            let mut c = c0[so..so + hidden].to_vec();
            let len = lens[b];
            for step in 0..len {
                let t = if reverse { len - 1 - step } else { step };
                // xw = x·Wᵀ + Wb and hr = h·Rᵀ + Rb, all gates.
                let mut xw = wb.to_vec();
                matvec_add(wd, gh, input, x_at(t, b), &mut xw);
                let mut hr = rb.to_vec();
                matvec_add(rd, gh, hidden, &h, &mut hr);
                let hn = hidden;
                match a.cell {
                    RnnCell::Rnn => {
                        for j in 0..hn {
                            h[j] = acts[0].apply(clip(xw[j] + hr[j]));
                        }
                    }
                    RnnCell::Gru {
                        linear_before_reset,
                    } => {
                        let (f, gf) = (acts[0], acts[1]);
                        let z: Vec<f64> = (0..hn).map(|j| f.apply(clip(xw[j] + hr[j]))).collect();
                        let rg: Vec<f64> = (0..hn)
                            .map(|j| f.apply(clip(xw[hn + j] + hr[hn + j])))
                            .collect();
                        let cand: Vec<f64> = if linear_before_reset {
                            (0..hn)
                                .map(|j| gf.apply(clip(xw[2 * hn + j] + rg[j] * hr[2 * hn + j])))
                                .collect()
                        } else {
                            // (r ∘ h)·Rhᵀ + Rbh
                            let rh: Vec<f64> = (0..hn).map(|j| rg[j] * h[j]).collect();
                            let mut acc = rb[2 * hn..3 * hn].to_vec();
                            matvec_add(&rd[2 * hn * hn..3 * hn * hn], hn, hn, &rh, &mut acc);
                            (0..hn)
                                .map(|j| gf.apply(clip(xw[2 * hn + j] + acc[j])))
                                .collect()
                        };
                        for j in 0..hn {
                            h[j] = (1.0 - z[j]) * cand[j] + z[j] * h[j];
                        }
                    }
                    RnnCell::Lstm { input_forget } => {
                        let (f, gf, hf) = (acts[0], acts[1], acts[2]);
                        // Gate order i, o, f, c; peepholes i, o, f.
                        for j in 0..hn {
                            let pre = |k: usize| xw[k * hn + j] + hr[k * hn + j];
                            let i = f.apply(clip(pre(0) + pd[j] * c[j]));
                            let fg = if input_forget {
                                1.0 - i
                            } else {
                                f.apply(clip(pre(2) + pd[2 * hn + j] * c[j]))
                            };
                            let cc = gf.apply(clip(pre(3)));
                            c[j] = fg * c[j] + i * cc;
                            let o = f.apply(clip(pre(1) + pd[hn + j] * c[j]));
                            h[j] = o * hf.apply(c[j]);
                        }
                    }
                }
                let yo = ((t * dirs + d) * batch + b) * hidden;
                y[yo..yo + hidden].copy_from_slice(&h);
            }
            yh[so..so + hidden].copy_from_slice(&h);
            yc[so..so + hidden].copy_from_slice(&c);
        }
    }

    let mut outs = Vec::with_capacity(num_outputs.max(1));
    if a.batch_major {
        // [seq][dirs][batch][H] → [batch][seq][dirs][H]
        let mut yt = vec![0.0; y.len()];
        for t in 0..seq {
            for d in 0..dirs {
                for b in 0..batch {
                    let src = ((t * dirs + d) * batch + b) * hidden;
                    let dst = ((b * seq + t) * dirs + d) * hidden;
                    yt[dst..dst + hidden].copy_from_slice(&y[src..src + hidden]);
                }
            }
        }
        outs.push(Tensor::from_f64(dt, vec![batch, seq, dirs, hidden], &yt));
    } else {
        outs.push(Tensor::from_f64(dt, vec![seq, dirs, batch, hidden], &y));
    }
    for st in [&yh, &yc].into_iter().take(num_outputs.saturating_sub(1)) {
        if a.batch_major {
            let mut tt = vec![0.0; st.len()];
            for d in 0..dirs {
                for b in 0..batch {
                    let src = (d * batch + b) * hidden;
                    let dst = (b * dirs + d) * hidden;
                    tt[dst..dst + hidden].copy_from_slice(&st[src..src + hidden]);
                }
            }
            outs.push(Tensor::from_f64(dt, vec![batch, dirs, hidden], &tt));
        } else {
            outs.push(Tensor::from_f64(dt, vec![dirs, batch, hidden], st));
        }
    }
    Ok(outs)
}
