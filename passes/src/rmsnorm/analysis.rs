//! Read-only analysis for the LayerNorm → RMSNorm rewrites: finds the residual stream, its
//! writers (constant linear ops to recentre), the stream LNs and their readers (constant
//! linear ops to fold γ/β into), or says why the model does not qualify.
//!
//! The stream is found backwards from every stream `LayerNormalization` over the last axis
//! (one whose output does not feed a residual `Add`: that one is a writer, like BLOOM's
//! embedding LN): residual `Add`s and token-wise ops (`Concat`/`Gather`/`Slice`/`ReduceMean`
//! off the hidden axis, `Reshape`/`Transpose` that keep it last, no-op `Cast`s) are stream;
//! what they add in must be a constant or a writer. A writer that is not a constant linear
//! op (a nonlinear stem, a graph input, an embedding LN) is recentred explicitly
//! (`x − mean x`, [`Centre`]). Then every reader of a stream value must be a stream LN, a
//! stream op or a `Shape`, and every path out of an LN must reach a linear op with constant
//! weights through hidden-axis-preserving ops only — or be a graph output (a base model's
//! last hidden state), in which case that LN keeps γ and β.

mod writers;

use crate::rewrite::const_i64;
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
    /// Why γ and β stay on this LN's output (RMSNorm scale γ, then `+ β`) instead of being
    /// folded into readers: its output is a graph output.
    pub keep_affine: Option<String>,
}

/// A writer output recentred explicitly: its stream readers (`users`) read
/// `value − ReduceMean(value)` instead; other readers keep `value`.
#[derive(Clone, Debug)]
pub struct Centre {
    pub value: Value,
    pub users: Vec<(NodeId, usize)>,
    /// Why the writer's own constants cannot be recentred.
    pub why: String,
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
    /// Writers recentred explicitly.
    pub centre: Vec<Centre>,
    /// Why the stream width cannot change (shapes read or computed elsewhere); CRMSNorm
    /// declines with the first.
    pub fixed_width: Vec<String>,
}

/// Lengths of the plan's lists, to undo a failed sub-analysis.
#[derive(Clone, Copy)]
struct Mark {
    writers: usize,
    scales: usize,
    readers: usize,
    resize: usize,
    shape_consts: usize,
    fixed_width: usize,
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

/// Splits the candidate LNs into stream LNs and writer LNs (an output read by an `Add`:
/// the norm writes the stream, as BLOOM's embedding LN does). A writer LN whose input is a
/// residual `Add` of another LN's output is a Post-LN block: the model is declined.
fn classify(g: &Graph, cands: &[NodeId]) -> Result<(Vec<NodeId>, HashSet<NodeId>), String> {
    let is_add = |n: NodeId| matches!(g.node(n).op, Op::Binary(BinaryOp::Add));
    let mut writers = HashSet::new();
    for &n in cands {
        let readers = g.consumers(Value::new(n, 0));
        let Some(&(add, _)) = readers.iter().find(|&&(c, _)| is_add(c)) else {
            continue;
        };
        // An embedding LN feeds residual Adds and the first block's LN only; one whose
        // output a block reads directly is a Post-LN block, `LN(h + f(h))`.
        if let Some(&(other, _)) = readers.iter().find(|&&(c, p)| {
            !is_add(c)
                && !(cands.contains(&c) && p == 0)
                && !matches!(g.node(c).op, Op::Shape { .. })
        }) {
            return Err(format!(
                "LN at node '{}': model is Post-LN (its output feeds the residual Add '{}' \
                 and '{}' of the next block)",
                nname(g, n),
                nname(g, add),
                nname(g, other)
            ));
        }
        if let Some(x) = g.input(n, 0).filter(|x| is_add(x.node)) {
            for p in 0..2 {
                if let Some(prev) = g.input(x.node, p).filter(|v| cands.contains(&v.node)) {
                    return Err(format!(
                        "LN at node '{}': model is Post-LN (the residual stream comes out of \
                         the norm '{}', whose output also feeds the residual Add '{}')",
                        nname(g, n),
                        nname(g, prev.node),
                        nname(g, x.node)
                    ));
                }
            }
        }
        writers.insert(n);
    }
    let stream: Vec<NodeId> = cands
        .iter()
        .copied()
        .filter(|n| !writers.contains(n))
        .collect();
    if stream.is_empty() {
        let n = cands[0];
        return Err(format!(
            "LN at node '{}': model is Post-LN (every LN's output feeds a residual Add)",
            nname(g, n)
        ));
    }
    Ok((stream, writers))
}

struct Analyzer<'a> {
    g: &'a Graph,
    plan: Plan,
    stream: BTreeSet<Value>,
    /// Writer outputs to recentre explicitly (with why).
    centred: Vec<(Value, String)>,
    /// LNs whose output writes the stream (see [`classify`]).
    writer_lns: HashSet<NodeId>,
    stack: Vec<Value>,
    /// The LN whose input walk is running (for messages).
    ln_name: String,
}

