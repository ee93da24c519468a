//! The edits of the LayerNorm → RMSNorm / CRMSNorm rewrites, driven by an analysis
//! [`Plan`]: fold γ/β into readers, fold layer scales into writers, recentre (and, for
//! CRMSNorm, truncate) writers, and replace the LNs. All weight arithmetic is in f64 and
//! cast back to the constant's dtype.

use super::analysis::{Centre, ConstEdit, Plan, Reader};
use crate::rewrite::{
    f64_const, new_const, new_node, remove_dead_from, replace_value, single_consumer, Namer,
};
use std::sync::Arc;
use whittle_ir::{
    BinaryOp, DType, Dim, Graph, IrError, NodeId, Op, ReduceOp, Tensor, TensorType, UnaryOp, Value,
};

/// Which norm replaces the LayerNorms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `RMSNormalization` with scale 1 over the full width D.
    Rms,
    /// The stream keeps D−1 coordinates; the norm is a decomposed subgraph.
    Crms,
}

/// `(outer, len, inner)` sizes around `axis` of `shape`.
fn split_at(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Subtracts the mean along `axis`.
pub(crate) fn recentre(shape: &[usize], v: &mut [f64], axis: usize) {
    let (outer, len, inner) = split_at(shape, axis);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let mean = (0..len).map(|k| v[at(k)]).sum::<f64>() / len as f64;
            for k in 0..len {
                v[at(k)] -= mean;
            }
        }
    }
}

/// Multiplies index `k` along `axis` by `lam[k]`.
pub(crate) fn scale_along(shape: &[usize], v: &mut [f64], axis: usize, lam: &[f64]) {
    let (outer, len, inner) = split_at(shape, axis);
    for o in 0..outer {
        for (k, l) in lam.iter().enumerate().take(len) {
            for i in 0..inner {
                v[(o * len + k) * inner + i] *= l;
            }
        }
    }
}

/// Drops the last index along `axis`.
pub(crate) fn drop_last(shape: &[usize], v: &[f64], axis: usize) -> (Vec<usize>, Vec<f64>) {
    let (outer, len, inner) = split_at(shape, axis);
    let mut out = Vec::with_capacity(outer * (len - 1) * inner);
    for o in 0..outer {
        out.extend_from_slice(&v[o * len * inner..(o * len + len - 1) * inner]);
    }
    let mut s = shape.to_vec();
    s[axis] -= 1;
    (s, out)
}

struct Editor<'a> {
    g: &'a mut Graph,
    namer: Namer,
    dead: Vec<NodeId>,
}

