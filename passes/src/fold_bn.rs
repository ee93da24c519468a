//! BatchNormalization folding (PASSES.md §2). At inference `BN(x) = a⊙x + b` with
//! `a = γ/√(σ²+ε)`, `b = β − aμ`; the affine map is folded into a neighbouring linear op.
//!
//! ```text
//! %c = Conv(..) %x, %w, %bias                 %c = Conv(..) %x, %w2, %bias2
//! %y = BatchNormalization(epsilon:1e-5)  →    (w2[o] = a_o·w[o], bias2 = a⊙bias + b)
//!        %c, %gamma, %beta, %mean, %var
//! ```
//!
//! - **Preceding** (`onnx/optimizer` `fuse_bn_into_conv.h`): Conv / ConvTranspose (output
//!   channel on weight axis 1, per group) / Gemm / MatMul (+ bias `Add`, or a new `Add`):
//!   `W'[o] = a_o·W[o]`, `c' = a⊙c + b`. The linear output must have no other reader.
//! - **Following**: MatMul / Gemm (`B' = diag(a)·B`, `c' = c + b·B`) and Conv without
//!   padding (`W'[:,i] = a_i·W[:,i]`, `c'_o = c_o + Σ_{i,k} W[o,i,k]·b_i`); padded Conv is
//!   declined, since its border would see `b` instead of 0. Per-channel linear ops in
//!   between (GlobalAveragePool, ReduceMean over other axes, Flatten, Transpose) commute
//!   with the affine map, so a final norm folds through pooling into the head.
//! - **SLAB RepBN** `BN(x) + η·x` (`SLAB/classification/models/prepbn.py`), also inside
//!   `Transpose(0,2,1) → BN → Transpose`: one affine map with `a + η`; the preceding fold
//!   keeps the η·c term that SLAB's `PatchEmbed.merge_bn` drops.
//!
//! Weight arithmetic is in f64, cast back to the weight dtype. `training_mode=1` is refused
//! by the frontend (the IR BN is inference-only); non-constant statistics are declined
//! here. Every decline is explained and leaves the graph unchanged. Exactness E1.

use crate::fold_bn_site::{match_site, Site};
use crate::rewrite::{
    consumed_only_by, f64_const, new_node, producer_op, remove_dead_from, replace_value,
    single_consumer, static_shape, Namer,
};
use crate::{Changed, PassContext};
use whittle_ir::{AutoPad, BinaryOp, Graph, IrError, NodeId, Op, ReduceOp, Tensor, Value};

const PASS: &str = "fold-bn";

pub fn fold_bn(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut folded = 0;
    for id in g.topo_order()? {
        if !g.contains(id) || !matches!(g.node(id).op, Op::BatchNormalization { .. }) {
            continue;
        }
        let name = g.node(id).name.clone();
        let site = match match_site(g, id) {
            Ok(s) => s,
            Err(why) => {
                cx.explain(PASS, format!("BN '{name}' not folded: {why}"));
                continue;
            }
        };
        let before = match fold_preceding(g, &mut namer, &site) {
            Ok(msg) => {
                cx.explain(PASS, format!("{} '{name}' folded into {msg}", site.kind));
                folded += 1;
                continue;
            }
            Err(why) => why,
        };
        match fold_following(g, &mut namer, &site) {
            Ok(msg) => {
                cx.explain(PASS, format!("{} '{name}' folded into {msg}", site.kind));
                folded += 1;
            }
            Err(after) => cx.explain(
                PASS,
                format!(
                    "{} '{name}' not folded: preceding op: {before}; following op: {after}",
                    site.kind
                ),
            ),
        }
    }
    Ok(if folded > 0 {
        Changed::Yes
    } else {
        Changed::No
    })
}

/// A float constant input of node `id`.
fn weight(g: &Graph, id: NodeId, port: usize, what: &str) -> Result<(Value, Tensor), String> {
    let v = g.input(id, port).ok_or(format!("it has no {what}"))?;
    let t = g
        .const_tensor(v)
        .ok_or(format!("its {what} is not a constant"))?;
    if !t.dtype().is_float() {
        return Err(format!("its {what} is not floating-point"));
    }
    Ok((v, t.clone()))
}

