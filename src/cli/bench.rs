//! `whittle bench`: compile time, warm latency percentiles and peak memory of one model on
//! one backend. Timing only: correctness is `whittle run` and the test suites.

use super::{check_threads, pipeline, read_inputs, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Instant;
use whittle::ir::{Graph, Tensor};
use whittle::passes::PassContext;

/// What `bench` was asked to do.
pub struct BenchArgs<'a> {
    pub model: &'a Path,
    pub inputs: &'a [String],
    pub shapes: &'a [String],
    pub backend: &'a str,
    pub threads: usize,
    pub passes: &'a str,
    pub warmup: usize,
    pub iters: usize,
    pub json: bool,
}

/// The most runs `--warmup` and `--iters` each accept (the timings are kept in memory).
pub const MAX_RUNS: usize = 10_000_000;

pub fn run(a: &BenchArgs) -> CliResult {
    for (flag, n) in [("--warmup", a.warmup), ("--iters", a.iters)] {
        if n > MAX_RUNS {
            return Err(format!("{flag} {n} is over the limit of {MAX_RUNS} runs"));
        }
    }
    check_threads(a.threads)?;
    let backend = whittle::backend_by_name(a.backend, a.threads)?;
    let mut m = super::load_model(a.model)?;
    pipeline(a.passes)?
        .run(&mut m.graph, &mut PassContext::default())
        .map_err(|e| e.to_string())?;
    let mut inputs = read_inputs(a.inputs)?;
    let shapes = super::parse_shapes(a.shapes)?;
    fill_missing_inputs(&m.graph, &shapes, &mut inputs)?;
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();

    let t = Instant::now();
    let exe = backend.compile(&m.graph).map_err(|e| e.to_string())?;
    let compile_ms = ms(t);
    // The first run includes any per-shape compilation the backend does lazily.
    let t = Instant::now();
    exe.run(&named).map_err(|e| e.to_string())?;
    let first_ms = ms(t);

    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((a.warmup + a.iters) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message("warm-up");
    for _ in 0..a.warmup {
        exe.run(&named).map_err(|e| e.to_string())?;
        bar.inc(1);
    }
    bar.set_message("timing");
    whittle::cpu::profile::reset();
    let mut times = Vec::with_capacity(a.iters);
    for _ in 0..a.iters {
        let t = Instant::now();
        exe.run(&named).map_err(|e| e.to_string())?;
        times.push(ms(t));
        bar.inc(1);
    }
    bar.finish_and_clear();
    times.sort_by(f64::total_cmp);
    if let Some(table) = whittle::cpu::profile::report() {
        // WHITTLE_PROFILE=1: per step kind totals over the timed runs (stderr keeps --json clean).
        eprintln!("profile over {} timed runs:\n{table}", times.len());
    }
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let peak_mb = peak_rss_bytes().map(|b| b as f64 / 1e6);
    if a.json {
        println!(
            "{{\"backend\":\"{}\",\"compile_ms\":{compile_ms:.3},\"first_run_ms\":{first_ms:.3},\"p50_ms\":{:.4},\"p90_ms\":{:.4},\"p99_ms\":{:.4},\"iters\":{},\"peak_rss_mb\":{}}}",
            a.backend,
            p(0.5),
            p(0.9),
            p(0.99),
            times.len(),
            peak_mb.map_or("null".to_string(), |m| format!("{m:.1}"))
        );
    } else {
        println!("model: {}  backend: {}", a.model.display(), a.backend);
        println!("compile: {compile_ms:.1} ms; first run (incl. lazy per-shape compile): {first_ms:.1} ms");
        println!(
            "latency over {} runs: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms",
            times.len(),
            p(0.5),
            p(0.9),
            p(0.99)
        );
        if let Some(mb) = peak_mb {
            println!("peak RSS: {mb:.1} MB");
        }
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Inputs not given on the command line get synthetic values when their shape is known
/// (from the model or `--input-shape`): seeded uniform [-1, 1) for floats, ones for
/// integers (valid token ids and attention masks), true for bools.
fn fill_missing_inputs(
    g: &Graph,
    shapes: &[(String, Vec<usize>)],
    inputs: &mut Vec<(String, Tensor)>,
) -> Result<(), String> {
    for i in 0..g.inputs().len() {
        let name = g.input_name(i);
        if inputs.iter().any(|(n, _)| n == name) {
            continue;
        }
        let ty = g.input_type(i);
        let given = shapes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone());
        let shape = given.or_else(|| ty.concrete_shape()).ok_or_else(|| {
            format!(
                "input '{name}' has shape {ty} with unknown dimensions: give it with \
                 --input {name}=FILE.npy or --input-shape {name}=AxBx..."
            )
        })?;
        let what = format!("input '{name}'");
        let bytes = whittle::ir::limits::check_tensor(&shape, ty.dtype.size_of(), &what)?;
        let n = bytes / ty.dtype.size_of();
        // The f64 values are generated first: they need budget too.
        whittle::ir::limits::check_alloc(n as u64 * 8, &what)?;
        let mut state = 0x2545_f491_4f6c_dd1du64 ^ i as u64;
        let vals: Vec<f64> = (0..n)
            .map(|_| match ty.dtype {
                d if d.is_float() => {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                }
                _ => 1.0,
            })
            .collect();
        inputs.push((name.to_string(), Tensor::from_f64(ty.dtype, shape, &vals)));
    }
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