impl Editor<'_> {
    /// Sets input `port` of `node` to constant `t`: in place when the old constant has no
    /// other reader, else as a fresh copy (this is how tied weights get untied).
    fn set_const(&mut self, node: NodeId, port: usize, t: Tensor) -> Result<(), IrError> {
        let old = self.g.input(node, port).ok_or_else(|| {
            IrError::Graph(format!(
                "node '{}' lost input {port}",
                self.g.node(node).name
            ))
        })?;
        let exclusive = self.g.const_tensor(old).is_some()
            && single_consumer(self.g, old) == Some((node, port));
        if exclusive {
            let n = self.g.node_mut(old.node);
            n.outputs[0].ty = TensorType::fixed(t.dtype(), t.shape());
            n.op = Op::Constant(Arc::new(t));
        } else {
            let base = self.g.value_info(old).name.clone();
            let v = new_const(self.g, &mut self.namer, &base, t);
            self.g.set_input(node, port, Some(v));
            self.dead.push(old.node);
        }
        Ok(())
    }

    fn current(&self, e: &ConstEdit) -> Result<(DType, Vec<usize>, Vec<f64>), IrError> {
        let t = self
            .g
            .input(e.node, e.port)
            .and_then(|v| self.g.const_tensor(v))
            .ok_or_else(|| IrError::Graph("writer constant vanished".into()))?;
        Ok((t.dtype(), t.shape().to_vec(), t.to_f64_vec()))
    }

    fn reader(&mut self, plan: &Plan, r: &Reader, variant: Variant) -> Result<(), IrError> {
        let ln = &plan.lns[r.ln];
        let d = ln.d;
        let t = self
            .g
            .const_tensor(r.weight)
            .ok_or_else(|| IrError::Graph("reader weight vanished".into()))?;
        let dtype = t.dtype();
        let raw = t.to_f64_vec();
        let n = raw.len() / d;
        // w[k*n + j] in [D,N] layout.
        let w: Vec<f64> = if r.weight_nd {
            (0..d * n).map(|i| raw[(i % n) * d + i / n]).collect()
        } else {
            raw
        };
        let alpha = r.gemm.map_or(1.0, |g| g.0);
        let bias: Vec<f64> = (0..n)
            .map(|j| alpha * (0..d).map(|k| ln.beta[k] * w[k * n + j]).sum::<f64>())
            .collect();
        let mut wg: Vec<f64> = (0..d * n).map(|i| ln.gamma[i / n] * w[i]).collect();
        let mut rows = d;
        if variant == Variant::Crms {
            let last: Vec<f64> = wg[(d - 1) * n..].to_vec();
            wg.truncate((d - 1) * n);
            for (i, x) in wg.iter_mut().enumerate() {
                *x -= last[i % n];
            }
            rows = d - 1;
        }
        let trans_b = r.gemm.is_some_and(|g| g.2);
        let out = if trans_b {
            let tr: Vec<f64> = (0..rows * n)
                .map(|i| wg[(i % rows) * n + i / rows])
                .collect();
            Tensor::from_f64(dtype, vec![n, rows], &tr)
        } else {
            Tensor::from_f64(dtype, vec![rows, n], &wg)
        };
        self.set_const(r.node, 1, out)?;
        if bias.iter().all(|&b| b == 0.0) {
            return Ok(());
        }
        self.reader_bias(r, dtype, bias)
    }

    /// Adds `bias` (`β·W`) to the reader's output: into Gemm's C, into a following bias
    /// `Add`, or as a new `Add`.
    fn reader_bias(&mut self, r: &Reader, dtype: DType, bias: Vec<f64>) -> Result<(), IrError> {
        let n = bias.len();
        if let Some((alpha, beta, trans_b)) = r.gemm {
            match self.g.input(r.node, 2).and_then(|c| self.g.const_tensor(c)) {
                Some(c) => {
                    let shape = c.shape().to_vec();
                    let mut cv = c.to_f64_vec();
                    let cd = c.dtype();
                    if cv.len() == n {
                        for (x, b) in cv.iter_mut().zip(&bias) {
                            *x += b / beta;
                        }
                        self.set_const(r.node, 2, Tensor::from_f64(cd, shape, &cv))?;
                        return Ok(());
                    }
                    // A one-element C: widen it to a row.
                    if cv.len() != 1 {
                        return Err(IrError::Graph(format!(
                            "Gemm '{}': C does not match its output width",
                            self.g.node(r.node).name
                        )));
                    }
                    let c0 = cv[0];
                    let row: Vec<f64> = bias.iter().map(|b| c0 + b / beta).collect();
                    self.set_const(r.node, 2, Tensor::from_f64(cd, vec![n], &row))?;
                }
                None => {
                    let beta = if beta == 0.0 { 1.0 } else { beta };
                    let row: Vec<f64> = bias.iter().map(|b| b / beta).collect();
                    let base = format!("{}.ln_bias", self.g.node(r.node).name);
                    let c = f64_const(self.g, &mut self.namer, &base, dtype, vec![n], &row);
                    self.g.set_input(r.node, 2, Some(c));
                    self.g.node_mut(r.node).op = Op::Gemm {
                        alpha: alpha as f32,
                        beta: beta as f32,
                        trans_a: false,
                        trans_b,
                    };
                }
            }
            return Ok(());
        }
        let y = Value::new(r.node, 0);
        if let Some((add, port)) = single_consumer(self.g, y) {
            if matches!(self.g.node(add).op, Op::Binary(BinaryOp::Add)) {
                let other = 1 - port.min(1);
                if let Some(c) = self
                    .g
                    .input(add, other)
                    .and_then(|c| self.g.const_tensor(c))
                {
                    let shape = c.shape().to_vec();
                    if c.len() == n && shape.last() == Some(&n) {
                        let cd = c.dtype();
                        let cv: Vec<f64> = c
                            .to_f64_vec()
                            .iter()
                            .zip(&bias)
                            .map(|(a, b)| a + b)
                            .collect();
                        return self.set_const(add, other, Tensor::from_f64(cd, shape, &cv));
                    }
                }
            }
        }
        let name = self.g.node(r.node).name.clone();
        self.add_after(y, &name, "ln_bias", "biased", dtype, &bias);
        Ok(())
    }

    /// `y + row` as a new `Add` (constant `<name>.<what>`, sum `<name>.<sum>`): every reader
    /// of `y` (and a graph output, keeping its name) moves to the sum.
    fn add_after(&mut self, y: Value, name: &str, what: &str, sum: &str, dt: DType, row: &[f64]) {
        let base = format!("{name}.{what}");
        let c = f64_const(self.g, &mut self.namer, &base, dt, vec![row.len()], row);
        let ty = self.g.value_type(y).clone();
        let add = Op::Binary(BinaryOp::Add);
        let out = new_node(
            self.g,
            &mut self.namer,
            &format!("{name}.{sum}"),
            add,
            &[Some(y), Some(c)],
            ty,
        );
        replace_value(self.g, &mut self.namer, y, out);
        self.g.set_input(out.node, 0, Some(y));
    }

    /// The LN becomes an RMSNorm: scale all ones (γ and β are folded into the readers) or,
    /// for an LN that keeps its affine, `RMSNorm(x)·γ` and then `+ β` (when β is not zero).
    fn rms_norm(&mut self, plan: &Plan, i: usize) -> Result<(), IrError> {
        let ln = &plan.lns[i];
        let keep = ln.keep_affine.is_some();
        let y = Value::new(ln.node, 0);
        let dtype = self.g.value_type(y).dtype;
        let name = self.g.node(ln.node).name.clone();
        let first_dropped = if keep { 2 } else { 1 };
        for p in first_dropped..3 {
            if let Some(v) = self.g.input(ln.node, p) {
                self.dead.push(v.node);
            }
        }
        if !keep {
            let base = format!("{name}.scale");
            let ones = vec![1.0; ln.d];
            let ones = f64_const(self.g, &mut self.namer, &base, dtype, vec![ln.d], &ones);
            self.g.set_input(ln.node, 1, Some(ones));
        }
        self.g.set_input(ln.node, 2, None);
        let node = self.g.node_mut(ln.node);
        node.op = Op::RmsNormalization {
            axis: ln.axis,
            epsilon: ln.epsilon,
        };
        node.num_inputs = 2;
        node.outputs.truncate(1);
        if keep && ln.beta.iter().any(|&b| b != 0.0) {
            self.add_after(y, &name, "beta", "shifted", dtype, &ln.beta);
        }
        Ok(())
    }

    /// `value − ReduceMean(value)` over the last axis, read by the centre's stream users.
    fn centre(&mut self, c: &Centre) -> Result<(), IrError> {
        let v = c.value;
        let ty = self.g.value_type(v).clone();
        let mut mty = ty.clone();
        if let Some(l) = mty.shape.as_mut().and_then(|s| s.last_mut()) {
            *l = Dim::Known(1);
        }
        let base = self.g.value_info(v).name.clone();
        let axes = new_const(
            self.g,
            &mut self.namer,
            &format!("{base}.centre_axes"),
            Tensor::from_vec(vec![1], vec![-1i64]),
        );
        let op = Op::Reduce {
            op: ReduceOp::Mean,
            keepdims: true,
            noop_with_empty_axes: false,
        };
        let m = new_node(
            self.g,
            &mut self.namer,
            &format!("{base}.mean"),
            op,
            &[Some(v), Some(axes)],
            mty,
        );
        let centred = new_node(
            self.g,
            &mut self.namer,
            &format!("{base}.centred"),
            Op::Binary(BinaryOp::Sub),
            &[Some(v), Some(m)],
            ty,
        );
        for &(n, port) in &c.users {
            self.g.set_input(n, port, Some(centred));
        }
        Ok(())
    }

    /// `x′ / sqrt((‖x′‖² + (Σx′)²)/D + ε)` as existing ops.
    fn crms_norm(&mut self, plan: &Plan, i: usize) -> Result<(), IrError> {
        let ln = &plan.lns[i];
        let id = ln.node;
        let x = self
            .g
            .input(id, 0)
            .ok_or_else(|| IrError::Graph("LN lost its input".into()))?;
        let xty = self.g.value_type(x).clone();
        let dtype = xty.dtype;
        let mut rty = xty.clone();
        if let Some(s) = rty.shape.as_mut() {
            if let Some(l) = s.last_mut() {
                *l = Dim::Known(1);
            }
        }
        let name = self.g.node(id).name.clone();
        let out_name = self.g.value_info(Value::new(id, 0)).name.clone();
        let axes = new_const(
            self.g,
            &mut self.namer,
            &format!("{name}.axes"),
            Tensor::from_vec(vec![1], vec![-1i64]),
        );
        let reduce = |op| Op::Reduce {
            op,
            keepdims: true,
            noop_with_empty_axes: false,
        };
        let node = |ed: &mut Self, suffix: &str, op: Op, ins: &[Value], ty: &TensorType| {
            let ins: Vec<Option<Value>> = ins.iter().map(|v| Some(*v)).collect();
            new_node(
                ed.g,
                &mut ed.namer,
                &format!("{name}.{suffix}"),
                op,
                &ins,
                ty.clone(),
            )
        };
        let ss = node(self, "sumsq", reduce(ReduceOp::SumSquare), &[x, axes], &rty);
        let s = node(self, "sum", reduce(ReduceOp::Sum), &[x, axes], &rty);
        let s2 = node(self, "sum_sq", Op::Binary(BinaryOp::Mul), &[s, s], &rty);
        let t = node(self, "total", Op::Binary(BinaryOp::Add), &[ss, s2], &rty);
        let dc = f64_const(
            self.g,
            &mut self.namer,
            &format!("{name}.width"),
            dtype,
            vec![],
            &[ln.d as f64],
        );
        let m = node(self, "ms", Op::Binary(BinaryOp::Div), &[t, dc], &rty);
        let ec = f64_const(
            self.g,
            &mut self.namer,
            &format!("{name}.eps"),
            dtype,
            vec![],
            &[ln.epsilon as f64],
        );
        let me = node(self, "ms_eps", Op::Binary(BinaryOp::Add), &[m, ec], &rty);
        let r = node(self, "rms", Op::Unary(UnaryOp::Sqrt), &[me], &rty);
        let y = node(self, "out", Op::Binary(BinaryOp::Div), &[x, r], &xty);
        self.g.replace_all_uses(Value::new(id, 0), y);
        let ins: Vec<NodeId> = self
            .g
            .node_inputs(id)
            .into_iter()
            .flatten()
            .map(|v| v.node)
            .collect();
        self.g.remove_node(id);
        self.dead.extend(ins);
        let yn = self.g.node_mut(y.node);
        yn.name = name;
        yn.outputs[0].name = out_name;
        Ok(())
    }
}

