//! Read-only analysis for the LayerNorm → RMSNorm rewrites: finds the residual stream, its
//! writers (constant linear ops to recentre), the stream LNs and their readers (constant
//! linear ops to fold γ/β into), or says why the model does not qualify.
//!
//! The stream is found backwards from every `LayerNormalization` over the last axis:
//! residual `Add`s and token-wise ops (`Concat`/`Gather`/`Slice`/`ReduceMean` off the hidden
//! axis) are stream; what they add in must be a constant or a writer. Then every reader of a
//! stream value must be a stream LN or stream op, and every path out of an LN must reach a
//! linear op with constant weights through hidden-axis-preserving ops only.

use crate::rewrite::{const_i64, single_consumer};
use std::collections::{BTreeSet, HashSet};
use whittle_ir::{BinaryOp, Graph, NodeId, Op, ReduceOp, Tensor, Value};

/// A constant at input `port` of `node` whose axis `axis` is the hidden (stream) axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConstEdit {
    pub node: NodeId,
    pub port: usize,
    pub axis: usize,
}

/// A per-channel `Mul(λ)` after a writer, folded into the writer's constants
/// `writers[range]` (which the writer analysis recorded just before it).
#[derive(Clone, Debug)]
pub struct ScaleFold {
    pub mul: NodeId,
    /// Input port of the `Mul` holding λ.
    pub lambda_port: usize,
    pub lambda: Vec<f64>,
    pub range: std::ops::Range<usize>,
}

/// A linear op reading (through transparent ops) the output of LN `ln`.
#[derive(Clone, Debug)]
pub struct Reader {
    pub node: NodeId,
    pub ln: usize,
    /// `Gemm` with these `alpha, beta, trans_b`, or `MatMul` when `None`.
    pub gemm: Option<(f64, f64, bool)>,
    /// The constant weight, and whether it is stored `[N,D]` (transposed) in it.
    pub weight: Value,
    pub weight_nd: bool,
}

/// One stream LayerNorm.
#[derive(Clone, Debug)]
pub struct LnSite {
    pub node: NodeId,
    pub axis: i64,
    pub epsilon: f32,
    pub d: usize,
    pub gamma: Vec<f64>,
    pub beta: Vec<f64>,
}

/// Everything the rewrite needs; computed without touching the graph.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub lns: Vec<LnSite>,
    pub writers: Vec<ConstEdit>,
    pub scales: Vec<ScaleFold>,
    pub readers: Vec<Reader>,
    /// Values whose axis `.1` is the hidden axis (stream, writer outputs, LN-to-reader path).
    pub resize: Vec<(Value, usize)>,
    /// `Reshape` nodes whose constant shape names the hidden size at index `.1`.
    pub shape_consts: Vec<(NodeId, usize)>,
}

fn vname(g: &Graph, v: Value) -> String {
    g.value_info(v).name.clone()
}

fn nname(g: &Graph, n: NodeId) -> String {
    g.node(n).name.clone()
}

fn rank(g: &Graph, v: Value) -> Option<usize> {
    g.value_type(v).rank()
}

fn last_dim(g: &Graph, v: Value) -> Option<usize> {
    g.value_type(v).shape.as_ref()?.last()?.known()
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

/// The constant's values if it is a float tensor whose shape is all ones except a last
/// axis of `d` (or a single element when `scalar_ok`).
fn per_channel(t: &Tensor, d: usize) -> Option<Vec<f64>> {
    let s = t.shape();
    let ok =
        t.dtype().is_float() && s.last() == Some(&d) && s[..s.len() - 1].iter().all(|&n| n == 1);
    ok.then(|| t.to_f64_vec())
}

/// Whether constant `axes` (input `port` of `n`, rank `r`) avoid the last axis.
fn axes_avoid_last(g: &Graph, n: NodeId, port: usize, r: usize) -> bool {
    let Some(v) = g.input(n, port) else {
        return false;
    };
    let Some(axes) = const_i64(g, v) else {
        return false;
    };
    !axes.is_empty()
        && axes
            .iter()
            .all(|&a| norm_axis(a, r).is_some_and(|a| a + 1 != r))
}

/// Candidate stream LNs: `LayerNormalization` over the last axis.
fn candidate_lns(g: &Graph) -> Vec<NodeId> {
    g.node_ids()
        .filter(|&n| match g.node(n).op {
            Op::LayerNormalization { axis, .. } => g
                .input(n, 0)
                .and_then(|x| rank(g, x))
                .and_then(|r| norm_axis(axis, r).map(|a| a + 1 == r))
                .unwrap_or(false),
            _ => false,
        })
        .collect()
}

struct Analyzer<'a> {
    g: &'a Graph,
    plan: Plan,
    stream: BTreeSet<Value>,
    stack: Vec<Value>,
    /// The LN whose input walk is running (for messages).
    ln_name: String,
}

