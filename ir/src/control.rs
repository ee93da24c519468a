//! Control flow: the subgraph bodies of `If`, `Loop` and `Scan` ([`Body`], [`ScanAttrs`])
//! and the one graph surgery they need, copying a body into its parent ([`inline_body`]).
//!
//! A body is a whole [`Graph`] that reads nothing from outside: the frontend turns every
//! outer-scope name an ONNX subgraph reads into an explicit input of the control-flow node
//! and a matching trailing input of the body ("captured" inputs), so the parent graph stays
//! a plain dataflow graph whose edges show every dependency, and passes step around a
//! control-flow node as around any other op.

use crate::{DType, Graph, IrError, Op, TensorType, Value, ValueInfo};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A subgraph held by a control-flow op. Serialized (plan images, the text format) as its
/// IR text, which parses back to an equal graph.
#[derive(Clone)]
pub struct Body(pub Arc<Graph>);

impl Body {
    pub fn new(g: Graph) -> Body {
        Body(Arc::new(g))
    }

    pub fn graph(&self) -> &Graph {
        &self.0
    }

    fn text(&self) -> Option<String> {
        crate::text::print_graph(&self.0).ok()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({:?}, {} nodes)", self.0.name, self.0.node_count())
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.node_count() == other.0.node_count()
                && self.text().is_some()
                && self.text() == other.text())
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = crate::text::print_graph(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        let text = String::deserialize(d)?;
        let g = crate::text::parse_graph(&text).map_err(serde::de::Error::custom)?;
        Ok(Body::new(g))
    }
}

/// Attributes of `Op::Scan` (ONNX Scan, opset 9+). The node's inputs are `state[num_state],
/// scan_inputs[num_scan_inputs], captured...`; its outputs `final_state[num_state],
/// scan_outputs...`. The body maps `state, one slice of each scan input, captured → new
/// state, one slice of each scan output`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanAttrs {
    pub body: Body,
    pub num_state: usize,
    pub num_scan_inputs: usize,
    /// Axis of each scan input that is iterated over (may be negative).
    pub input_axes: Vec<i64>,
    /// Per scan input: iterate from the end.
    pub input_reverse: Vec<bool>,
    /// Axis of each scan output along which the slices are stacked (may be negative).
    pub output_axes: Vec<i64>,
    /// Per scan output: stack the slices in reverse order.
    pub output_reverse: Vec<bool>,
}

/// Most iterations a `Loop` may run: a loop whose condition never turns false (an endless
/// loop is valid ONNX) stops with an error instead of hanging.
pub const MAX_LOOP_ITERATIONS: usize = 1 << 20;

/// Largest number of body nodes that unrolling a `Loop` may add to its parent graph.
pub const MAX_UNROLLED_NODES: usize = 8192;

/// Copies `body` into `g`, reading `args[i]` where the body reads its input `i`; returns the
/// values that stand for the body's outputs. Names are prefixed with `prefix` (and made
/// unique); the copies' output types keep only their dtypes, for inference to fill in
/// against the new inputs.
pub fn inline_body(
    g: &mut Graph,
    body: &Graph,
    args: &[Value],
    prefix: &str,
) -> Result<Vec<Value>, IrError> {
    if args.len() != body.inputs().len() {
        return Err(IrError::Graph(format!(
            "a body with {} inputs was given {} values",
            body.inputs().len(),
            args.len()
        )));
    }
    let mut used: HashSet<String> = HashSet::new();
    for id in g.node_ids() {
        let n = g.node(id);
        used.insert(n.name.clone());
        used.extend(n.outputs.iter().map(|o| o.name.clone()));
    }
    let mut fresh = |base: &str| {
        let base = format!("{prefix}{base}");
        let mut name = base.clone();
        let mut k = 0;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.insert(name.clone());
        name
    };
    let mut map: HashMap<Value, Value> = HashMap::new();
    for (i, &id) in body.inputs().iter().enumerate() {
        map.insert(Value::new(id, 0), args[i]);
    }
    for id in body.topo_order()? {
        let n = body.node(id);
        if matches!(n.op, Op::Input(_)) {
            continue;
        }
        let mut ins = Vec::with_capacity(n.num_inputs);
        for v in body.node_inputs(id) {
            ins.push(match v {
                Some(v) => Some(*map.get(&v).ok_or_else(|| {
                    IrError::Graph(format!("body node '{}' reads an unknown value", n.name))
                })?),
                None => None,
            });
        }
        let outs: Vec<ValueInfo> = n
            .outputs
            .iter()
            .map(|o| ValueInfo {
                name: fresh(&o.name),
                ty: loose(&o.ty, &n.op),
            })
            .collect();
        let new = g.add_node(n.op.clone(), fresh(&n.name), &ins, outs);
        for p in 0..n.outputs.len() {
            map.insert(Value::new(id, p), Value::new(new, p));
        }
    }
    body.outputs()
        .iter()
        .map(|o| {
            map.get(&o.value)
                .copied()
                .ok_or_else(|| IrError::Graph(format!("body output '{}' is not computed", o.name)))
        })
        .collect()
}

