//! Crafted models and inputs (issue 9): every case runs through the CLI on the `reference`
//! and `cpu` backends, `optimize` and `compile`, under an 8 GB address-space limit
//! (`ulimit -v 8000000`) and a 10 s timeout. Each must give the right answer or one
//! `error:` line — never a signal, a panic, an allocation abort or a hang.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use whittle::frontend::{save_model, ExportOptions, Model};
use whittle::ir::{text::parse_graph, Tensor};
use whittle::runtime::npy::{read_npy, write_npy};

mod common;
use common::tmp;

/// How one CLI invocation ended.
struct Outcome {
    code: i32,
    stderr: String,
}

/// Runs whittle with `ulimit -v 8000000` and kills it after 10 s (a hang fails the test).
fn whittle(args: &[&str]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whittle"));
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 8_000_000 * 1024,
                rlim_max: 8_000_000 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hang: whittle {args:?} ran over 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    let code = match status.code() {
        Some(c) => c,
        None => panic!("whittle {args:?} died by a signal ({status:?}); stderr: {stderr}"),
    };
    assert!(
        !stderr.contains("panicked") && !stderr.contains("memory allocation of"),
        "whittle {args:?} panicked or aborted: {stderr}"
    );
    Outcome { code, stderr }
}

/// Either success, or exactly one `error:` line on stderr.
fn clean(args: &[&str]) -> Outcome {
    let o = whittle(args);
    if o.code != 0 {
        let lines: Vec<&str> = o
            .stderr
            .lines()
            .filter(|l| !l.starts_with("warning:"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "whittle {args:?}: expected one error line, got: {}",
            o.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "whittle {args:?}: {}",
            o.stderr
        );
    }
    o
}

/// Fails with one error line containing `needle`.
fn refuses(args: &[&str], needle: &str) {
    let o = clean(args);
    assert_ne!(o.code, 0, "whittle {args:?} should have failed");
    assert!(
        o.stderr.contains(needle),
        "whittle {args:?}: expected '{needle}' in: {}",
        o.stderr
    );
}

fn model(dir: &Path, name: &str, text: &str) -> PathBuf {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let p = dir.join(format!("{name}.onnx"));
    save_model(&Model::from_graph(g), &p, &ExportOptions::default()).unwrap();
    p
}

fn npy(dir: &Path, name: &str, t: &Tensor) -> String {
    let p = dir.join(format!("{name}.npy"));
    write_npy(&p, t).unwrap();
    p.to_str().unwrap().to_string()
}

/// `whittle compile m -o dir/m.o --header dir/m.h EXTRA...` (one line or success).
fn compile(dir: &Path, m: &Path, extra: &[&str]) -> Outcome {
    let obj = dir.join("m.o");
    let hdr = dir.join("m.h");
    let mut args = vec!["compile", m.to_str().unwrap(), "-o", obj.to_str().unwrap()];
    args.extend(["--header", hdr.to_str().unwrap()]);
    args.extend(extra);
    clean(&args)
}

/// Runs `m` on both backends with the given `--input` arguments; both must fail with a
/// message containing `needle`. Then `optimize` and `compile` must be clean (right or one
/// error line).
fn refused_everywhere(dir: &Path, m: &Path, inputs: &[String], needle: &str) {
    for backend in ["reference", "cpu"] {
        let (o, _) = run_on(backend, dir, m, inputs);
        assert_ne!(o.code, 0, "{backend} should have failed on {}", m.display());
        assert!(
            o.stderr.contains(needle),
            "{backend}: expected '{needle}' in: {}",
            o.stderr
        );
    }
    let ms = m.to_str().unwrap();
    let opt = dir.join("opt.onnx");
    clean(&["optimize", ms, "-o", opt.to_str().unwrap()]);
    compile(dir, m, &[]);
}

/// `whittle run m --backend B --output-dir dir/out-B` with these `--input`s (one line or
/// success); the outcome and the output directory.
fn run_on(backend: &str, dir: &Path, m: &Path, inputs: &[String]) -> (Outcome, PathBuf) {
    let out = dir.join(format!("out-{backend}"));
    let _ = std::fs::remove_dir_all(&out);
    let mut args = vec![
        "run",
        m.to_str().unwrap(),
        "--backend",
        backend,
        "--output-dir",
    ];
    args.push(out.to_str().unwrap());
    for i in inputs {
        args.extend(["--input", i.as_str()]);
    }
    (clean(&args), out)
}

/// Runs `m` on both backends and returns the named output of each.
fn run_both(dir: &Path, m: &Path, inputs: &[String], output: &str) -> [Tensor; 2] {
    ["reference", "cpu"].map(|backend| {
        let (o, out) = run_on(backend, dir, m, inputs);
        assert_eq!(o.code, 0, "{backend}: {}", o.stderr);
        read_npy(&out.join(format!("{output}.npy"))).unwrap()
    })
}

#[test]
fn expand_and_tile_to_wrapping_shapes_are_refused() {
    let d = tmp("wrap");
    let x = npy(&d, "x", &Tensor::from_vec(vec![1, 1], vec![1.0f32]));
    for (op, k) in [
        ("Expand", "[4294967296, 4294967296]"),
        ("Tile", "[4294967296, 4294967296]"),
    ] {
        for end in ["[1, 64]", "[2, 2]"] {
            let text = format!(
                "graph \"g\" {{
  input %x: f32[1,1]
  %s = const i64[2] {k}
  %e = {op} %x, %s : f32[a,b]
  %st = const i64[2] [0, 0]
  %en = const i64[2] {end}
  %y = Slice %e, %st, %en : f32[c,d]
  output %y
}}"
            );
            let m = model(&d, op, &text);
            refused_everywhere(
                &d,
                &m,
                &[format!("x={x}")],
                "more elements than memory can address",
            );
        }
    }
}