/// Analyses `g`. `Ok(None)`: there is no LayerNorm over the last axis. `Err`: the reason
/// the model does not qualify.
pub fn analyze(g: &Graph) -> Result<Option<Plan>, String> {
    let lns = candidate_lns(g);
    if lns.is_empty() {
        return Ok(None);
    }
    let mut a = Analyzer {
        g,
        plan: Plan::default(),
        stream: BTreeSet::new(),
        stack: vec![],
        ln_name: String::new(),
    };
    for &n in &lns {
        a.ln_site(n)?;
    }
    for (i, &n) in lns.iter().enumerate() {
        a.ln_name = nname(g, n);
        let x = g.input(n, 0).ok_or("LN without input")?;
        a.stack.push(x);
        a.walk()?;
        a.ln_readers(i)?;
    }
    a.check_stream_readers(&lns)?;
    let stream: Vec<Value> = a.stream.iter().copied().collect();
    for v in stream {
        let r =
            rank(g, v).ok_or_else(|| format!("stream value '{}' has unknown rank", vname(g, v)))?;
        a.plan.resize.push((v, r - 1));
    }
    let mut seen = HashSet::new();
    a.plan.resize.retain(|x| seen.insert(*x));
    let mut seen = HashSet::new();
    a.plan.shape_consts.retain(|x| seen.insert(*x));
    Ok(Some(a.plan))
}

