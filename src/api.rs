//! The embedding API: load an ONNX model, optimize it, compile it for a target and run it
//! from Rust. `Model` → `optimize` → `compile(Target)` → `CompiledModel::run`.
//!
//! ```
//! use whittle::{Model, Target, TensorView};
//!
//! // The embedded demo encoder; `Model::load("model.onnx")` reads a file instead.
//! let model = Model::from_graph(whittle::demo::build_demo_graph())?.optimize_exact()?;
//! for input in model.inputs() {
//!     println!("{input}"); // e.g. `input_ids: i64[1, 16]`
//! }
//! let compiled = model.compile(Target::Reference)?;
//! let ids: Vec<i64> = (0..16).collect();
//! let mask = vec![1i64; 16];
//! let outputs = compiled.run(&[
//!     ("input_ids", TensorView::i64(&ids, &[1, 16])),
//!     ("attention_mask", TensorView::i64(&mask, &[1, 16])),
//! ])?;
//! let (name, hidden) = &outputs[0];
//! assert_eq!(name, "last_hidden_state");
//! assert_eq!(hidden.shape(), &[1, 16, 32]);
//! # Ok::<(), whittle::Error>(())
//! ```
#![warn(missing_docs)]

mod error;
mod view;

pub use error::{Error, Result};
pub use view::{TensorSlice, TensorView, ViewElement};
pub use whittle_ir::{DType, Dim, Tensor};
pub use whittle_passes::Pipeline;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use whittle_frontend::{load_model, load_model_bytes};
use whittle_ir::Graph;
use whittle_passes::PassContext;
use whittle_runtime::{Backend, Executable, ReferenceBackend};

/// Where a [`CompiledModel`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The reference evaluator: slow, supports every op and symbolic shapes directly.
    Reference,
    /// The Cranelift CPU backend. Graphs with symbolic input dims are compiled once per
    /// input-shape signature, on first use (the backend keeps one plan per signature).
    Cpu {
        /// Worker threads of the model's pool; `None`: the `WHITTLE_THREADS` environment
        /// variable, else one per core. Must not be `Some(0)`.
        threads: Option<usize>,
    },
}

impl Target {
    /// The target's name, as on the command line (`--backend`).
    pub fn name(&self) -> &'static str {
        match self {
            Target::Reference => "reference",
            Target::Cpu { .. } => "cpu",
        }
    }
}

/// The name, element type and (possibly symbolic) shape of a model input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The value's name in the model.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The dims (`Dim::Known(n)` or `Dim::Sym("batch")`); `None` if even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.dtype)?;
        match &self.shape {
            None => f.write_str("[*]"),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
                write!(f, "[{}]", dims.join(", "))
            }
        }
    }
}

fn input_infos(g: &Graph) -> Vec<TensorInfo> {
    (0..g.inputs().len())
        .map(|i| {
            let ty = g.input_type(i);
            TensorInfo {
                name: g.input_name(i).to_string(),
                dtype: ty.dtype,
                shape: ty.shape.clone(),
            }
        })
        .collect()
}

fn output_infos(g: &Graph) -> Vec<TensorInfo> {
    g.outputs()
        .iter()
        .map(|o| {
            let ty = g.value_type(o.value);
            TensorInfo {
                name: o.name.clone(),
                dtype: ty.dtype,
                shape: ty.shape.clone(),
            }
        })
        .collect()
}

/// A model loaded from ONNX (or built in code), ready to optimize and compile.
#[derive(Clone, Debug)]
pub struct Model {
    inner: whittle_frontend::Model,
}

impl Model {
    /// Loads an ONNX file (external data files are looked up next to it).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Ok(Model {
            inner: load_model(path.as_ref())?,
        })
    }

    /// Decodes an ONNX model held in memory (external data is not supported here).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Ok(Model {
            inner: load_model_bytes(bytes, None)?,
        })
    }

    /// Wraps a graph built in code, after checking it with [`Graph::verify`].
    pub fn from_graph(graph: Graph) -> Result<Model> {
        graph.verify().map_err(Error::Graph)?;
        Ok(Model {
            inner: whittle_frontend::Model::from_graph(graph),
        })
    }

    /// What the loader accepted with a warning, one line each (declared shapes that
    /// inference disproved and replaced).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// The model's graph.
    pub fn graph(&self) -> &Graph {
        &self.inner.graph
    }

    /// The loaded model with its ONNX metadata (for `whittle_frontend::save_model`).
    pub fn onnx_model(&self) -> &whittle_frontend::Model {
        &self.inner
    }

    /// Writes the model (as optimized so far) as a standard ONNX file; initializers of
    /// 1 KiB or more go to `<file>.data` next to it when the model would pass protobuf's
    /// 2 GiB limit, as `whittle optimize` does.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let opts = whittle_frontend::ExportOptions::default();
        whittle_frontend::save_model(&self.inner, path.as_ref(), &opts)?;
        Ok(())
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> Vec<TensorInfo> {
        input_infos(&self.inner.graph)
    }

    /// The model's outputs, in order.
    pub fn outputs(&self) -> Vec<TensorInfo> {
        output_infos(&self.inner.graph)
    }

    /// Runs `pipeline` over the graph (e.g. `Pipeline::parse("const-fold,dce")`).
    pub fn optimize(mut self, pipeline: &Pipeline) -> Result<Model> {
        pipeline.run(&mut self.inner.graph, &mut PassContext::default())?;
        Ok(self)
    }

    /// Runs the exact pipeline ([`Pipeline::exact`]): outputs stay the same up to
    /// floating-point rounding.
    pub fn optimize_exact(self) -> Result<Model> {
        self.optimize(&Pipeline::exact())
    }

    /// Compiles the model for `target`. Graphs with fully known input shapes are compiled
    /// now; on [`Target::Cpu`], graphs with symbolic dims compile per shape on first run.
    pub fn compile(&self, target: Target) -> Result<CompiledModel> {
        if let Target::Cpu { threads: Some(0) } = target {
            return Err(Error::InvalidArgument(
                "Target::Cpu threads must be at least 1 (or None)".into(),
            ));
        }
        let g = &self.inner.graph;
        let exe = match target {
            Target::Reference => compile_with(&ReferenceBackend, g, target)?,
            Target::Cpu { threads } => {
                let backend = whittle_cpu::CpuBackend::with_threads(threads.unwrap_or(0));
                compile_with(&backend, g, target)?
            }
        };
        Ok(CompiledModel {
            target,
            inputs: input_infos(g),
            outputs: output_infos(g),
            exe,
        })
    }
}

