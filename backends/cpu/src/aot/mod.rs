//! Ahead-of-time compilation: a model specialized to concrete input shapes becomes a
//! relocatable object file (`cranelift-object`, PIC ISA) plus a C header. The object holds
//! the model blob in read-only data and one exported C entry point,
//! `PREFIX_run(inputs, outputs, workspace, workspace_size)`, which refuses a workspace that
//! is too small and otherwise calls `whittle_rt_run` from the static runtime library
//! `libwhittle_rt.a` (crate `whittle-rt`).
//!
//! Stage 1 (this code): the blob is the specialized IR graph in whittle's text format and
//! the runtime compiles it on first call (with this backend), then runs it. Stage 2 (to
//! do): the blob becomes the serialized execution plan and the object carries the
//! generated kernels, so the runtime no longer needs Cranelift.

pub mod blob;
pub mod header;
pub mod object;

use crate::CpuExecutable;
use whittle_ir::{DType, Graph};
use whittle_runtime::RuntimeError;

/// Status codes of `whittle_rt_run` and of the generated entry point (also in the header).
pub mod status {
    pub const OK: i32 = 0;
    pub const NULL_POINTER: i32 = 1;
    pub const WORKSPACE_TOO_SMALL: i32 = 2;
    pub const BAD_MODEL: i32 = 3;
    pub const RUN: i32 = 4;
    pub const PANIC: i32 = 5;
}

/// The symbol the generated entry point calls (defined in `libwhittle_rt.a`).
pub const RT_RUN_SYMBOL: &str = "whittle_rt_run";

/// What to compile.
#[derive(Clone, Debug)]
pub struct AotOptions {
    /// Prefix of every exported symbol and header macro (a C identifier).
    pub name: String,
    /// Concrete shapes for inputs whose shapes the model leaves symbolic.
    pub input_shapes: Vec<(String, Vec<usize>)>,
}

/// One input or output as the header states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_of()
    }
}

/// The compiled model: object file bytes, header text and what they declare.
#[derive(Clone, Debug)]
pub struct AotArtifact {
    pub object: Vec<u8>,
    pub header: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Bytes of workspace the caller passes to `PREFIX_run`.
    pub workspace_bytes: usize,
    /// FNV-1a 64 of the model blob's graph text.
    pub model_hash: u64,
}

/// An AOT usage error, as one line of text (`RuntimeError::Io` carries plain messages).
fn aot_err(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Io(format!("compile: {}", msg.into()))
}

/// Whether `s` is a C identifier (the symbol prefix).
fn c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Specializes `graph` to concrete input shapes (from the model or `opts.input_shapes`),
/// checks that the CPU backend compiles it, and emits the object and header.
pub fn compile(graph: &Graph, opts: &AotOptions) -> Result<AotArtifact, RuntimeError> {
    if !c_identifier(&opts.name) {
        return Err(aot_err(format!(
            "--name '{}' is not a C identifier (letters, digits, '_', not starting with a digit)",
            opts.name
        )));
    }
    let mut g = graph.clone();
    for (name, _) in &opts.input_shapes {
        if !(0..g.inputs().len()).any(|i| g.input_name(i) == name) {
            return Err(aot_err(format!(
                "--input-shape: the model has no input '{name}'"
            )));
        }
    }
    let mut named: Vec<(&str, Vec<usize>)> = Vec::new();
    for i in 0..g.inputs().len() {
        let name = graph.input_name(i);
        let shape = match opts.input_shapes.iter().find(|(n, _)| n == name) {
            Some((_, s)) => s.clone(),
            None => graph.input_type(i).concrete_shape().ok_or_else(|| {
                aot_err(format!(
                    "input '{name}' has shape {}; AOT needs concrete shapes: pass --input-shape {name}=AxB",
                    graph.input_type(i)
                ))
            })?,
        };
        named.push((name, shape));
    }
    whittle_ir::infer::specialize(&mut g, &named)?;
    if !crate::bind::value_inputs(&g).is_empty() {
        return Err(aot_err(
            "AOT: an input of this model decides output shapes by its value (axes, pads, ...); \
             only the JIT supports that",
        ));
    }
    let spec = |name: &str, ty: &whittle_ir::TensorType| -> Result<TensorSpec, RuntimeError> {
        Ok(TensorSpec {
            name: name.to_string(),
            dtype: ty.dtype,
            shape: ty
                .concrete_shape()
                .ok_or_else(|| aot_err(format!("'{name}' has no concrete shape ({ty})")))?,
        })
    };
    let inputs = (0..g.inputs().len())
        .map(|i| spec(g.input_name(i), g.input_type(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = g
        .outputs()
        .iter()
        .map(|o| spec(&o.name, g.value_type(o.value)))
        .collect::<Result<Vec<_>, _>>()?;
    // Compiling once here makes an unsupported op a compile error naming the node, and
    // gives the arena size that the caller's workspace must cover.
    let exe = CpuExecutable::compile_with(&g, 1)?;
    let workspace_bytes = exe.stats().map_or(0, |s| s.arena_bytes);
    // Constants of 64 elements or more travel as binary (4 bytes per f32, not ~12 of text).
    let (text, weights) = whittle_ir::text::print_graph_with_blobs(&g, 64)?;
    let bytes: Vec<Vec<u8>> = weights.iter().map(|t| t.to_le_bytes()).collect();
    let model = blob::encode(&text, &bytes);
    let model_hash = blob::hash_of(&model);
    let object = object::emit(&opts.name, &model, workspace_bytes).map_err(aot_err)?;
    let mut art = AotArtifact {
        object,
        header: String::new(),
        inputs,
        outputs,
        workspace_bytes,
        model_hash,
    };
    art.header = header::render(&opts.name, &art);
    Ok(art)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(c_identifier("mlp_1"));
        assert!(c_identifier("_m"));
        assert!(!c_identifier("1m"));
        assert!(!c_identifier("a-b"));
        assert!(!c_identifier(""));
    }
}
