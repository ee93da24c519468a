//! Filetests: each `tests/filetests/<pass>/*.wir` file holds a `# passes: a,b` line, an input
//! graph, a `# expected:` line and the expected graph after the passes. Run with
//! `WHITTLE_BLESS=1 cargo test -p whittle-passes --test filetests` to rewrite the expectations.

use std::path::{Path, PathBuf};
use whittle_ir::text::{parse_graph, print_graph};
use whittle_passes::{PassContext, Pipeline};

const EXPECTED: &str = "# expected:";

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "wir") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn check(path: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (head, expected) = text.split_once(EXPECTED).unwrap_or((&text, ""));
    let passes = head
        .lines()
        .find_map(|l| l.strip_prefix("# passes:"))
        .ok_or("missing '# passes:' line")?
        .trim()
        .to_string();
    let mut g = parse_graph(head).map_err(|e| format!("input: {e}"))?;
    let pipeline = Pipeline::parse(&passes).map_err(|e| e.to_string())?;
    pipeline
        .run(
            &mut g,
            &mut PassContext {
                verify: true,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    let got = print_graph(&g).map_err(|e| e.to_string())?;
    if bless {
        let new = format!("{}{EXPECTED}\n{got}", head.trim_end().to_string() + "\n\n");
        std::fs::write(path, new).map_err(|e| e.to_string())?;
        return Ok(());
    }
    if got.trim() != expected.trim() {
        return Err(format!(
            "output differs\n--- expected\n{}\n--- got\n{got}",
            expected.trim()
        ));
    }
    Ok(())
}

#[test]
fn filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests");
    let bless = std::env::var("WHITTLE_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let all = files(&root);
    assert!(
        !all.is_empty(),
        "no filetests found under {}",
        root.display()
    );
    for f in &all {
        if let Err(e) = check(f, bless) {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} filetests failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}