/// The `.npy` header claims (2^63 + 1) × 2 elements and holds 8 bytes: the product wraps to 2.
fn wrapping_npy(dir: &Path) -> String {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775809, 2), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    bytes.extend([0u8; 8]);
    let p = dir.join("wrap.npy");
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn wrapping_npy_shapes_are_refused() {
    let d = tmp("npy");
    let x = wrapping_npy(&d);
    for body in [
        "%y = Transpose(perm:None) %x : f32[m,n]",
        "%st = const i64[2] [0, 0]\n  %en = const i64[2] [2, 2]\n  %y = Slice %x, %st, %en : f32[m,n]",
        "%y = Reduce(op:Sum,keepdims:true,noop_with_empty_axes:false) %x : f32[m,n]",
    ] {
        let text = format!("graph \"g\" {{\n  input %x: f32[a,b]\n  {body}\n  output %y\n}}");
        let m = model(&d, "npy", &text);
        for backend in ["reference", "cpu"] {
            let out = d.join("out");
            refuses(
                &["run", m.to_str().unwrap(), "--backend", backend, "--input", &format!("x={x}"),
                  "--output-dir", out.to_str().unwrap()],
                "more elements than memory can address",
            );
        }
    }
}

/// A chain of `n` unary nodes: `Neg` and `Abs` alternating, so the answer is `|x|`·(-1)^k.
fn chain(n: usize) -> String {
    let mut s = String::from("graph \"g\" {\n  input %x: f32[2,3]\n");
    let mut prev = "x".to_string();
    for i in 0..n {
        let op = if i % 2 == 0 { "Neg" } else { "Abs" };
        s += &format!("  %v{i} = Unary({op}) %{prev} : f32[2,3]\n");
        prev = format!("v{i}");
    }
    s += &format!("  output %{prev}\n}}");
    s
}

