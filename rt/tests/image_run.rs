//! `whittle_rt_run` in-process: a plan lowered with the JIT's kernels (the same functions an
//! object's kernel table points to), encoded as an image and run through the C entry
//! point; outputs against `ir::eval`; every refusal returns its status and a message.

use std::ffi::{c_void, CStr};
use whittle_ir::{Tensor, TensorData};
use whittle_rt::{status, whittle_rt_last_error, whittle_rt_run, whittle_rt_set_threads};

const TEXT: &str = "graph \"t\" {
  input %x: f32[4, 3]
  %w = const f32[3, 2] [0.5, -1.0, 0.25, 2.0, -0.75, 1.5]
  %m = MatMul %x, %w : f32[4, 2]
  %c = const f32[2] [0.5, -1.0]
  %a = Binary(Add) %m, %c : f32[4, 2]
  %r = Unary(Relu) %a : f32[4, 2]
  %y = Unary(Exp) %r : f32[4, 2]
  output %y as \"y\"
}
";

struct Compiled {
    image: &'static [u8],
    table: Vec<*const c_void>,
    workspace: usize,
    _code: Box<dyn std::any::Any>,
}

fn compile() -> Compiled {
    let g = whittle_ir::text::parse_graph(TEXT).expect("test graph parses");
    let mut j = whittle_cpu::jit::Jit::new().expect("jit");
    let parts = whittle_cpu::plan_parts(&g, &mut j).expect("lowers");
    assert!(parts.kernel_count > 0, "the test wants a generated kernel");
    let workspace = parts.arena.peak_bytes + whittle_cpu::plan::ALIGN;
    let image = whittle_exec_image(&parts);
    let (fns, code) = j.finish().expect("finalizes");
    Compiled {
        image: Box::leak(image.into_boxed_slice()),
        table: fns.iter().map(|&f| f as *const c_void).collect(),
        workspace,
        _code: Box::new(code),
    }
}

fn whittle_exec_image(parts: &whittle_cpu::exec::PlanParts) -> Vec<u8> {
    whittle_exec::image::encode(parts, &whittle_exec::image::host_features()).expect("encodes")
}

