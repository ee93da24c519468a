//! A plan for one input-shape signature: the lowered steps, their constants, the arena
//! layout and the generated code, and `Plan::run`, which resolves buffers to pointers and
//! calls the steps in order (inside the caller's thread pool, so the kernels split their
//! work over its threads). The code comes from the JIT (`whittle-cpu`) or from an AOT
//! object's kernel table; the plan only holds entry points and an owner that keeps them.

use crate::kernels::epilogue::Finish;
use crate::kernels::gemm::{self, Epilogue, MatRef, PackedB, Scratch, Ukr};
use crate::kernels::movement;
use crate::kernels::par::{par_for, row_chunks, SendPtr};
use crate::kernels::rows;
use crate::plan::{self, ArenaPlan, Buf};
use crate::steps::{BSource, HostOp, InputSpec, MatMulStep, OutputSpec, Step};
use crate::store::{tensor_ptr, ConstBuf};
use crate::{internal, PlanStats};
use std::any::Any;
use std::cell::RefCell;
use std::sync::Mutex;
use whittle_ir::Tensor;
use whittle_runtime::RuntimeError;

/// The signature every generated kernel has: `extern "C" fn(args: *const *mut f32)`, where
/// `args` lists the kernel's input buffers and then its output buffer.
pub type KernelFn = unsafe extern "C" fn(*const *mut f32);

/// Everything of a plan but its code: what lowering produces and what an AOT object's
/// plan image holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PlanParts {
    pub steps: Vec<Step>,
    pub consts: Vec<ConstBuf>,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    pub arena: ArenaPlan,
    pub ukr: Ukr,
    /// How many generated kernels the steps call (`Step::Fused` indices are below it).
    pub kernel_count: usize,
}

/// Steps, constants, arena layout and code for concrete input shapes.
pub struct Plan {
    steps: Vec<Step>,
    kernels: Vec<KernelFn>,
    consts: Vec<ConstBuf>,
    inputs: Vec<InputSpec>,
    outputs: Vec<OutputSpec>,
    arena: ArenaPlan,
    ukr: Ukr,
    /// Arenas of finished runs, reused so that a run does not fault in fresh pages.
    spare: Mutex<Vec<Vec<f32>>>,
    // Last: the code must outlive `kernels` (fields drop in declaration order).
    _code: Box<dyn Any + Send + Sync>,
}

thread_local! {
    static SCRATCH: RefCell<(Scratch, Option<PackedB>)> = RefCell::new((Scratch::default(), None));
}

/// Resolves buffers to raw pointers for one run.
struct Mem<'a> {
    inputs: Vec<*mut u8>,
    consts: &'a [ConstBuf],
    arena: *mut u8,
    offsets: &'a [usize],
}

impl Mem<'_> {
    fn ptr(&self, b: Buf) -> *mut u8 {
        match b {
            Buf::Input(i) => self.inputs.get(i).copied().unwrap_or(std::ptr::null_mut()),
            Buf::Const(i) => self
                .consts
                .get(i)
                .map_or(std::ptr::null_mut(), ConstBuf::ptr),
            // SAFETY: offsets come from the planner and lie inside the arena.
            Buf::Arena(i) => unsafe { self.arena.add(self.offsets[i]) },
        }
    }

    fn f32p(&self, b: Buf) -> *mut f32 {
        self.ptr(b) as *mut f32
    }

    /// The bytes of output `o` (valid until the arena is reused).
    fn bytes(&self, o: &OutputSpec) -> Result<&[u8], RuntimeError> {
        let n = o.shape.iter().product::<usize>() * o.dtype.size_of();
        if n == 0 {
            return Ok(&[]);
        }
        let p = self.ptr(o.buf);
        if p.is_null() {
            return Err(internal(format!("output '{}' has no storage", o.name)));
        }
        // SAFETY: the buffer holds the output's n bytes for the rest of the run.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    fn tensor(&self, o: &OutputSpec) -> Result<Tensor, RuntimeError> {
        Ok(Tensor::from_le_bytes(
            o.dtype,
            o.shape.clone(),
            self.bytes(o)?,
        )?)
    }
}

