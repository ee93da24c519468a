//! whittle-cpu: the CPU backend. `CpuBackend::compile` keeps the graph; each run looks up
//! the plan for its input-shape signature and, on a miss, specializes a copy of the graph
//! to those shapes (`whittle_ir::infer::specialize`) and compiles it: fused f32
//! elementwise chains become Cranelift-generated kernels (JIT, native ISA), MatMul/Gemm
//! call the packed host GEMM with constant B pre-packed, normalizations, softmax and data
//! movement run host kernels, and any op not lowered is a compile error naming the node.
//! Kernels split their work over the executable's rayon thread pool.
//!
//! Pipeline: [`lower`] (IR → steps, kernels emitted into the [`jit`] module) → [`plan`]
//! (liveness-based arena offsets) → [`exec::Plan::run`] (calls the steps in order).

pub mod aot;
pub mod bind;
pub mod jit;
pub mod lower;
pub mod nbits;

// The execution engine lives in `whittle-exec` (no Cranelift, so `libwhittle_rt.a` can
// link it alone); these keep its modules at their old paths for this crate and its users.
pub use whittle_exec::run as exec;
pub use whittle_exec::{consts, kernels, plan, profile, PlanStats};

use exec::{Plan, PlanParts};
use kernels::gemm::Ukr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use whittle_exec::store::ConstBuf;
use whittle_ir::{DType, Graph, Tensor, TensorType};
use whittle_runtime::{Backend, Executable, RuntimeError};

/// The Cranelift CPU backend (`--backend cpu`). `threads == 0` means one per available core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuBackend {
    pub threads: usize,
}

impl CpuBackend {
    pub fn with_threads(threads: usize) -> CpuBackend {
        CpuBackend { threads }
    }

    fn resolved_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        whittle_exec::default_threads()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, RuntimeError> {
        Ok(Box::new(CpuExecutable::compile_with(
            graph,
            self.resolved_threads(),
        )?))
    }
}

use whittle_exec::internal;

/// Whether `WHITTLE_CPU_IMAGE_ROUNDTRIP` asks for plans to round-trip through plan images.
fn image_roundtrip() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("WHITTLE_CPU_IMAGE_ROUNDTRIP").is_ok_and(|v| !v.is_empty() && v != "0")
    })
}

/// Lowers `graph` (all shapes concrete) into `j` and plans its arena: a plan without
/// its code, which the caller finishes (JIT) or writes into an object (AOT).
pub fn plan_parts(graph: &Graph, j: &mut jit::Jit) -> Result<PlanParts, RuntimeError> {
    plan_parts_for(graph, j, Ukr::best())
}

/// [`plan_parts`] with the GEMM micro-kernel `ukr` (its tile fixes the packed layout): AOT
/// objects for another CPU pick the kernel of that CPU.
pub fn plan_parts_for(
    graph: &Graph,
    j: &mut jit::Jit,
    ukr: Ukr,
) -> Result<PlanParts, RuntimeError> {
    let dequantized = nbits::dequantize_weights(graph)?;
    let graph = dequantized.as_ref().unwrap_or(graph);
    check_budget(graph)?;
    let mut prog = lower::lower(graph, j, ukr)?;
    // Weights that only feed GEMMs now live as packed copies: let the unpacked go.
    consts::release_unread(&mut prog.consts, &prog.steps, &prog.outputs);
    // Each buffer is a value check_budget has seen; together they must fit too.
    let arena = plan::plan_arena(&prog.buffers);
    whittle_ir::limits::check_alloc(arena.peak_bytes as u64, "the plan's arena")
        .map_err(internal)?;
    Ok(PlanParts {
        steps: prog.steps,
        consts: prog.consts.into_iter().map(ConstBuf::Tensor).collect(),
        inputs: prog.inputs,
        outputs: prog.outputs,
        arena,
        ukr,
        kernel_count: j.kernel_count(),
    })
}

/// Refuses, before anything is lowered or folded, a graph with a value that does not fit the
/// memory budget (`whittle_ir::limits`), naming the node.
fn check_budget(graph: &Graph) -> Result<(), RuntimeError> {
    for id in graph.node_ids() {
        let n = graph.node(id);
        if n.op.as_constant().is_some() {
            continue; // already in memory
        }
        for (p, vi) in n.outputs.iter().enumerate() {
            let Some(shape) = vi.ty.concrete_shape() else {
                continue;
            };
            let what = format!("output {p} ('{}')", vi.name);
            whittle_ir::limits::check_tensor(&shape, vi.ty.dtype.size_of(), &what)
                .map_err(|m| lower::unsupported(graph, id, m))?;
        }
    }
    Ok(())
}

