//! The steps of an execution plan: what each call does, on which buffers, with which
//! precomputed geometry (packed weights included). Lowering (`whittle-cpu`) builds them;
//! [`crate::run::Plan`] executes them; [`crate::image`] serializes them for AOT objects.

use crate::kernels::attention::AttnGeom;
use crate::kernels::conv::{ConvGeom, ConvTGeom};
use crate::kernels::ewise::Ewise;
use crate::kernels::gemm::{PackedB, Ukr};
use crate::kernels::index::{
    AxisOp, Contraction, GatherElems, GatherNd, GenMatMul, IndexCopy, Reduce,
};
use crate::kernels::movement::{GatherGeom, StridedCopy};
use crate::kernels::norm::{BatchNorm, NormRows};
use crate::kernels::pool::Pool;
use crate::kernels::qmatmul::{IntMatMul, IntMatMulArgs, Role};
use crate::kernels::quant::{dynamic_quantize, QLinear};
use crate::kernels::resize::ResizePlan;
use crate::plan::Buf;
use serde::{Deserialize, Serialize};
use whittle_ir::DType;

/// One call of the plan.
#[derive(Debug, Serialize, Deserialize)]
pub enum Step {
    /// Generated kernel `kernel` with `args` = leaf buffers then the output buffer.
    Fused {
        kernel: usize,
        args: Vec<Buf>,
        name: String,
        /// When set, `kernel` covers `rows` of the outermost loop and the step runs it on
        /// every block of rows in parallel (see [`FusedSplit`]).
        split: Option<Box<FusedSplit>>,
    },
    MatMul(Box<MatMulStep>),
    /// Fused multi-head attention (`lower::fused`).
    Attention(Box<AttentionStep>),
    /// A host kernel with `args` = inputs then the output buffer.
    Host {
        op: HostOp,
        args: Vec<Buf>,
        name: String,
    },
}

/// A fused elementwise step split over threads along its outermost loop dimension.
#[derive(Debug, Serialize, Deserialize)]
pub struct FusedSplit {
    /// Rows of the outermost dimension per block (the main kernel's extent).
    pub rows: usize,
    /// The outermost dimension's extent.
    pub total: usize,
    /// The kernel for the last, shorter block (when `total` is not a multiple of `rows`).
    pub tail: Option<usize>,
    /// Bytes each argument (leaves, then the output) advances per outermost row.
    pub row_bytes: Vec<usize>,
}

/// A graph input as the program expects it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// A graph output: where it lives and its type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub buf: Buf,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// A host kernel call; its `args` are the input buffers, then the output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum HostOp {
    /// args: x, gamma, beta?, y.
    LayerNorm {
        rows: usize,
        cols: usize,
        eps: f32,
        has_beta: bool,
    },
    /// args: x, y.
    Softmax { rows: usize, cols: usize },
    /// args: x, y (one value per row, times `scale`).
    ReduceSum {
        rows: usize,
        cols: usize,
        scale: f32,
    },
    /// args: x, y.
    Copy(StridedCopy),
    /// args: inputs..., y.
    Concat {
        outer: usize,
        chunk_bytes: Vec<usize>,
    },
    /// args: data, indices, y.
    Gather(GatherGeom),
    /// args: x, y.
    Cast { from: DType, to: DType, n: usize },
    /// A generic host kernel (`ops_ext`): `n_in` inputs, then its outputs.
    Ext { op: Box<ExtOp>, n_in: usize },
}
/// A generic host kernel; its arguments are `n_in` inputs, then the outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ExtOp {
    Ew(Ewise),
    Copy(IndexCopy),
    Strided(StridedCopy),
    GatherElems(GatherElems),
    GatherNd(GatherNd),
    Reduce(Reduce),
    Axis(AxisOp),
    Norm(NormRows),
    /// args: x, residual, gamma, beta?, bias?; outputs y, sum?.
    AddNorm(crate::kernels::rows::AddNormRows),
    BatchNorm(BatchNorm),
    Pool(Pool),
    Conv {
        geom: ConvGeom,
        ukr: Ukr,
    },
    Resize(ResizePlan),
    /// args: the operands.
    Einsum(Contraction),
    /// args: x, w, bias?.
    ConvT(ConvTGeom),
    /// args: a, b.
    MatMul(GenMatMul),
    /// args: x, scale, zero point?.
    QLinear(QLinear),
    DynQuant {
        dt: DType,
        n: usize,
    },
    /// `roles[i]`: what argument `i` is.
    IntMatMul {
        mm: IntMatMul,
        roles: Vec<Role>,
    },
    /// An op run by the reference evaluator (ops without a kernel of their own).
    Reference(crate::kernels::reference::RefOp),
}