/// The type a copied node starts with: its dtype, any shape (constants keep theirs).
fn loose(ty: &TensorType, op: &Op) -> TensorType {
    match op {
        Op::Constant(_) => ty.clone(),
        _ => TensorType {
            dtype: ty.dtype,
            shape: None,
        },
    }
}

/// Whether the body's condition output (output 0 of a `Loop` body) is always true given a
/// true condition input: it is the condition input itself, an `Identity` of it, or a
/// constant true.
pub fn loop_condition_stays_true(body: &Graph) -> bool {
    let Some(out) = body.outputs().first() else {
        return false;
    };
    let mut v = out.value;
    loop {
        let n = body.node(v.node);
        match &n.op {
            Op::Input(1) => return true,
            Op::Identity => match body.input(v.node, 0) {
                Some(src) => v = src,
                None => return false,
            },
            Op::Constant(t) => {
                return t.dtype() == DType::Bool && t.len() == 1 && t.to_i64_vec() == [1]
            }
            _ => return false,
        }
    }
}

/// The verifier's check of a control-flow node: its bodies are valid graphs whose input
/// and output counts fit the node's ports (`Ok` for other ops).
pub fn check_bodies(op: &Op, num_inputs: usize, num_outputs: usize) -> Result<(), String> {
    let fits = |b: &Body, ins: usize, outs: usize| -> Result<(), String> {
        let g = b.graph();
        g.verify().map_err(|e| format!("body '{}': {e}", g.name))?;
        if g.inputs().len() != ins || g.outputs().len() != outs {
            return Err(format!(
                "body '{}' has {} inputs and {} outputs, the node needs {ins} and {outs}",
                g.name,
                g.inputs().len(),
                g.outputs().len()
            ));
        }
        Ok(())
    };
    match op {
        Op::If {
            then_branch,
            else_branch,
        } => {
            let caps = num_inputs.saturating_sub(1);
            fits(then_branch, caps, num_outputs)?;
            fits(else_branch, caps, num_outputs)
        }
        Op::Loop { body, carried } => {
            if num_inputs < 2 + carried || num_outputs < *carried {
                return Err(format!(
                    "{carried} loop-carried values need at least {} inputs and {carried} outputs",
                    2 + carried
                ));
            }
            fits(body, num_inputs, num_outputs + 1)
        }
        Op::Scan(a) => {
            let k = num_outputs.saturating_sub(a.num_state);
            if num_inputs < a.num_state + a.num_scan_inputs
                || num_outputs < a.num_state
                || a.input_axes.len() != a.num_scan_inputs
                || a.input_reverse.len() != a.num_scan_inputs
                || a.output_axes.len() != k
                || a.output_reverse.len() != k
            {
                return Err(format!(
                    "{} state and {} scan inputs do not fit {num_inputs} inputs, {num_outputs} \
                     outputs and the axis lists",
                    a.num_state, a.num_scan_inputs
                ));
            }
            fits(&a.body, num_inputs, num_outputs)
        }
        _ => Ok(()),
    }
}

