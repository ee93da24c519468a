//! Drives `examples/c/main.c` end to end: compiles a small MLP ahead of time
//! (`whittle_cpu::aot::compile`, what `whittle compile` calls), links the C program with
//! `cc` against the object and `libwhittle_rt.a`, runs it, compares its output with
//! `ir::eval` (relative L2 ≤ 1e-5), and checks with `ldd` that the program needs nothing
//! beyond libc, libm, libpthread, libdl and the loader.

use std::path::{Path, PathBuf};
use std::process::Command;
use whittle_cpu::aot::{compile, AotOptions, CpuTarget};
use whittle_ir::{BinaryOp, DType, Dim, Graph, Op, Tensor, TensorType, UnaryOp, Value, ValueInfo};

/// Deterministic weights in [-0.5, 0.5).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// `softmax(relu(x·W1 + b1)·W2 + b2)` with `x: f32[batch, 16]`, hidden 32, 8 classes.
fn mlp() -> Graph {
    let mut g = Graph::new("mlp");
    let batch = Dim::Sym("batch".into());
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![batch.clone(), Dim::Known(16)]),
    );
    let w1 = g.add_const("W1", Tensor::from_vec(vec![16, 32], weights(512, 1)));
    let b1 = g.add_const("b1", Tensor::from_vec(vec![32], weights(32, 2)));
    let w2 = g.add_const("W2", Tensor::from_vec(vec![32, 8], weights(256, 3)));
    let b2 = g.add_const("b2", Tensor::from_vec(vec![8], weights(8, 4)));
    let node = |g: &mut Graph, op: Op, name: &str, ins: &[Value], cols: usize| {
        let ins: Vec<Option<Value>> = ins.iter().copied().map(Some).collect();
        let ty = TensorType::new(DType::F32, vec![batch.clone(), Dim::Known(cols)]);
        let out = ValueInfo {
            name: name.into(),
            ty,
        };
        Value::new(g.add_node(op, name, &ins, vec![out]), 0)
    };
    let h = node(&mut g, Op::MatMul, "h", &[x, w1], 32);
    let h = node(&mut g, Op::Binary(BinaryOp::Add), "hb", &[h, b1], 32);
    let h = node(&mut g, Op::Unary(UnaryOp::Relu), "hr", &[h], 32);
    let y = node(&mut g, Op::MatMul, "y", &[h, w2], 8);
    let y = node(&mut g, Op::Binary(BinaryOp::Add), "yb", &[y, b2], 8);
    let p = node(
        &mut g,
        Op::Softmax {
            axis: -1,
            coerce_2d: false,
        },
        "probs",
        &[y],
        8,
    );
    g.add_output(p, "probs");
    g
}

/// `libwhittle_rt.a`, built with this crate: the newest of `deps/libwhittle_rt-HASH.a`
/// (what `cargo test` writes) and `<profile>/libwhittle_rt.a` (what `cargo build` writes).
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let profile = deps.parent().unwrap_or(deps);
    let mut candidates = vec![profile.join("libwhittle_rt.a")];
    if let Ok(entries) = std::fs::read_dir(deps) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("libwhittle_rt") && name.ends_with(".a") {
                candidates.push(e.path());
            }
        }
    }
    candidates
        .iter()
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p.clone())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libwhittle_rt.a not found in {} or {}",
                deps.display(),
                profile.display()
            )
        })
}

/// `cc` (or `$CC`) builds `app` from C sources and objects with `dir` on the include path,
/// linked against `libwhittle_rt.a` the way the header says, warnings as errors.
fn link_c(dir: &Path, inputs: &[PathBuf], app: &Path) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(dir)
        .args(inputs)
        // The archive by path: under deps/ cargo names it libwhittle_rt-HASH.a.
        .arg(static_lib())
        .args([
            "-lm",
            "-lpthread",
            "-ldl",
            "-static-libgcc",
            "-Wl,--gc-sections",
            "-o",
        ])
        .arg(app)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut d, mut n) = (0f64, 0f64);
    for (&a, &b) in got.iter().zip(want) {
        d += (f64::from(a) - f64::from(b)).powi(2);
        n += f64::from(b).powi(2);
    }
    (d / n.max(1e-30)).sqrt()
}

