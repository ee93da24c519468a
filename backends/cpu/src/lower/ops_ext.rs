//! Lowering of the ops outside the f32 fast paths to generic host kernels (`ExtOp`):
//! elementwise ops on any dtype (comparisons, logic, Where, Clip with run-time bounds, Pow,
//! Log/Sin/Cos, ...), reductions over any axes, ArgMax/ArgMin, Softmax/LogSoftmax on any
//! axis, CumSum, TopK, Split, Trilu, Tile, Pad, GatherElements, Shape/Size, LayerNorm with
//! statistics outputs, RMSNormalization and BatchNormalization. Ops the existing fast
//! paths handle are left to them (`Ok(false)`).

pub use whittle_exec::steps::ExtOp;

use super::{unsupported, Lowerer, Step};
use crate::kernels::ewise::{bcast_strides, EwFn, Ewise};
use crate::kernels::index::{
    dense, strided_offsets, AxisFn, AxisOp, GatherElems, GatherNd, GenMatMul, IndexCopy, Reduce,
};
use crate::kernels::movement::StridedCopy;
use crate::lower::ops::HostOp;
use crate::plan::Buf;
use std::sync::Arc;
use whittle_ir::eval::util::{norm_axes, norm_axis};
use whittle_ir::{DType, GeluApprox, NodeId, Op, PadMode, ReduceOp, Tensor, Value, VariadicOp};
use whittle_runtime::RuntimeError;

/// Lowest and highest value of an integer dtype (for Max/Min over an empty set).
fn int_range(dt: DType) -> (i128, i128) {
    match dt {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        DType::Bool => (0, 1),
        _ => (i64::MIN as i128, i64::MAX as i128),
    }
}

