//! Ahead-of-time compilation: a model specialized to concrete input shapes becomes a
//! relocatable object file (`cranelift-object`, PIC ISA) plus a C header. The object holds
//! the generated kernels (the same Cranelift functions the JIT would make), a table of
//! their addresses, the plan image (`whittle_exec::image`: steps, pre-packed weights,
//! constants, arena layout) in read-only data, and one exported C entry point,
//! `PREFIX_run(inputs, outputs, workspace, workspace_size)`, which refuses a workspace that
//! is too small and otherwise calls `whittle_rt_run` from the static runtime library
//! `libwhittle_rt.a` (crate `whittle-rt`: the host kernels and executor of
//! `whittle-exec`, no compiler). The runtime decodes the image on the first call and runs
//! the plan in the caller's workspace; nothing is compiled at run time.

pub mod header;
pub mod object;

use crate::kernels::gemm::Ukr;
use whittle_ir::{DType, Graph};
use whittle_runtime::RuntimeError;

/// Status codes of `whittle_rt_run` and of the generated entry point (also in the header).
pub use whittle_exec::status;

/// The symbol the generated entry point calls (defined in `libwhittle_rt.a`).
pub const RT_RUN_SYMBOL: &str = "whittle_rt_run";

/// What to compile.
#[derive(Clone, Debug)]
pub struct AotOptions {
    /// Prefix of every exported symbol and header macro (a C identifier).
    pub name: String,
    /// Concrete shapes for inputs whose shapes the model leaves symbolic.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// The CPU the object's code is for.
    pub cpu: CpuTarget,
}

/// The x86-64 CPU an object's code is compiled for (`whittle compile --cpu`): this machine's,
/// or a psABI level, so that an object built here runs on the machines it ships to. The
/// level fixes the Cranelift ISA flags, the GEMM micro-kernel (and so the packed-weight
/// layout) and the CPU features the runtime checks before the first run; host kernels pick
/// their instruction set at run time either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuTarget {
    /// Every feature of the compiling machine.
    #[default]
    Native,
    /// x86-64-v3: AVX2, FMA, BMI1/2, LZCNT (Haswell, Zen 1 and later).
    X86_64V3,
    /// x86-64-v4: v3 plus AVX-512 F/VL/DQ/BW (Skylake-SP, Zen 4 and later).
    X86_64V4,
}

impl CpuTarget {
    /// Names accepted by [`CpuTarget::parse`].
    pub const NAMES: [&'static str; 3] = ["native", "x86-64-v3", "x86-64-v4"];

    pub fn parse(s: &str) -> Result<CpuTarget, String> {
        match s {
            "native" => Ok(CpuTarget::Native),
            "x86-64-v3" => Ok(CpuTarget::X86_64V3),
            "x86-64-v4" => Ok(CpuTarget::X86_64V4),
            _ => Err(format!(
                "--cpu '{s}': expected one of {}",
                CpuTarget::NAMES.join(", ")
            )),
        }
    }

    /// Cranelift presets and flags to enable (none for `Native`: detected instead).
    pub fn isa_flags(self) -> Vec<&'static str> {
        let v3 = [
            "x86-64-v3",
            "has_sse3",
            "has_ssse3",
            "has_sse41",
            "has_sse42",
            "has_popcnt",
            "has_avx",
            "has_avx2",
            "has_fma",
            "has_lzcnt",
        ];
        let v4 = ["x86-64-v4", "has_avx512f", "has_avx512vl", "has_avx512dq"];
        match self {
            CpuTarget::Native => vec![],
            CpuTarget::X86_64V3 => v3.to_vec(),
            CpuTarget::X86_64V4 => [&v3[..], &v4[..]].concat(),
        }
    }

    /// The CPU features (`whittle_exec::image` names) the object relies on.
    pub fn features(self) -> Vec<&'static str> {
        let v3 = vec![
            "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt",
        ];
        match self {
            CpuTarget::Native => whittle_exec::image::host_features(),
            CpuTarget::X86_64V3 => v3,
            CpuTarget::X86_64V4 => [v3, vec!["avx512f", "avx512vl", "avx512dq"]].concat(),
        }
    }

    /// The GEMM micro-kernel the plan is packed for.
    pub fn ukr(self) -> Ukr {
        let named = |n: &str| Ukr::known(n).unwrap_or_else(Ukr::portable);
        match self {
            CpuTarget::Native => Ukr::best(),
            CpuTarget::X86_64V3 => named("avx2-6x16"),
            CpuTarget::X86_64V4 => named("avx512-8x32"),
        }
    }
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
    /// The plan image's fingerprint (`whittle_exec::image::hash_of`).
    pub model_hash: u64,
    /// Generated kernels in the object.
    pub kernels: usize,
    /// Bytes of the plan image (weights included).
    pub image_bytes: usize,
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
    // Lowering makes an unsupported op a compile error naming the node; the kernels go
    // into the object module, the rest of the plan into the image.
    let mut j = crate::jit::Jit::new_object(&opts.name, opts.cpu).map_err(aot_err)?;
    let parts = crate::plan_parts_for(&g, &mut j, opts.cpu.ukr())?;
    let workspace_bytes = parts.arena.peak_bytes + crate::plan::ALIGN;
    let cpu = opts.cpu.features();
    let image = whittle_exec::image::encode(&parts, &cpu).map_err(aot_err)?;
    let model_hash = whittle_exec::image::hash_of(&image);
    let (module, kernels) = j.into_object().map_err(aot_err)?;
    let object =
        object::emit(module, &opts.name, &image, &kernels, workspace_bytes).map_err(aot_err)?;
    let mut art = AotArtifact {
        object,
        header: String::new(),
        inputs,
        outputs,
        workspace_bytes,
        model_hash,
        kernels: kernels.len(),
        image_bytes: image.len(),
    };
    art.header = header::render(&opts.name, &art);
    Ok(art)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_levels_fix_features_and_micro_kernel() {
        assert_eq!(CpuTarget::parse("x86-64-v3"), Ok(CpuTarget::X86_64V3));
        assert!(CpuTarget::parse("skylake")
            .unwrap_err()
            .contains("x86-64-v4"));
        let v3 = CpuTarget::X86_64V3.features();
        assert!(v3.contains(&"avx2") && v3.contains(&"fma") && !v3.contains(&"avx512f"));
        assert!(CpuTarget::X86_64V4.features().contains(&"avx512f"));
        assert_eq!(CpuTarget::X86_64V3.ukr().name, "avx2-6x16");
        assert_eq!(CpuTarget::X86_64V4.ukr().name, "avx512-8x32");
        // The ISA flags exist in this Cranelift (an unknown flag would fail here).
        for cpu in [CpuTarget::X86_64V3, CpuTarget::X86_64V4] {
            let isa = object::pic_isa(cpu).expect("ISA for the level");
            assert!(isa.has_native_fma());
        }
    }

    #[test]
    fn prefixes_must_be_c_identifiers() {
        assert!(c_identifier("mlp_1"));
        assert!(c_identifier("_m"));
        assert!(!c_identifier("1m"));
        assert!(!c_identifier("a-b"));
        assert!(!c_identifier(""));
    }
}
