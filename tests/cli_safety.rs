//! The CLI's output safety and argument bounds (issue 9): no command writes over its input
//! model or through a symlink planted at an output, two outputs never share a file, `-o`,
//! `--header` and `--external-data` must differ, `--iters`, `--threads` and `--opset` are
//! bounded, `--max-memory` reaches the limits, every error is one line, and hostile tensor
//! names cannot inject C into a generated header.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use whittle::frontend::{save_model, ExportOptions, Model};
use whittle::ir::{DType, Graph, Op, Tensor, TensorType, UnaryOp, Value, ValueInfo};
use whittle::runtime::npy::{read_npy, write_npy};

mod common;
use common::{fails_with, tmp, whittle};

/// Runs whittle expecting success; returns stdout and stderr.
fn succeeds(args: &[&str]) -> (String, String) {
    let (code, out, err) = whittle(args);
    assert_eq!(code, 0, "whittle {args:?} failed: {err}");
    (out, err)
}

/// `x: f32[2,3]` (named `input`) → one unary op per entry of `outputs`, each a graph output.
fn unary_model(path: &Path, input: &str, outputs: &[(&str, UnaryOp)]) -> PathBuf {
    let mut g = Graph::new("m");
    let ty = TensorType::fixed(DType::F32, &[2, 3]);
    let x = g.add_input(input, ty.clone());
    for (i, (name, op)) in outputs.iter().enumerate() {
        let info = ValueInfo {
            name: (*name).into(),
            ty: ty.clone(),
        };
        let id = g.add_node(Op::Unary(*op), format!("n{i}"), &[Some(x)], vec![info]);
        g.add_output(Value::new(id, 0), *name);
    }
    save_model(&Model::from_graph(g), path, &ExportOptions::default()).unwrap();
    path.to_path_buf()
}

/// x: f32[2,3] → Relu → y, in `dir/relu.onnx`.
fn relu_model(dir: &Path) -> PathBuf {
    unary_model(&dir.join("relu.onnx"), "x", &[("y", UnaryOp::Relu)])
}

const X: [f32; 6] = [-1.0, 2.0, -3.0, 4.0, 0.0, 6.0];

fn x_npy(dir: &Path) -> String {
    let p = dir.join("x.npy");
    write_npy(&p, &Tensor::from_vec(vec![2, 3], X.to_vec())).unwrap();
    p.display().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// No staging directory may be left behind in `dir`.
fn no_leftovers(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".whittle-tmp"), "left behind: {name}");
    }
}

#[test]
fn optimize_never_writes_over_its_input() {
    let d = tmp("optimize");
    let m = relu_model(&d);
    let original = std::fs::read(&m).unwrap();
    let out = d.join("o.onnx");
    let sub = d.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    fails_with(&["optimize", s(&m), "-o", s(&m)], "is the input model");
    let dotted = sub.join("../relu.onnx");
    fails_with(&["optimize", s(&m), "-o", s(&dotted)], "is the input model");
    let hard = d.join("hard.onnx");
    std::fs::hard_link(&m, &hard).unwrap();
    fails_with(&["optimize", s(&m), "-o", s(&hard)], "is the input model");
    // The external data file lives next to the output: here, the input model itself.
    fails_with(
        &[
            "optimize",
            s(&m),
            "-o",
            s(&out),
            "--external-data",
            "relu.onnx",
        ],
        "--external-data",
    );
    fails_with(
        &[
            "optimize",
            s(&m),
            "-o",
            s(&out),
            "--external-data",
            "o.onnx",
        ],
        "are the same file",
    );
    assert_eq!(
        std::fs::read(&m).unwrap(),
        original,
        "the input model changed"
    );
    assert!(!out.exists(), "a refused command wrote its output");
    no_leftovers(&d);

    // The ordinary case still works, with external data, through a planted symlink.
    let victim = d.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    succeeds(&[
        "optimize",
        s(&m),
        "-o",
        s(&out),
        "--external-data",
        "o.data",
    ]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&out)
        .unwrap()
        .file_type()
        .is_file());
    let (stdout, _) = succeeds(&["inspect", s(&out)]);
    assert!(stdout.contains("Relu"), "{stdout}");
    no_leftovers(&d);
}