/// Lowers, plans and JIT-compiles `graph` (all shapes concrete).
///
/// With `WHITTLE_CPU_IMAGE_ROUNDTRIP=1` in the environment (a test hook: CI runs the
/// conformance suite with it), every plan goes through the AOT plan image format —
/// encoded and decoded — before it runs, so a step that does not survive serialization
/// shows up as a wrong result in whatever runs.
pub fn compile_plan(graph: &Graph) -> Result<Plan, RuntimeError> {
    let mut j = jit::Jit::new().map_err(internal)?;
    let mut parts = plan_parts(graph, &mut j)?;
    if image_roundtrip() {
        let bytes = whittle_exec::image::encode(&parts, &whittle_exec::image::host_features())
            .map_err(internal)?;
        parts = whittle_exec::image::decode(&bytes).map_err(internal)?;
    }
    let (kernels, code) = j.finish().map_err(internal)?;
    Plan::new(parts, kernels, Box::new(code))
}

/// Input dtypes and shapes, in graph input order, plus the bytes of the inputs that are
/// bound by value ([`bind`]): the key of the plan cache.
type Signature = (Vec<(DType, Vec<usize>)>, Vec<Vec<u8>>);

/// Plans kept per executable (one per input-shape / bound-value signature).
pub const MAX_PLANS: usize = 64;

/// A compiled graph: the graph itself, one plan per input-shape signature seen so far
/// (at most [`MAX_PLANS`]), and the thread pool the plans run on. A graph whose input
/// shapes are all fixed is compiled once, at `compile`, and then released (its plan holds
/// what it needs: packed weights and the constants the steps read), so its weights are not
/// kept twice.
pub struct CpuExecutable {
    /// `None` once the only possible plan is compiled (fixed input shapes).
    graph: Option<Graph>,
    /// Input names and declared types, in graph order.
    input_specs: Vec<(String, TensorType)>,
    /// Plans by signature, with the tick of their last use (least recently used evicted).
    plans: Mutex<HashMap<Signature, (Arc<Plan>, usize)>>,
    compilations: AtomicUsize,
    tick: AtomicUsize,
    pool: rayon::ThreadPool,
    /// Graph inputs whose values shape the plan (axes, pads, ... fed at run time).
    bound: Vec<usize>,
}

impl CpuExecutable {
    /// Compiles `graph` with one thread per core.
    pub fn compile(graph: &Graph) -> Result<CpuExecutable, RuntimeError> {
        Self::compile_with(graph, CpuBackend::default().resolved_threads())
    }

    /// Compiles `graph` for a pool of `threads` threads. When every input shape is known,
    /// the plan for those shapes is built now (so unsupported ops fail here); otherwise
    /// plans are built per shape signature on first use.
    pub fn compile_with(graph: &Graph, threads: usize) -> Result<CpuExecutable, RuntimeError> {
        graph.topo_order()?;
        let pool = whittle_exec::thread_pool(threads)?;
        let mut exe = CpuExecutable {
            graph: Some(graph.clone()),
            input_specs: (0..graph.inputs().len())
                .map(|i| (graph.input_name(i).to_string(), graph.input_type(i).clone()))
                .collect(),
            plans: Mutex::new(HashMap::new()),
            tick: AtomicUsize::new(0),
            compilations: AtomicUsize::new(0),
            pool,
            bound: bind::value_inputs(graph),
        };
        let n = graph.inputs().len();
        let fixed: Option<Vec<(String, DType, Vec<usize>)>> = (0..n)
            .map(|i| {
                let ty = graph.input_type(i);
                ty.concrete_shape()
                    .map(|s| (graph.input_name(i).to_string(), ty.dtype, s))
            })
            .collect();
        if let Some(fixed) = fixed.filter(|_| exe.bound.is_empty()) {
            let named: Vec<(&str, Vec<usize>)> = fixed
                .iter()
                .map(|(n, _, s)| (n.as_str(), s.clone()))
                .collect();
            let sig = (
                fixed.iter().map(|(_, d, s)| (*d, s.clone())).collect(),
                vec![],
            );
            exe.plan_for(sig, &named, &[])?;
            exe.graph = None;
        }
        Ok(exe)
    }

