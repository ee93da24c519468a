//! Opt-in step profiler: with `WHITTLE_PROFILE=1` in the environment, every plan step's
//! wall time is added to a process-wide total per step kind (`Fused`, `MatMul` per batch×m×n×k, `Softmax`,
//! `Ext:Norm`, ...); [`report`] formats the totals (`whittle bench` prints them).

use crate::steps::{HostOp, Step};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Per kind: total time and number of calls.
static TOTALS: Mutex<Option<HashMap<String, (Duration, u64)>>> = Mutex::new(None);

/// Whether `WHITTLE_PROFILE` is set to something other than `0` or empty (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("WHITTLE_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// The name of the enum variant in a `Debug` rendering (`Norm(NormRows { .. })` → `Norm`).
fn variant(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

/// The profile key of a step.
pub fn step_kind(step: &Step) -> String {
    match step {
        Step::Fused { .. } => "Fused elementwise".into(),
        Step::MatMul(mm) => {
            let b = match mm.b {
                crate::steps::BSource::Packed(_) => "packed B",
                crate::steps::BSource::Runtime { .. } => "run-time B",
            };
            let batches = mm.a_offsets.len();
            format!("MatMul {batches}x{}x{}x{} {b}", mm.m, mm.n, mm.k)
        }
        Step::Attention(_) => "Attention".into(),
        Step::Host { op, .. } => match op {
            HostOp::Ext { op, .. } => format!("Ext:{}", variant(&format!("{op:?}"))),
            other => variant(&format!("{other:?}")).to_string(),
        },
    }
}

/// Adds one call of `kind` that took `d`.
pub fn record(kind: String, d: Duration) {
    if let Ok(mut t) = TOTALS.lock() {
        let e = t.get_or_insert_with(HashMap::new).entry(kind).or_default();
        e.0 += d;
        e.1 += 1;
    }
}

/// Forgets the totals so far (e.g. after warm-up runs).
pub fn reset() {
    if let Ok(mut t) = TOTALS.lock() {
        *t = None;
    }
}

/// The totals, largest first, as `(kind, total, calls)`.
pub fn totals() -> Vec<(String, Duration, u64)> {
    let mut v: Vec<(String, Duration, u64)> = TOTALS
        .lock()
        .ok()
        .and_then(|t| t.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (d, n))| (k, d, n))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A table of the totals (ms, share, calls), or `None` when nothing was recorded.
pub fn report() -> Option<String> {
    let v = totals();
    if v.is_empty() {
        return None;
    }
    let all: f64 = v.iter().map(|(_, d, _)| d.as_secs_f64()).sum();
    let mut s = format!(
        "{:<36} {:>10} {:>7} {:>8}\n",
        "step kind", "total ms", "share", "calls"
    );
    for (k, d, n) in &v {
        let secs = d.as_secs_f64();
        s.push_str(&format!(
            "{k:<36} {:>10.3} {:>6.1}% {n:>8}\n",
            secs * 1e3,
            if all > 0.0 { 100.0 * secs / all } else { 0.0 }
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names() {
        assert_eq!(variant("Norm(NormRows { rows: 3 })"), "Norm");
        assert_eq!(variant("Softmax { rows: 1, cols: 2 }"), "Softmax");
        assert_eq!(variant("Copy"), "Copy");
    }

    #[test]
    fn totals_accumulate_and_sort() {
        reset();
        record("b".into(), Duration::from_millis(1));
        record("a".into(), Duration::from_millis(3));
        record("b".into(), Duration::from_millis(1));
        let t = totals();
        assert_eq!(t[0], ("a".to_string(), Duration::from_millis(3), 1));
        assert_eq!(t[1], ("b".to_string(), Duration::from_millis(2), 2));
        assert!(report().is_some_and(|r| r.contains("step kind")));
        reset();
        assert!(report().is_none());
    }
}
