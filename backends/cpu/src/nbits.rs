//! `MatMulNBits` with constant weights on the cpu backend: the weights are dequantized once,
//! when the plan is built ([`whittle_ir::eval::contrib_ms::nbits_weight`], the reference
//! evaluator's own dequantization), and the node becomes a `FusedMatMul` with the bias as
//! its epilogue, so the f32 GEMM serves it. The f32 weight takes `32 / bits` times the
//! packed bytes; weight-only integer kernels that keep it packed are the quantization work's.

use whittle_ir::eval::contrib_ms::nbits_weight;
use whittle_ir::{Activation, DType, Graph, Op, Value};
use whittle_runtime::RuntimeError;

/// `graph` with every f32 `MatMulNBits` whose B, scales and zero points are constants
/// rewritten as above; `None` when there is none.
pub fn dequantize_weights(graph: &Graph) -> Result<Option<Graph>, RuntimeError> {
    let sites: Vec<_> = graph
        .node_ids()
        .filter(|&id| {
            let konst = |p: usize| {
                graph
                    .input(id, p)
                    .is_some_and(|v| graph.const_tensor(v).is_some())
            };
            matches!(graph.node(id).op, Op::MatMulNBits(_))
                && graph
                    .input(id, 0)
                    .is_some_and(|a| graph.value_type(a).dtype == DType::F32)
                && konst(1)
                && konst(2)
                && (graph.input(id, 3).is_none() || konst(3))
                && graph.input(id, 4).is_none()
        })
        .collect();
    if sites.is_empty() {
        return Ok(None);
    }
    let mut g = graph.clone();
    for id in sites {
        let Op::MatMulNBits(attrs) = g.node(id).op.clone() else {
            continue;
        };
        let tensor = |p: usize| g.input(id, p).and_then(|v| g.const_tensor(v));
        let (Some(b), Some(s)) = (tensor(1), tensor(2)) else {
            continue;
        };
        let node = g.node(id).clone();
        let w = nbits_weight(&attrs, b, s, tensor(3)).map_err(|e| {
            RuntimeError::Ir(whittle_ir::IrError::Eval {
                node: node.name.clone(),
                op: "MatMulNBits".into(),
                msg: e,
            })
        })?;
        let a = g.input(id, 0);
        let bias = g.input(id, 5);
        let wv = g.add_const(format!("{}.dequantized", node.name), w);
        let fused = g.add_node(
            Op::FusedMatMul {
                activation: Activation::Linear,
            },
            node.name.clone(),
            &[a, Some(wv), bias],
            node.outputs.clone(),
        );
        g.replace_all_uses(Value::new(id, 0), Value::new(fused, 0));
        let packed: Vec<_> = (1..4).filter_map(|p| g.input(id, p)).collect();
        g.remove_node(id);
        for v in packed {
            if g.consumers(v).is_empty() && !g.is_output(v) {
                g.remove_node(v.node);
            }
        }
    }
    Ok(Some(g))
}
