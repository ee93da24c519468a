//! whittle-cpu: the CPU backend. A graph with concrete shapes is lowered to an execution
//! plan over one arena: fused f32 elementwise chains become Cranelift-generated kernels
//! (JIT, native ISA), MatMul/Gemm call the packed host GEMM with constant B pre-packed, and
//! any op not lowered yet is a compile error naming the node.
//!
//! Pipeline: [`lower`] (IR → steps, kernels emitted into the [`jit`] module) → [`plan`]
//! (liveness-based arena offsets) → [`CpuExecutable::run`] (calls the steps in order).

pub mod jit;
pub mod kernels;
pub mod lower;
pub mod plan;

use jit::{JitCode, KernelFn};
use kernels::gemm::{self, Epilogue, MatRef, PackedB, Scratch, Ukr};
use lower::matmul::BSource;
use lower::{InputSpec, OutputSpec, Step};
use plan::{ArenaPlan, Buf};
use std::sync::Arc;
use whittle_ir::{Graph, Tensor};
use whittle_runtime::{Backend, Executable, RuntimeError};

/// The Cranelift CPU backend (`--backend cpu`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RuntimeError> {
        Ok(Box::new(CpuExecutable::compile(graph)?))
    }
}

/// A compiled graph: steps, constants, the arena layout and the generated code.
pub struct CpuExecutable {
    steps: Vec<Step>,
    kernels: Vec<KernelFn>,
    consts: Vec<Arc<Tensor>>,
    inputs: Vec<InputSpec>,
    outputs: Vec<OutputSpec>,
    arena: ArenaPlan,
    ukr: Ukr,
    // Last: the code must outlive `kernels` (fields drop in declaration order).
    _code: JitCode,
}

/// Compile-time statistics for `inspect`/`bench`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanStats {
    pub steps: usize,
    pub fused_kernels: usize,
    pub gemm_calls: usize,
    /// Arena bytes after liveness planning.
    pub arena_bytes: usize,
    /// Bytes if every intermediate had its own buffer.
    pub unplanned_bytes: usize,
    /// Bytes of pre-packed constant B matrices.
    pub packed_weight_bytes: usize,
}

fn internal(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        backend: "cpu".into(),
        node: String::new(),
        op: String::new(),
        msg: msg.into(),
    }
}

impl CpuExecutable {
    /// Compiles `graph`. Every value must have a concrete shape.
    pub fn compile(graph: &Graph) -> Result<CpuExecutable, RuntimeError> {
        let mut j = jit::Jit::new().map_err(internal)?;
        let ukr = Ukr::best();
        let prog = lower::lower(graph, &mut j, ukr)?;
        let (kernels, code) = j.finish().map_err(internal)?;
        let arena = plan::plan_arena(&prog.buffers);
        Ok(CpuExecutable {
            steps: prog.steps,
            kernels,
            consts: prog.consts,
            inputs: prog.inputs,
            outputs: prog.outputs,
            arena,
            ukr,
            _code: code,
        })
    }

    pub fn stats(&self) -> PlanStats {
        let fused = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Fused { .. }))
            .count();
        let packed = self
            .steps
            .iter()
            .map(|s| match s {
                Step::MatMul(mm) => match &mm.b {
                    BSource::Packed(p) => p.iter().map(PackedB::bytes).sum(),
                    _ => 0,
                },
                _ => 0,
            })
            .sum();
        PlanStats {
            steps: self.steps.len(),
            fused_kernels: fused,
            gemm_calls: self.steps.len() - fused,
            arena_bytes: self.arena.peak_bytes,
            unplanned_bytes: self.arena.total_bytes,
            packed_weight_bytes: packed,
        }
    }

    fn check_inputs<'a>(
        &self,
        inputs: &'a [(&str, Tensor)],
    ) -> Result<Vec<&'a Tensor>, RuntimeError> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let err = |msg: String| {
                RuntimeError::Ir(whittle_ir::IrError::Input {
                    name: spec.name.clone(),
                    msg,
                })
            };
            let t = inputs
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map(|(_, t)| t)
                .ok_or_else(|| err("missing: no value was given".into()))?;
            if t.dtype() != spec.dtype || t.shape() != spec.shape.as_slice() {
                return Err(err(format!(
                    "this executable was compiled for {}{:?} but got {}{:?}",
                    spec.dtype,
                    spec.shape,
                    t.dtype(),
                    t.shape()
                )));
            }
            out.push(t);
        }
        for (n, _) in inputs {
            if !self.inputs.iter().any(|s| s.name == *n) {
                return Err(RuntimeError::Ir(whittle_ir::IrError::Input {
                    name: n.to_string(),
                    msg: "the model has no input of this name".into(),
                }));
            }
        }
        Ok(out)
    }
}

/// Resolves buffers to raw pointers for one run.
struct Mem<'a> {
    inputs: Vec<&'a Tensor>,
    consts: &'a [Arc<Tensor>],
    arena: *mut f32,
    offsets: &'a [usize],
}