/// What the rewrite did, for `--explain`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub lns: usize,
    pub writers: usize,
    pub readers: usize,
    pub scales: usize,
    pub centred: usize,
    pub affine_kept: usize,
}

/// Applies `plan` to `g`.
pub fn apply(g: &mut Graph, plan: &Plan, variant: Variant) -> Result<Summary, IrError> {
    let namer = Namer::new(g);
    let mut ed = Editor {
        g,
        namer,
        dead: vec![],
    };
    // Readers first: they read the original weights, and a tied table keeps its name on
    // the writer side while the head gets the copy.
    for r in &plan.readers {
        ed.reader(plan, r, variant)?;
    }
    for s in &plan.scales {
        for e in &plan.writers[s.range.clone()] {
            let (dt, shape, mut v) = ed.current(e)?;
            scale_along(&shape, &mut v, e.axis, &s.lambda);
            ed.set_const(e.node, e.port, Tensor::from_f64(dt, shape, &v))?;
        }
        let x =
            ed.g.input(s.mul, 1 - s.lambda_port)
                .ok_or_else(|| IrError::Graph("layer scale lost its input".into()))?;
        ed.g.replace_all_uses(Value::new(s.mul, 0), x);
        ed.dead.push(s.mul);
    }
    for e in &plan.writers {
        let (dt, shape, mut v) = ed.current(e)?;
        recentre(&shape, &mut v, e.axis);
        let t = match variant {
            Variant::Rms => Tensor::from_f64(dt, shape, &v),
            Variant::Crms => {
                let (s, v) = drop_last(&shape, &v, e.axis);
                Tensor::from_f64(dt, s, &v)
            }
        };
        ed.set_const(e.node, e.port, t)?;
    }
    if variant == Variant::Crms {
        for &(v, axis) in &plan.resize {
            if !ed.g.contains(v.node) {
                continue;
            }
            let mut ty = ed.g.value_type(v).clone();
            if let Some(Dim::Known(k)) = ty.shape.as_mut().and_then(|s| s.get_mut(axis)) {
                *k -= 1;
            }
            ed.g.set_value_type(v, ty);
        }
        for &(n, idx) in &plan.shape_consts {
            let s =
                ed.g.input(n, 1)
                    .and_then(|v| crate::rewrite::const_i64(ed.g, v));
            if let Some(mut s) = s {
                if let Some(x) = s.get_mut(idx) {
                    *x -= 1;
                }
                ed.set_const(n, 1, Tensor::from_vec(vec![s.len()], s))?;
            }
        }
    }
    for c in &plan.centre {
        ed.centre(c)?;
    }
    for i in 0..plan.lns.len() {
        match variant {
            Variant::Rms => ed.rms_norm(plan, i)?,
            Variant::Crms => ed.crms_norm(plan, i)?,
        }
    }
    let dead = std::mem::take(&mut ed.dead);
    remove_dead_from(ed.g, &dead);
    Ok(Summary {
        lns: plan.lns.len(),
        writers: plan.writers.len(),
        readers: plan.readers.len(),
        scales: plan.scales.len(),
        centred: plan.centre.len(),
        affine_kept: plan.lns.iter().filter(|l| l.keep_affine.is_some()).count(),
    })
}
