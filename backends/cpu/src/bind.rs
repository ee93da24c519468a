//! Value binding: graph inputs that feed attribute-like ports (Reduce axes, Slice starts,
//! Pad pads, Range bounds, ...) decide output shapes, so the cpu backend compiles one plan
//! per distinct value of such inputs: before specialization the input's uses at those
//! ports are replaced by a constant holding the run's value (data uses keep reading it).

use whittle_ir::{Graph, Op, Tensor, Value};

/// Input ports of `op` that describe geometry rather than data.
pub fn attribute_ports(op: &Op) -> &'static [usize] {
    match op {
        Op::Reshape { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Reduce { .. }
        | Op::Expand
        | Op::Tile
        | Op::Split { .. }
        | Op::TopK { .. }
        | Op::OneHot { .. }
        | Op::CumSum { .. }
        | Op::Trilu { .. } => &[1],
        Op::Slice => &[1, 2, 3, 4],
        Op::Pad { .. } => &[1, 2, 3],
        Op::Resize(_) => &[1, 2, 3],
        Op::ConstantOfShape { .. } | Op::PaddingOffsets => &[0],
        Op::Range => &[0, 1, 2],
        Op::Compress { .. } | Op::CenterCropPad { .. } => &[1],
        Op::Unique { .. } => &[0],
        Op::Col2Im { .. } => &[1, 2],
        Op::MaxUnpool { .. } => &[2],
        Op::AffineGrid { .. } => &[1],
        Op::Dft { .. } => &[1, 2],
        Op::Stft { .. } => &[1, 3],
        Op::SignalWindow { .. } => &[0],
        Op::MelWeightMatrix { .. } | Op::NonMaxSuppression { .. } => &[0, 1, 2, 3, 4],
        Op::Dropout => &[1, 2],
        // A known condition or trip count turns control flow static (inlined or unrolled).
        Op::If { .. } => &[0],
        Op::Loop { .. } => &[0, 1],
        // total_sequence_length sizes the present KV cache.
        Op::GroupQueryAttention(_) => &[6],
        _ => &[],
    }
}

/// Indices of the graph inputs whose values reach some attribute-like port, directly or
/// through other nodes (not through Shape/Size, which read only shapes); small only.
pub fn value_inputs(g: &Graph) -> Vec<usize> {
    let mut reach: std::collections::HashSet<whittle_ir::NodeId> = Default::default();
    let mut stack: Vec<whittle_ir::NodeId> = Vec::new();
    for id in g.node_ids() {
        for &p in attribute_ports(&g.node(id).op) {
            if let Some(v) = g.input(id, p) {
                stack.push(v.node);
            }
        }
    }
    while let Some(id) = stack.pop() {
        if !reach.insert(id) || matches!(g.node(id).op, Op::Shape { .. } | Op::Size) {
            continue;
        }
        stack.extend(g.node_inputs(id).into_iter().flatten().map(|v| v.node));
    }
    (0..g.inputs().len())
        .filter(|&i| {
            let small = g
                .input_type(i)
                .concrete_shape()
                .is_none_or(|s| s.iter().product::<usize>() <= 4096);
            small && reach.contains(&g.inputs()[i])
        })
        .collect()
}

/// Replaces the attribute-port uses of each bound input by a constant of its value.
pub fn bind_values(g: &mut Graph, values: &[(usize, &Tensor)]) {
    for &(i, t) in values {
        let Some(&nid) = g.inputs().get(i) else {
            continue;
        };
        let v = Value::new(nid, 0);
        // Direct attribute-port uses; other uses too when the value reaches one indirectly.
        let all = g.consumers(v);
        let direct_only = all
            .iter()
            .all(|&(id, p)| attribute_ports(&g.node(id).op).contains(&p) || is_data_sink(g, id));
        let uses: Vec<(whittle_ir::NodeId, usize)> = all
            .into_iter()
            .filter(|&(id, p)| !direct_only || attribute_ports(&g.node(id).op).contains(&p))
            .collect();
        if uses.is_empty() {
            continue;
        }
        let name = format!("{}__bound", g.input_name(i));
        let c = g.add_const(name, t.clone());
        for (id, p) in uses {
            g.set_input(id, p, Some(c));
        }
    }
}

/// Whether reading a value at `id` cannot lead to an attribute port (it feeds only data
/// ports onward): true when no attribute port is reachable from `id`'s outputs.
fn is_data_sink(g: &Graph, id: whittle_ir::NodeId) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![id];
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        for p in 0..g.node(n).outputs.len() {
            for (c, port) in g.consumers(Value::new(n, p)) {
                if attribute_ports(&g.node(c).op).contains(&port) {
                    return false;
                }
                stack.push(c);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::{DType, TensorType};

    #[test]
    fn axes_input_is_bound_and_data_input_is_not() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
        let a = g.add_input("axes", TensorType::fixed(DType::I64, &[1]));
        let op = Op::Reduce {
            op: whittle_ir::ReduceOp::Sum,
            keepdims: true,
            noop_with_empty_axes: false,
        };
        let ty = TensorType::fixed(DType::F32, &[2, 1]);
        let info = whittle_ir::ValueInfo {
            name: "y".into(),
            ty,
        };
        let r = g.add_node(op, "r", &[Some(x), Some(a)], vec![info]);
        g.add_output(Value::new(r, 0), "y");
        assert_eq!(value_inputs(&g), vec![1]);
        let axes = Tensor::from_vec(vec![1], vec![1i64]);
        bind_values(&mut g, &[(1, &axes)]);
        let rid = g.outputs()[0].value.node;
        let bound = g.input(rid, 1).and_then(|v| g.const_tensor(v).cloned());
        assert_eq!(bound, Some(axes));
    }
}
