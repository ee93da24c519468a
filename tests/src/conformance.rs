//! ONNX backend node tests: find the cases, decide which are in scope, run one case on a
//! backend and compare with the expected outputs at ONNX's tolerances (rtol 1e-3, atol 1e-7).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use whittle_ir::{DType, Tensor};
use whittle_runtime::Backend;

/// Element types outside the node-test scope: strings, complex numbers, float8/float4 and
/// the 2/4-bit integers. Sequences, optionals and maps are in scope (by their elements).
pub fn elem_type_in_scope(t: &str) -> bool {
    !(t == "string"
        || t.starts_with("float8")
        || t.starts_with("float4")
        || t.starts_with("complex")
        || matches!(t, "int4" | "uint4" | "int2" | "uint2"))
}

/// One line of the generator's `index.tsv`.
#[derive(Clone, Debug)]
pub struct CaseInfo {
    pub name: String,
    pub ops: Vec<String>,
    pub dtypes: Vec<String>,
    /// Every element type the case touches (inputs, outputs, initializers, type attributes).
    pub touched: Vec<String>,
}

impl CaseInfo {
    /// Whether the case is in the node-test scope: every op counts; no element type it
    /// touches may be out of scope ([`elem_type_in_scope`]).
    pub fn in_scope(&self) -> bool {
        self.touched.iter().all(|d| elem_type_in_scope(d))
    }

    /// The op a case is grouped under: its one op (besides `Constant`); for a function's
    /// `_expanded` form, the op of the unexpanded case, marked "(expanded)".
    pub fn group(&self, index: &BTreeMap<String, CaseInfo>) -> String {
        if let Some(pos) = self.name.find("_expanded") {
            if let Some(base) = index.get(&self.name[..pos]) {
                return format!("{} (expanded)", base.group(index));
            }
        }
        let ops: Vec<&String> = self.ops.iter().filter(|o| *o != "Constant").collect();
        match ops.as_slice() {
            [] => self.ops.first().cloned().unwrap_or_default(),
            [one] => (*one).clone(),
            many => many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        }
    }
}

pub fn read_index(data_dir: &Path) -> Result<Vec<CaseInfo>, String> {
    let p = data_dir.join("index.tsv");
    let text = std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "cannot read {} ({e}); generate the cases with tests/conformance/generate.py",
            p.display()
        )
    })?;
    let split = |s: &str| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 5 {
                return Err(format!(
                    "{}: '{}' has {} columns, not 5; regenerate the cases with tests/conformance/generate.py",
                    p.display(),
                    f[0],
                    f.len()
                ));
            }
            Ok(CaseInfo {
                name: f[0].into(),
                ops: split(f[1]),
                dtypes: split(f[2]),
                touched: split(f[4]),
            })
        })
        .collect()
}

/// Reads `tests/conformance/manifest.txt`: case names, `# Op` group headers and comments.
pub fn read_manifest(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let idx = name
                .strip_prefix(prefix)?
                .strip_suffix(".pb")?
                .parse()
                .ok()?;
            Some((idx, e.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Runs every data set of one case; `Err` holds the first reason it failed.
pub fn run_case(case_dir: &Path, backend: &dyn Backend) -> Result<(), String> {
    let model = whittle_frontend::load_model(&case_dir.join("model.onnx"))
        .map_err(|e| format!("load: {e}"))?;
    let exe = backend
        .compile(&model.graph)
        .map_err(|e| format!("compile: {e}"))?;
    let g = &model.graph;
    let mut sets: Vec<PathBuf> = std::fs::read_dir(case_dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
        })
        .collect();
    sets.sort();
    for set in sets {
        let mut inputs: Vec<(String, Tensor)> = Vec::new();
        for (i, p) in numbered(&set, "input_").iter().enumerate() {
            let (name, t) =
                whittle_frontend::read_tensor_pb(p).map_err(|e| format!("input {i}: {e}"))?;
            let name = if name.is_empty() && i < g.inputs().len() {
                g.input_name(i).to_string()
            } else {
                name
            };
            inputs.push((name, t));
        }
        let named: Vec<(&str, Tensor)> = inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let got = exe.run(&named).map_err(|e| format!("run: {e}"))?;
        let expected = numbered(&set, "output_");
        if expected.len() != got.len() {
            return Err(format!(
                "expected {} outputs, got {}",
                expected.len(),
                got.len()
            ));
        }
        for (i, p) in expected.iter().enumerate() {
            let (_, want) =
                whittle_frontend::read_tensor_pb(p).map_err(|e| format!("output {i}: {e}"))?;
            compare(&got[i].1, &want).map_err(|e| format!("output {i} ('{}'): {e}", got[i].0))?;
        }
    }
    Ok(())
}

/// `numpy.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)`, plus dtype and shape.
pub fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if !want.dtype().is_float() {
        let (a, b) = (got.to_i64_vec(), want.to_i64_vec());
        if want.dtype() == DType::U64 {
            if got != want {
                return Err("values differ".into());
            }
        } else if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            return Err(format!("element {i}: {} but expected {}", a[i], b[i]));
        }
        return Ok(());
    }
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    let mut bad = 0;
    let mut first = None;
    for i in 0..a.len() {
        let ok = if b[i].is_nan() {
            a[i].is_nan()
        } else if b[i].is_infinite() {
            a[i] == b[i]
        } else {
            (a[i] - b[i]).abs() <= 1e-7 + 1e-3 * b[i].abs()
        };
        if !ok {
            bad += 1;
            first.get_or_insert(i);
        }
    }
    match first {
        None => Ok(()),
        Some(i) => Err(format!(
            "{bad} of {} elements differ; element {i}: {} but expected {}",
            a.len(),
            a[i],
            b[i]
        )),
    }
}

/// Failures grouped by op, for the report.
pub fn group_failures(
    fails: &[(CaseInfo, String)],
    index: &BTreeMap<String, CaseInfo>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (c, why) in fails {
        m.entry(c.group(index))
            .or_default()
            .push((c.name.clone(), why.clone()));
    }
    m
}
