//! Graph statistics for the pass manager's per-pass report: node count, parameter count
//! (elements of floating-point constants) and a FLOP estimate of the linear ops
//! (`MatMul`, `Gemm`, `Conv`, `ConvTranspose`: 2 FLOPs per multiply-accumulate).
//! Symbolic dimensions count as 1, so the figure is "per unit of each symbolic dim".

use whittle_ir::{Dim, Graph, NodeId, Op, Value};

/// Nodes, parameters and FLOPs of one graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    pub nodes: usize,
    pub params: u64,
    pub flops: u64,
}

impl GraphStats {
    pub fn of(g: &Graph) -> GraphStats {
        GraphStats {
            nodes: g.node_count(),
            params: params(g),
            flops: flops(g),
        }
    }
}

/// Elements of every floating-point constant.
pub fn params(g: &Graph) -> u64 {
    g.node_ids()
        .filter_map(|id| g.node(id).op.as_constant())
        .filter(|t| t.dtype().is_float())
        .fold(0u64, |a, t| a.saturating_add(t.len() as u64))
}

fn dims(g: &Graph, v: Option<Value>) -> Option<Vec<u64>> {
    let ty = g.value_type(v?);
    Some(
        ty.shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Known(n) => *n as u64,
                Dim::Sym(_) => 1,
            })
            .collect(),
    )
}

/// Estimated FLOPs of one node (0 for ops that are not counted).
pub fn node_flops(g: &Graph, id: NodeId) -> u64 {
    let out = dims(g, Some(Value::new(id, 0))).unwrap_or_default();
    let out_elems = prod(&out);
    let a = dims(g, g.input(id, 0)).unwrap_or_default();
    let w = dims(g, g.input(id, 1)).unwrap_or_default();
    match &g.node(id).op {
        Op::MatMul | Op::FusedMatMul { .. } => {
            // K is the last axis of A (or its only axis).
            let k = a.last().copied().unwrap_or(0);
            prod(&[2, out_elems, k])
        }
        Op::Gemm { trans_a, .. } => {
            let k = if *trans_a { a.first() } else { a.get(1) };
            prod(&[2, out_elems, k.copied().unwrap_or(0)])
        }
        Op::Conv { .. } => {
            // W: [M, C/group, k...]; every output element reads C/group·prod(k) inputs.
            let per = prod(&w[w.len().min(1)..]);
            prod(&[2, out_elems, if w.len() >= 2 { per } else { 0 }])
        }
        Op::ConvTranspose { .. } => {
            // W: [C, M/group, k...]; every input element writes M/group·prod(k) outputs.
            let in_elems = prod(&a);
            let per = prod(&w[w.len().min(1)..]);
            prod(&[2, in_elems, if w.len() >= 2 { per } else { 0 }])
        }
        Op::Attention { .. } => {
            // Q·Kᵀ and P·V per head: 2·B·Sq·Sk·(D + Dv) = 2·Sk·(E + Ev)·B·Sq.
            let k_len = w.get(1).copied().unwrap_or(0);
            let e = a.last().copied().unwrap_or(0);
            let ev = out.last().copied().unwrap_or(0);
            let rows = out_elems / ev.max(1);
            prod(&[2, rows, k_len, e.saturating_add(ev)])
        }
        _ => 0,
    }
}

/// Product of `dims`, saturating: an estimate of a model that does not fit stays finite.
fn prod(dims: &[u64]) -> u64 {
    dims.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

/// Estimated FLOPs of the whole graph.
pub fn flops(g: &Graph) -> u64 {
    g.node_ids()
        .fold(0u64, |a, id| a.saturating_add(node_flops(g, id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::text::parse_graph;

    #[test]
    fn counts_hand_checked() {
        // MatMul [2,3]x[3,4]: 2·(2·4)·3 = 48. Conv 1x2x5x5 with W [4,2,3,3] (pads 0) →
        // out 1x4x3x3 = 36 elements, each 2·9 MACs: 2·36·18 = 1296.
        let src = r#"graph "g" {
  input %x: f32[2,3]
  input %img: f32[1,2,5,5]
  %w = const f32[3,4] [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  %y = MatMul %x, %w : f32[2,4]
  %k = const f32[4,2,3,3] [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  %c = Conv(window:(auto_pad:NotSet,kernel_shape:[],strides:[],dilations:[],pads:[]),group:1) %img, %k, _ : f32[1,4,3,3]
  output %y
  output %c
}
"#;
        let g = parse_graph(src).unwrap();
        let s = GraphStats::of(&g);
        assert_eq!(s.flops, 48 + 1296);
        assert_eq!(s.params, 12 + 72);
        assert_eq!(s.nodes, 6);
    }
}