#[test]
fn c_example_matches_the_reference_evaluator() {
    check_c_example(CpuTarget::Native);
}

/// An object for the x86-64-v3 level (AVX2 micro-kernel and packed layout, no AVX-512 in
/// the generated code) runs on this machine and gives the same answer.
#[test]
fn c_example_for_x86_64_v3_matches_too() {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        eprintln!("skipped: this CPU is below x86-64-v3");
        return;
    }
    check_c_example(CpuTarget::X86_64V3);
}

fn check_c_example(cpu: CpuTarget) {
    let dir = std::env::temp_dir().join(format!("whittle-aot-c-{}-{cpu:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = mlp();
    let opts = AotOptions {
        name: "model".into(),
        input_shapes: vec![("x".into(), vec![4, 16])],
        cpu,
    };
    let art = compile(&g, &opts).expect("AOT compile");
    assert_eq!(art.inputs[0].shape, vec![4, 16]);
    assert_eq!(art.outputs[0].shape, vec![4, 8]);
    std::fs::write(dir.join("model.o"), &art.object).unwrap();
    std::fs::write(dir.join("model.h"), &art.header).unwrap();
    assert!(art.header.contains("#define MODEL_WORKSPACE_SIZE"));
    // ReLU after the first GEMM's bias is a generated kernel, so the object carries code.
    assert!(art.kernels > 0, "the object should carry generated kernels");
    assert!(art
        .header
        .contains(&format!("0x{:016x}ULL", art.model_hash)));

    let x = Tensor::from_vec(vec![4, 16], weights(64, 9));
    std::fs::write(dir.join("in.bin"), x.to_le_bytes()).unwrap();
    let want = whittle_ir::eval::run(&g, &[("x", x)]).expect("reference runs");
    let want: Vec<f32> = want[0].1.as_slice::<f32>().expect("f32 output").to_vec();

    let app = dir.join("app");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let main_c = manifest.join("../examples/c/main.c");
    link_c(&dir, &[main_c, dir.join("model.o")], &app);
    let run = Command::new(&app)
        .arg(dir.join("in.bin"))
        .arg(dir.join("out.bin"))
        .arg("50")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(dir.join("out.bin")).unwrap();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got.len(), want.len());
    let err = rel_l2(&got, &want);
    println!("AOT vs ir::eval: rel L2 {err:.3e}");
    assert!(err <= 1e-5, "rel L2 {err}");

    // The same model through the in-process JIT, timed like the C program times PREFIX_run.
    let mut spec = g.clone();
    whittle_ir::infer::specialize(&mut spec, &[("x", vec![4, 16])]).expect("specialize");
    let exe = whittle_cpu::CpuExecutable::compile(&spec).expect("JIT compile");
    let x = Tensor::from_vec(vec![4, 16], weights(64, 9));
    let mut times: Vec<f64> = (0..50)
        .map(|_| {
            let t0 = std::time::Instant::now();
            whittle_runtime::Executable::run(&exe, &[("x", x.clone())]).expect("JIT run");
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("JIT (Rust API) latency_us p50 {:.1}", times[25]);

    // The program holds the generated kernels and the runtime, not the compiler.
    let nm = Command::new("nm").arg(&app).output().expect("nm");
    let syms = String::from_utf8_lossy(&nm.stdout);
    assert!(
        nm.status.success() && syms.contains("whittle_rt_run"),
        "nm failed"
    );
    for banned in ["cranelift", "whittle_cpu", "whittle_frontend", "prost"] {
        assert!(
            !syms.contains(banned),
            "the linked program contains {banned}"
        );
    }

    let ldd = Command::new("ldd").arg(&app).output().expect("ldd");
    let text = String::from_utf8_lossy(&ldd.stdout);
    println!("ldd:\n{text}");
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let lib = line.split_whitespace().next().unwrap_or("");
        let ok = [
            "linux-vdso",
            "libc.so",
            "libm.so",
            "libpthread.so",
            "libdl.so",
            "ld-linux",
            "/lib64/ld-linux",
        ]
        .iter()
        .any(|k| lib.contains(k));
        assert!(ok, "unexpected dynamic dependency: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two objects (different prefixes, different shapes) linked into one C program: each
/// entry point runs its own plan, and both match `ir::eval`.
#[test]
fn two_models_link_into_one_program() {
    let dir = std::env::temp_dir().join(format!("whittle-aot-two-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = mlp();
    let mut wants = Vec::new();
    for (name, batch) in [("wide", 4usize), ("narrow", 2)] {
        let opts = AotOptions {
            name: name.into(),
            input_shapes: vec![("x".into(), vec![batch, 16])],
            cpu: CpuTarget::Native,
        };
        let art = compile(&g, &opts).expect("AOT compile");
        std::fs::write(dir.join(format!("{name}.o")), &art.object).unwrap();
        std::fs::write(dir.join(format!("{name}.h")), &art.header).unwrap();
        let x = Tensor::from_vec(vec![batch, 16], weights(batch * 16, 5));
        let want = whittle_ir::eval::run(&g, &[("x", x)]).expect("reference runs");
        wants.push(want[0].1.as_slice::<f32>().expect("f32").to_vec());
    }
    // The C side regenerates the inputs with the same generator as `weights` (seed 5).
    let src = r#"
#include "wide.h"
#include "narrow.h"
#include <stdio.h>
#include <stdlib.h>
static void fill(float* v, int n, unsigned long long seed) {
    unsigned long long s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (float)(s >> 40) / (float)(1ULL << 24) - 0.5f;
    }
}
int main(void) {
    float xw[4 * 16], xn[2 * 16], yw[4 * 8], yn[2 * 8];
    fill(xw, 4 * 16, 5);
    fill(xn, 2 * 16, 5);
    void* ww = malloc(WIDE_WORKSPACE_SIZE);
    void* wn = malloc(NARROW_WORKSPACE_SIZE);
    const void* iw[1] = {xw}; void* ow[1] = {yw};
    const void* in_[1] = {xn}; void* on[1] = {yn};
    for (int r = 0; r < 3; r++) {
        if (wide_run(iw, ow, ww, WIDE_WORKSPACE_SIZE) != WIDE_OK) { fprintf(stderr, "wide: %s\n", whittle_rt_last_error()); return 1; }
        if (narrow_run(in_, on, wn, NARROW_WORKSPACE_SIZE) != NARROW_OK) { fprintf(stderr, "narrow: %s\n", whittle_rt_last_error()); return 1; }
    }
    for (int i = 0; i < 4 * 8; i++) printf("%.9g\n", yw[i]);
    for (int i = 0; i < 2 * 8; i++) printf("%.9g\n", yn[i]);
    return 0;
}
"#;
    std::fs::write(dir.join("two.c"), src).unwrap();
    let app = dir.join("two");
    let objects = ["two.c", "wide.o", "narrow.o"].map(|f| dir.join(f));
    link_c(&dir, &objects, &app);
    let run = Command::new(&app).output().expect("run the program");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Vec<f32> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| l.parse().expect("a float per line"))
        .collect();
    assert_eq!(got.len(), 32 + 16);
    assert!(rel_l2(&got[..32], &wants[0]) <= 1e-5, "wide");
    assert!(rel_l2(&got[32..], &wants[1]) <= 1e-5, "narrow");
    let _ = std::fs::remove_dir_all(&dir);
}
