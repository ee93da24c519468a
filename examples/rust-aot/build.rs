//! Compiles a model ahead of time (the exact pipeline, then `whittle_cpu::aot::compile`: a
//! relocatable object and a C header), archives the object with the `cc` crate so cargo
//! links it into this crate, and writes the tensor geometry the Rust side needs
//! (`model_info.rs`). The same steps as `whittle compile` on the command line, from a build
//! script. The model is whittle's embedded demo encoder, or the ONNX file named by
//! `WHITTLE_AOT_MODEL` with input shapes from `WHITTLE_AOT_SHAPES` (`name=1x128,...`), for
//! the CPU `WHITTLE_AOT_CPU` names (`native`, the default, `x86-64-v3` or `x86-64-v4`).

use std::fmt::Write as _;
use std::path::PathBuf;
use whittle::cpu::aot::{self, AotOptions};
use whittle::passes::{PassContext, Pipeline};

fn main() {
    println!("cargo:rerun-if-env-changed=WHITTLE_AOT_MODEL");
    println!("cargo:rerun-if-env-changed=WHITTLE_AOT_SHAPES");
    println!("cargo:rerun-if-env-changed=WHITTLE_AOT_CPU");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let model = std::env::var("WHITTLE_AOT_MODEL")
        .ok()
        .filter(|s| !s.is_empty());
    let mut g = match &model {
        Some(path) => {
            println!("cargo:rerun-if-changed={path}");
            whittle::frontend::load_model(std::path::Path::new(path))
                .unwrap_or_else(|e| panic!("WHITTLE_AOT_MODEL={path}: {e}"))
                .graph
        }
        None => whittle::demo::build_demo_graph(),
    };
    Pipeline::exact()
        .run(&mut g, &mut PassContext::default())
        .expect("the exact pipeline runs on the model");
    let input_shapes = std::env::var("WHITTLE_AOT_SHAPES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, dims) = s.split_once('=').expect("WHITTLE_AOT_SHAPES: name=AxB,...");
            let dims = dims
                .split('x')
                .map(|d| d.parse().expect("a dimension"))
                .collect();
            (name.to_string(), dims)
        })
        .collect();
    let cpu = std::env::var("WHITTLE_AOT_CPU")
        .map(|s| aot::CpuTarget::parse(&s).unwrap_or_else(|e| panic!("WHITTLE_AOT_CPU: {e}")))
        .unwrap_or_default();
    let opts = AotOptions {
        name: "model".into(),
        input_shapes,
        cpu,
    };
    let art = aot::compile(&g, &opts).expect("the model compiles ahead of time");
    let obj = out.join("model.o");
    std::fs::write(&obj, &art.object).expect("write the object");
    std::fs::write(out.join("model.h"), &art.header).expect("write the header");
    cc::Build::new().object(&obj).compile("whittle_aot_model");

    let mut info = String::new();
    let specs = |v: &[aot::TensorSpec]| {
        v.iter()
            .map(|t| format!("(\"{}\", \"{}\", &{:?})", t.name, t.dtype, t.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        info,
        "/// Whether this is the embedded demo encoder (not WHITTLE_AOT_MODEL)."
    );
    let _ = writeln!(info, "pub const IS_DEMO: bool = {};", model.is_none());
    let _ = writeln!(info, "/// Bytes of workspace `model_run` needs.");
    let _ = writeln!(
        info,
        "pub const WORKSPACE_BYTES: usize = {};",
        art.workspace_bytes
    );
    let _ = writeln!(info, "/// FNV-1a 64 of the model blob.");
    let _ = writeln!(info, "pub const MODEL_HASH: u64 = {:#x};", art.model_hash);
    let _ = writeln!(info, "/// (name, dtype, shape) per input, in call order.");
    let _ = writeln!(
        info,
        "pub const INPUTS: &[(&str, &str, &[usize])] = &[{}];",
        specs(&art.inputs)
    );
    let _ = writeln!(info, "/// (name, dtype, shape) per output, in call order.");
    let _ = writeln!(
        info,
        "pub const OUTPUTS: &[(&str, &str, &[usize])] = &[{}];",
        specs(&art.outputs)
    );
    std::fs::write(out.join("model_info.rs"), info).expect("write model_info.rs");
    println!("cargo:rerun-if-changed=build.rs");
}