impl Analyzer<'_> {
    fn fail<T>(&self, msg: String) -> Result<T, String> {
        Err(format!("LN at node '{}': {msg}", self.ln_name))
    }

    fn ln_site(&mut self, n: NodeId) -> Result<(), String> {
        let g = self.g;
        self.ln_name = nname(g, n);
        let Op::LayerNormalization { axis, epsilon } = g.node(n).op else {
            return self.fail("not a LayerNormalization".into());
        };
        let x = g.input(n, 0).ok_or("LN without input")?;
        let Some(d) = last_dim(g, x) else {
            return self.fail("the hidden size is not known".into());
        };
        if !g.value_type(x).dtype.is_float() || d < 2 {
            return self.fail("the input is not a float vector of size ≥ 2".into());
        }
        let konst = |port: usize| g.input(n, port).and_then(|v| g.const_tensor(v));
        let Some(gamma) = konst(1).and_then(|t| per_channel(t, d)) else {
            return self.fail("γ is not a constant of the hidden size".into());
        };
        let beta = match g.input(n, 2) {
            None => vec![0.0; d],
            Some(_) => match konst(2).and_then(|t| per_channel(t, d)) {
                Some(b) => b,
                None => return self.fail("β is not a constant of the hidden size".into()),
            },
        };
        for p in 1..g.node(n).outputs.len() {
            let v = Value::new(n, p);
            if g.is_output(v) || !g.consumers(v).is_empty() {
                return self.fail("its mean or inverse-std output is used".into());
            }
        }
        self.plan.lns.push(LnSite {
            node: n,
            axis,
            epsilon,
            d,
            gamma,
            beta,
        });
        Ok(())
    }

    /// Walks the stream backwards from the values on the stack.
    fn walk(&mut self) -> Result<(), String> {
        let g = self.g;
        while let Some(v) = self.stack.pop() {
            if !self.stream.insert(v) {
                continue;
            }
            if g.is_output(v) {
                return self.fail(format!("stream value '{}' is a graph output", vname(g, v)));
            }
            let n = v.node;
            let r = rank(g, v).ok_or_else(|| format!("'{}' has unknown rank", vname(g, v)))?;
            match &g.node(n).op {
                Op::Binary(BinaryOp::Add) => {
                    for port in 0..2 {
                        self.term(n, port)?;
                    }
                }
                Op::Concat { axis } if norm_axis(*axis, r).is_some_and(|a| a + 1 != r) => {
                    for port in 0..g.node(n).num_inputs {
                        self.term(n, port)?;
                    }
                }
                Op::Gather { .. } if g.input(n, 0).is_some_and(|t| g.const_tensor(t).is_some()) => {
                    self.writer(v, false)?;
                }
                Op::MatMul | Op::Gemm { .. } | Op::Transpose { .. } | Op::Binary(BinaryOp::Mul) => {
                    self.writer(v, false)?;
                }
                Op::Gather { axis }
                    if g.input(n, 0)
                        .and_then(|x| rank(g, x))
                        .and_then(|xr| norm_axis(*axis, xr).map(|a| a + 1 != xr))
                        == Some(true) =>
                {
                    self.stream_input(n, 0)?;
                }
                Op::Slice if axes_avoid_last(g, n, 3, r) => self.stream_input(n, 0)?,
                Op::Reduce {
                    op: ReduceOp::Mean, ..
                } if g
                    .input(n, 0)
                    .and_then(|x| rank(g, x))
                    .is_some_and(|xr| axes_avoid_last(g, n, 1, xr)) =>
                {
                    self.stream_input(n, 0)?
                }
                Op::LayerNormalization { .. } | Op::RmsNormalization { .. } => {
                    return self.fail(format!(
                        "model is Post-LN (the residual stream comes out of the norm '{}', \
                         whose output also feeds the next block)",
                        nname(g, n)
                    ));
                }
                Op::Input(_) => {
                    return self.fail(format!(
                        "the stream starts at graph input '{}', not at a constant writer",
                        vname(g, v)
                    ));
                }
                op => {
                    return self.fail(format!(
                        "stream value '{}' comes from '{}' ({}), which is not a residual Add, \
                         a token-wise op or a constant linear writer",
                        vname(g, v),
                        nname(g, n),
                        op.kind_name()
                    ));
                }
            }
        }
        Ok(())
    }

    fn stream_input(&mut self, n: NodeId, port: usize) -> Result<(), String> {
        match self.g.input(n, port) {
            Some(x) => {
                self.stack.push(x);
                Ok(())
            }
            None => self.fail(format!("'{}' has no input {port}", nname(self.g, n))),
        }
    }

    /// Operand `port` of a stream `Add`/`Concat`: a constant, a writer, or more stream.
    fn term(&mut self, n: NodeId, port: usize) -> Result<(), String> {
        let g = self.g;
        let Some(u) = g.input(n, port) else {
            return self.fail(format!("'{}' has no input {port}", nname(g, n)));
        };
        if g.const_tensor(u).is_some() {
            return self.const_term(n, port);
        }
        self.stack.push(u);
        Ok(())
    }

    /// A constant added into the stream (bias, position table, CLS token).
    fn const_term(&mut self, n: NodeId, port: usize) -> Result<(), String> {
        let g = self.g;
        let out = Value::new(n, 0);
        let (Some(u), Some(d), Some(r)) = (g.input(n, port), last_dim(g, out), rank(g, out)) else {
            return self.fail(format!("'{}' has an unknown hidden size", nname(g, n)));
        };
        let t = g.const_tensor(u).ok_or("not a constant")?;
        if !t.dtype().is_float() || t.shape().last() != Some(&d) || t.rank() > r {
            return self.fail(format!(
                "the constant '{}' added at '{}' is not per-channel along the hidden axis",
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
    fn writer(&mut self, u: Value, exclusive: bool) -> Result<(), String> {
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
        if single_consumer(g, c).is_none() || rank(g, c).is_none_or(|cr| cr < 3) {
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

    /// Every path out of LN `i` must reach a constant linear reader.
    fn ln_readers(&mut self, i: usize) -> Result<(), String> {
        let g = self.g;
        let ln = self.plan.lns[i].node;
        let d = self.plan.lns[i].d;
        let mut stack = vec![Value::new(ln, 0)];
        let mut seen = HashSet::new();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            if g.is_output(v) {
                return self.fail(format!(
                    "its normalised output '{}' is a graph output",
                    vname(g, v)
                ));
            }
            for (n, port) in g.consumers(v) {
                let node = g.node(n);
                let out = Value::new(n, 0);
                let r_in = rank(g, v).unwrap_or(0);
                let keeps_last = last_dim(g, out) == Some(d);
                match &node.op {
                    Op::MatMul | Op::Gemm { trans_a: false, .. } if port == 0 => {
                        self.reader(i, n, d)?;
                    }
                    Op::Reshape { .. } if port == 0 && keeps_last => {
                        let shape = g.input(n, 1).and_then(|s| const_i64(g, s));
                        if let Some(s) = shape {
                            if s.last() == Some(&(d as i64)) {
                                self.plan.shape_consts.push((n, s.len() - 1));
                            }
                        }
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Reduce {
                        op: ReduceOp::Mean, ..
                    } if port == 0 && keeps_last && axes_avoid_last(g, n, 1, r_in) => {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Slice if port == 0 && keeps_last && axes_avoid_last(g, n, 3, r_in) => {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Gather { axis }
                        if port == 0
                            && keeps_last
                            && norm_axis(*axis, r_in).is_some_and(|a| a + 1 != r_in) =>
                    {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Binary(BinaryOp::Add) if self.is_stream_add(n) => {
                        return self.fail(format!(
                            "model is Post-LN (its output feeds the residual Add '{}' and the next block)",
                            node.name
                        ));
                    }
                    op => {
                        return self.fail(format!(
                            "its output reaches '{}' ({}), which is not a linear op with constant weights",
                            node.name,
                            op.kind_name()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn is_stream_add(&self, n: NodeId) -> bool {
        self.stream.contains(&Value::new(n, 0))
            || self
                .plan
                .lns
                .iter()
                .any(|l| self.g.input(l.node, 0) == Some(Value::new(n, 0)))
    }

    fn push_path(&mut self, v: Value, stack: &mut Vec<Value>) -> Result<(), String> {
        let r = rank(self.g, v).ok_or("unknown rank")?;
        self.plan.resize.push((v, r - 1));
        stack.push(v);
        Ok(())
    }

    /// A `MatMul`/`Gemm` reading a normalised value on port 0: its weight must be a
    /// constant `[D,N]` (or `[N,D]` for `transB`, or a `Transpose` of a constant).
    fn reader(&mut self, i: usize, n: NodeId, d: usize) -> Result<(), String> {
        let g = self.g;
        let name = nname(g, n);
        let gemm = match g.node(n).op {
            Op::Gemm {
                alpha,
                beta,
                trans_b,
                ..
            } => Some((alpha as f64, beta as f64, trans_b)),
            _ => None,
        };
        let Some(w) = g.input(n, 1) else {
            return self.fail(format!("reader '{name}' has no weight"));
        };
        let (weight, mut nd) = match &g.node(w.node).op {
            Op::Constant(_) => (w, false),
            Op::Transpose { perm } if matches!(perm.as_deref(), None | Some([1, 0])) => {
                match g.input(w.node, 0) {
                    Some(c) if g.const_tensor(c).is_some() => (c, true),
                    _ => return self.fail(format!("reader '{name}' has no constant weight")),
                }
            }
            _ => return self.fail(format!("reader '{name}' has no constant weight")),
        };
        if gemm.is_some_and(|(_, _, tb)| tb) {
            nd = !nd;
        }
        let t = g.const_tensor(weight).ok_or("not a constant")?;
        let din = if nd {
            t.shape().get(1)
        } else {
            t.shape().first()
        };
        if t.rank() != 2 || din != Some(&d) || !t.dtype().is_float() {
            return self.fail(format!(
                "reader '{name}' does not have a constant [D,N] weight"
            ));
        }
        if let Some((_, beta, _)) = gemm {
            if let Some(c) = g.input(n, 2) {
                let ok = g.const_tensor(c).is_some_and(|c| {
                    c.rank() <= 2 && c.shape().iter().rev().skip(1).all(|&s| s == 1)
                });
                if !ok || beta == 0.0 {
                    return self.fail(format!(
                        "reader '{name}' has a bias that is not a row vector"
                    ));
                }
            }
        }
        self.plan.readers.push(Reader {
            node: n,
            ln: i,
            gemm,
            weight,
            weight_nd: nd,
        });
        Ok(())
    }

    /// Every reader of a stream value must be a stream LN or another stream op.
    fn check_stream_readers(&self, lns: &[NodeId]) -> Result<(), String> {
        let g = self.g;
        for &v in &self.stream {
            for (n, port) in g.consumers(v) {
                let ok = (lns.contains(&n) && port == 0) || self.stream.contains(&Value::new(n, 0));
                if !ok {
                    return Err(format!(
                        "stream value '{}' is read by '{}' ({}), which is neither a stream LN \
                         nor part of the residual stream",
                        vname(g, v),
                        nname(g, n),
                        g.node(n).op.kind_name()
                    ));
                }
            }
        }
        Ok(())
    }
}
