//! Compiles whittle's embedded demo encoder ahead of time (the exact pipeline, then
//! `whittle_cpu::aot::compile`: a relocatable object and a C header), archives the object
//! with the `cc` crate so cargo links it into this crate, and writes the tensor geometry
//! the Rust side needs (`model_info.rs`). The same steps as `whittle compile` on the command
//! line, from a build script.

use std::fmt::Write as _;
use std::path::PathBuf;
use whittle::cpu::aot::{self, AotOptions};
use whittle::passes::{PassContext, Pipeline};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut g = whittle::demo::build_demo_graph();
    Pipeline::exact()
        .run(&mut g, &mut PassContext::default())
        .expect("the exact pipeline runs on the demo model");
    let opts = AotOptions {
        name: "demo".into(),
        input_shapes: vec![],
    };
    let art = aot::compile(&g, &opts).expect("the demo model compiles ahead of time");
    let obj = out.join("demo_model.o");
    std::fs::write(&obj, &art.object).expect("write the object");
    std::fs::write(out.join("demo_model.h"), &art.header).expect("write the header");
    cc::Build::new().object(&obj).compile("whittle_demo_model");

    let mut info = String::new();
    let specs = |v: &[aot::TensorSpec]| {
        v.iter()
            .map(|t| format!("(\"{}\", \"{}\", &{:?})", t.name, t.dtype, t.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(info, "/// Bytes of workspace `demo_run` needs.");
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
