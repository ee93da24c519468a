//! Builds `tests/c/test_capi.c` against `libwhittle_capi.a` with the system C compiler
//! (`$CC`, else `cc`), runs it on models this test writes, and checks that every C check
//! passed and that no error path aborted the process.

use std::path::{Path, PathBuf};
use std::process::Command;
use whittle::ir::{BinaryOp, Graph, Op, TensorType, UnaryOp, Value, ValueInfo};
use whittle::{DType, Dim, Model, Tensor};

/// `y = relu(x @ W + b)`, `x: f32[batch, 3]`, W = [[1,0],[0,1],[1,-1]], b = [0.5,-0.5]
/// (the values `test_capi.c` checks).
fn tiny_graph() -> Graph {
    let mut g = Graph::new("tiny");
    let batch = Dim::Sym("batch".into());
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![batch.clone(), Dim::Known(3)]),
    );
    let w = g.add_const(
        "W",
        Tensor::from_vec(vec![3, 2], vec![1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0]),
    );
    let b = g.add_const("b", Tensor::from_vec(vec![2], vec![0.5f32, -0.5]));
    let ty = TensorType::new(DType::F32, vec![batch, Dim::Known(2)]);
    let node = |g: &mut Graph, op: Op, name: &str, ins: &[Value]| {
        let ins: Vec<Option<Value>> = ins.iter().copied().map(Some).collect();
        let out = ValueInfo {
            name: name.into(),
            ty: ty.clone(),
        };
        Value::new(g.add_node(op, name, &ins, vec![out]), 0)
    };
    let mm = node(&mut g, Op::MatMul, "mm", &[x, w]);
    let add = node(&mut g, Op::Binary(BinaryOp::Add), "add", &[mm, b]);
    let y = node(&mut g, Op::Unary(UnaryOp::Relu), "y", &[add]);
    g.add_output(y, "y");
    g
}

fn save(g: Graph, path: &Path) {
    let m = Model::from_graph(g).expect("valid graph");
    whittle::frontend::save_model(m.onnx_model(), path, &Default::default())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The static library built with this test: `cargo test` writes the crate's artifacts to
/// `<target>/<profile>/deps/` (where this test binary runs from) and `cargo build` to
/// `<target>/<profile>/`; the newer of the two wins. Works with any `CARGO_TARGET_DIR`.
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let candidates = [
        deps.to_path_buf(),
        deps.parent().unwrap_or(deps).to_path_buf(),
    ];
    let found = candidates
        .iter()
        .map(|d| d.join("libwhittle_capi.a"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max();
    match found {
        Some((_, p)) => p,
        None => panic!(
            "libwhittle_capi.a not found in {candidates:?}: it is built with the crate \
             (crate-type staticlib)"
        ),
    }
}

#[test]
fn c_program_passes_every_check() {
    let lib = static_lib();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let probe = Command::new(&cc).arg("--version").output();
    assert!(
        matches!(&probe, Ok(o) if o.status.success()),
        "no working C compiler: '{cc} --version' failed ({probe:?}); install gcc or set CC"
    );

    let dir = std::env::temp_dir().join(format!("whittle-capi-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = dir.join("tiny.onnx");
    let demo = dir.join("demo.onnx");
    let expected = dir.join("demo_expected.f32");
    save(tiny_graph(), &tiny);
    let g = whittle::demo::build_demo_graph();
    let inputs = whittle::demo::demo_inputs();
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let want = whittle::ir::eval::run(&g, &named).expect("demo runs");
    std::fs::write(&expected, want[0].1.to_le_bytes()).unwrap();
    save(g, &demo);

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = dir.join("test_capi");
    let compile = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(manifest.join("include"))
        .arg(manifest.join("tests/c/test_capi.c"))
        .arg(&lib)
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        compile.status.success(),
        "compiling test_capi.c failed:\n{}",
        String::from_utf8_lossy(&compile.stderr)
    );

    let run = Command::new(&exe)
        .args([&tiny, &demo, &expected])
        .output()
        .expect("run test_capi");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    std::fs::remove_dir_all(&dir).ok();
    // A signal (abort, segfault) leaves no exit code.
    assert!(
        run.status.code().is_some(),
        "test_capi was killed by a signal ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );
    assert!(
        run.status.success() && stdout.contains("ALL OK"),
        "test_capi failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );
    println!("{stdout}");
    let checks: usize = stdout
        .split_once("test_capi: ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        checks > 100,
        "expected over 100 C checks, saw {checks}:\n{stdout}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic reached the boundary:\n{stderr}"
    );
}
