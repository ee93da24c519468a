//! Helpers shared by the CLI integration tests: a scratch directory, running the built
//! `whittle` binary, and the one-line-error assertion.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A fresh scratch directory for this test process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whittle-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the whittle binary: exit code, stdout, stderr.
pub fn whittle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whittle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs whittle expecting failure: one `error:` line on stderr that contains `needle`.
pub fn fails_with(args: &[&str], needle: &str) {
    let (code, _, err) = whittle(args);
    assert_ne!(code, 0, "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line for {args:?}, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}