#[test]
fn long_elementwise_chains_compile_and_run() {
    let d = tmp("chain");
    let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, -2.0, 3.0, -4.0, 0.5, -0.0]);
    let xs = npy(&d, "x", &x);
    let m = model(&d, "chain", &chain(20_001));
    let [r, c] = run_both(&d, &m, &[format!("x={xs}")], "v20000");
    let want: Vec<f32> = x
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .map(|v| -v.abs())
        .collect();
    assert_eq!(r.as_slice::<f32>().unwrap(), &want[..]);
    assert_eq!(c.as_slice::<f32>().unwrap(), &want[..]);
    let o = compile(&d, &m, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn model_sized_allocations_are_refused() {
    let d = tmp("mem");
    let x = npy(&d, "x", &Tensor::from_vec(vec![1, 1], vec![1.0f32]));
    let x4 = npy(&d, "x4", &Tensor::from_vec(vec![1, 1, 1, 1], vec![1.0f32]));
    let cases: [(&str, &str, &String); 7] = [
        ("expand", "%s = const i64[2] [1000000, 1000000]\n  %y = Expand %x, %s : f32[a,b]", &x),
        ("tile", "%s = const i64[2] [1000000, 1000000]\n  %y = Tile %x, %s : f32[a,b]", &x),
        ("pad", "%p = const i64[4] [0, 0, 1000000, 1000000]\n  %y = Pad(mode:Constant) %x, %p : f32[a,b]", &x),
        ("pad-edge", "%p = const i64[4] [1000000, 1000000, 1000000, 1000000]\n  %y = Pad(mode:Edge) %x, %p : f32[a,b]", &x),
        ("matmul", "%a = Tile %x, %s1 : f32[p,q]\n  %b = Tile %x, %s2 : f32[r,t]\n  %y = MatMul %a, %b : f32[a,b]", &x),
        ("conv", "%w = const f32[1,1,1,1] [1.0]\n  %y = Conv(window:(auto_pad:NotSet,kernel_shape:[],strides:[],dilations:[],pads:[1000000,1000000,1000000,1000000]),group:1) %x, %w : f32[a,b,c,e]", &x4),
        ("resize", "%sc = const f32[4] [1.0, 1.0, 100000.0, 100000.0]\n  %y = Resize((mode:Nearest,coord:Asymmetric,nearest:Floor,cubic_coeff_a:-0.75,exclude_outside:false,extrapolation_value:0.0,antialias:false,axes:None,aspect:Stretch)) %x, _, %sc : f32[a,b,c,e]", &x4),
    ];
    for (name, body, input) in cases {
        let rank4 = input == &x4;
        let text = format!(
            "graph \"g\" {{\n  input %x: f32[{}]\n  %s1 = const i64[2] [1000000, 1]\n  %s2 = const i64[2] [1, 1000000]\n  {body}\n  output %y\n}}",
            if rank4 { "1,1,1,1" } else { "1,1" }
        );
        let m = match parse_graph(&text) {
            Ok(_) => model(&d, name, &text),
            Err(e) => panic!("{name}: {e}"),
        };
        refused_everywhere(&d, &m, &[format!("x={input}")], "bytes");
    }
}

#[test]
fn constant_of_shape_over_the_budget_is_refused() {
    let d = tmp("cos");
    let x = npy(&d, "x", &Tensor::from_vec(vec![1, 1], vec![1.0f32]));
    // A constant shape (folded at compile time) ...
    let m = model(&d, "cos", "graph \"g\" {\n  input %x: f32[1,1]\n  %s = const i64[2] [1000000, 1000000]\n  %c = ConstantOfShape(value:(shape:[1],data:F32([1.0]))) %s : f32[a,b]\n  %y = Binary(Add) %c, %x : f32[a,b]\n  output %y\n}");
    refused_everywhere(&d, &m, &[format!("x={x}")], "bytes");
    // ... and a shape given as an input value.
    let s = npy(
        &d,
        "s",
        &Tensor::from_vec(vec![2], vec![1_000_000i64, 1_000_000]),
    );
    let m = model(&d, "cos-in", "graph \"g\" {\n  input %s: i64[2]\n  %y = ConstantOfShape(value:(shape:[1],data:F32([1.0]))) %s : f32[a,b]\n  output %y\n}");
    refused_everywhere(&d, &m, &[format!("s={s}")], "bytes");
}

#[test]
fn compile_refuses_wrapping_input_shapes() {
    let d = tmp("shape");
    let m = model(
        &d,
        "relu",
        "graph \"g\" {\n  input %x: f32[a,b]\n  %y = Unary(Relu) %x : f32[a,b]\n  output %y\n}",
    );
    let o = compile(&d, &m, &["--input-shape", "x=4294967296x4294967296"]);
    assert_ne!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("more elements than memory can address"),
        "{}",
        o.stderr
    );
}

#[test]
fn bench_refuses_huge_declared_inputs() {
    let d = tmp("bench");
    let m = model(&d, "big", "graph \"g\" {\n  input %x: f32[100000,100000]\n  %y = Unary(Relu) %x : f32[100000,100000]\n  output %y\n}");
    for backend in ["reference", "cpu"] {
        refuses(
            &[
                "bench",
                m.to_str().unwrap(),
                "--backend",
                backend,
                "--iters",
                "1",
            ],
            "bytes",
        );
    }
}