    /// Number of plans compiled so far (one per distinct input-shape signature).
    pub fn compilations(&self) -> usize {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Number of plans held now (at most [`MAX_PLANS`]).
    pub fn cached_plans(&self) -> usize {
        self.plans.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Statistics of the plan for the given input shapes, if it was compiled.
    pub fn stats_for(&self, shapes: &[Vec<usize>]) -> Option<PlanStats> {
        let plans = self.plans.lock().ok()?;
        plans
            .iter()
            .find(|(k, _)| k.0.iter().map(|(_, s)| s).eq(shapes.iter()))
            .map(|(_, (p, _))| p.stats())
    }

    /// Statistics of the first compiled plan (graphs with fixed shapes have exactly one).
    pub fn stats(&self) -> Option<PlanStats> {
        let plans = self.plans.lock().ok()?;
        plans.values().next().map(|(p, _)| p.stats())
    }

    fn plan_for(
        &self,
        sig: Signature,
        named: &[(&str, Vec<usize>)],
        values: &[(usize, &Tensor)],
    ) -> Result<Arc<Plan>, RuntimeError> {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.plans.lock() {
            if let Some((p, used)) = m.get_mut(&sig) {
                *used = now;
                return Ok(p.clone());
            }
        }
        let mut g = self
            .graph
            .clone()
            .ok_or_else(|| internal("no plan for these input shapes (the model's are fixed)"))?;
        bind::bind_values(&mut g, values);
        whittle_ir::infer::specialize(&mut g, named)?;
        let plan = Arc::new(compile_plan(&g)?);
        self.compilations.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.plans.lock() {
            // Bound the cache: inputs whose values shape the plan (a padding mask, Slice
            // starts fed at run time) can make a new signature per run. Evict the least
            // recently used plan; runs in flight keep theirs alive through the Arc.
            if m.len() >= MAX_PLANS {
                let oldest = m
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    m.remove(&k);
                }
            }
            m.insert(sig, (plan.clone(), now));
        }
        Ok(plan)
    }

    /// The inputs in graph order, checked by name and dtype (shapes pick the plan).
    fn match_inputs<'a>(
        &self,
        inputs: &'a [(&str, Tensor)],
    ) -> Result<Vec<&'a Tensor>, RuntimeError> {
        let specs = &self.input_specs;
        let mut out = Vec::with_capacity(specs.len());
        let mut syms = HashMap::new();
        for (name, want) in specs {
            let err = |msg: String| {
                RuntimeError::Ir(whittle_ir::IrError::Input {
                    name: name.to_string(),
                    msg,
                })
            };
            let t = inputs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| err("missing: no value was given".into()))?;
            whittle_ir::eval::check_input(name, want, t, &mut syms)?;
            out.push(t);
        }
        for (n, _) in inputs {
            if !specs.iter().any(|(name, _)| name == n) {
                return Err(RuntimeError::Ir(whittle_ir::IrError::Input {
                    name: n.to_string(),
                    msg: "the model has no input of this name".into(),
                }));
            }
        }
        Ok(out)
    }
}

impl Executable for CpuExecutable {
    fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let ins = self.match_inputs(inputs)?;
        let values: Vec<(usize, &Tensor)> = self.bound.iter().map(|&i| (i, ins[i])).collect();
        let sig: Signature = (
            ins.iter()
                .map(|t| (t.dtype(), t.shape().to_vec()))
                .collect(),
            values.iter().map(|(_, t)| t.to_le_bytes()).collect(),
        );
        let named: Vec<(&str, Vec<usize>)> = (0..ins.len())
            .map(|i| (self.input_specs[i].0.as_str(), ins[i].shape().to_vec()))
            .collect();
        let plan = self.plan_for(sig, &named, &values)?;
        for (spec, t) in plan.inputs().iter().zip(&ins) {
            if spec.shape.as_slice() != t.shape() {
                return Err(internal(format!(
                    "input '{}': the plan was compiled for {:?}, got {:?}",
                    spec.name,
                    spec.shape,
                    t.shape()
                )));
            }
        }
        self.pool.install(|| plan.run(ins))
    }
}
