//! Subcommands of the CLI, one file each, plus the helpers they share.

pub mod bench;
pub mod compile;
pub mod demo;
pub mod inspect;
pub mod optimize;
pub mod run;

use std::path::Path;
use whittle::ir::Tensor;
use whittle::passes::Pipeline;
use whittle::runtime::npy;

/// Every CLI error is one line of text.
pub type CliResult = Result<(), String>;

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

#[cfg(test)]
mod tests {
    #[test]
    fn output_names_are_sanitised() {
        assert_eq!(
            super::output_file_name("softmax_0.tmp_0"),
            "softmax_0.tmp_0.npy"
        );
        assert_eq!(super::output_file_name("a/b:0"), "a_b_0.npy");
    }
}
