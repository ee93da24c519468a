//! The ONNX conformance runner: pushes node-test cases through frontend + backend and
//! compares outputs. With the manifest (default) every listed case must pass; `--all` runs
//! every in-scope case and reports coverage; `--write-manifest` records the passing ones.

use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use whittle_tests::conformance::{group_failures, read_index, read_manifest, run_case, CaseInfo};

#[derive(Parser)]
#[command(about = "Run the ONNX backend node tests on a whittle backend")]
struct Args {
    /// Folder written by tests/conformance/generate.py.
    #[arg(long, default_value = "tests/conformance/data")]
    data: PathBuf,
    /// The cases we claim, grouped by op.
    #[arg(long, default_value = "tests/conformance/manifest.txt")]
    manifest: PathBuf,
    /// Backend to run the cases on.
    #[arg(long, default_value = "reference")]
    backend: String,
    /// Run every in-scope case (all ops; no string, complex, float8/4 or 2/4-bit type) instead
    /// of the manifest.
    #[arg(long)]
    all: bool,
    /// With --all: write the passing cases to the manifest.
    #[arg(long)]
    write_manifest: bool,
    /// Only cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let backend = whittle::backend_by_name(&args.backend, 1)?;
    let index = read_index(&args.data)?;
    let by_name: BTreeMap<String, CaseInfo> =
        index.iter().map(|c| (c.name.clone(), c.clone())).collect();
    let mut cases: Vec<CaseInfo> = if args.all {
        index.iter().filter(|c| c.in_scope()).cloned().collect()
    } else {
        let names = read_manifest(&args.manifest)?;
        let mut v = Vec::new();
        for n in names {
            let c = by_name
                .get(&n)
                .ok_or_else(|| format!("manifest case '{n}' is not in the generated data"))?;
            v.push(c.clone());
        }
        v
    };
    if let Some(f) = &args.filter {
        cases.retain(|c| c.name.contains(f.as_str()));
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(c) = cases.get(i) else { break };
                let dir = args.data.join(&c.name);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_case(&dir, backend.as_ref())
                }))
                .unwrap_or_else(|_| Err("PANIC (a bug: whittle must never panic)".into()));
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in results {
        match r {
            Ok(()) => passed.push(cases[i].clone()),
            Err(why) => failed.push((cases[i].clone(), why)),
        }
    }
    for (op, fails) in group_failures(&failed, &by_name) {
        println!("FAILED [{op}] ({})", fails.len());
        for (name, why) in fails {
            let why: String = why.chars().take(300).collect();
            println!("  {name}: {why}");
        }
    }
    if args.all {
        let pct = 100.0 * passed.len() as f64 / cases.len().max(1) as f64;
        println!(
            "in-scope cases: {}, passed {} ({pct:.1}%) on backend '{}'",
            cases.len(),
            passed.len(),
            args.backend
        );
    }
    if args.write_manifest {
        write_manifest(&args.manifest, &passed, &by_name)?;
        println!(
            "wrote {} cases to {}",
            passed.len(),
            args.manifest.display()
        );
    }
    println!(
        "conformance: {} passed, {} failed",
        passed.len(),
        failed.len()
    );
    Ok(failed.is_empty() || args.all)
}

fn write_manifest(
    path: &PathBuf,
    passed: &[CaseInfo],
    index: &BTreeMap<String, CaseInfo>,
) -> Result<(), String> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in passed {
        groups.entry(c.group(index)).or_default().push(&c.name);
    }
    let mut s = String::from(
        "# ONNX node-test cases that whittle claims, grouped by op. Every case listed here must pass.\n\
         # Regenerate: cargo run --release -p whittle-tests --bin conformance -- --all --write-manifest\n",
    );
    for (op, names) in groups {
        s.push_str(&format!("\n# {op} ({})\n", names.len()));
        for n in names {
            s.push_str(n);
            s.push('\n');
        }
    }
    std::fs::write(path, s).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