/// A bias that broadcasts along the last axis of width `n` (`[n]`, `[1,..,n]`, or one
/// element) as `n` values.
fn bias_vector(t: &Tensor, n: usize) -> Option<Vec<f64>> {
    let v = t.to_f64_vec();
    let along_last =
        t.shape().last() == Some(&n) && t.shape().iter().rev().skip(1).all(|&d| d == 1);
    if along_last {
        Some(v)
    } else if v.len() == 1 {
        Some(vec![v[0]; n])
    } else {
        None
    }
}

/// Makes the site's readers read `new` and removes what is left of the site.
fn finish(g: &mut Graph, namer: &mut Namer, site: &Site, new: Value, old: &[NodeId]) {
    replace_value(g, namer, site.root, new);
    let mut roots = site.inside.clone();
    roots.extend_from_slice(old);
    remove_dead_from(g, &roots);
}

/// Sets input `port` of `id` to a new f64-built constant.
fn set_weight(g: &mut Graph, namer: &mut Namer, id: NodeId, port: usize, like: &Tensor, v: &[f64]) {
    let base = format!("{}_w{port}", g.node(id).name);
    let c = f64_const(g, namer, &base, like.dtype(), like.shape().to_vec(), v);
    g.set_input(id, port, Some(c));
}

fn fold_preceding(g: &mut Graph, namer: &mut Namer, site: &Site) -> Result<String, String> {
    let u = site.input;
    if !consumed_only_by(g, u, &site.inside) {
        return Err("its output has other readers".into());
    }
    let lin = u.node;
    let (a, b) = (&site.a, &site.b);
    let n = a.len();
    let op = g.node(lin).op.clone();
    let lname = g.node(lin).name.clone();
    match op {
        Op::Conv { group, .. } | Op::ConvTranspose { group, .. } => {
            let transpose = matches!(op, Op::ConvTranspose { .. });
            if site.axis != 1 {
                return Err("the channel is not the Conv output channel".into());
            }
            let (wv, w) = weight(g, lin, 1, "weight")?;
            let s = w.shape().to_vec();
            if s.len() < 3 || group == 0 {
                return Err("unexpected weight shape".into());
            }
            let inner: usize = s[2..].iter().product();
            // Output channel of weight element (i, j, ·).
            let out_ch: Box<dyn Fn(usize, usize) -> usize> = if transpose {
                let (per_in, per_out) = (s[0] / group, s[1]);
                Box::new(move |i, j| (i / per_in.max(1)) * per_out + j)
            } else {
                Box::new(|i, _| i)
            };
            let outs = if transpose { s[1] * group } else { s[0] };
            if outs != n || (transpose && s[0] % group != 0) {
                return Err(format!("weight {s:?} does not give {n} output channels"));
            }
            let wd = w.to_f64_vec();
            let nw: Vec<f64> = (0..wd.len())
                .map(|e| {
                    let (i, j) = (e / (s[1] * inner), (e / inner) % s[1]);
                    a[out_ch(i, j)] * wd[e]
                })
                .collect();
            let old_b = g.input(lin, 2);
            let c = match old_b {
                Some(v) => g
                    .const_tensor(v)
                    .filter(|t| t.len() == n)
                    .ok_or("its bias is not a constant of one value per channel")?
                    .to_f64_vec(),
                None => vec![0.0; n],
            };
            let nb: Vec<f64> = (0..n).map(|o| a[o] * c[o] + b[o]).collect();
            set_weight(g, namer, lin, 1, &w, &nw);
            let bias_like = Tensor::zeros(w.dtype(), vec![n]);
            set_weight(g, namer, lin, 2, &bias_like, &nb);
            let mut old = vec![wv.node];
            old.extend(old_b.map(|v| v.node));
            finish(g, namer, site, u, &old);
            Ok(format!("preceding {} '{lname}'", op.kind_name()))
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            if site.axis != 1 || g.value_type(u).rank() != Some(2) {
                return Err("the channel is not the Gemm output column".into());
            }
            let (wv, w) = weight(g, lin, 1, "B")?;
            let s = w.shape().to_vec();
            let (rows, cols) = (
                s.first().copied().unwrap_or(0),
                s.get(1).copied().unwrap_or(0),
            );
            if s.len() != 2 || (if trans_b { rows } else { cols }) != n {
                return Err(format!("B {s:?} does not have {n} output columns"));
            }
            let wd = w.to_f64_vec();
            let nw: Vec<f64> = (0..wd.len())
                .map(|e| a[if trans_b { e / cols } else { e % cols }] * wd[e])
                .collect();
            let old_c = g.input(lin, 2);
            let c = match old_c {
                Some(v) => {
                    let t = g.const_tensor(v).ok_or("its C is not a constant")?;
                    bias_vector(t, n).ok_or("its C is not a per-column vector")?
                }
                None => vec![0.0; n],
            };
            let beta = if old_c.is_some() { beta as f64 } else { 0.0 };
            let nc: Vec<f64> = (0..n).map(|o| a[o] * beta * c[o] + b[o]).collect();
            set_weight(g, namer, lin, 1, &w, &nw);
            set_weight(g, namer, lin, 2, &Tensor::zeros(w.dtype(), vec![n]), &nc);
            g.node_mut(lin).op = Op::Gemm {
                alpha,
                beta: 1.0,
                trans_a,
                trans_b,
            };
            let mut old = vec![wv.node];
            old.extend(old_c.map(|v| v.node));
            finish(g, namer, site, u, &old);
            Ok(format!("preceding Gemm '{lname}'"))
        }
        Op::MatMul | Op::Binary(BinaryOp::Add) => {
            fold_preceding_matmul(g, namer, site)?;
            Ok(format!("preceding MatMul '{lname}'"))
        }
        other => Err(format!("it is {}, not a linear op", other.kind_name())),
    }
}