/// An epilogue shared by the tasks of one GEMM (they only read it).
struct SendEpi(Epilogue);
// SAFETY: the bias it points to is read-only for the whole GEMM.
unsafe impl Sync for SendEpi {}
unsafe impl Send for SendEpi {}

/// `C = epi(A·B)` for one matrix, rows split over the pool.
///
/// # Safety
/// As [`gemm::gemm`].
unsafe fn gemm_rows(
    ukr: &Ukr,
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    epi: &Epilogue,
    fin: &Finish,
) {
    let n = b.n;
    let strips = n.div_ceil(ukr.nr);
    let threads = crate::kernels::par::threads();
    // Split columns when C is wider than tall (a transformer's 128-token GEMMs): each thread
    // then streams only its part of the packed weights (measured 4.8% faster on MiniLM at 2
    // threads than splitting rows, where every thread streams all of B); split rows otherwise.
    if threads > 1 && strips >= 2 * threads && m <= n {
        let per = strips.div_ceil(threads);
        let (ap, cp) = (SendPtr(a.ptr as *mut f32), SendPtr(c));
        let (e, f) = (SendEpi(*epi), *fin);
        par_for(strips.div_ceil(per), |t| {
            let cols = t * per..((t + 1) * per).min(strips);
            let e = &e;
            SCRATCH.with(|s| {
                let s = &mut s.borrow_mut().0;
                // SAFETY: disjoint column blocks of C; the caller's contract.
                unsafe {
                    let ar = MatRef {
                        ptr: ap.get(),
                        rs: a.rs,
                        cs: a.cs,
                    };
                    gemm::gemm_then_strips(ukr, m, ar, b, cp.get(), n, &e.0, &f, s, cols);
                }
            });
        });
        return;
    }
    let chunks = row_chunks(m, 2 * ukr.mr, ukr.mr);
    let (ap, cp) = (SendPtr(a.ptr as *mut f32), SendPtr(c));
    let bias = epi
        .bias
        .map(|br| (SendPtr(br.ptr as *mut f32), br.rs, br.cs));
    let (alpha, beta) = (epi.alpha, epi.beta);
    par_for(chunks.len(), |t| {
        let (r0, len) = chunks[t];
        let e = Epilogue {
            alpha,
            beta,
            // SAFETY: row offsets stay inside the bias (rs is 0 when it is broadcast).
            bias: bias.map(|(p, rs, cs)| MatRef {
                ptr: unsafe { p.get().add(r0 * rs) },
                rs,
                cs,
            }),
        };
        SCRATCH.with(|s| {
            let s = &mut s.borrow_mut().0;
            // SAFETY: disjoint row blocks of A and C; the caller's contract.
            unsafe {
                let ar = MatRef {
                    ptr: ap.get().add(r0 * a.rs),
                    rs: a.rs,
                    cs: a.cs,
                };
                let (cr, f) = (cp.get().add(r0 * n), fin.at(r0 * n));
                gemm::gemm_then(ukr, len, ar, b, cr, n, &e, &f, s);
            }
        });
    });
}

impl Plan {
    /// A plan from its parts and the entry points of its generated kernels; `code` owns
    /// the memory those entry points live in (dropped after them) — the JIT module, or
    /// `()` for code linked into the program.
    pub fn new(
        parts: PlanParts,
        kernels: Vec<KernelFn>,
        code: Box<dyn Any + Send + Sync>,
    ) -> Result<Plan, RuntimeError> {
        if kernels.len() != parts.kernel_count {
            return Err(internal(format!(
                "the plan calls {} generated kernels, {} were given",
                parts.kernel_count,
                kernels.len()
            )));
        }
        for s in &parts.steps {
            if let Step::Fused { kernel, split, .. } = s {
                let tail = split.as_ref().and_then(|sp| sp.tail);
                if *kernel >= kernels.len() || tail.is_some_and(|t| t >= kernels.len()) {
                    return Err(internal("a step calls a kernel the plan does not have"));
                }
            }
        }
        Ok(Plan {
            steps: parts.steps,
            kernels,
            consts: parts.consts,
            inputs: parts.inputs,
            outputs: parts.outputs,
            arena: parts.arena,
            ukr: parts.ukr,
            spare: Mutex::new(Vec::new()),
            _code: code,
        })
    }

