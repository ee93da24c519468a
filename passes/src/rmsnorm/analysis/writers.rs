//! The writer side of the analysis: the constant linear ops that write into the residual
//! stream (their constants are recentred), or why a writer is not one (then the stream gets
//! an explicit recentring there instead).

use super::{last_dim, nname, norm_axis, per_channel, rank, vname, Analyzer, ConstEdit, ScaleFold};
use crate::rewrite::{const_i64, single_consumer};
use whittle_ir::{BinaryOp, Dim, NodeId, Op, Value};

impl Analyzer<'_> {
    /// A constant added into the stream (bias, position table, CLS token).
    pub(super) fn const_term(&mut self, n: NodeId, port: usize) -> Result<(), String> {
        self.per_channel_const(n, port, "added")
    }

    /// The constant at `port` of `n` (which writes the stream) must be per-channel along
    /// the hidden axis; it is recentred.
    fn per_channel_const(&mut self, n: NodeId, port: usize, verb: &str) -> Result<(), String> {
        let g = self.g;
        let out = Value::new(n, 0);
        let (Some(u), Some(d), Some(r)) = (g.input(n, port), last_dim(g, out), rank(g, out)) else {
            return self.fail(format!("'{}' has an unknown hidden size", nname(g, n)));
        };
        let t = g.const_tensor(u).ok_or("not a constant")?;
        if !t.dtype().is_float() || t.shape().last() != Some(&d) || t.rank() > r {
            return self.fail(format!(
                "the constant '{}' {verb} at '{}' is not per-channel along the hidden axis",
                vname(g, u),
                nname(g, n)
            ));
        }
        self.plan.writers.push(ConstEdit {
            node: n,
            port,
            axis: t.rank() - 1,
        });
        Ok(())
    }

    /// Records the constants of the writer producing `u`. A writer under a folded layer
    /// scale is `exclusive`: the scale must be its only reader. Otherwise `u` is a stream
    /// value, whose readers are checked with the rest of the stream.
    pub(super) fn writer(&mut self, u: Value, exclusive: bool) -> Result<(), String> {
        let g = self.g;
        let n = u.node;
        let name = nname(g, n);
        if exclusive && single_consumer(g, u).is_none() {
            return self.fail(format!(
                "the writer output '{}' has other readers",
                vname(g, u)
            ));
        }
        let (Some(d), Some(r)) = (last_dim(g, u), rank(g, u)) else {
            return self.fail(format!("writer '{name}' has an unknown output size"));
        };
        self.plan.resize.push((u, r - 1));
        let konst = |port: usize| g.input(n, port).and_then(|v| g.const_tensor(v));
        let op = g.node(n).op.clone();
        match op {
            Op::MatMul => match konst(1) {
                Some(w)
                    if w.dtype().is_float() && w.rank() >= 2 && w.shape().last() == Some(&d) =>
                {
                    self.plan.writers.push(ConstEdit {
                        node: n,
                        port: 1,
                        axis: w.rank() - 1,
                    });
                    Ok(())
                }
                _ => self.fail(format!("writer '{name}' (MatMul) has no constant weight")),
            },
            Op::Gemm { trans_b, .. } => {
                let axis = if trans_b { 0 } else { 1 };
                match konst(1) {
                    Some(w) if w.dtype().is_float() && w.rank() == 2 && w.shape()[axis] == d => {}
                    _ => {
                        return self.fail(format!("writer '{name}' (Gemm) has no constant weight"))
                    }
                }
                self.plan.writers.push(ConstEdit {
                    node: n,
                    port: 1,
                    axis,
                });
                if g.input(n, 2).is_some() {
                    match konst(2) {
                        Some(c) if c.dtype().is_float() && c.shape().last() == Some(&d) => {
                            self.plan.writers.push(ConstEdit {
                                node: n,
                                port: 2,
                                axis: c.rank() - 1,
                            });
                        }
                        _ => {
                            return self.fail(format!(
                                "writer '{name}' (Gemm) has a bias that is not per-channel"
                            ))
                        }
                    }
                }
                Ok(())
            }
            Op::Gather { axis } => match konst(0) {
                Some(t)
                    if t.dtype().is_float()
                        && t.rank() == 2
                        && t.shape()[1] == d
                        && norm_axis(axis, 2) == Some(0) =>
                {
                    self.plan.writers.push(ConstEdit {
                        node: n,
                        port: 0,
                        axis: 1,
                    });
                    Ok(())
                }
                _ => self.fail(format!(
                    "writer '{name}' (Gather) does not read a constant table"
                )),
            },
            Op::Binary(BinaryOp::Mul) => self.scale_writer(n, d),
            Op::Binary(BinaryOp::Add) => {
                for port in 0..2 {
                    match g.input(n, port) {
                        Some(x) if g.const_tensor(x).is_some() => self.const_term(n, port)?,
                        Some(x) => self.writer(x, true)?,
                        None => return self.fail(format!("'{name}' lacks an input")),
                    }
                }
                Ok(())
            }
            Op::Transpose { perm } => self.conv_writer(n, perm, d),
            op => self.fail(format!(
                "writer '{name}' ({}) is not a constant linear op",
                op.kind_name()
            )),
        }
    }

    /// Layer scale `Mul(writer, λ)`: a scalar λ commutes with recentring; a per-channel λ
    /// is folded into the writer's constants first.
    fn scale_writer(&mut self, n: NodeId, d: usize) -> Result<(), String> {
        let g = self.g;
        let (Some(a), Some(b)) = (g.input(n, 0), g.input(n, 1)) else {
            return self.fail(format!("'{}' lacks an input", nname(g, n)));
        };
        let (x, lambda_port, lam) = match (g.const_tensor(a), g.const_tensor(b)) {
            (None, Some(t)) => (a, 1, t),
            (Some(t), None) => (b, 0, t),
            _ => {
                return self.fail(format!(
                    "'{}' (Mul) does not scale a writer by a constant",
                    nname(g, n)
                ))
            }
        };
        if lam.len() == 1 && lam.dtype().is_float() {
            return self.writer(x, true);
        }
        let fits = rank(g, x).is_some_and(|r| lam.rank() <= r);
        let Some(lambda) = per_channel(lam, d).filter(|_| fits) else {
            return self.fail(format!("layer scale '{}' is not per-channel", nname(g, n)));
        };
        let start = self.plan.writers.len();
        self.writer(x, true)?;
        self.plan.scales.push(ScaleFold {
            mul: n,
            lambda_port,
            lambda,
            range: start..self.plan.writers.len(),
        });
        Ok(())
    }

    /// Patch embedding: `Conv → Reshape [N,D,P] (or Flatten) → Transpose` moving the channel
    /// axis last.
    fn conv_writer(&mut self, t: NodeId, perm: Option<Vec<usize>>, d: usize) -> Result<(), String> {
        let g = self.g;
        let name = nname(g, t);
        let bad = |s: &Self| {
            s.fail(format!(
                "writer '{name}' (Transpose) is not a patch-embedding Conv"
            ))
        };
        let Some(x) = g.input(t, 0) else {
            return bad(self);
        };
        if perm.as_deref() != Some(&[0, 2, 1]) || single_consumer(g, x).is_none() {
            return bad(self);
        }
        let r = x.node;
        let (conv_out, shape_idx) = match g.node(r).op {
            Op::Reshape { .. } => {
                let s = g.input(r, 1).and_then(|v| const_i64(g, v));
                match s.as_deref() {
                    Some([_, c, _]) if *c == d as i64 || *c == 0 => {
                        (g.input(r, 0), (*c == d as i64).then_some((r, 1)))
                    }
                    // `x.flatten(2)` under a dynamic batch: the shape is computed, and the
                    // types show batch and channels kept.
                    None if keeps_batch_and_channels(self.g, r, d) => {
                        self.plan.fixed_width.push(format!(
                            "the patch Reshape '{}' has a computed shape",
                            nname(g, r)
                        ));
                        (g.input(r, 0), None)
                    }
                    _ => return bad(self),
                }
            }
            Op::Flatten { axis: 2 } => (g.input(r, 0), None),
            _ => return bad(self),
        };
        let Some(c) = conv_out else { return bad(self) };
        let Op::Conv { group: 1, .. } = g.node(c.node).op else {
            return bad(self);
        };
        // Besides the Reshape, only `Shape`s (of a computed patch shape) read the Conv.
        let only_reshape = !g.is_output(c)
            && g.consumers(c)
                .iter()
                .all(|&(n, _)| n == r || matches!(g.node(n).op, Op::Shape { .. }));
        if !only_reshape || rank(g, c).is_none_or(|cr| cr < 3) {
            return bad(self);
        }
        let konst = |port: usize| g.input(c.node, port).and_then(|v| g.const_tensor(v));
        match konst(1) {
            Some(w) if w.dtype().is_float() && w.shape().first() == Some(&d) => {}
            _ => return bad(self),
        }
        self.plan.writers.push(ConstEdit {
            node: c.node,
            port: 1,
            axis: 0,
        });
        if g.input(c.node, 2).is_some() {
            match konst(2) {
                Some(b) if b.shape() == [d] => self.plan.writers.push(ConstEdit {
                    node: c.node,
                    port: 2,
                    axis: 0,
                }),
                _ => return bad(self),
            }
        }
        self.plan.resize.push((c, 1));
        self.plan.resize.push((x, 1));
        if let Some(sc) = shape_idx {
            self.plan.shape_consts.push(sc);
        }
        Ok(())
    }

    /// `Expand` of a constant (a CLS token broadcast over the batch) in the stream: the
    /// constant is recentred like an added one.
    pub(super) fn expand_writer(&mut self, n: NodeId) -> Result<(), String> {
        self.per_channel_const(n, 0, "expanded")?;
        self.plan.fixed_width.push(format!(
            "the Expand '{}' has a target shape of its own",
            nname(self.g, n)
        ));
        Ok(())
    }
}

/// Whether Reshape `r` maps `[N, d, ...]` to `[N, d, P]` by its inferred types.
fn keeps_batch_and_channels(g: &whittle_ir::Graph, r: NodeId, d: usize) -> bool {
    let (Some(x), out) = (g.input(r, 0), Value::new(r, 0)) else {
        return false;
    };
    let (Some(si), Some(so)) = (&g.value_type(x).shape, &g.value_type(out).shape) else {
        return false;
    };
    si.len() >= 3
        && so.len() == 3
        && si[0] == so[0]
        && si[1] == Dim::Known(d)
        && so[1] == Dim::Known(d)
}