fn last_error() -> String {
    // SAFETY: the runtime returns a valid C string.
    unsafe { CStr::from_ptr(whittle_rt_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn x() -> Vec<f32> {
    (0..12).map(|i| (i as f32 - 5.0) * 0.3).collect()
}

fn expected() -> Vec<f32> {
    let g = whittle_ir::text::parse_graph(TEXT).expect("parses");
    let t = Tensor::new(vec![4, 3], TensorData::F32(x())).expect("tensor");
    let out = whittle_ir::eval::run(&g, &[("x", t)]).expect("eval");
    match out[0].1.data() {
        TensorData::F32(v) => v.clone(),
        _ => panic!("f32 output"),
    }
}

#[test]
fn an_image_runs_through_the_c_entry_point_and_matches_eval() {
    let c = compile();
    let x = x();
    let mut y = [0f32; 8];
    let mut ws = vec![0u8; c.workspace];
    let ins = [x.as_ptr() as *const u8];
    let outs = [y.as_mut_ptr() as *mut u8];
    // SAFETY: buffers match the graph's f32[4, 3] input and f32[4, 2] output.
    let s = unsafe {
        whittle_rt_run(
            c.image.as_ptr(),
            c.image.len(),
            c.table.as_ptr(),
            c.table.len(),
            ins.as_ptr(),
            outs.as_ptr(),
            ws.as_mut_ptr(),
            ws.len(),
        )
    };
    assert_eq!(s, status::OK, "{}", last_error());
    let want = expected();
    for (a, b) in y.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{y:?} vs {want:?}"
        );
    }
}

#[test]
fn refusals_are_statuses_with_messages() {
    let c = compile();
    let x = x();
    let mut y = [0f32; 8];
    let mut ws = vec![0u8; c.workspace];
    let ins = [x.as_ptr() as *const u8];
    let outs = [y.as_mut_ptr() as *mut u8];
    let null_in = [std::ptr::null::<u8>()];
    let null_out = [std::ptr::null_mut::<u8>()];
    let run = |image: &[u8],
               table: &[*const c_void],
               ins: &[*const u8],
               outs: &[*mut u8],
               ws: *mut u8,
               wl: usize| {
        // SAFETY: every pointer is valid or deliberately null; sizes match the graph.
        unsafe {
            whittle_rt_run(
                if image.is_empty() {
                    std::ptr::null()
                } else {
                    image.as_ptr()
                },
                image.len(),
                table.as_ptr(),
                table.len(),
                ins.as_ptr(),
                outs.as_ptr(),
                ws,
                wl,
            )
        }
    };
    let w = ws.as_mut_ptr();
    let wl = ws.len();
    assert_eq!(run(&[], &c.table, &ins, &outs, w, wl), status::NULL_POINTER);
    assert!(last_error().contains("image is NULL"), "{}", last_error());

    let junk: &'static [u8] = b"not a whittle image";
    assert_eq!(run(junk, &c.table, &ins, &outs, w, wl), status::BAD_MODEL);
    assert!(last_error().contains("bad magic"), "{}", last_error());

    // A copy of the image at another address, with one kernel missing from the table.
    let short: &'static [u8] = Box::leak(c.image.to_vec().into_boxed_slice());
    assert_eq!(
        run(short, &c.table[1..], &ins, &outs, w, wl),
        status::BAD_MODEL
    );
    assert!(
        last_error().contains("generated kernels"),
        "{}",
        last_error()
    );

    assert_eq!(
        run(c.image, &c.table, &null_in, &outs, w, wl),
        status::NULL_POINTER
    );
    assert!(last_error().contains("input 0 ('x')"), "{}", last_error());
    assert_eq!(
        run(c.image, &c.table, &ins, &null_out, w, wl),
        status::NULL_POINTER
    );
    assert!(last_error().contains("output 0 ('y')"), "{}", last_error());
    assert_eq!(
        run(c.image, &c.table, &ins, &outs, w, wl - 1),
        status::WORKSPACE_TOO_SMALL
    );
    assert!(last_error().contains("workspace"), "{}", last_error());
    assert_eq!(
        run(c.image, &c.table, &ins, &outs, std::ptr::null_mut(), wl),
        status::NULL_POINTER
    );
    // After all that, the same image still runs.
    assert_eq!(run(c.image, &c.table, &ins, &outs, w, wl), status::OK);
}

#[test]
fn concurrent_calls_with_their_own_workspaces_agree() {
    // Plans loaded from now on get a two-thread pool (the answer must not change).
    assert_eq!(whittle_rt_set_threads(2), status::OK);
    let c = compile();
    let want = expected();
    let (image, table, workspace) = (
        c.image,
        c.table.iter().map(|&p| p as usize).collect::<Vec<_>>(),
        c.workspace,
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (table, want) = (&table, &want);
            s.spawn(move || {
                let table: Vec<*const c_void> = table.iter().map(|&a| a as *const c_void).collect();
                let x = x();
                let mut ws = vec![0u8; workspace];
                for _ in 0..50 {
                    let mut y = [0f32; 8];
                    let ins = [x.as_ptr() as *const u8];
                    let outs = [y.as_mut_ptr() as *mut u8];
                    // SAFETY: buffers match the graph; each thread has its own workspace.
                    let st = unsafe {
                        whittle_rt_run(
                            image.as_ptr(),
                            image.len(),
                            table.as_ptr(),
                            table.len(),
                            ins.as_ptr(),
                            outs.as_ptr(),
                            ws.as_mut_ptr(),
                            ws.len(),
                        )
                    };
                    assert_eq!(st, status::OK, "{}", last_error());
                    for (a, b) in y.iter().zip(want) {
                        assert!(
                            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                            "{y:?} vs {want:?}"
                        );
                    }
                }
            });
        }
    });
}

/// A plan with no generated kernel (one GEMM) runs with an empty, even NULL, kernel table.
#[test]
fn a_plan_without_generated_kernels_needs_no_table() {
    let text = "graph \"g\" {
  input %x: f32[2, 3]
  %w = const f32[3, 2] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  %y = MatMul %x, %w : f32[2, 2]
  output %y as \"y\"
}
";
    let g = whittle_ir::text::parse_graph(text).expect("parses");
    let mut j = whittle_cpu::jit::Jit::new().expect("jit");
    let parts = whittle_cpu::plan_parts(&g, &mut j).expect("lowers");
    assert_eq!(parts.kernel_count, 0);
    let ws_len = parts.arena.peak_bytes + whittle_cpu::plan::ALIGN;
    let image: &'static [u8] = Box::leak(whittle_exec_image(&parts).into_boxed_slice());
    let x = [1.0f32, 0.0, -1.0, 0.5, 0.5, 0.5];
    let mut y = [0f32; 4];
    let mut ws = vec![0u8; ws_len];
    let ins = [x.as_ptr() as *const u8];
    let outs = [y.as_mut_ptr() as *mut u8];
    // SAFETY: buffers match the graph; no kernels are called.
    let s = unsafe {
        whittle_rt_run(
            image.as_ptr(),
            image.len(),
            std::ptr::null(),
            0,
            ins.as_ptr(),
            outs.as_ptr(),
            ws.as_mut_ptr(),
            ws.len(),
        )
    };
    assert_eq!(s, status::OK, "{}", last_error());
    assert_eq!(y, [-4.0, -4.0, 4.5, 6.0]);
}