    /// The inputs the plan expects, in graph order.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The outputs the plan produces, in graph order.
    pub fn outputs(&self) -> &[OutputSpec] {
        &self.outputs
    }

    pub fn stats(&self) -> PlanStats {
        let count = |f: fn(&Step) -> bool| self.steps.iter().filter(|s| f(s)).count();
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
            fused_kernels: count(|s| matches!(s, Step::Fused { .. })),
            gemm_calls: count(|s| matches!(s, Step::MatMul(_))),
            host_calls: count(|s| matches!(s, Step::Host { .. })),
            arena_bytes: self.arena.peak_bytes,
            unplanned_bytes: self.arena.total_bytes,
            packed_weight_bytes: packed,
        }
    }

    /// Runs the plan on inputs already matched to `self.inputs` (same order, dtypes, shapes).
    pub fn run(&self, ins: Vec<&Tensor>) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let floats = self.arena.peak_bytes / 4 + 16;
        let arena = self
            .spare
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .filter(|a| a.len() >= floats);
        let mut arena = match arena {
            Some(a) => a,
            None => {
                whittle_ir::limits::try_vec(floats, 0f32, "the plan's arena").map_err(internal)?
            }
        };
        let base = arena.as_mut_ptr();
        let skew = base.align_offset(plan::ALIGN);
        // SAFETY: the arena has 16 spare floats for the alignment skew.
        let aligned = unsafe { base.add(skew.min(15)) } as *mut u8;
        let mem = Mem {
            inputs: ins.iter().map(|t| tensor_ptr(t)).collect(),
            consts: &self.consts,
            arena: aligned,
            offsets: &self.arena.offsets,
        };
        let res = self.run_steps(&mem);
        let outs = res.and_then(|()| {
            self.outputs
                .iter()
                .map(|o| Ok((o.name.clone(), mem.tensor(o)?)))
                .collect()
        });
        if let Ok(mut v) = self.spare.lock() {
            v.push(arena);
        }
        outs
    }

    /// Workspace bytes [`Plan::run_raw`] needs: the arena plus room to align it.
    pub fn workspace_bytes(&self) -> usize {
        self.arena.peak_bytes + plan::ALIGN
    }

    /// Runs the plan on caller-owned memory (the AOT entry point's contract): `inputs[i]`
    /// holds input `i`'s bytes, `outputs[i]` receives output `i`'s, and the arena lives in
    /// `workspace` (at least [`Plan::workspace_bytes`] bytes, any alignment).
    ///
    /// # Safety
    /// Every pointer addresses a buffer of the size [`Plan::inputs`] / [`Plan::outputs`]
    /// state (shape × dtype size), `workspace` addresses `workspace_len` writable bytes,
    /// and no output buffer overlaps an input or the workspace.
    pub unsafe fn run_raw(
        &self,
        inputs: &[*const u8],
        outputs: &[*mut u8],
        workspace: *mut u8,
        workspace_len: usize,
    ) -> Result<(), RuntimeError> {
        if inputs.len() != self.inputs.len() || outputs.len() != self.outputs.len() {
            return Err(internal(format!(
                "the plan takes {} inputs and {} outputs, got {} and {}",
                self.inputs.len(),
                self.outputs.len(),
                inputs.len(),
                outputs.len()
            )));
        }
        if workspace_len < self.workspace_bytes() {
            return Err(internal(format!(
                "workspace of {workspace_len} bytes, the plan needs {}",
                self.workspace_bytes()
            )));
        }
        if workspace.is_null() {
            return Err(internal("the workspace is NULL"));
        }
        let skew = workspace.align_offset(plan::ALIGN).min(plan::ALIGN);
        let mem = Mem {
            inputs: inputs.iter().map(|&p| p as *mut u8).collect(),
            consts: &self.consts,
            // SAFETY: the workspace has ALIGN spare bytes for the skew.
            arena: unsafe { workspace.add(skew) },
            offsets: &self.arena.offsets,
        };
        self.run_steps(&mem)?;
        for (o, &dst) in self.outputs.iter().zip(outputs) {
            let src = mem.bytes(o)?;
            if src.is_empty() {
                continue;
            }
            if dst.is_null() {
                return Err(internal(format!("output '{}': null buffer", o.name)));
            }
            // SAFETY: the caller's buffer holds the output's bytes and does not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        }
        Ok(())
    }

    fn run_steps(&self, mem: &Mem) -> Result<(), RuntimeError> {
        let profile = crate::profile::enabled();
        for step in &self.steps {
            let t0 = profile.then(std::time::Instant::now);
            self.run_step(step, mem)?;
            if let Some(t0) = t0 {
                crate::profile::record(crate::profile::step_kind(step), t0.elapsed());
            }
        }
        Ok(())
    }

    fn run_step(&self, step: &Step, mem: &Mem) -> Result<(), RuntimeError> {
        match step {
            Step::Fused {
                kernel,
                args,
                split,
                ..
            } => {
                let ptrs: Vec<*mut f32> = args.iter().map(|&b| mem.f32p(b)).collect();
                let f = self.kernels[*kernel];
                match split {
                    // SAFETY: the kernel was generated for exactly these buffers and shapes.
                    None => unsafe { f(ptrs.as_ptr()) },
                    Some(sp) => {
                        let tail = sp.tail.map(|k| self.kernels[k]);
                        let base: Vec<SendPtr<u8>> =
                            ptrs.iter().map(|&p| SendPtr(p as *mut u8)).collect();
                        par_for(sp.total.div_ceil(sp.rows), |blk| {
                            let r0 = blk * sp.rows;
                            let k = if r0 + sp.rows <= sp.total {
                                Some(f)
                            } else {
                                tail
                            };
                            let Some(k) = k else { return };
                            let p: Vec<*mut f32> = base
                                .iter()
                                .zip(&sp.row_bytes)
                                .map(|(b, &rb)| b.get().wrapping_add(r0 * rb) as *mut f32)
                                .collect();
                            // SAFETY: block `blk` covers rows r0.. of every argument, inside
                            // the buffers; blocks write disjoint rows of the output.
                            unsafe { k(p.as_ptr()) };
                        });
                    }
                }
            }
            Step::MatMul(mm) => self.matmul(mm, mem)?,
            Step::Attention(at) => {
                let p: Vec<*mut f32> = at.args.iter().map(|&b| mem.f32p(b)).collect();
                // SAFETY: lowering sized every buffer for this geometry.
                unsafe { crate::kernels::attention::run_step(&self.ukr, &at.geom, &p) }
                    .map_err(|m| internal(format!("{}: {m}", at.name)))?;
            }
            Step::Host { op, args, name } => {
                let p: Vec<*mut u8> = args.iter().map(|&b| mem.ptr(b)).collect();
                // SAFETY: lowering sized every buffer for this op's geometry.
                unsafe { host(op, &p) }.map_err(|m| internal(format!("{name}: {m}")))?;
            }
        }
        Ok(())
    }

    fn matmul(&self, mm: &MatMulStep, mem: &Mem) -> Result<(), RuntimeError> {
        let a = SendPtr(mem.f32p(mm.a));
        let c = SendPtr(mem.f32p(mm.out));
        let bias = mm.bias.map(|(b, rs, cs)| MatRef {
            ptr: mem.f32p(b),
            rs,
            cs,
        });
        let epi = Epilogue {
            alpha: mm.alpha,
            beta: mm.beta,
            bias,
        };
        let batches = mm.a_offsets.len();
        let ukr = &self.ukr;
        let fin = Finish {
            act: mm.act,
            residual: mm.residual.map(|b| SendPtr(mem.f32p(b))),
        };
        let mn = mm.m * mm.n;
        let a_at = |bi: usize| MatRef {
            // SAFETY: offsets come from the checked shapes.
            ptr: unsafe { a.get().add(mm.a_offsets[bi]) },
            rs: mm.a_rs,
            cs: mm.a_cs,
        };
        match &mm.b {
            BSource::Packed(v) => {
                for bi in 0..batches {
                    let pb = v
                        .get(mm.b_index[bi])
                        .ok_or_else(|| internal("B batch out of range"))?;
                    // SAFETY: shapes were checked at lowering.
                    unsafe {
                        let cp = c.get().add(bi * mn);
                        gemm_rows(ukr, mm.m, a_at(bi), pb, cp, &epi, &fin.at(bi * mn))
                    };
                }
            }
            BSource::Runtime {
                buf,
                rs,
                cs,
                batch_offsets,
            } => {
                let bsrc = SendPtr(mem.f32p(*buf));
                let (rs, cs) = (*rs, *cs);
                let bias = epi.bias.map(|b| (SendPtr(b.ptr as *mut f32), b.rs, b.cs));
                let (alpha, beta) = (epi.alpha, epi.beta);
                let one = |bi: usize| {
                    let src = MatRef {
                        // SAFETY: batch offsets come from the checked shapes.
                        ptr: unsafe { bsrc.get().add(batch_offsets[mm.b_index[bi]]) },
                        rs,
                        cs,
                    };
                    let e = Epilogue {
                        alpha,
                        beta,
                        bias: bias.map(|(p, rs, cs)| MatRef {
                            ptr: p.get(),
                            rs,
                            cs,
                        }),
                    };
                    SCRATCH.with(|s| {
                        let s = &mut *s.borrow_mut();
                        let (scratch, packed) = (&mut s.0, &mut s.1);
                        // SAFETY: each batch writes its own C block.
                        unsafe {
                            match &mut *packed {
                                Some(p) if p.k == mm.k && p.n == mm.n && p.nr == ukr.nr => {
                                    p.repack(src)
                                }
                                slot => *slot = Some(PackedB::pack(src, mm.k, mm.n, ukr.nr)),
                            }
                            if let Some(pb) = packed.as_ref() {
                                let cp = c.get().add(bi * mm.m * mm.n);
                                let f = fin.at(bi * mn);
                                gemm::gemm_then(ukr, mm.m, a_at(bi), pb, cp, mm.n, &e, &f, scratch);
                            }
                        }
                    });
                };
                if batches > 1 {
                    par_for(batches, one);
                } else {
                    // One big product: pack B once here, split its rows over the pool.
                    for bi in 0..batches {
                        let src = MatRef {
                            // SAFETY: as above.
                            ptr: unsafe { bsrc.get().add(batch_offsets[mm.b_index[bi]]) },
                            rs,
                            cs,
                        };
                        // SAFETY: as above.
                        unsafe {
                            let pb = PackedB::pack(src, mm.k, mm.n, ukr.nr);
                            gemm_rows(
                                ukr,
                                mm.m,
                                a_at(bi),
                                &pb,
                                c.get().add(bi * mn),
                                &epi,
                                &fin.at(bi * mn),
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Calls one host kernel; `p` holds the argument pointers (inputs, then the output).
///
/// # Safety
/// The pointers address buffers of the sizes the op's geometry states.
unsafe fn host(op: &HostOp, p: &[*mut u8]) -> Result<(), String> {
    let arg = |i: usize| p.get(i).copied().ok_or("missing kernel argument");
    let last = p.last().copied().ok_or("missing output")?;
    match op {
        HostOp::LayerNorm {
            rows,
            cols,
            eps,
            has_beta,
        } => {
            let beta = if *has_beta {
                arg(2)? as *const f32
            } else {
                std::ptr::null()
            };
            rows::layer_norm(
                arg(0)? as *const f32,
                last as *mut f32,
                *rows,
                *cols,
                arg(1)? as *const f32,
                beta,
                *eps,
            );
        }
        HostOp::Softmax { rows, cols } => {
            rows::softmax(arg(0)? as *const f32, last as *mut f32, *rows, *cols)
        }
        HostOp::ReduceSum { rows, cols, scale } => rows::reduce_sum(
            arg(0)? as *const f32,
            last as *mut f32,
            *rows,
            *cols,
            *scale,
        ),
        HostOp::Copy(c) => c.run(arg(0)?, last),
        HostOp::Concat { outer, chunk_bytes } => {
            let srcs: Vec<*const u8> = p[..p.len() - 1].iter().map(|&x| x as *const u8).collect();
            movement::concat(&srcs, chunk_bytes, *outer, last);
        }
        HostOp::Gather(g) => movement::gather(g, arg(0)?, arg(1)?, last)?,
        HostOp::Cast { from, to, n } => movement::cast(arg(0)?, *from, last, *to, *n)?,
        HostOp::Ext { op, n_in } => op.run(p, *n_in)?,
    }
    Ok(())
}