/// `MatMul(X, W)` or `Add(MatMul(X, W), c)` before the site, channel on the last axis.
fn fold_preceding_matmul(g: &mut Graph, namer: &mut Namer, site: &Site) -> Result<(), String> {
    let u = site.input;
    let (a, b) = (&site.a, &site.b);
    let n = a.len();
    let rank = g.value_type(u).rank().unwrap_or(0);
    if site.axis + 1 != rank {
        return Err("the channel is not the MatMul output's last axis".into());
    }
    // Split `u` into the MatMul and an optional bias Add.
    let (mm, bias) = if matches!(producer_op(g, u), Op::MatMul) {
        (u.node, None)
    } else {
        let (l, r) = (g.input(u.node, 0), g.input(u.node, 1));
        let (Some(l), Some(r)) = (l, r) else {
            return Err("its Add has a missing input".into());
        };
        let (m, c) = if g.const_tensor(r).is_some() {
            (l, r)
        } else {
            (r, l)
        };
        let ok = matches!(producer_op(g, m), Op::MatMul) && single_consumer(g, m).is_some();
        if !ok {
            return Err("it is an Add, not a MatMul bias".into());
        }
        let cv = g
            .const_tensor(c)
            .and_then(|t| bias_vector(t, n))
            .ok_or("its Add is not a per-column bias")?;
        (m.node, Some((c, cv)))
    };
    let (wv, w) = weight(g, mm, 1, "B")?;
    let s = w.shape().to_vec();
    if s.len() != 2 || s[1] != n {
        return Err(format!("B {s:?} is not a [K,{n}] matrix"));
    }
    let wd = w.to_f64_vec();
    let nw: Vec<f64> = (0..wd.len()).map(|e| a[e % n] * wd[e]).collect();
    set_weight(g, namer, mm, 1, &w, &nw);
    let dtype = w.dtype();
    let mut old = vec![wv.node];
    let new = match bias {
        Some((c, cv)) => {
            let nc: Vec<f64> = (0..n).map(|o| a[o] * cv[o] + b[o]).collect();
            let port = if g.input(u.node, 1) == Some(c) { 1 } else { 0 };
            set_weight(g, namer, u.node, port, &Tensor::zeros(dtype, vec![n]), &nc);
            old.push(c.node);
            u
        }
        None => {
            let base = format!("{}_bias", g.node(mm).name);
            let c = f64_const(g, namer, &base, dtype, vec![n], b);
            let ty = g.value_type(u).clone();
            new_node(
                g,
                namer,
                &base,
                Op::Binary(BinaryOp::Add),
                &[Some(u), Some(c)],
                ty,
            )
        }
    };
    finish(g, namer, site, new, &old);
    Ok(())
}