#[test]
fn optimize_never_writes_over_the_inputs_external_data() {
    let d = tmp("ext-input");
    // y = x + w with a 4 KiB weight, large enough to be written as external data.
    let mut g = Graph::new("add");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[1024]));
    let w = g.add_const("w", Tensor::from_vec(vec![1024], vec![0.5f32; 1024]));
    let ty = TensorType::fixed(DType::F32, &[1024]);
    let id = g.add_node(
        Op::Binary(whittle::ir::BinaryOp::Add),
        "add",
        &[Some(x), Some(w)],
        vec![ValueInfo {
            name: "y".into(),
            ty,
        }],
    );
    g.add_output(Value::new(id, 0), "y");
    let m = d.join("m.onnx");
    save_model(&Model::from_graph(g), &m, &ExportOptions::default()).unwrap();
    let a = d.join("a.onnx");
    succeeds(&[
        "optimize",
        s(&m),
        "-o",
        s(&a),
        "--passes",
        "none",
        "--external-data",
        "a.data",
    ]);
    let data = std::fs::read(d.join("a.data")).expect("a.data written");
    // a.onnx reads its weights from a.data: writing another model's data there is refused.
    let b = d.join("b.onnx");
    fails_with(
        &[
            "optimize",
            s(&a),
            "-o",
            s(&b),
            "--passes",
            "none",
            "--external-data",
            "a.data",
        ],
        "external data",
    );
    assert_eq!(
        std::fs::read(d.join("a.data")).unwrap(),
        data,
        "a.data changed"
    );
    assert!(!b.exists());
    succeeds(&[
        "optimize",
        s(&a),
        "-o",
        s(&b),
        "--passes",
        "none",
        "--external-data",
        "b.data",
    ]);
    no_leftovers(&d);
}

#[test]
fn compile_outputs_must_differ() {
    let d = tmp("compile");
    let m = relu_model(&d);
    let original = std::fs::read(&m).unwrap();
    let obj = d.join("x.o");
    fails_with(
        &["compile", s(&m), "-o", s(&obj), "--header", s(&obj)],
        "are the same file",
    );
    fails_with(&["compile", s(&m), "-o", s(&m)], "is the input model");
    fails_with(
        &["compile", s(&m), "-o", s(&obj), "--header", s(&m)],
        "is the input model",
    );
    assert_eq!(std::fs::read(&m).unwrap(), original);
    assert!(!obj.exists());
    no_leftovers(&d);
}

#[test]
fn run_replaces_a_planted_symlink_instead_of_writing_through_it() {
    let d = tmp("symlink");
    let m = relu_model(&d);
    let x = x_npy(&d);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = d.join("victim.txt");
    std::fs::write(&victim, b"do not touch").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("y.npy")).unwrap();
    succeeds(&["run", s(&m), "-i", &format!("x={x}"), "-o", s(&out)]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    let y = out.join("y.npy");
    assert!(std::fs::symlink_metadata(&y).unwrap().file_type().is_file());
    let t = read_npy(&y).unwrap();
    assert_eq!(
        t.as_slice::<f32>().unwrap(),
        &[0.0, 2.0, 0.0, 4.0, 0.0, 6.0]
    );
    no_leftovers(&out);
}

#[test]
fn run_never_writes_over_its_model_or_inputs() {
    let d = tmp("run-inputs");
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The model is where the output `y` would go.
    let m = unary_model(&out.join("y.npy"), "x", &[("y", UnaryOp::Relu)]);
    let original = std::fs::read(&m).unwrap();
    let x = x_npy(&d);
    fails_with(
        &["run", s(&m), "-i", &format!("x={x}"), "-o", s(&out)],
        "is the input model",
    );
    assert_eq!(std::fs::read(&m).unwrap(), original);
    // The input file is where the output `y` would go.
    let m = relu_model(&d);
    let y = out.join("y.npy");
    std::fs::remove_file(&y).unwrap();
    write_npy(&y, &Tensor::from_vec(vec![2, 3], X.to_vec())).unwrap();
    fails_with(
        &[
            "run",
            s(&m),
            "-i",
            &format!("x={}", y.display()),
            "-o",
            s(&out),
        ],
        "refusing to overwrite it",
    );
    assert_eq!(read_npy(&y).unwrap().as_slice::<f32>().unwrap(), &X);
    no_leftovers(&out);
}

