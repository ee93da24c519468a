//! `fuse-qkv`: the Q, K and V projections of an `Attention` node — three GEMMs that read
//! the same activations with constant weights — become one GEMM over the concatenated
//! weights `W_q|W_k|W_v` (and biases), followed by a `Split` of its columns.
//!
//! ```text
//! %q = FusedMatMul(activation:Linear) %x, %wq, %bq : f32[b,s,384]
//! %k = FusedMatMul(activation:Linear) %x, %wk, %bk : f32[b,s,384]
//! %v = FusedMatMul(activation:Linear) %x, %wv, %bv : f32[b,s,384]
//! %y = Attention(num_heads:12,scale:0.17677669) %q, %k, %v, %mask : f32[b,s,384]
//!   →
//! %qkv = FusedMatMul(activation:Linear) %x, %wqkv, %bqkv : f32[b,s,1152]
//! %q, %k, %v = Split(axis:-1,num_outputs:3) %qkv, %sizes : f32[b,s,384], f32[b,s,384], f32[b,s,384]
//! %y = Attention(num_heads:12,scale:0.17677669) %q, %k, %v, %mask : f32[b,s,384]
//! ```
//!
//! Matched per `Attention` node: its Q, K and V are each made by a distinct plain `MatMul`
//! or a `FusedMatMul` with no activation and no residual; all three read the same `A`; their
//! `B` are constant 2-D weights of one float dtype with the same row count `K`; either all
//! or none has a (constant, 1-D) bias. One GEMM reads `A` once and packs it once, and the
//! cpu backend's attention reads the three column blocks in place (the Split costs nothing
//! there). Exactness E0: every output column is the same dot product, accumulated in the
//! same order, as before (PASSES.md §6 "Fused QKV", test 5). Sources: DeepSpeed `qkv_gemm`,
//! ONNX Runtime `Attention`'s packed QKV weight.

use crate::rewrite::{new_const, new_node, remove_dead_from, replace_value, Namer};
use crate::{Changed, PassContext};
use whittle_ir::{
    Activation, DType, Dim, Graph, IrError, NodeId, Op, Tensor, TensorType, Value, ValueInfo,
};

/// One projection: `y = a·b (+ bias)`, made by node `node`.
struct Proj {
    node: NodeId,
    b: Value,
    bias: Option<Value>,
    /// Output columns.
    n: usize,
}

/// The projection making `v`, if it is a fusible GEMM; `Err` says why not.
fn projection(g: &Graph, v: Value) -> Result<(Value, Proj), String> {
    let node = g.node(v.node);
    let linear = match &node.op {
        Op::MatMul => true,
        Op::FusedMatMul { activation } => {
            *activation == Activation::Linear && g.input(v.node, 3).is_none()
        }
        _ => false,
    };
    if !linear || v.port != 0 {
        return Err(format!(
            "'{}' is not a MatMul without activation or residual",
            node.name
        ));
    }
    let (a, b) = (
        g.input(v.node, 0).ok_or("missing A")?,
        g.input(v.node, 1).ok_or("missing B")?,
    );
    let w = g
        .const_tensor(b)
        .ok_or_else(|| format!("the weight of '{}' is not a constant", node.name))?;
    if w.rank() != 2 || !w.dtype().is_float() {
        return Err(format!(
            "the weight of '{}' is not a 2-D float matrix",
            node.name
        ));
    }
    let n = w.shape()[1];
    let bias = match g.input(v.node, 2).filter(|_| node.op != Op::MatMul) {
        None => None,
        Some(c) => {
            let t = g
                .const_tensor(c)
                .ok_or_else(|| format!("the bias of '{}' is not a constant", node.name))?;
            if t.shape() != [n] || t.dtype() != w.dtype() {
                return Err(format!("the bias of '{}' is not 1-D [{n}]", node.name));
            }
            Some(c)
        }
    };
    Ok((
        a,
        Proj {
            node: v.node,
            b,
            bias,
            n,
        },
    ))
}

/// The three projections of attention node `id`, if they can share one GEMM.
fn match_at(g: &Graph, id: NodeId) -> Result<(Value, [Proj; 3]), String> {
    let ins: Vec<Value> = (0..3)
        .map(|i| g.input(id, i).ok_or("missing q, k or v"))
        .collect::<Result<_, _>>()?;
    let mut projs = Vec::with_capacity(3);
    let mut a0 = None;
    for &v in &ins {
        let (a, p) = projection(g, v)?;
        if a0.is_some_and(|x| x != a) {
            return Err("Q, K and V do not read the same activations".into());
        }
        a0 = Some(a);
        projs.push(p);
    }
    let a = a0.ok_or("no projections")?;
    let [p0, p1, p2]: [Proj; 3] = projs.try_into().map_err(|_| "three projections")?;
    if p0.node == p1.node || p0.node == p2.node || p1.node == p2.node {
        return Err("Q, K and V are not three separate GEMMs".into());
    }
    let w: Vec<&Tensor> = [&p0, &p1, &p2]
        .iter()
        .map(|p| g.const_tensor(p.b).expect("checked above"))
        .collect();
    if w.iter()
        .any(|t| t.shape()[0] != w[0].shape()[0] || t.dtype() != w[0].dtype())
    {
        return Err("the weights differ in rows or dtype".into());
    }
    let biased = [&p0, &p1, &p2].iter().filter(|p| p.bias.is_some()).count();
    if biased != 0 && biased != 3 {
        return Err("only some of Q, K and V have a bias".into());
    }
    Ok((a, [p0, p1, p2]))
}