fn compile_with(b: &dyn Backend, g: &Graph, target: Target) -> Result<Box<dyn Executable>> {
    b.compile(g).map_err(|source| Error::Compile {
        target: target.name(),
        source,
    })
}

/// A model compiled for one [`Target`]. It is `Send + Sync`: share it (e.g. in an `Arc`)
/// and call [`run`](CompiledModel::run) from several threads at once.
pub struct CompiledModel {
    target: Target,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    exe: Box<dyn Executable>,
}

// Static check: a compiled model can be shared between threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledModel>();
};

impl fmt::Debug for CompiledModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledModel")
            .field("target", &self.target)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl CompiledModel {
    /// The target this model was compiled for.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The model's inputs, in order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The model's outputs, in order (the order `run` returns them in).
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Runs the model on named inputs (every input exactly once, any order). Returns the
    /// outputs in graph order as `(name, tensor)`. Dtypes and shapes are checked against
    /// the model's declared inputs first (symbolic dims must agree across inputs).
    pub fn run(&self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<(String, Tensor)>> {
        let mut ordered: Vec<Option<TensorView<'_>>> = vec![None; self.inputs.len()];
        for (name, view) in inputs {
            let i = self
                .inputs
                .iter()
                .position(|info| info.name == *name)
                .ok_or_else(|| Error::UnknownInput {
                    name: name.to_string(),
                    known: self.input_names().join(", "),
                })?;
            if ordered[i].replace(*view).is_some() {
                return Err(Error::BadInputSet {
                    name: name.to_string(),
                    why: "given more than once",
                });
            }
        }
        let mut views = Vec::with_capacity(ordered.len());
        for (info, v) in self.inputs.iter().zip(ordered) {
            views.push(v.ok_or_else(|| Error::BadInputSet {
                name: info.name.clone(),
                why: "missing",
            })?);
        }
        self.run_positional(&views)
    }

    /// Runs the model on inputs given in the order of [`inputs`](CompiledModel::inputs).
    pub fn run_positional(&self, inputs: &[TensorView<'_>]) -> Result<Vec<(String, Tensor)>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::InvalidArgument(format!(
                "the model takes {} inputs ({}) but {} were given",
                self.inputs.len(),
                self.input_names().join(", "),
                inputs.len()
            )));
        }
        let mut tensors = Vec::with_capacity(inputs.len());
        let mut syms: HashMap<&str, usize> = HashMap::new();
        for (info, view) in self.inputs.iter().zip(inputs) {
            check_input(info, view, &mut syms)?;
            let t = view.to_tensor().map_err(|why| Error::ShapeMismatch {
                name: info.name.clone(),
                why,
            })?;
            tensors.push(t);
        }
        let named: Vec<(&str, Tensor)> = self
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .zip(tensors)
            .collect();
        self.exe.run(&named).map_err(Error::Run)
    }

    fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }
}

/// Checks one input against its declared type; binds symbolic dims in `syms`.
fn check_input<'a>(
    info: &'a TensorInfo,
    view: &TensorView<'_>,
    syms: &mut HashMap<&'a str, usize>,
) -> Result<()> {
    if view.dtype() != info.dtype {
        return Err(Error::DTypeMismatch {
            name: info.name.clone(),
            expected: info.dtype,
            got: view.dtype(),
        });
    }
    let Some(dims) = &info.shape else {
        return Ok(());
    };
    let got = view.shape();
    let mismatch = |why: String| Error::ShapeMismatch {
        name: info.name.clone(),
        why: format!("{why} (expected {info}, got shape {got:?})"),
    };
    if dims.len() != got.len() {
        return Err(mismatch(format!(
            "expected rank {}, got rank {}",
            dims.len(),
            got.len()
        )));
    }
    for (axis, (d, &n)) in dims.iter().zip(got).enumerate() {
        match d {
            Dim::Known(k) if *k != n => {
                return Err(mismatch(format!("dim {axis} must be {k}, got {n}")));
            }
            Dim::Known(_) => {}
            Dim::Sym(s) => match syms.get(s.as_str()) {
                Some(&bound) if bound != n => {
                    return Err(mismatch(format!(
                        "dim {axis} ('{s}') is {bound} in an earlier input, got {n}"
                    )));
                }
                Some(_) => {}
                None => {
                    syms.insert(s.as_str(), n);
                }
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