#[test]
fn integer_division_by_zero_is_an_error() {
    let d = tmp("div");
    let a = npy(&d, "a", &Tensor::from_vec(vec![3], vec![7i64, 8, 9]));
    let b = npy(&d, "b", &Tensor::from_vec(vec![3], vec![1i64, 0, 3]));
    for op in ["Div", "Mod", "FMod"] {
        let m = model(&d, op, &format!(
            "graph \"g\" {{\n  input %a: i64[3]\n  input %b: i64[3]\n  %y = Binary({op}) %a, %b : i64[3]\n  output %y\n}}"
        ));
        refused_everywhere(
            &d,
            &m,
            &[format!("a={a}"), format!("b={b}")],
            "division by zero",
        );
    }
    let e = npy(&d, "e", &Tensor::from_vec(vec![3], vec![1i64, -1, 2]));
    let m = model(&d, "pow", "graph \"g\" {\n  input %a: i64[3]\n  input %b: i64[3]\n  %y = Binary(Pow) %a, %b : i64[3]\n  output %y\n}");
    refused_everywhere(&d, &m, &[format!("a={a}"), format!("b={e}")], "negative");
}

/// Cases where the cpu backend used to disagree with the reference.
#[test]
fn cpu_agrees_with_reference_on_edge_cases() {
    let d = tmp("agree");
    let x = Tensor::from_vec(vec![2, 5], (0..10).map(|v| v as f32).collect());
    let xs = npy(&d, "x", &x);
    for (st, en, step) in [
        (0, 5, i64::MAX),
        (4, -10, i64::MIN),
        (i64::MAX, i64::MIN, -1),
        (i64::MIN, i64::MAX, i64::MAX),
        (-1, i64::MIN, i64::MIN + 1),
    ] {
        let m = model(&d, "slice", &format!(
            "graph \"g\" {{\n  input %x: f32[2,5]\n  %s = const i64[1] [{st}]\n  %e = const i64[1] [{en}]\n  %a = const i64[1] [1]\n  %k = const i64[1] [{step}]\n  %y = Slice %x, %s, %e, %a, %k : f32[2,n]\n  output %y\n}}"
        ));
        let [r, c] = run_both(&d, &m, &[format!("x={xs}")], "y");
        assert_eq!(r, c, "Slice({st}, {en}, {step})");
    }
    // Edge padding of an empty axis has nothing to repeat: refused or equal on both.
    let e = npy(&d, "e", &Tensor::from_vec(vec![0, 3], Vec::<f32>::new()));
    let m = model(&d, "pad", "graph \"g\" {\n  input %x: f32[0,3]\n  %p = const i64[4] [1, 0, 1, 0]\n  %y = Pad(mode:Edge) %x, %p : f32[a,3]\n  output %y\n}");
    agree_or_both_refuse(&d, &m, &[format!("x={e}")]);
    // TopK over NaN: NaN sorts as the largest value (onnxruntime and numpy agree).
    let t = npy(
        &d,
        "t",
        &Tensor::from_vec(vec![1, 6], vec![1.0f32, f32::NAN, 3.0, -1.0, f32::NAN, 2.0]),
    );
    for largest in [true, false] {
        let m = model(&d, "topk", &format!(
            "graph \"g\" {{\n  input %x: f32[1,6]\n  %k = const i64[1] [3]\n  %v, %i = TopK(axis:1,largest:{largest},sorted:true) %x, %k : f32[1,3], i64[1,3]\n  output %v\n  output %i\n}}"
        ));
        let ref_i = run_both(&d, &m, &[format!("x={t}")], "i");
        assert_eq!(ref_i[0], ref_i[1], "TopK indices, largest={largest}");
    }
    // A 0×0 convolution kernel is refused by both.
    let x4 = npy(
        &d,
        "x4",
        &Tensor::from_vec(vec![1, 1, 2, 2], vec![1.0f32; 4]),
    );
    let m = model(&d, "conv0", "graph \"g\" {\n  input %x: f32[1,1,2,2]\n  %w = const f32[1,1,0,0] []\n  %y = Conv(window:(auto_pad:NotSet,kernel_shape:[],strides:[],dilations:[],pads:[]),group:1) %x, %w : f32[a,b,c,e]\n  output %y\n}");
    agree_or_both_refuse(&d, &m, &[format!("x={x4}")]);
}

/// Both backends refuse, or both give the same output `y`.
fn agree_or_both_refuse(dir: &Path, m: &Path, inputs: &[String]) {
    let res = ["reference", "cpu"].map(|backend| {
        let (o, out) = run_on(backend, dir, m, inputs);
        (o.code == 0).then(|| read_npy(&out.join("y.npy")).unwrap())
    });
    assert_eq!(res[0], res[1], "{}: reference and cpu differ", m.display());
}