#[test]
fn two_outputs_with_one_file_name_are_both_written() {
    let d = tmp("clash");
    let m = unary_model(
        &d.join("two.onnx"),
        "x",
        &[("a/b", UnaryOp::Relu), ("a:b", UnaryOp::Neg)],
    );
    let x = x_npy(&d);
    let out = d.join("out");
    let (stdout, stderr) = succeeds(&["run", s(&m), "-i", &format!("x={x}"), "-o", s(&out)]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("'a:b'") && stderr.contains("a_b_1.npy"),
        "{stderr}"
    );
    assert!(
        stdout.contains("a_b.npy") && stdout.contains("a_b_1.npy"),
        "{stdout}"
    );
    let relu = read_npy(&out.join("a_b.npy")).unwrap();
    assert_eq!(
        relu.as_slice::<f32>().unwrap(),
        &[0.0, 2.0, 0.0, 4.0, 0.0, 6.0]
    );
    let neg = read_npy(&out.join("a_b_1.npy")).unwrap();
    assert_eq!(
        neg.as_slice::<f32>().unwrap(),
        &[1.0, -2.0, 3.0, -4.0, -0.0, -6.0]
    );
}

#[test]
fn bench_iterations_are_bounded() {
    let d = tmp("bench");
    let m = relu_model(&d);
    for flag in ["--iters", "--warmup"] {
        fails_with(
            &["bench", s(&m), flag, "18446744073709551615"],
            &format!("{flag} 18446744073709551615 is over the limit of 10000000 runs"),
        );
    }
    let (out, _) = succeeds(&["bench", s(&m), "--iters", "3", "--warmup", "1"]);
    assert!(out.contains("latency over 3 runs"), "{out}");
}

#[test]
fn threads_are_capped_quickly() {
    let d = tmp("threads");
    let m = relu_model(&d);
    let x = x_npy(&d);
    let out = d.join("out");
    let t = Instant::now();
    fails_with(
        &[
            "run",
            s(&m),
            "-i",
            &format!("x={x}"),
            "-o",
            s(&out),
            "--threads",
            "100000",
        ],
        "--threads 100000 is over the limit of",
    );
    fails_with(
        &["bench", s(&m), "--threads", "100000"],
        "(8 per core, at most 1024)",
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(!out.exists());
    succeeds(&[
        "run",
        s(&m),
        "-i",
        &format!("x={x}"),
        "-o",
        s(&out),
        "--threads",
        "2",
    ]);
}

#[test]
fn opsets_beyond_the_frontend_are_refused() {
    let d = tmp("opset");
    let m = relu_model(&d);
    let out = d.join("o.onnx");
    let max = whittle::frontend::MAX_OPSET;
    let over = (max + 1).to_string();
    for bad in ["99", over.as_str(), "12", "-1"] {
        fails_with(
            &["optimize", s(&m), "-o", s(&out), &format!("--opset={bad}")],
            &format!("whittle writes opsets 13 to {max}"),
        );
    }
    assert!(!out.exists());
    // The newest accepted opset round-trips through whittle itself.
    succeeds(&[
        "optimize",
        s(&m),
        "-o",
        s(&out),
        "--opset",
        &max.to_string(),
    ]);
    let (stdout, _) = succeeds(&["inspect", s(&out)]);
    assert!(stdout.contains("Relu"), "{stdout}");
}

#[test]
fn every_error_is_one_line() {
    let d = tmp("one-line");
    let m = relu_model(&d);
    // A .npy whose header is not a Python literal (npyz would quote a multi-line report).
    let header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, @@@), }";
    let mut h = header.to_vec();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&[0; 24]);
    let bad = d.join("bad.npy");
    std::fs::write(&bad, &bytes).unwrap();
    let out = d.join("out");
    fails_with(
        &[
            "run",
            s(&m),
            "-i",
            &format!("x={}", bad.display()),
            "-o",
            s(&out),
        ],
        "not a valid .npy file",
    );
    // A --name with a line break: refused as not a C identifier, still on one line.
    let obj = d.join("m.o");
    fails_with(
        &["compile", s(&m), "-o", s(&obj), "--name", "a\nb"],
        "--name 'a\\nb' is not a C identifier",
    );
    fails_with(
        &["compile", s(&m), "-o", s(&obj), "--name", "1abc"],
        "is not a C identifier",
    );
    // A model path with a line break in it is quoted on one line too.
    fails_with(&["inspect", "no\nsuch.onnx"], "such.onnx");
    // Command-line errors from the argument parser, folded the same way.
    fails_with(&["run", s(&m)], "--output-dir");
    fails_with(&["bench", s(&m), "--iters", "many"], "invalid value 'many'");
    assert!(!obj.exists());
}

