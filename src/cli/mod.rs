//! Subcommands of the CLI, one file each, plus the helpers they share.

pub mod bench;
pub mod compile;
pub mod demo;
pub mod files;
pub mod inspect;
pub mod optimize;
pub mod run;

use std::path::Path;
use whittle::ir::Tensor;
use whittle::passes::Pipeline;
use whittle::runtime::npy;

/// Every CLI error is one line of text.
pub type CliResult = Result<(), String>;

/// The most worker threads `--threads` accepts: 8 per core, at most 1024.
/// Loads an ONNX model and prints the loader's warnings (one line each) on stderr.
pub fn load_model(path: &std::path::Path) -> Result<whittle::frontend::Model, String> {
    let m = whittle::frontend::load_model(path).map_err(|e| e.to_string())?;
    print_warnings(path, &m);
    Ok(m)
}

/// Prints what the loader accepted with a warning.
pub fn print_warnings(path: &std::path::Path, m: &whittle::frontend::Model) {
    for w in &m.warnings {
        eprintln!(
            "warning: {}: {}",
            printable(&path.display().to_string()),
            one_line(w)
        );
    }
}

pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(8).min(1024)
}

/// Refuses a `--threads` count above [`max_threads`] (0 means one per core).
pub fn check_threads(threads: usize) -> Result<(), String> {
    let max = max_threads();
    if threads > max {
        return Err(format!(
            "--threads {threads} is over the limit of {max} (8 per core, at most 1024)"
        ));
    }
    Ok(())
}

/// An error message as exactly one line: each run of whitespace that holds a line break
/// becomes one space, other control characters are written as escapes (`\t`, `\u{1b}`).
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            while out.ends_with([' ', '\t']) {
                out.pop();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if !out.is_empty() {
                out.push(' ');
            }
        } else if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Model-derived text (names) for terminal output: control characters escaped, so a name
/// cannot span lines or send terminal escape sequences.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A comma-separated pass list, where `exact` stands for the default exact pipeline.
pub fn pipeline(spec: &str) -> Result<Pipeline, String> {
    Pipeline::parse(spec).map_err(|e| e.to_string())
}

/// Reads `NAME=FILE.npy` and `FILE.npz` arguments into named tensors.
pub fn read_inputs(args: &[String]) -> Result<Vec<(String, Tensor)>, String> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    for a in args {
        let pairs = match a.split_once('=') {
            Some((name, file)) => {
                let path = Path::new(file);
                if !file.ends_with(".npy") {
                    return Err(format!("input '{name}': '{file}' is not a .npy file"));
                }
                vec![(
                    name.to_string(),
                    npy::read_npy(path).map_err(|e| e.to_string())?,
                )]
            }
            None if a.ends_with(".npz") => {
                npy::read_npz(Path::new(a)).map_err(|e| e.to_string())?
            }
            None => {
                return Err(format!(
                    "bad --input '{a}': expected NAME=FILE.npy or FILE.npz"
                ))
            }
        };
        for (name, t) in pairs {
            if out.iter().any(|(n, _)| *n == name) {
                return Err(format!("input '{name}' is given twice"));
            }
            out.push((name, t));
        }
    }
    Ok(out)
}

/// Parses `NAME=1x128` arguments.
pub fn parse_shapes(args: &[String]) -> Result<Vec<(String, Vec<usize>)>, String> {
    args.iter()
        .map(|a| {
            let bad =
                || format!("bad --input-shape '{a}': expected NAME=AxBx... (e.g. input_ids=1x128)");
            let (name, dims) = a.split_once('=').ok_or_else(bad)?;
            let dims = if dims.is_empty() {
                vec![]
            } else {
                dims.split('x')
                    .map(|d| d.parse::<usize>().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?
            };
            Ok((name.to_string(), dims))
        })
        .collect()
}

/// The file name an output is written to: characters outside `[A-Za-z0-9_.-]` become `_`.
pub fn output_file_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.npy")
}

/// The file names of outputs `names`, one each and all different: [`output_file_name`],
/// and where two names map to the same file, the later one gets `_1`, `_2`, ... (avoiding
/// every name another output maps to), with a note on stderr.
pub fn output_file_names(names: &[&str]) -> Vec<String> {
    let bases: Vec<String> = names.iter().map(|n| output_file_name(n)).collect();
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, base) in bases.iter().enumerate() {
        if used.insert(base.clone()) {
            out.push(base.clone());
            continue;
        }
        let stem = base.strip_suffix(".npy").unwrap_or(base);
        let file = (1..)
            .map(|k| format!("{stem}_{k}.npy"))
            .find(|f| !used.contains(f) && !bases.contains(f))
            .expect("an unused name exists");
        used.insert(file.clone());
        eprintln!(
            "note: output '{}' would also be written to {base}: it goes to {file}",
            printable(names[i])
        );
        out.push(file);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn clashing_output_names_get_suffixes() {
        assert_eq!(
            super::output_file_names(&["a/b", "a:b", "a_b_1", "y", "Y", "a?b"]),
            [
                "a_b.npy",
                "a_b_2.npy",
                "a_b_1.npy",
                "y.npy",
                "Y.npy",
                "a_b_3.npy"
            ]
        );
    }

    #[test]
    fn errors_fold_to_one_line() {
        assert_eq!(
            super::one_line("bad header:\n  expected x\r\n\tgot y\n"),
            "bad header: expected x got y"
        );
        assert_eq!(super::one_line("a\u{1b}[31m\tb"), "a\\u{1b}[31m\\tb");
        assert_eq!(super::printable("a\nb"), "a\\nb");
        assert_eq!(super::printable("é"), "é");
    }

    #[test]
    fn output_names_are_sanitised() {
        assert_eq!(
            super::output_file_name("softmax_0.tmp_0"),
            "softmax_0.tmp_0.npy"
        );
        assert_eq!(super::output_file_name("a/b:0"), "a_b_0.npy");
    }
}
