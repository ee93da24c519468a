//! Constant folding: every node whose inputs are all constants is evaluated once with the
//! reference evaluator (`whittle_ir::eval::eval_op`) and replaced by constants.
//!
//! ```text
//! %q = const i8[2,2] [1, -2, 3, 4]
//! %s = const f32[1,2] [0.5, 0.25]
//! %f = Cast(to:F32) %q : f32[2,2]            %w = const f32[2,2] [0.5, -0.5, 1.5, 1.0]
//! %w = Binary(Mul) %f, %s : f32[2,2]    →    %y = MatMul %x, %w : f32[1,2]
//! %y = MatMul %x, %w : f32[1,2]
//! ```
//!
//! Size policy: a fold whose outputs hold no more elements than its largest input (casts,
//! dequantization `Cast → Mul(scale)` / `DequantizeLinear` chains of weight-only int8
//! models, weight transposes) is always done, whatever the size: it stores the f32 weight
//! the model computes on every run anyway. Folds that grow the data (`Expand`,
//! `ConstantOfShape`, `Tile`, ...) are done only up to [`GROW_MAX_ELEMENTS`] elements.
//! This is the classic compiler constant folding (as in ONNX Runtime's and onnx-simplifier's
//! constant folding); exactness E0 (the evaluator computes what the runtime would).

use crate::rewrite::{remove_dead_from, Namer};
use crate::{Changed, PassContext};
use whittle_ir::{Graph, IrError, NodeId, Op, Tensor, Value};

/// Largest output (in elements) of a fold that makes more data than it reads.
pub const GROW_MAX_ELEMENTS: usize = 1 << 20;

/// Folds every all-constant node into constants.
pub fn const_fold(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut folded = 0;
    for id in g.topo_order()? {
        if !g.contains(id) {
            continue;
        }
        let Some(outs) = try_fold(g, id) else {
            continue;
        };
        replace_with_constants(g, &mut namer, id, outs);
        folded += 1;
    }
    if folded == 0 {
        return Ok(Changed::No);
    }
    cx.explain(
        "const-fold",
        format!("folded {folded} nodes into constants"),
    );
    Ok(Changed::Yes)
}

/// The outputs of `id` if it has constant inputs only and passes the size policy.
fn try_fold(g: &Graph, id: NodeId) -> Option<Vec<Tensor>> {
    let node = g.node(id);
    if matches!(node.op, Op::Input(_) | Op::Constant(_)) {
        return None;
    }
    let ins = g.node_inputs(id);
    if ins.iter().all(Option::is_none) {
        return None;
    }
    let mut args: Vec<Option<&Tensor>> = Vec::with_capacity(ins.len());
    for v in &ins {
        match v {
            Some(v) => args.push(Some(g.const_tensor(*v)?)),
            None => args.push(None),
        }
    }
    let max_in = args.iter().flatten().map(|t| t.len()).max().unwrap_or(0);
    let limit = max_in.max(GROW_MAX_ELEMENTS);
    // Skip before computing when the declared output is known to be too big.
    for vi in &node.outputs {
        if let Some(s) = vi.ty.concrete_shape() {
            if s.iter().product::<usize>() > limit {
                return None;
            }
        }
    }
    // An evaluator error (bad values, op not supported) just means "no fold".
    whittle_ir::infer::eval_fold(node, &args, limit)
}

/// Replaces each used output of `id` by a constant that takes over the value's name, then
/// removes `id` and whichever of its constant inputs became unused.
fn replace_with_constants(g: &mut Graph, namer: &mut Namer, id: NodeId, outs: Vec<Tensor>) {
    let inputs: Vec<NodeId> = g
        .node_inputs(id)
        .into_iter()
        .flatten()
        .map(|v| v.node)
        .collect();
    let mut renames = Vec::new();
    for (p, t) in outs.into_iter().enumerate().take(g.node(id).outputs.len()) {
        let old = Value::new(id, p);
        if g.consumers(old).is_empty() && !g.is_output(old) {
            continue;
        }
        let name = g.value_info(old).name.clone();
        let new = g.add_const(namer.fresh(&format!("{name}_folded")), t);
        g.replace_all_uses(old, new);
        renames.push((new, name));
    }
    g.remove_node(id);
    for (new, name) in renames {
        let n = g.node_mut(new.node);
        n.name = name.clone();
        if let Some(o) = n.outputs.first_mut() {
            o.name = name;
        }
    }
    remove_dead_from(g, &inputs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::{parse_graph, print_graph};

    #[test]
    fn folds_dequantized_weight() {
        let src = r#"graph "g" {
  input %x: f32[1,2]
  %q = const i8[2,2] [1, -2, 3, 4]
  %s = const f32[1,2] [0.5, 0.25]
  %f = Cast(to:F32) %q : f32[2,2]
  %w = Binary(Mul) %f, %s : f32[2,2]
  %y = MatMul %x, %w : f32[1,2]
  output %y
}
"#;
        let mut g = parse_graph(src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(const_fold(&mut g, &mut cx).unwrap(), Changed::Yes);
        let out = print_graph(&g).unwrap();
        // 1·0.5, -2·0.25, 3·0.5, 4·0.25
        assert!(
            out.contains("%w = const f32[2,2] [0.5, -0.5, 1.5, 1.0]"),
            "{out}"
        );
        assert!(!out.contains("Cast") && !out.contains("i8"), "{out}");
        assert_eq!(const_fold(&mut g, &mut cx).unwrap(), Changed::No);
    }

    #[test]
    fn growing_fold_is_capped() {
        let n = GROW_MAX_ELEMENTS + 1;
        let src = format!(
            "graph \"g\" {{\n  %s = const i64[1] [{n}]\n  %e = ConstantOfShape(value:(shape:[1],data:F32([1.0]))) %s : f32[{n}]\n  output %e\n}}\n"
        );
        let mut g = parse_graph(&src).unwrap();
        let mut cx = PassContext::default();
        assert_eq!(const_fold(&mut g, &mut cx).unwrap(), Changed::No);
    }
}