/// Follows per-channel linear ops from the site's output to the op that consumes it;
/// returns `(value read by the linear op, its channel axis, the linear node)`.
fn following_linear(g: &Graph, site: &Site) -> Result<(Value, usize, NodeId), String> {
    let mut v = site.root;
    let mut axis = site.axis;
    for _ in 0..6 {
        let (next, port) = single_consumer(g, v).ok_or("its output has several readers")?;
        if port != 0 {
            return Err("its output is not the data input of the next op".into());
        }
        let out = Value::new(next, 0);
        match &g.node(next).op {
            Op::GlobalAveragePool if axis == 1 => {}
            Op::Reduce {
                op: ReduceOp::Mean,
                keepdims,
                ..
            } => {
                let rank = g.value_type(v).rank().unwrap_or(0) as i64;
                let axes = g
                    .input(next, 1)
                    .and_then(|c| crate::rewrite::const_i64(g, c))
                    .ok_or("a ReduceMean after it has no constant axes")?;
                let axes: Vec<usize> = axes
                    .iter()
                    .map(|&x| (if x < 0 { x + rank } else { x }) as usize)
                    .collect();
                if axes.contains(&axis) {
                    return Err("a ReduceMean after it reduces the channel axis".into());
                }
                if !keepdims {
                    axis -= axes.iter().filter(|&&x| x < axis).count();
                }
            }
            Op::Flatten { axis: 1 } if axis == 1 => {
                let s = static_shape(g, v).ok_or("a Flatten after it has a dynamic input")?;
                if s.iter().skip(2).any(|&d| d != 1) {
                    return Err("a Flatten after it mixes channels with other dims".into());
                }
            }
            Op::Transpose { .. } => {
                let rank = g.value_type(v).rank().unwrap_or(0);
                let p = match &g.node(next).op {
                    Op::Transpose { perm: Some(p) } => p.clone(),
                    _ => (0..rank).rev().collect(),
                };
                axis = p.iter().position(|&x| x == axis).ok_or("bad Transpose")?;
            }
            Op::MatMul | Op::Gemm { .. } | Op::Conv { .. } => return Ok((v, axis, next)),
            other => return Err(format!("it is read by {}", other.kind_name())),
        }
        v = out;
    }
    Err("no linear op within reach".into())
}