impl Mem<'_> {
    /// Pointer to an f32 buffer. Inputs and constants are f32 whenever a step reads them
    /// (lowering checked the dtypes and `check_inputs` the run-time tensors).
    fn ptr(&self, b: Buf) -> *mut f32 {
        let slice_ptr =
            |t: &Tensor| t.as_slice::<f32>().map_or(std::ptr::null(), |s| s.as_ptr()) as *mut f32;
        match b {
            Buf::Input(i) => self
                .inputs
                .get(i)
                .map_or(std::ptr::null_mut(), |t| slice_ptr(t)),
            Buf::Const(i) => self
                .consts
                .get(i)
                .map_or(std::ptr::null_mut(), |t| slice_ptr(t)),
            // SAFETY: offsets come from the planner and lie inside the arena.
            Buf::Arena(i) => unsafe { self.arena.add(self.offsets[i] / 4) },
        }
    }

    fn tensor(&self, o: &OutputSpec) -> Result<Tensor, RuntimeError> {
        match o.buf {
            Buf::Input(i) => self.inputs.get(i).map(|t| (*t).clone()),
            Buf::Const(i) => self.consts.get(i).map(|t| (**t).clone()),
            Buf::Arena(_) => {
                let n: usize = o.shape.iter().product();
                // SAFETY: the buffer holds n f32 values, live until the end of the plan.
                let v = unsafe { std::slice::from_raw_parts(self.ptr(o.buf), n) }.to_vec();
                Some(Tensor::from_vec(o.shape.clone(), v))
            }
        }
        .map(|t| {
            if t.shape() == o.shape.as_slice() {
                t.clone()
            } else {
                t.reshape(o.shape.clone()).unwrap_or(t)
            }
        })
        .ok_or_else(|| internal(format!("output '{}' has no storage", o.name)))
    }
}

impl Executable for CpuExecutable {
    fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let ins = self.check_inputs(inputs)?;
        // 64-byte aligned arena.
        let mut arena = vec![0f32; self.arena.peak_bytes / 4 + 16];
        let base = arena.as_mut_ptr();
        let skew = base.align_offset(plan::ALIGN);
        // SAFETY: the arena has 16 spare floats for the alignment skew.
        let aligned = unsafe { base.add(skew.min(15)) };
        let mem = Mem {
            inputs: ins,
            consts: &self.consts,
            arena: aligned,
            offsets: &self.arena.offsets,
        };
        let mut scratch = Scratch::default();
        let mut packed_rt: Option<PackedB> = None;
        for step in &self.steps {
            match step {
                Step::Fused { kernel, args, .. } => {
                    let ptrs: Vec<*mut f32> = args.iter().map(|&b| mem.ptr(b)).collect();
                    let f = self.kernels[*kernel];
                    // SAFETY: the kernel was generated for exactly these buffers and shapes.
                    unsafe { f(ptrs.as_ptr()) };
                }
                Step::MatMul(mm) => {
                    let a = mem.ptr(mm.a);
                    let c = mem.ptr(mm.out);
                    let bias = mm.bias.map(|(b, rs, cs)| MatRef {
                        ptr: mem.ptr(b),
                        rs,
                        cs,
                    });
                    let epi = Epilogue {
                        alpha: mm.alpha,
                        beta: mm.beta,
                        bias,
                    };
                    for (bi, (&ao, &ib)) in mm.a_offsets.iter().zip(&mm.b_index).enumerate() {
                        // SAFETY: offsets and strides come from the checked shapes.
                        unsafe {
                            let pb: &PackedB = match &mm.b {
                                BSource::Packed(v) => &v[ib],
                                BSource::Runtime {
                                    buf,
                                    rs,
                                    cs,
                                    batch_offsets,
                                } => {
                                    let src = MatRef {
                                        ptr: mem.ptr(*buf).add(batch_offsets[ib]),
                                        rs: *rs,
                                        cs: *cs,
                                    };
                                    match &mut packed_rt {
                                        Some(p) if p.k == mm.k && p.n == mm.n => p.repack(src),
                                        slot => {
                                            *slot =
                                                Some(PackedB::pack(src, mm.k, mm.n, self.ukr.nr))
                                        }
                                    }
                                    packed_rt
                                        .as_ref()
                                        .ok_or_else(|| internal("packing failed"))?
                                }
                            };
                            let ar = MatRef {
                                ptr: a.add(ao),
                                rs: mm.a_rs,
                                cs: mm.a_cs,
                            };
                            let cp = c.add(bi * mm.m * mm.n);
                            gemm::gemm(&self.ukr, mm.m, ar, pb, cp, mm.n, &epi, &mut scratch);
                        }
                    }
                }
            }
        }
        let outs = self
            .outputs
            .iter()
            .map(|o| Ok((o.name.clone(), mem.tensor(o)?)))
            .collect();
        drop(arena);
        outs
    }
}