impl ExtOp {
    /// # Safety
    /// `p` holds `n_in` input pointers then the outputs, sized as the geometry states.
    pub unsafe fn run(&self, p: &[*mut u8], n_in: usize) -> Result<(), String> {
        if p.len() <= n_in {
            return Err("missing output".into());
        }
        let ins: Vec<*const u8> = p[..n_in].iter().map(|&x| x as *const u8).collect();
        let outs = &p[n_in..];
        let in0 = || ins.first().copied().ok_or("missing input");
        match self {
            ExtOp::Ew(e) => e.run(&ins, outs[0])?,
            ExtOp::Copy(c) => c.run(ins.first().copied().unwrap_or(std::ptr::null()), outs[0]),
            ExtOp::Strided(c) => c.run(in0()?, outs[0]),
            ExtOp::GatherElems(g) => {
                g.run(in0()?, *ins.get(1).ok_or("missing indices")?, outs[0])?
            }
            ExtOp::GatherNd(g) => g.run(in0()?, *ins.get(1).ok_or("missing indices")?, outs[0])?,
            ExtOp::Reduce(r) => r.run(in0()?, outs[0]),
            ExtOp::Axis(a) => a.run(in0()?, outs)?,
            ExtOp::Norm(n) => n.run(&ins, outs)?,
            ExtOp::AddNorm(n) => n.run(&ins, outs)?,
            ExtOp::BatchNorm(b) => b.run(&ins, outs[0])?,
            ExtOp::Pool(pl) => pl.run(in0()?, outs)?,
            ExtOp::Resize(rp) => rp.run(in0()?, outs[0]),
            ExtOp::Einsum(c) => c.run(&ins, outs[0]),
            ExtOp::ConvT(ct) => {
                let w = *ins.get(1).ok_or("missing weights")?;
                let b = ins.get(2).copied().unwrap_or(std::ptr::null());
                ct.run(in0()?, w, b, outs[0])
            }
            ExtOp::MatMul(mm) => mm.run(in0()?, *ins.get(1).ok_or("missing B")?, outs[0]),
            ExtOp::QLinear(q) => {
                let z = ins.get(2).copied().unwrap_or(std::ptr::null());
                q.run(in0()?, *ins.get(1).ok_or("missing scale")?, z, outs[0])
            }
            ExtOp::DynQuant { dt, n } => dynamic_quantize(in0()?, *dt, *n, outs)?,
            ExtOp::IntMatMul { mm, roles } => {
                mm.run(&IntMatMulArgs::from_roles(roles, &ins), outs[0])?
            }
            ExtOp::Reference(r) => r.run(&ins, outs)?,
            ExtOp::Conv { geom, ukr } => {
                let w = *ins.get(1).ok_or("missing weights")?;
                let b = ins.get(2).copied().unwrap_or(std::ptr::null());
                geom.run(ukr, in0()? as _, w as _, b as _, outs[0] as _)
            }
        }
        Ok(())
    }
}

/// Where B comes from.
#[derive(Debug, Serialize, Deserialize)]
pub enum BSource {
    /// Constant B, packed per B batch at compile time.
    Packed(Vec<PackedB>),
    /// B read at run time (packed per call): buffer, strides, and element offset per B batch.
    Runtime {
        buf: Buf,
        rs: usize,
        cs: usize,
        batch_offsets: Vec<usize>,
    },
}

/// One (batched) GEMM call of the plan.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatMulStep {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Buf,
    pub a_rs: usize,
    pub a_cs: usize,
    /// Per output batch: element offset into A, and index of the B batch.
    pub a_offsets: Vec<usize>,
    pub b_index: Vec<usize>,
    pub b: BSource,
    pub out: Buf,
    pub alpha: f32,
    pub beta: f32,
    /// Bias buffer and its (broadcast) strides over `[m, n]`.
    pub bias: Option<(Buf, usize, usize)>,
    /// `FusedMatMul` post-ops after the bias: activation, then a residual laid out like
    /// the output (see `kernels::epilogue`).
    pub act: whittle_ir::Activation,
    pub residual: Option<Buf>,
}

/// One fused attention call: `args` = q, k, v, mask (if any), then the output.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttentionStep {
    pub geom: AttnGeom,
    pub args: Vec<Buf>,
    pub name: String,
}
