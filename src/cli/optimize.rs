//! `whittle optimize`: run a pipeline of passes and write the result as an ONNX model.

use super::files::{check_distinct, file_name, parent_dir, Staging};
use super::{parse_shapes, pipeline, printable, CliResult};
use std::ffi::OsStr;
use std::path::Path;
use whittle::frontend::ExportOptions;
use whittle::passes::PassContext;

/// What `optimize` was asked to do.
pub struct OptimizeArgs<'a> {
    pub model: &'a Path,
    pub output: &'a Path,
    pub passes: &'a str,
    pub explain: bool,
    pub print_ir_after_change: bool,
    pub shapes: &'a [String],
    pub external_data: Option<String>,
    pub opset: Option<i64>,
}

/// The opsets `--opset` accepts: from the exporter's floor to the newest the frontend reads
/// back (a model whittle writes, whittle must load).
const MIN_EXPORT_OPSET: i64 = 13;

pub fn run(a: OptimizeArgs) -> CliResult {
    let max = whittle::frontend::MAX_OPSET;
    if let Some(o) = a.opset {
        if !(MIN_EXPORT_OPSET..=max).contains(&o) {
            return Err(format!(
                "--opset {o} is not supported: whittle writes opsets {MIN_EXPORT_OPSET} to {max}"
            ));
        }
    }
    let out_name = file_name(a.output, "-o")?;
    let out_dir = parent_dir(a.output);
    // The external data file is a plain name in the output's directory.
    let data = a.external_data.as_deref().map(|f| out_dir.join(f));
    let mut outputs = vec![("-o", a.output)];
    if let Some(d) = &data {
        outputs.push(("--external-data", d.as_path()));
    }
    check_distinct(&[("input model", a.model)], &outputs)?;
    let pipeline = pipeline(a.passes)?;
    let mut m = super::load_model(a.model)?;
    // The input's own external data files are inputs too: never write over them.
    let mut inputs: Vec<(&str, &Path)> = vec![("input model", a.model)];
    for f in &m.external_files {
        inputs.push(("the input model's external data", f.as_path()));
    }
    check_distinct(&inputs, &outputs)?;
    let mut cx = PassContext {
        verify: true,
        print_ir_after_change: a.print_ir_after_change,
        input_shapes: parse_shapes(a.shapes)?,
        ..Default::default()
    };
    let changed = pipeline
        .run(&mut m.graph, &mut cx)
        .map_err(|e| e.to_string())?;
    if a.explain {
        for line in &cx.explanations {
            println!("{line}");
        }
    }
    for s in &cx.stats {
        println!("{s}");
    }
    let opts = ExportOptions {
        external_data: a.external_data,
        opset: a.opset,
    };
    // Written in a staging directory next to the output, then renamed into place: the
    // model and its data file (asked for, or made for very large weights) never replace
    // the input and never write through a symlink.
    let staging = Staging::new(out_dir)?;
    whittle::frontend::save_model(&m, &staging.path(out_name), &opts).map_err(|e| e.to_string())?;
    let mut staged = staging.entries()?;
    // The model last, so that it never points at a data file not yet in place.
    staged.sort_by_key(|f| f.as_os_str() == out_name);
    for f in staged.iter().filter(|f| f.as_os_str() != out_name) {
        let mut taken = inputs.clone();
        taken.push(("-o", a.output));
        check_distinct(&taken, &[("the external data file", &out_dir.join(f))])?;
    }
    for f in &staged {
        staging.commit(OsStr::new(f), &out_dir.join(f))?;
    }
    println!(
        "wrote {}; passes that changed the graph: {}",
        printable(&a.output.display().to_string()),
        if changed.is_empty() {
            "none".to_string()
        } else {
            changed.join(", ")
        }
    );
    Ok(())
}