impl Lowerer<'_> {
    pub(super) fn input_value(&self, id: NodeId, p: usize) -> Result<Value, RuntimeError> {
        self.ext_input(id, p)
    }

    pub(super) fn is_used(&self, v: Value) -> bool {
        self.used(v)
    }

    pub(super) fn push_ext_op(
        &mut self,
        id: NodeId,
        op: ExtOp,
        ins: &[Value],
        outs: &[Value],
    ) -> Result<(), RuntimeError> {
        self.push_ext(id, op, ins, outs)
    }

    fn ext_input(&self, id: NodeId, p: usize) -> Result<Value, RuntimeError> {
        self.g
            .input(id, p)
            .ok_or_else(|| unsupported(self.g, id, format!("missing input {p}")))
    }

    /// Integer values of the constant at input `p`; None when the input is absent.
    fn ext_ints(&self, id: NodeId, p: usize) -> Result<Option<Vec<i64>>, RuntimeError> {
        let Some(v) = self.g.input(id, p) else {
            return Ok(None);
        };
        match self.const_of(v) {
            Some(t) if !t.dtype().is_float() => Ok(Some(t.to_i64_vec())),
            _ => Err(unsupported(
                self.g,
                id,
                format!("input {p} must be a constant integer tensor for the cpu backend"),
            )),
        }
    }

    fn used(&self, v: Value) -> bool {
        !self.g.consumers(v).is_empty() || self.g.is_output(v)
    }

    /// Pushes an `ExtOp` step reading `ins` and writing fresh buffers for `outs`.
    fn push_ext(
        &mut self,
        id: NodeId,
        op: ExtOp,
        ins: &[Value],
        outs: &[Value],
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<Buf> = Vec::with_capacity(ins.len() + outs.len());
        for &v in ins {
            // Inputs read only at non-data ports (e.g. Clip bounds) were not lowered yet.
            if !self.storage.contains_key(&v) {
                match &self.g.node(v.node).op {
                    Op::Input(i) => {
                        self.storage.insert(v, Buf::Input(*i));
                    }
                    Op::Constant(t) => {
                        let t = (**t).clone();
                        self.push_const(v, t);
                    }
                    _ => {}
                }
            }
            args.push(self.read(v)?);
        }
        for &v in outs {
            args.push(self.alloc(v));
        }
        let name = format!(
            "{}_{}",
            self.g.node(id).op.kind_name(),
            self.prog.steps.len()
        );
        let n_in = ins.len();
        self.prog.steps.push(Step::Host {
            op: HostOp::Ext {
                op: Box::new(op),
                n_in,
            },
            args,
            name,
        });
        Ok(())
    }

    /// The all-true mask output of an inference-mode Dropout, as a constant.
    pub(super) fn dropout_mask(&mut self, id: NodeId) {
        let v = Value::new(id, 1);
        let t = Tensor::from_vec(self.shape(v), vec![true; self.numel(v)]);
        self.push_const(v, t);
    }

    /// Lowers a MatMul whose operands are not all f32 to the generic kernel; `Ok(false)`
    /// for f32 products (the GEMM path).
    pub(super) fn host_matmul(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let (a, b) = (self.ext_input(id, 0)?, self.ext_input(id, 1)?);
        let out = Value::new(id, 0);
        let dt = self.dtype(a);
        if [a, b, out].iter().all(|&v| self.dtype(v) == DType::F32) {
            return Ok(false);
        }
        if self.dtype(b) != dt || self.dtype(out) != dt || dt == DType::Bool {
            return Err(unsupported(
                g,
                id,
                "MatMul operands must share a numeric dtype",
            ));
        }
        let (m, k, n, pairs, _) = super::matmul::matmul_geometry(&self.shape(a), &self.shape(b))
            .map_err(|e| unsupported(g, id, e))?;
        let mm = GenMatMul { m, k, n, pairs, dt };
        self.push_ext(id, ExtOp::MatMul(mm), &[a, b], &[out])?;
        Ok(true)
    }

    fn push_const(&mut self, v: Value, t: Tensor) {
        self.prog.consts.push(Arc::new(t));
        self.storage
            .insert(v, Buf::Const(self.prog.consts.len() - 1));
    }

    /// Lowers `id` to a generic host kernel if it is one of the ops this file covers and
    /// the fast paths do not; `Ok(false)` otherwise.
    pub(super) fn host_ext(&mut self, id: NodeId) -> Result<bool, RuntimeError> {
        let g = self.g;
        let op = g.node(id).op.clone();
        let out = Value::new(id, 0);
        let oshape = self.shape(out);
        let odt = self.dtype(out);
        let err = |m: String| unsupported(g, id, m);
        let ew = |f: EwFn| Some(f);
        let ewf = match &op {
            Op::Unary(u) => ew(EwFn::Unary(*u)),
            Op::Binary(b) => ew(EwFn::Binary(*b)),
            Op::Variadic(v) => ew(match v {
                VariadicOp::Min => EwFn::Min,
                VariadicOp::Max => EwFn::Max,
                VariadicOp::Sum => EwFn::Sum,
                VariadicOp::Mean => EwFn::Mean,
            }),
            Op::Where => ew(EwFn::Where),
            Op::Clip => ew(EwFn::Clip {
                lo: false,
                hi: false,
            }),
            Op::IsNaN => ew(EwFn::IsNaN),
            Op::IsInf {
                detect_negative,
                detect_positive,
            } => ew(EwFn::IsInf {
                neg: *detect_negative,
                pos: *detect_positive,
            }),
            Op::Elu { alpha } => ew(EwFn::Elu(*alpha)),
            Op::LeakyRelu { alpha } => ew(EwFn::LeakyRelu(*alpha)),
            Op::HardSigmoid { alpha, beta } => ew(EwFn::HardSigmoid(*alpha, *beta)),
            Op::Gelu { approximate } => ew(match approximate {
                GeluApprox::None => EwFn::GeluErf,
                GeluApprox::Tanh => EwFn::GeluTanh,
            }),
            _ => None,
        };
        if let Some(mut f) = ewf {
            let mut ins: Vec<Value> = Vec::new();
            for (p, v) in g.node_inputs(id).into_iter().enumerate() {
                let Some(v) = v else { continue };
                if matches!(op, Op::Clip) && p > 0 {
                    let empty = self.const_of(v).is_some_and(|t| t.is_empty());
                    if empty {
                        continue;
                    }
                    if let EwFn::Clip { lo, hi } = &mut f {
                        *if p == 1 { lo } else { hi } = true;
                    }
                }
                ins.push(v);
            }
            let mut strides = Vec::with_capacity(ins.len());
            for &v in &ins {
                strides.push(bcast_strides(&self.shape(v), &oshape).ok_or_else(|| {
                    err(format!(
                        "input of shape {:?} does not broadcast to {oshape:?}",
                        self.shape(v)
                    ))
                })?);
            }
            if ins.len() > 8 {
                return Err(err("more than 8 inputs".into()));
            }
            let e = Ewise {
                f,
                out: oshape,
                strides,
                in_dt: ins.iter().map(|&v| self.dtype(v)).collect(),
                out_dt: odt,
            };
            e.check().map_err(err)?;
            self.push_ext(id, ExtOp::Ew(e), &ins, &[out])?;
            return Ok(true);
        }
        match op {
            Op::Reduce {
                op: rop,
                noop_with_empty_axes,
                ..
            } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let axes = self.ext_ints(id, 1)?.unwrap_or_default();
                // No axes with noop_with_empty_axes reduces nothing, but ONNX still applies
                // the op to each element (ReduceSumSquare squares, ReduceL1 takes |x|, ...):
                // the ops that are the identity on one element share the input's buffer,
                // the others run the generic kernel over groups of one element.
                let noop = axes.is_empty() && noop_with_empty_axes;
                if noop
                    && matches!(
                        rop,
                        ReduceOp::Sum
                            | ReduceOp::Mean
                            | ReduceOp::Max
                            | ReduceOp::Min
                            | ReduceOp::Prod
                    )
                {
                    let b = self.buf(x)?;
                    self.storage.insert(out, b);
                    return Ok(true);
                }
                let mut axes = if noop {
                    vec![]
                } else if axes.is_empty() {
                    (0..sx.len()).collect()
                } else {
                    norm_axes(&axes, sx.len()).map_err(err)?
                };
                axes.sort_unstable();
                axes.dedup();
                let first = axes.first().copied().unwrap_or(sx.len());
                let trailing = axes.iter().enumerate().all(|(i, &a)| a == first + i)
                    && axes.last().is_none_or(|&a| a + 1 == sx.len());
                let fast = matches!(rop, ReduceOp::Sum | ReduceOp::Mean)
                    && self.dtype(x) == DType::F32
                    && trailing
                    && !axes.is_empty();
                if fast {
                    return Ok(false);
                }
                let st = dense(&sx);
                let kshape: Vec<usize> = (0..sx.len())
                    .map(|d| if axes.contains(&d) { 1 } else { sx[d] })
                    .collect();
                let rshape: Vec<usize> = (0..sx.len())
                    .map(|d| if axes.contains(&d) { sx[d] } else { 1 })
                    .collect();
                let dt = self.dtype(x);
                if !dt.is_float() && matches!(rop, ReduceOp::LogSum | ReduceOp::LogSumExp) {
                    return Err(err(format!("Reduce{rop:?} needs a float input")));
                }
                let r = Reduce {
                    op: rop,
                    kept: strided_offsets(&kshape, &st, 0),
                    red: strided_offsets(&rshape, &st, 0),
                    dt,
                    lo_hi: int_range(dt),
                };
                self.push_ext(id, ExtOp::Reduce(r), &[x], &[out])?;
            }
            Op::ArgMax {
                axis,
                select_last_index,
                ..
            }
            | Op::ArgMin {
                axis,
                select_last_index,
                ..
            } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                let a = AxisOp {
                    f: AxisFn::Arg {
                        max: matches!(op, Op::ArgMax { .. }),
                        last: select_last_index,
                    },
                    outer: sx[..ax].iter().product(),
                    axis: sx[ax],
                    inner: sx[ax + 1..].iter().product(),
                    dt: self.dtype(x),
                };
                if a.axis == 0 {
                    return Err(err("ArgMax/ArgMin over an empty axis".into()));
                }
                self.push_ext(id, ExtOp::Axis(a), &[x], &[out])?;
            }
            Op::Softmax { axis, coerce_2d } | Op::LogSoftmax { axis, coerce_2d } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let dt = self.dtype(x);
                let ax = norm_axis(axis, sx.len().max(1)).map_err(err)?;
                let soft = matches!(op, Op::Softmax { .. });
                let trailing_ones = sx.iter().skip(ax + 1).all(|&d| d == 1);
                if soft && dt == DType::F32 && (coerce_2d || trailing_ones) {
                    return Ok(false);
                }
                if !dt.is_float() {
                    return Err(err(format!("needs a float input, got {dt}")));
                }
                let (outer, axis_len, inner) = if coerce_2d {
                    (sx[..ax].iter().product(), sx[ax..].iter().product(), 1)
                } else {
                    (
                        sx[..ax].iter().product(),
                        sx.get(ax).copied().unwrap_or(1),
                        sx.iter().skip(ax + 1).product(),
                    )
                };
                let f = if soft {
                    AxisFn::Softmax
                } else {
                    AxisFn::LogSoftmax
                };
                let a = AxisOp {
                    f,
                    outer,
                    axis: axis_len,
                    inner,
                    dt,
                };
                self.push_ext(id, ExtOp::Axis(a), &[x], &[out])?;
            }
            Op::CumSum { exclusive, reverse } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let axis = self
                    .ext_ints(id, 1)?
                    .and_then(|v| v.first().copied())
                    .ok_or_else(|| err("CumSum needs an axis".into()))?;
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                let a = AxisOp {
                    f: AxisFn::CumSum { exclusive, reverse },
                    outer: sx[..ax].iter().product(),
                    axis: sx[ax],
                    inner: sx[ax + 1..].iter().product(),
                    dt: self.dtype(x),
                };
                self.push_ext(id, ExtOp::Axis(a), &[x], &[out])?;
            }
            Op::TopK { axis, largest, .. } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                let k = oshape.get(ax).copied().unwrap_or(0);
                if k > sx[ax] {
                    return Err(err(format!("k = {k} exceeds the axis length {}", sx[ax])));
                }
                let a = AxisOp {
                    f: AxisFn::TopK { k, largest },
                    outer: sx[..ax].iter().product(),
                    axis: sx[ax],
                    inner: sx[ax + 1..].iter().product(),
                    dt: self.dtype(x),
                };
                self.push_ext(id, ExtOp::Axis(a), &[x], &[out, Value::new(id, 1)])?;
            }
            Op::Split { axis, .. } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                let st: Vec<isize> = dense(&sx).iter().map(|&s| s as isize).collect();
                let elem = self.dtype(x).size_of();
                let mut at = 0usize;
                for p in 0..g.node(id).outputs.len() {
                    let v = Value::new(id, p);
                    let so = self.shape(v);
                    let len = so.get(ax).copied().unwrap_or(0);
                    if at + len > sx[ax] {
                        return Err(err("split sizes exceed the axis".into()));
                    }
                    let c = StridedCopy::new(elem, &so, &st, (at as isize) * st[ax]);
                    at += len;
                    self.push_ext(id, ExtOp::Strided(c), &[x], &[v])?;
                }
            }
            Op::Trilu { upper } => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                if sx.len() < 2 {
                    return Err(err("Trilu needs rank ≥ 2".into()));
                }
                let k = self
                    .ext_ints(id, 1)?
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0);
                let (r, c) = (sx[sx.len() - 2], sx[sx.len() - 1]);
                let n: usize = sx.iter().product();
                whittle_ir::limits::check_alloc(n as u64 * 8, "the index table").map_err(err)?;
                let src_idx = (0..n)
                    .map(|i| {
                        let (row, col) = ((i / c.max(1)) % r.max(1), i % c.max(1));
                        let d = col as i64 - row as i64;
                        let keep = if upper { d >= k } else { d <= k };
                        if keep {
                            i
                        } else {
                            usize::MAX
                        }
                    })
                    .collect();
                let elem = self.dtype(x).size_of();
                let cp = IndexCopy {
                    elem,
                    src_idx,
                    fill: vec![0; elem],
                };
                self.push_ext(id, ExtOp::Copy(cp), &[x], &[out])?;
            }
            Op::Tile => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                if sx.len() != oshape.len() {
                    return Err(err("repeats must match the input rank".into()));
                }
                let st = dense(&sx);
                let ost = dense(&oshape);
                let n: usize = oshape.iter().product();
                whittle_ir::limits::check_alloc(n as u64 * 8, "the index table").map_err(err)?;
                let src_idx = (0..n)
                    .map(|i| {
                        (0..sx.len())
                            .map(|d| ((i / ost[d]) % oshape[d]) % sx[d].max(1) * st[d])
                            .sum()
                    })
                    .collect();
                let elem = self.dtype(x).size_of();
                let cp = IndexCopy {
                    elem,
                    src_idx,
                    fill: vec![],
                };
                self.push_ext(id, ExtOp::Copy(cp), &[x], &[out])?;
            }
            Op::Pad { mode } => self.lower_pad(id, mode)?,
            Op::GatherElements { axis } => {
                let x = self.ext_input(id, 0)?;
                let idx = self.ext_input(id, 1)?;
                let sx = self.shape(x);
                let si = self.shape(idx);
                let ax = norm_axis(axis, sx.len()).map_err(err)?;
                if si.len() != sx.len() {
                    return Err(err("indices rank differs from data rank".into()));
                }
                let st = dense(&sx);
                let mut bst = st.clone();
                bst[ax] = 0;
                for d in 0..sx.len() {
                    if d != ax && si[d] > sx[d] {
                        return Err(err("indices exceed the data shape".into()));
                    }
                }
                let ge = GatherElems {
                    elem: self.dtype(x).size_of(),
                    base: strided_offsets(&si, &bst, 0),
                    axis_len: sx[ax],
                    axis_stride: st[ax],
                    idx_dt: self.dtype(idx),
                };
                self.push_ext(id, ExtOp::GatherElems(ge), &[x, idx], &[out])?;
            }
            Op::GatherNd { batch_dims } => {
                let x = self.ext_input(id, 0)?;
                let idx = self.ext_input(id, 1)?;
                let (sx, si) = (self.shape(x), self.shape(idx));
                let b = batch_dims;
                let k = *si
                    .last()
                    .ok_or_else(|| err("indices must have rank >= 1".into()))?;
                if si.len() < b + 1 || sx.len() < b + k || sx[..b] != si[..b] {
                    return Err(err(format!(
                        "indices {si:?} do not fit data {sx:?} with batch_dims {b}"
                    )));
                }
                let st = dense(&sx);
                let gn = GatherNd {
                    elem: self.dtype(x).size_of(),
                    batches: sx[..b].iter().product(),
                    batch_stride: sx[b..].iter().product(),
                    tuples: si[b..si.len() - 1].iter().product(),
                    dims: sx[b..b + k].to_vec(),
                    strides: st[b..b + k].to_vec(),
                    slice: sx[b + k..].iter().product(),
                    idx_dt: self.dtype(idx),
                };
                self.push_ext(id, ExtOp::GatherNd(gn), &[x, idx], &[out])?;
            }
            Op::Shape { .. } | Op::Size => {
                let x = self.ext_input(id, 0)?;
                let sx = self.shape(x);
                let vals: Vec<i64> = match &op {
                    Op::Shape { start, end } => {
                        let r = sx.len() as i64;
                        let cl = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                        let (s, e) = (cl(*start), cl(end.unwrap_or(r)));
                        sx[s..e.max(s)].iter().map(|&d| d as i64).collect()
                    }
                    _ => vec![sx.iter().product::<usize>() as i64],
                };
                let t = Tensor::from_vec(oshape.clone(), vals);
                self.push_const(out, t);
            }
            _ => return self.host_norm(id),
        }
        Ok(true)
    }

    fn lower_pad(&mut self, id: NodeId, mode: PadMode) -> Result<(), RuntimeError> {
        let g = self.g;
        let err = |m: String| unsupported(g, id, m);
        let x = self.ext_input(id, 0)?;
        let out = Value::new(id, 0);
        let sx = self.shape(x);
        let oshape = self.shape(out);
        let r = sx.len();
        let pads = self.ext_ints(id, 1)?.unwrap_or_default();
        let axes = match self.ext_ints(id, 3)? {
            Some(a) => norm_axes(&a, r).map_err(err)?,
            None => (0..r).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(err("pads must hold two values per axis".into()));
        }
        let mut before = vec![0i64; r];
        for (i, &a) in axes.iter().enumerate() {
            before[a] = pads[i];
            if mode != PadMode::Constant && sx[a] == 0 && oshape[a] > 0 {
                return Err(err(format!(
                    "cannot pad an empty axis {a} in {mode:?} mode"
                )));
            }
        }
        let elem = self.dtype(x).size_of();
        let fill = match g.input(id, 2) {
            Some(v) => match self.const_of(v) {
                Some(t) if t.dtype() == self.dtype(x) && t.len() <= 1 => {
                    let b = t.to_le_bytes();
                    if b.is_empty() {
                        vec![0; elem]
                    } else {
                        b
                    }
                }
                _ => return Err(err("the pad value must be a constant scalar".into())),
            },
            None => vec![0; elem],
        };
        let st = dense(&sx);
        let ost = dense(&oshape);
        let n: usize = oshape.iter().product();
        whittle_ir::limits::check_alloc(n as u64 * 8, "the index table")
            .map_err(|m| unsupported(self.g, id, m))?;
        let mut src_idx = Vec::with_capacity(n);
        for i in 0..n {
            let mut off = 0usize;
            let mut inside = true;
            for d in 0..r {
                let o = ((i / ost[d]) % oshape[d]) as i64;
                let len = sx[d] as i64;
                let mut s = o - before[d];
                if s < 0 || s >= len {
                    if len == 0 {
                        inside = false;
                        break;
                    }
                    s = match mode {
                        PadMode::Constant => {
                            inside = false;
                            break;
                        }
                        PadMode::Edge => s.clamp(0, len - 1),
                        PadMode::Wrap => s.rem_euclid(len),
                        PadMode::Reflect => {
                            if len == 1 {
                                0
                            } else {
                                let p = 2 * (len - 1);
                                let m = s.rem_euclid(p);
                                if m < len {
                                    m
                                } else {
                                    p - m
                                }
                            }
                        }
                    };
                }
                off += s as usize * st[d];
            }
            src_idx.push(if inside { off } else { usize::MAX });
        }
        let cp = IndexCopy {
            elem,
            src_idx,
            fill,
        };
        self.push_ext(id, ExtOp::Copy(cp), &[x], &[out])
    }
}
