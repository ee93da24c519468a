//! Shape folding: binds the input shapes given in `PassContext::input_shapes` and runs
//! `whittle_ir::infer::specialize`, which re-infers every type and folds `Shape`/`Size`
//! of now-static values and the small constant subgraphs that compute from them (Gather,
//! Concat, Unsqueeze on shape vectors, ...). With no input shapes it folds the `Shape` of
//! dims that are already static.
//!
//! ```text
//! input %x: f32[batch,4]                      input %x: f32[2,4]
//! %s = Shape(start:0,end:None) %x : i64[2]    %s = const i64[2] [2, 4]
//! %r = Reshape(allowzero:false) %y, %s   →    %r = Reshape(allowzero:false) %y, %s
//! ```       (with input_shapes = [("x", [2, 4])])
//!
//! The standard "shape inference + constant propagation" of ONNX simplifiers
//! (onnx-simplifier, ORT's graph optimizer). Exactness E0 for the bound shapes; the graph
//! then only accepts inputs of those shapes.

use crate::rewrite::fingerprint;
use crate::{Changed, PassContext};
use whittle_ir::{infer::specialize, Graph, IrError};

pub fn fold_shapes(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let shapes: Vec<(&str, Vec<usize>)> = cx
        .input_shapes
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    let mut h = g.clone();
    specialize(&mut h, &shapes)?;
    // A clone shares its constants, so the fingerprints agree unless `specialize` changed
    // something.
    if fingerprint(&h) == fingerprint(g) {
        return Ok(Changed::No);
    }
    let before = g.node_count();
    *g = h;
    cx.explain(
        "fold-shapes",
        format!(
            "specialized for {} input shapes: {} -> {} nodes",
            shapes.len(),
            before,
            g.node_count()
        ),
    );
    Ok(Changed::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    const SRC: &str = r#"graph "g" {
  input %x: f32[batch,4]
  %s = Shape(start:1,end:None) %x : i64[1]
  output %s
}
"#;

    #[test]
    fn folds_static_dims_without_shapes() {
        let mut g = parse_graph(SRC).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(fold_shapes(&mut g, &mut cx).unwrap(), Changed::Yes);
        let out = print_graph(&g).unwrap();
        assert!(out.contains("%s = const i64[1] [4]"), "{out}");
        assert_eq!(fold_shapes(&mut g, &mut cx).unwrap(), Changed::No);
    }

    #[test]
    fn binds_given_shapes() {
        let src = SRC
            .replace("start:1", "start:0")
            .replace("i64[1]", "i64[2]");
        assert!(src.contains("start:0"));
        let mut g = parse_graph(&src).unwrap();
        let mut cx = PassContext {
            input_shapes: vec![("x".into(), vec![3, 4])],
            ..Default::default()
        };
        assert_eq!(fold_shapes(&mut g, &mut cx).unwrap(), Changed::Yes);
        let out = print_graph(&g).unwrap();
        assert!(out.contains("input %x: f32[3,4]"), "{out}");
        assert!(out.contains("%s = const i64[2] [3, 4]"), "{out}");
    }
}