/// Removes control flow that specialization made static: an `If` whose condition is a
/// constant becomes its branch; a `Loop` with a constant trip count whose condition stays
/// true is unrolled (while the copies stay under [`MAX_UNROLLED_NODES`]). Returns whether
/// the graph changed; the new nodes carry dtypes only, for inference to type them.
pub fn make_static(g: &mut Graph, id: crate::NodeId) -> Result<bool, IrError> {
    let n = g.node(id);
    let prefix = format!("{}/", n.name);
    let ins = g.node_inputs(id);
    let n_out = n.outputs.len();
    let konst = |p: usize| -> Option<&crate::Tensor> {
        ins.get(p)
            .copied()
            .flatten()
            .and_then(|v| g.const_tensor(v))
            .filter(|t| t.len() == 1)
    };
    let new_outs: Vec<Value> = match &n.op {
        Op::If {
            then_branch,
            else_branch,
        } => {
            let Some(c) = konst(0) else { return Ok(false) };
            let b = if c.get_f64(0) != 0.0 {
                then_branch.clone()
            } else {
                else_branch.clone()
            };
            let Some(args) = ins[1..].iter().copied().collect::<Option<Vec<Value>>>() else {
                return Ok(false);
            };
            inline_body(g, b.graph(), &args, &prefix)?
        }
        Op::Loop { body, carried } => {
            let carried = *carried;
            let Some(m) = konst(0).map(|t| t.to_i64_vec()[0]) else {
                return Ok(false);
            };
            let cond_true = match ins.get(1).copied().flatten() {
                None => true,
                Some(_) => konst(1).is_some_and(|t| t.get_f64(0) != 0.0),
            };
            let body = body.clone();
            let size = body.graph().node_count().max(1);
            if m <= 0
                || !cond_true
                || !loop_condition_stays_true(body.graph())
                || (m as usize).saturating_mul(size) > MAX_UNROLLED_NODES
            {
                return Ok(false);
            }
            let Some(rest) = ins
                .get(2..)
                .and_then(|r| r.iter().copied().collect::<Option<Vec<Value>>>())
            else {
                return Ok(false);
            };
            let (v0, caps) = rest.split_at(carried.min(rest.len()));
            let mut v = v0.to_vec();
            let caps = caps.to_vec();
            let k = n_out.saturating_sub(carried);
            let mut scans: Vec<Vec<Value>> = vec![Vec::new(); k];
            let t = g.add_const(format!("{prefix}cond"), crate::Tensor::scalar(true));
            for i in 0..m {
                let it = g.add_const(format!("{prefix}iter{i}"), crate::Tensor::scalar(i));
                let mut args = vec![it, t];
                args.extend(v.iter().copied());
                args.extend(caps.iter().copied());
                let outs = inline_body(g, body.graph(), &args, &format!("{prefix}{i}/"))?;
                v = outs[1..1 + carried].to_vec();
                for (j, s) in outs[1 + carried..].iter().enumerate() {
                    scans[j].push(*s);
                }
            }
            let axes = g.add_const(
                format!("{prefix}axes"),
                crate::Tensor::from_vec(vec![1], vec![0i64]),
            );
            for s in scans {
                let dtype = g.value_type(s[0]).dtype;
                let loose = |name: String| ValueInfo {
                    name,
                    ty: TensorType { dtype, shape: None },
                };
                let mut parts = Vec::with_capacity(s.len());
                for (i, x) in s.iter().enumerate() {
                    let nm = format!("{prefix}unsqueeze{}_{i}", v.len() + parts.len());
                    let u = g.add_node(
                        Op::Unsqueeze,
                        nm.clone(),
                        &[Some(*x), Some(axes)],
                        vec![loose(nm)],
                    );
                    parts.push(Some(Value::new(u, 0)));
                }
                let nm = format!("{prefix}stack{}", v.len());
                let c = g.add_node(Op::Concat { axis: 0 }, nm.clone(), &parts, vec![loose(nm)]);
                v.push(Value::new(c, 0));
            }
            v
        }
        _ => return Ok(false),
    };
    if new_outs.len() != n_out {
        return Err(IrError::Graph(format!(
            "'{}': the body gives {} values for {n_out} outputs",
            prefix.trim_end_matches('/'),
            new_outs.len()
        )));
    }
    for (p, nv) in new_outs.into_iter().enumerate() {
        g.replace_all_uses(Value::new(id, p), nv);
    }
    g.remove_node(id);
    Ok(true)
}
