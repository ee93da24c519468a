//! `whittle optimize`: run a pipeline of passes and write the result as an ONNX model.

use super::{parse_shapes, pipeline, CliResult};
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

pub fn run(a: OptimizeArgs) -> CliResult {
    let pipeline = pipeline(a.passes)?;
    let mut m = whittle::frontend::load_model(a.model).map_err(|e| e.to_string())?;
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
    whittle::frontend::save_model(&m, a.output, &opts).map_err(|e| e.to_string())?;
    println!(
        "wrote {}; passes that changed the graph: {}",
        a.output.display(),
        if changed.is_empty() {
            "none".to_string()
        } else {
            changed.join(", ")
        }
    );
    Ok(())
}