#[test]
fn max_memory_is_a_global_option() {
    let d = tmp("max-memory");
    let m = relu_model(&d);
    fails_with(
        &["bench", s(&m), "--max-memory", "lots"],
        "--max-memory: 'lots' is not a memory size",
    );
    fails_with(&["--max-memory", "0", "inspect", s(&m)], "must be positive");
    // bench's synthetic input (6 f32 values, generated as 48 bytes of f64) is over 40 bytes.
    fails_with(
        &["--max-memory", "40", "bench", s(&m), "--iters", "1"],
        "over the memory limit of 40 bytes",
    );
    succeeds(&["bench", s(&m), "--iters", "1", "--max-memory", "8G"]);
    succeeds(&["inspect", s(&m), "--max-memory", "512MiB"]);
}

/// Names that try to end a comment, start a directive or break a string literal, compiled
/// through `whittle compile --header`; the header must compile and hold the exact bytes.
#[test]
fn hostile_names_cannot_inject_into_the_header() {
    let d = tmp("header");
    let input = "x */ int injected = 42; void injected_fn(void){} /*";
    let output = "y\"\\\n#define RELU_OK 9\n\u{e9}1 ??/";
    let m = unary_model(&d.join("relu.onnx"), input, &[(output, UnaryOp::Relu)]);
    let obj = d.join("relu.o");
    let header = d.join("relu.h");
    succeeds(&["compile", s(&m), "-o", s(&obj), "--header", s(&header)]);
    assert!(obj.exists());
    let bytes = |t: &str| {
        t.bytes()
            .map(|b| format!("0x{b:02x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let main = format!(
        "#include <string.h>\n#include \"relu.h\"\n\
         int injected = 0;\nvoid injected_fn(void) {{}}\n\
         static const unsigned char in0[] = {{{}}};\n\
         static const unsigned char out0[] = {{{}}};\n\
         #if RELU_OK != 0\n#error RELU_OK was redefined\n#endif\n\
         int main(void) {{\n\
           injected_fn();\n\
           if (sizeof(RELU_INPUT0_NAME) != sizeof in0 + 1 || memcmp(RELU_INPUT0_NAME, in0, sizeof in0)) return 1;\n\
           if (sizeof(RELU_OUTPUT0_NAME) != sizeof out0 + 1 || memcmp(RELU_OUTPUT0_NAME, out0, sizeof out0)) return 2;\n\
           return injected;\n\
         }}\n",
        bytes(input),
        bytes(output)
    );
    std::fs::write(d.join("main.c"), main).unwrap();
    let exe = d.join("main");
    let cc = Command::new("cc")
        .current_dir(&d)
        .args(["-std=c11", "-trigraphs", "-Wall", "-Werror", "main.c", "-o"])
        .arg(&exe)
        .output()
        .expect("cc is needed for this test");
    let h = std::fs::read_to_string(&header).unwrap();
    assert!(
        cc.status.success(),
        "{}\n{h}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let st = Command::new(&exe).status().unwrap();
    assert!(st.success(), "name bytes differ ({st}):\n{h}");
}