fn fold_following(g: &mut Graph, namer: &mut Namer, site: &Site) -> Result<String, String> {
    let (v, axis, lin) = following_linear(g, site)?;
    let (a, b) = (&site.a, &site.b);
    let k = a.len();
    let rank = g.value_type(v).rank().unwrap_or(0);
    let op = g.node(lin).op.clone();
    let kind = op.kind_name();
    let lname = g.node(lin).name.clone();
    let (wv, w) = weight(g, lin, 1, "weight")?;
    let s = w.shape().to_vec();
    let wd = w.to_f64_vec();
    let mut old = vec![wv.node];
    match op {
        Op::MatMul => {
            if axis + 1 != rank || s.len() != 2 || s[0] != k {
                return Err(format!(
                    "following MatMul: B {s:?} does not read the {k} channels"
                ));
            }
            let n = s[1];
            let nw: Vec<f64> = (0..wd.len()).map(|e| a[e / n] * wd[e]).collect();
            let bb: Vec<f64> = (0..n)
                .map(|j| (0..k).map(|i| b[i] * wd[i * n + j]).sum())
                .collect();
            set_weight(g, namer, lin, 1, &w, &nw);
            let out = Value::new(lin, 0);
            let add = single_consumer(g, out)
                .filter(|(id, _)| matches!(g.node(*id).op, Op::Binary(BinaryOp::Add)));
            let bias = add.and_then(|(id, port)| {
                let c = g.input(id, 1 - port)?;
                Some((id, 1 - port, c, bias_vector(g.const_tensor(c)?, n)?))
            });
            match bias {
                Some((id, port, c, cv)) => {
                    let nc: Vec<f64> = (0..n).map(|j| cv[j] + bb[j]).collect();
                    set_weight(g, namer, id, port, &Tensor::zeros(w.dtype(), vec![n]), &nc);
                    old.push(c.node);
                }
                None => {
                    let base = format!("{lname}_bias");
                    let c = f64_const(g, namer, &base, w.dtype(), vec![n], &bb);
                    let ty = g.value_type(out).clone();
                    let add = new_node(
                        g,
                        namer,
                        &base,
                        Op::Binary(BinaryOp::Add),
                        &[Some(out), Some(c)],
                        ty,
                    );
                    replace_value(g, namer, out, add);
                    g.set_input(add.node, 0, Some(out));
                }
            }
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            if trans_a || axis != 1 || rank != 2 || s.len() != 2 {
                return Err("following Gemm: transposed A or unexpected shapes".into());
            }
            let (kk, n) = if trans_b { (s[1], s[0]) } else { (s[0], s[1]) };
            if kk != k {
                return Err(format!(
                    "following Gemm: B {s:?} does not read the {k} channels"
                ));
            }
            let at = |i: usize, j: usize| if trans_b { j * k + i } else { i * n + j };
            let mut nw = wd.clone();
            for i in 0..k {
                for j in 0..n {
                    nw[at(i, j)] = a[i] * wd[at(i, j)];
                }
            }
            let old_c = g.input(lin, 2);
            let c = match old_c {
                Some(cv) => {
                    let t = g
                        .const_tensor(cv)
                        .ok_or("following Gemm: C is not a constant")?;
                    bias_vector(t, n).ok_or("following Gemm: C is not a per-column vector")?
                }
                None => vec![0.0; n],
            };
            let beta = if old_c.is_some() { beta as f64 } else { 0.0 };
            let alpha64 = alpha as f64;
            let nc: Vec<f64> = (0..n)
                .map(|j| beta * c[j] + alpha64 * (0..k).map(|i| b[i] * wd[at(i, j)]).sum::<f64>())
                .collect();
            set_weight(g, namer, lin, 1, &w, &nw);
            set_weight(g, namer, lin, 2, &Tensor::zeros(w.dtype(), vec![n]), &nc);
            g.node_mut(lin).op = Op::Gemm {
                alpha,
                beta: 1.0,
                trans_a,
                trans_b,
            };
            old.extend(old_c.map(|v| v.node));
        }
        Op::Conv { window, group } => {
            let padded = window.pads.iter().any(|&p| p != 0)
                || matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
            if padded {
                return Err(format!(
                    "following Conv '{lname}' pads its input: the border would see b instead of 0"
                ));
            }
            if axis != 1 || s.len() < 3 || group == 0 || s[1] * group != k || s[0] % group != 0 {
                return Err(format!(
                    "following Conv: weight {s:?} does not read the {k} channels"
                ));
            }
            let (m, cg) = (s[0], s[1]);
            let inner: usize = s[2..].iter().product();
            let ch = |e: usize| {
                let (o, il) = (e / (cg * inner), (e / inner) % cg);
                (o / (m / group)) * cg + il
            };
            let nw: Vec<f64> = (0..wd.len()).map(|e| a[ch(e)] * wd[e]).collect();
            let old_b = g.input(lin, 2);
            let mut c = match old_b {
                Some(bv) => g
                    .const_tensor(bv)
                    .filter(|t| t.len() == m)
                    .ok_or("following Conv: its bias is not a constant per channel")?
                    .to_f64_vec(),
                None => vec![0.0; m],
            };
            for (e, &x) in wd.iter().enumerate() {
                c[e / (cg * inner)] += x * b[ch(e)];
            }
            set_weight(g, namer, lin, 1, &w, &nw);
            set_weight(g, namer, lin, 2, &Tensor::zeros(w.dtype(), vec![m]), &c);
            old.extend(old_b.map(|v| v.node));
        }
        other => return Err(format!("it is read by {}", other.kind_name())),
    }
    finish(g, namer, site, site.input, &old);
    Ok(format!("following {kind} '{lname}'"))
}