/// Row-wise concatenation of `k × n_i` matrices (or of 1-D vectors: `k` = 1).
fn concat_columns(parts: &[&Tensor], k: usize, dtype: DType) -> Tensor {
    let cols: Vec<usize> = parts.iter().map(|t| t.len() / k).collect();
    let data: Vec<Vec<f64>> = parts.iter().map(|t| t.to_f64_vec()).collect();
    let total: usize = cols.iter().sum();
    let mut out = Vec::with_capacity(k * total);
    for r in 0..k {
        for (d, &c) in data.iter().zip(&cols) {
            out.extend_from_slice(&d[r * c..(r + 1) * c]);
        }
    }
    let shape = if parts[0].rank() == 1 {
        vec![total]
    } else {
        vec![k, total]
    };
    Tensor::from_f64(dtype, shape, &out)
}

/// Runs the pass; see the module docs.
pub fn fuse_qkv(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) || !matches!(g.node(id).op, Op::Attention { .. }) {
            continue;
        }
        let name = g.node(id).name.clone();
        let (a, projs) = match match_at(g, id) {
            Ok(m) => m,
            Err(why) => {
                cx.explain("fuse-qkv", format!("Attention '{name}': {why}"));
                continue;
            }
        };
        let outs: Vec<Value> = (0..3).map(|i| g.input(id, i).expect("matched")).collect();
        let ty0 = g.value_type(outs[0]).clone();
        let Some(dims) = ty0.shape.clone() else {
            cx.explain(
                "fuse-qkv",
                format!("Attention '{name}': Q has no known rank"),
            );
            continue;
        };
        let w: Vec<&Tensor> = projs
            .iter()
            .map(|p| g.const_tensor(p.b).expect("matched"))
            .collect();
        let (k, dtype) = (w[0].shape()[0], w[0].dtype());
        let wcat = concat_columns(&w, k, dtype);
        let bcat = (projs[0].bias.is_some()).then(|| {
            let b: Vec<&Tensor> = projs
                .iter()
                .map(|p| {
                    g.const_tensor(p.bias.expect("all biased"))
                        .expect("matched")
                })
                .collect();
            concat_columns(&b, 1, dtype)
        });
        let total: usize = projs.iter().map(|p| p.n).sum();
        let base = format!("{name}_qkv");
        let wv = new_const(g, &mut namer, &format!("{base}_weight"), wcat);
        let bv = bcat.map(|t| new_const(g, &mut namer, &format!("{base}_bias"), t));
        let mut fused_dims = dims.clone();
        *fused_dims.last_mut().expect("rank ≥ 1") = Dim::Known(total);
        let fused_ty = TensorType {
            dtype: ty0.dtype,
            shape: Some(fused_dims),
        };
        let op = match bv {
            Some(_) => Op::FusedMatMul {
                activation: Activation::Linear,
            },
            None => Op::MatMul,
        };
        let ins = match bv {
            Some(b) => vec![Some(a), Some(wv), Some(b)],
            None => vec![Some(a), Some(wv)],
        };
        let qkv = new_node(g, &mut namer, &base, op, &ins, fused_ty);
        let sizes: Vec<i64> = projs.iter().map(|p| p.n as i64).collect();
        let sizes = new_const(
            g,
            &mut namer,
            &format!("{base}_sizes"),
            Tensor::from_vec(vec![3], sizes),
        );
        let infos: Vec<ValueInfo> = outs
            .iter()
            .map(|&v| ValueInfo {
                name: namer.fresh(&g.value_info(v).name),
                ty: g.value_type(v).clone(),
            })
            .collect();
        let split = g.add_node(
            Op::Split {
                axis: -1,
                num_outputs: 3,
            },
            namer.fresh(&format!("{base}_split")),
            &[Some(qkv), Some(sizes)],
            infos,
        );
        for (p, &old) in outs.iter().enumerate() {
            replace_value(g, &mut namer, old, Value::new(split, p));
        }
        let dead: Vec<NodeId> = projs.iter().map(|p| p.node).collect();
        remove_dead_from(g, &dead);
        cx.explain(
            "fuse-qkv",
            format!(
                "Attention '{name}': Q, K, V projections → one GEMM of {total} columns and a Split"
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