/// Analyses `g`. `Ok(None)`: there is no LayerNorm over the last axis. `Err`: the reason
/// the model does not qualify.
pub fn analyze(g: &Graph) -> Result<Option<Plan>, String> {
    let cands = candidate_lns(g);
    if cands.is_empty() {
        return Ok(None);
    }
    let (lns, writer_lns) = classify(g, &cands)?;
    let mut a = Analyzer {
        g,
        plan: Plan::default(),
        stream: BTreeSet::new(),
        centred: vec![],
        writer_lns,
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
        let mark = a.mark();
        if let Err(why) = a.ln_readers(i)? {
            a.undo(mark);
            a.plan.lns[i].keep_affine = Some(why);
        }
    }
    a.check_stream_readers(&lns)?;
    let centred = std::mem::take(&mut a.centred);
    let mut seen = HashSet::new();
    for (v, why) in centred {
        if !seen.insert(v) || a.stream.contains(&v) {
            continue;
        }
        let users = g
            .consumers(v)
            .into_iter()
            .filter(|&(n, p)| a.stream.contains(&Value::new(n, 0)) || (lns.contains(&n) && p == 0))
            .collect();
        a.plan.centre.push(Centre {
            value: v,
            users,
            why,
        });
    }
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

    fn mark(&self) -> Mark {
        let p = &self.plan;
        Mark {
            writers: p.writers.len(),
            scales: p.scales.len(),
            readers: p.readers.len(),
            resize: p.resize.len(),
            shape_consts: p.shape_consts.len(),
            fixed_width: p.fixed_width.len(),
        }
    }

    fn undo(&mut self, m: Mark) {
        let p = &mut self.plan;
        p.writers.truncate(m.writers);
        p.scales.truncate(m.scales);
        p.readers.truncate(m.readers);
        p.resize.truncate(m.resize);
        p.shape_consts.truncate(m.shape_consts);
        p.fixed_width.truncate(m.fixed_width);
    }

    /// `v` is written by something that is not a constant linear op: recentre it explicitly.
    fn centre(&mut self, v: Value, why: String) {
        self.stream.remove(&v);
        self.centred.push((v, why));
    }

    /// Records the writer producing `v`, or recentres `v` explicitly if it is not one.
    fn writer_or_centre(&mut self, v: Value) {
        let mark = self.mark();
        if let Err(why) = self.writer(v, false) {
            self.undo(mark);
            self.centre(v, why);
        }
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
            keep_affine: None,
        });
        Ok(())
    }

    /// Walks the stream backwards from the values on the stack.
    fn walk(&mut self) -> Result<(), String> {
        let g = self.g;
        while let Some(v) = self.stack.pop() {
            if self.centred.iter().any(|(c, _)| *c == v) || !self.stream.insert(v) {
                continue;
            }
            let n = v.node;
            let r = rank(g, v).ok_or_else(|| format!("'{}' has unknown rank", vname(g, v)))?;
            let keeps_last = || {
                let d = last_dim(g, v);
                d.is_some() && g.input(n, 0).and_then(|x| last_dim(g, x)) == d
            };
            let writes = match &g.node(n).op {
                Op::Binary(BinaryOp::Add) => {
                    for port in 0..2 {
                        self.term(n, port)?;
                    }
                    false
                }
                Op::Concat { axis } if norm_axis(*axis, r).is_some_and(|a| a + 1 != r) => {
                    for port in 0..g.node(n).num_inputs {
                        self.term(n, port)?;
                    }
                    false
                }
                Op::Gather { .. } if g.input(n, 0).is_some_and(|t| g.const_tensor(t).is_some()) => {
                    true
                }
                Op::Expand if g.input(n, 0).is_some_and(|t| g.const_tensor(t).is_some()) => {
                    if g.is_output(v) {
                        return self.output_fail(v);
                    }
                    self.stream.remove(&v);
                    self.expand_writer(n)?;
                    continue;
                }
                Op::Transpose { perm }
                    if perm.as_ref().is_some_and(|p| p.last() == Some(&(r - 1))) =>
                {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::MatMul | Op::Gemm { .. } | Op::Transpose { .. } | Op::Binary(BinaryOp::Mul) => {
                    true
                }
                Op::Gather { axis }
                    if g.input(n, 0)
                        .and_then(|x| rank(g, x))
                        .and_then(|xr| norm_axis(*axis, xr).map(|a| a + 1 != xr))
                        == Some(true) =>
                {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Slice if axes_avoid_last(g, n, 3, r) => {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Reduce {
                    op: ReduceOp::Mean, ..
                } if g
                    .input(n, 0)
                    .and_then(|x| rank(g, x))
                    .is_some_and(|xr| axes_avoid_last(g, n, 1, xr)) =>
                {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Flatten { .. } if keeps_last() => {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Reshape { .. } if keeps_last() => {
                    self.reshape_shape(n);
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Identity => {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::Cast { to } if g.input(n, 0).is_some_and(|x| g.value_type(x).dtype == *to) => {
                    self.stream_input(n, 0)?;
                    false
                }
                Op::LayerNormalization { .. } if self.writer_lns.contains(&n) => {
                    let why = format!(
                        "'{}' is a LayerNormalization that writes the stream",
                        nname(g, n)
                    );
                    self.centre(v, why);
                    continue;
                }
                Op::LayerNormalization { .. } | Op::RmsNormalization { .. } => {
                    return self.fail(format!(
                        "model is Post-LN (the residual stream comes out of the norm '{}', \
                         whose output also feeds the next block)",
                        nname(g, n)
                    ));
                }
                Op::Input(_) => {
                    let why = format!("the stream starts at graph input '{}'", vname(g, v));
                    self.centre(v, why);
                    continue;
                }
                op => {
                    let why = format!(
                        "stream value '{}' comes from '{}' ({}), which is not a constant \
                         linear writer",
                        vname(g, v),
                        nname(g, n),
                        op.kind_name()
                    );
                    self.centre(v, why);
                    continue;
                }
            };
            if writes && g.is_output(v) {
                let why = format!("the writer output '{}' is a graph output", vname(g, v));
                self.centre(v, why);
            } else if writes {
                self.writer_or_centre(v);
            } else if g.is_output(v) {
                return self.output_fail(v);
            }
        }
        Ok(())
    }

    fn output_fail<T>(&self, v: Value) -> Result<T, String> {
        self.fail(format!(
            "stream value '{}' is a graph output",
            vname(self.g, v)
        ))
    }

    /// A stream `Reshape` (hidden axis kept last): a constant shape naming the hidden size
    /// is resized with the stream; a computed one fixes the width.
    fn reshape_shape(&mut self, n: NodeId) {
        let g = self.g;
        let d = last_dim(g, Value::new(n, 0)).unwrap_or(0) as i64;
        match g.input(n, 1).and_then(|s| const_i64(g, s)) {
            Some(s) if s.last() == Some(&d) => self.plan.shape_consts.push((n, s.len() - 1)),
            Some(_) => {}
            None => self.plan.fixed_width.push(format!(
                "the stream Reshape '{}' has a computed shape",
                nname(g, n)
            )),
        }
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

    /// Every path out of LN `i` must reach a constant linear reader (or a `Shape`). `Ok(Err)`:
    /// a path ends in a graph output, so the LN keeps its affine (the reason).
    fn ln_readers(&mut self, i: usize) -> Result<Result<(), String>, String> {
        let g = self.g;
        let ln = self.plan.lns[i].node;
        let d = self.plan.lns[i].d;
        let mut stack = vec![Value::new(ln, 0)];
        let mut seen = HashSet::new();
        let mut output = None;
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            if g.is_output(v) && output.is_none() {
                output = Some(format!(
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
                    Op::Transpose { perm }
                        if keeps_last
                            && perm.as_ref().is_some_and(|p| p.last() == Some(&(r_in - 1))) =>
                    {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Identity => self.push_path(out, &mut stack)?,
                    Op::Flatten { .. } if port == 0 && keeps_last => {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Cast { to } if *to == g.value_type(v).dtype => {
                        self.push_path(out, &mut stack)?;
                    }
                    Op::Shape { .. } => self
                        .plan
                        .fixed_width
                        .push(format!("'{}' reads the normalised shape", node.name)),
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
        Ok(output.map_or(Ok(()), Err))
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

    /// Every reader of a stream value must be a stream LN, another stream op or a `Shape`.
    fn check_stream_readers(&mut self, lns: &[NodeId]) -> Result<(), String> {
        let g = self.g;
        for &v in &self.stream {
            for (n, port) in g.consumers(v) {
                if matches!(g.node(n).op, Op::Shape { .. }) {
                    let why = format!("'{}' reads the stream's shape", nname(g, n));
                    self.plan.fixed_width.push(why);
                    continue;
                }
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
