//! `whittle optimize`: run a pipeline of passes and write the result as an ONNX model.

use super::{pipeline, CliResult};
use std::path::Path;
use whittle::frontend::ExportOptions;
use whittle::passes::PassContext;

pub fn run(
    model: &Path,
    output: &Path,
    passes: &str,
    explain: bool,
    external_data: Option<String>,
) -> CliResult {
    let pipeline = pipeline(passes)?;
    let mut m = whittle::frontend::load_model(model).map_err(|e| e.to_string())?;
    let before = m.graph.node_count();
    let mut cx = PassContext {
        verify: true,
        ..Default::default()
    };
    let changed = pipeline
        .run(&mut m.graph, &mut cx)
        .map_err(|e| e.to_string())?;
    if explain {
        for line in &cx.explanations {
            println!("{line}");
        }
    }
    whittle::frontend::save_model(
        &m,
        output,
        &ExportOptions {
            external_data,
            opset: None,
        },
    )
    .map_err(|e| e.to_string())?;
    println!(
        "{} -> {}: {} -> {} nodes; passes that changed the graph: {}",
        model.display(),
        output.display(),
        before,
        m.graph.node_count(),
        if changed.is_empty() {
            "none".to_string()
        } else {
            changed.join(", ")
        }
    );
    Ok(())
}
