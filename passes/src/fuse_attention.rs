//! `fuse-attention`: multi-head attention, spelled out as head split, scaled `Q·Kᵀ`,
//! additive mask, softmax, `·V` and head merge, becomes one `Attention` op that reads Q, K
//! and V in their natural `[B, S, H·D]` layout.
//!
//! ```text
//! %q4 = Reshape %q, [0,0,12,32]        %qh = Transpose(perm:[0,2,1,3]) %q4
//! %k4 = Reshape %k, [0,0,12,32]        %kt = Transpose(perm:[0,2,3,1]) %k4
//! %v4 = Reshape %v, [0,0,12,32]        %vh = Transpose(perm:[0,2,1,3]) %v4
//! %s  = MatMul %qh, %kt                %sd = Binary(Div) %s, %c          (or Mul by 1/c)
//! %sm = Binary(Add) %sd, %mask         %p  = Softmax(axis:-1) %sm
//! %o  = MatMul %p, %vh                 %ot = Transpose(perm:[0,2,1,3]) %o
//! %y  = Reshape %ot, [0,0,384]
//!   →   %y = Attention(num_heads:12,scale:0.17677669) %q, %k, %v, %mask : f32[b,s,384]
//! ```
//!
//! Around that core, what decoder exports write (all exact rewrites):
//! - **Scores**: the Softmax input is a tree of `Add`s (read only inside the tree) over
//!   the scaled scores and mask terms; the terms are summed into the one additive mask.
//!   `Where(cond, scores, c)` with a scalar `c ≤ -1e30` (`finfo.min`, `-inf`: a causal mask
//!   written as a select, for instance by a Slice of a constant triangle) is `scores +
//!   Where(cond, 0, c)` (see [`scores`]). The scale is any chain of `Mul`/`Div` by scalar
//!   constants on the MatMul output.
//! - **Q, K, V** are followed back through Transposes (Kᵀ may come from `[0,2,3,1]` of the
//!   split or `[0,1,3,2]` of a `[B,H,S,D]` value, as torch writes `k.transpose(-1,-2)`) and
//!   `Mul` by 1.0 to the head-split Reshape, whose input is read directly. A head-split
//!   tensor that is computed in the `[B,H,S,D]` layout (rotary embeddings, the KV-cache
//!   `Concat` of past and new heads, GQA's `repeat_kv`) is merged back by a Transpose +
//!   Reshape (for `repeat_kv`: the un-repeated heads are transposed, then repeated by an
//!   Unsqueeze + Expand); see [`heads`].
//! - **Head merge**: `Transpose([0,2,1,3])` then a rank-3 Reshape, optionally after
//!   identity Reshapes; a merge target that inference cannot prove to keep batch and
//!   sequence is applied to the `Attention` output instead.
//! - Shape readers (`Shape` of an intermediate, feeding only the matched Reshape targets)
//!   are removed with the pattern; any other reader of an intermediate value declines.
//!
//! Declined, with the Softmax and the blocker named: scores over heads batched into one
//! axis (`[B·H, S, S]` MatMuls, as BLOOM's baddbmm with ALiBi and DeBERTa write them),
//! probabilities read by anything but the `·V` MatMul (a NaN guard), masking constants
//! above -1e30 (`x + c` would not round to `c`), head counts inference does not know,
//! and intermediates with readers outside the pattern.
//!
//! Cost: a merged-back Q, K or V is one strided copy (the Reshapes are views). For a KV
//! cache that is a copy of the whole cache per step, which the unfused graph does not
//! pay for V: on a one-token decode step over a long cache the fused form is about as
//! fast or a little slower, while prompts and multi-token steps are several times faster.
//!
//! Exactness E1: `Div` by `c` becomes a multiplication by `1/c`, several scale constants
//! are multiplied together, and mask terms are added before the scores instead of after
//! them (the same values where the terms are 0 or masking constants); everything else is
//! the same arithmetic. Declines name the Softmax and the blocker. Sources (PASSES.md §6):
//! ByteTransformer fused MHA, FasterTransformer `decoder_masked_multihead_attention`,
//! DeepSpeed `softmax_context`, flash-style online softmax; ONNX Runtime `Attention`.

mod heads;
mod scores;

use crate::rewrite::{const_i64, new_const, new_node, remove_dead_from, replace_value, Namer};
use crate::{Changed, PassContext};
use heads::{Heads, Plan, BHDS, BHSD};
use scores::Term;
use std::collections::{HashMap, HashSet};
use whittle_ir::{DType, Dim, Graph, IrError, NodeId, Op, Tensor, TensorType, Value};

/// How the `Attention` output replaces the matched head merge.
enum Out {
    /// It is the merged value itself.
    Direct,
    /// The merge Reshape's target (not computed from the pattern) applied to it.
    Reshape(Value),
}

struct Match {
    q: Heads,
    k: Heads,
    v: Heads,
    terms: Vec<Term>,
    scale: f32,
    root: Value,
    out: Out,
}

/// The node producing `v`, if its op satisfies `pred`.
pub(crate) fn made_by(g: &Graph, v: Value, pred: impl Fn(&Op) -> bool) -> Option<NodeId> {
    (v.port == 0 && pred(&g.node(v.node).op)).then_some(v.node)
}

/// The one reader of `v` that is not a `Shape` op (`(node, port)`), if `v` is not a graph
/// output. Shape readers are checked separately: they must die with the pattern.
fn main_reader(g: &Graph, v: Value) -> Option<(NodeId, usize)> {
    if g.is_output(v) {
        return None;
    }
    let readers: Vec<_> = g
        .consumers(v)
        .into_iter()
        .filter(|&(n, _)| !matches!(g.node(n).op, Op::Shape { .. }))
        .collect();
    match readers.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn name(g: &Graph, v: Value) -> &str {
    &g.value_info(v).name
}

/// Makes the new nodes of one rewrite, named after the Softmax.
pub(crate) struct Builder<'a> {
    pub g: &'a mut Graph,
    namer: &'a mut Namer,
    base: String,
    syms: usize,
}

impl Builder<'_> {
    pub fn node(&mut self, op: Op, ins: &[Value], ty: TensorType) -> Value {
        let base = format!("{}_{}", self.base, op.kind_name().to_lowercase());
        let ins: Vec<Option<Value>> = ins.iter().copied().map(Some).collect();
        new_node(self.g, self.namer, &base, op, &ins, ty)
    }

    fn ints(&mut self, v: &[i64]) -> Value {
        let t = Tensor::from_i64(DType::I64, vec![v.len()], v);
        new_const(self.g, self.namer, &format!("{}_shape", self.base), t)
    }

    pub fn scalar(&mut self, dtype: DType, v: f64) -> Value {
        let t = Tensor::from_f64(dtype, vec![], &[v]);
        new_const(self.g, self.namer, &format!("{}_zero", self.base), t)
    }

    pub fn reshape(&mut self, x: Value, target: &[i64], ty: TensorType) -> Value {
        let t = self.ints(target);
        self.node(Op::Reshape { allowzero: false }, &[x, t], ty)
    }

    pub fn transpose(&mut self, x: Value, perm: &[usize; 4], ty: TensorType) -> Value {
        let op = Op::Transpose {
            perm: Some(perm.to_vec()),
        };
        self.node(op, &[x], ty)
    }

    pub fn unsqueeze(&mut self, x: Value, axis: i64, ty: TensorType) -> Value {
        let a = self.ints(&[axis]);
        self.node(Op::Unsqueeze, &[x, a], ty)
    }

    pub fn expand(&mut self, x: Value, shape: &[i64], ty: TensorType) -> Value {
        let s = self.ints(shape);
        self.node(Op::Expand, &[x, s], ty)
    }

    /// A dim symbol used nowhere else (for a broadcast inference cannot name).
    pub fn fresh_dim(&mut self) -> Dim {
        self.syms += 1;
        Dim::Sym(format!("{}_dim{}", self.base, self.syms))
    }
}

/// Whether `v` is computed from any node of `set` (searched through at most 256 nodes;
/// a larger cone counts as dependent).
fn depends_on(g: &Graph, v: Value, set: &HashSet<NodeId>) -> bool {
    let mut stack = vec![v.node];
    let mut seen = HashSet::new();
    while let Some(n) = stack.pop() {
        if set.contains(&n) || seen.len() > 256 {
            return true;
        }
        if seen.insert(n) {
            stack.extend(g.node_inputs(n).into_iter().flatten().map(|x| x.node));
        }
    }
    false
}

/// Whether node `n` becomes dead once `set` is removed: no graph output, and every reader
/// of its outputs in `set` or dead in turn.
fn dies(g: &Graph, n: NodeId, set: &HashSet<NodeId>, memo: &mut HashMap<NodeId, bool>) -> bool {
    if let Some(&d) = memo.get(&n) {
        return d;
    }
    memo.insert(n, false);
    let d = memo.len() < 512
        && (0..g.node(n).outputs.len()).all(|p| {
            let v = Value::new(n, p);
            !g.is_output(v)
                && g.consumers(v)
                    .iter()
                    .all(|&(c, _)| set.contains(&c) || dies(g, c, set, memo))
        });
    memo.insert(n, d);
    d
}

/// A reader outside the pattern of one of its intermediate values, as a decline reason.
fn foreign_reader(g: &Graph, set: &HashSet<NodeId>, root: Value) -> Option<String> {
    let mut memo = HashMap::new();
    let mut ids: Vec<NodeId> = set.iter().copied().collect();
    ids.sort();
    for n in ids {
        for p in 0..g.node(n).outputs.len() {
            let v = Value::new(n, p);
            if v == root {
                continue;
            }
            if g.is_output(v) {
                return Some(format!("'{}' is a graph output", name(g, v)));
            }
            for (c, _) in g.consumers(v) {
                if !set.contains(&c) && !dies(g, c, set, &mut memo) {
                    let cn = g.node(c);
                    return Some(format!(
                        "'{}' is also read by '{}' ({})",
                        name(g, v),
                        cn.name,
                        cn.op.kind_name()
                    ));
                }
            }
        }
    }
    None
}

/// `y = Reshape(Transpose([0,2,1,3], o))` after optional identity Reshapes of `o`:
/// `(y, the merge nodes, the Transpose output)`.
fn head_merge(g: &Graph, o: Value) -> Result<(Value, Vec<NodeId>, Value), String> {
    let mut nodes = vec![];
    let mut cur = o;
    let step = |cur: Value| {
        main_reader(g, cur).ok_or_else(|| {
            format!(
                "'{}' has {} readers besides Shape ops, not one",
                name(g, cur),
                if g.is_output(cur) {
                    "a graph output and others".to_string()
                } else {
                    g.consumers(cur).len().to_string()
                }
            )
        })
    };
    let identity = |n: NodeId| {
        matches!(g.node(n).op, Op::Reshape { .. })
            && g.value_type(Value::new(n, 0)).shape == g.value_type(g.input(n, 0).unwrap()).shape
    };
    let (t, _) = loop {
        let (n, port) = step(cur)?;
        if port == 0 && identity(n) {
            nodes.push(n);
            cur = Value::new(n, 0);
            continue;
        }
        break (n, port);
    };
    if !matches!(&g.node(t).op, Op::Transpose { perm: Some(p) } if p.as_slice() == [0, 2, 1, 3]) {
        return Err(format!(
            "the heads '{}' are read by '{}' ({}), not a [0,2,1,3] head-merge Transpose",
            name(g, cur),
            g.node(t).name,
            g.node(t).op.kind_name()
        ));
    }
    nodes.push(t);
    let ot = Value::new(t, 0);
    let (r, port) = step(ot)?;
    let y = Value::new(r, 0);
    if port != 0 || !matches!(g.node(r).op, Op::Reshape { .. }) || g.value_type(y).rank() != Some(3)
    {
        return Err(format!(
            "the merged heads '{}' are read by '{}' ({}), not a rank-3 head-merge Reshape",
            name(g, ot),
            g.node(r).name,
            g.node(r).op.kind_name()
        ));
    }
    nodes.push(r);
    Ok((y, nodes, ot))
}

/// Whether `y = Reshape(ot, t)` (ot `[B,S,H,Dv]`) is `[B, S, H·Dv]` with the same `B`, `S`.
fn merge_keeps(g: &Graph, ot: Value, y: Value, width: usize) -> bool {
    let (Some(ts), Some(ys)) = (
        g.value_type(ot).shape.clone(),
        g.value_type(y).shape.clone(),
    ) else {
        return false;
    };
    if ts.len() != 4 || ys.len() != 3 || ys[2].known() != Some(width) {
        return false;
    }
    let allowzero = matches!(g.node(y.node).op, Op::Reshape { allowzero: true });
    match g.input(y.node, 1).and_then(|t| const_i64(g, t)) {
        Some(t) => {
            t.len() == 3
                && t.iter().filter(|&&s| s == -1).count() <= 1
                && heads::keeps_dim(t[0], &ts[0], allowzero)
                && heads::keeps_dim(t[1], &ts[1], allowzero)
                && (t[2] == width as i64 || t[2] == -1)
        }
        None => ys[0] == ts[0] && ys[1] == ts[1],
    }
}

/// Matches around a `Softmax` node; the error names the blocker.
fn match_at(g: &Graph, sm: NodeId) -> Result<Match, String> {
    let Op::Softmax { axis, coerce_2d } = g.node(sm).op else {
        return Err("not a Softmax".into());
    };
    let x = g.input(sm, 0).ok_or("no input")?;
    let xt = g.value_type(x);
    let rank = xt.rank();
    if coerce_2d || rank != Some(4) || !(axis == -1 || axis == 3) || !xt.dtype.is_float() {
        return Err(format!(
            "not a softmax over the last axis of rank-4 float scores (axis {axis}, input {xt})"
        ));
    }
    if main_reader(g, x) != Some((sm, 0)) {
        return Err(format!("its input '{}' has other readers", name(g, x)));
    }
    let only = |v: Value| main_reader(g, v).is_some();
    let tree = scores::decompose(g, x, only);
    let candidates: Vec<usize> = (0..tree.leaves.len())
        .filter(|&i| {
            let (raw, _, _) = scores::unscale(g, tree.leaves[i], only);
            scores::scores_matmul(g, raw).is_some()
        })
        .collect();
    if candidates.is_empty() {
        let leaves: Vec<String> = tree.leaves.iter().map(|&l| not_scores(g, l)).collect();
        return Err(format!(
            "no rank-4 Q·Kᵀ MatMul (under scalar Mul/Div) among the scores terms: {}",
            leaves.join("; ")
        ));
    }
    let mut first_err = None;
    for &i in &candidates {
        match try_scores(g, sm, &tree, i) {
            Ok(m) => return Ok(m),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap())
}

/// The rest of the match with leaf `i` of `tree` as the scaled scores.
fn try_scores(g: &Graph, sm: NodeId, tree: &scores::Tree, i: usize) -> Result<Match, String> {
    let only = |v: Value| main_reader(g, v).is_some();
    let (raw, scale, scale_nodes) = scores::unscale(g, tree.leaves[i], only);
    let mm = scores::scores_matmul(g, raw).unwrap();
    let mut terms = vec![];
    for (j, &l) in tree.leaves.iter().enumerate() {
        if j != i {
            scores::mask_fits(g, l, raw)?;
            terms.push(Term::Value(l));
        }
    }
    for (_, t) in &tree.wheres {
        if let Term::Where { cond, c, .. } = t {
            if g.value_type(*c).dtype != g.value_type(raw).dtype
                || g.value_type(*cond).rank().is_none_or(|r| r > 4)
            {
                return Err(format!(
                    "the masking Where on '{}' does not fit an additive mask",
                    name(g, *cond)
                ));
            }
        }
        terms.push(t.clone());
    }
    let q = heads::plan(g, g.input(mm, 0).unwrap(), BHSD).map_err(|e| format!("Q: {e}"))?;
    let k = heads::plan(g, g.input(mm, 1).unwrap(), BHDS).map_err(|e| format!("Kᵀ: {e}"))?;
    let sizes_differ = matches!((q.head, k.head), (Some(a), Some(b)) if a != b);
    if k.heads != q.heads || sizes_differ {
        return Err(format!(
            "Q has {} heads of {:?} but K has {} of {:?}",
            q.heads, q.head, k.heads, k.head
        ));
    }
    let p = Value::new(sm, 0);
    let (pv, port) = main_reader(g, p).ok_or_else(|| {
        let readers: Vec<String> = g
            .consumers(p)
            .iter()
            .map(|&(n, _)| format!("'{}' ({})", g.node(n).name, g.node(n).op.kind_name()))
            .collect();
        format!(
            "the probabilities '{}' are read by {}{}, not only by a ·V MatMul",
            name(g, p),
            readers.join(", "),
            if g.is_output(p) {
                " and are a graph output"
            } else {
                ""
            }
        )
    })?;
    if port != 0 || g.node(pv).op != Op::MatMul {
        return Err(format!(
            "the probabilities are read by '{}' ({}), not a ·V MatMul",
            g.node(pv).name,
            g.node(pv).op.kind_name()
        ));
    }
    let v = heads::plan(g, g.input(pv, 1).unwrap(), BHSD).map_err(|e| format!("V: {e}"))?;
    if v.heads != q.heads {
        return Err(format!("Q has {} heads but V has {}", q.heads, v.heads));
    }
    // Dims the Attention op needs equal (batch of Q, K, V; length of K and V): decline
    // where they are known to differ (a broadcasting MatMul), rather than fail at run time.
    let differ = |a: &Dim, b: &Dim| matches!((a.known(), b.known()), (Some(x), Some(y)) if x != y);
    if differ(&q.batch, &k.batch) || differ(&q.batch, &v.batch) || differ(&k.seq, &v.seq) {
        return Err(format!(
            "Q, K and V batches {}, {}, {} or K and V lengths {}, {} differ (broadcast MatMul)",
            q.batch, k.batch, v.batch, k.seq, v.seq
        ));
    }
    let (root, merge_nodes, ot) = head_merge(g, Value::new(pv, 0))?;
    let mut set: HashSet<NodeId> = tree.nodes.iter().copied().collect();
    set.extend(scale_nodes);
    set.extend([mm, sm, pv]);
    set.extend(merge_nodes);
    let out = if v.width().is_some_and(|w| merge_keeps(g, ot, root, w)) {
        Out::Direct
    } else {
        let t = g.input(root.node, 1).unwrap();
        if depends_on(g, t, &set) {
            return Err(format!(
                "the head-merge Reshape '{}' {} has a target computed from the pattern that \
                 inference cannot prove keeps batch and sequence",
                g.node(root.node).name,
                g.value_type(root)
            ));
        }
        Out::Reshape(t)
    };
    if let Some(e) = foreign_reader(g, &set, root) {
        return Err(e);
    }
    Ok(Match {
        q,
        k,
        v,
        terms,
        scale: scale as f32,
        root,
        out,
    })
}

/// How a Q, K or V plan reads its input, for `--explain`.
fn describe(h: &Heads) -> String {
    match &h.plan {
        Plan::Direct(_) => "split".into(),
        Plan::Merge { perm: None, .. } => "reshaped".into(),
        Plan::Merge { .. } => "transposed".into(),
        Plan::Repeat { n, .. } => format!("repeated ×{n}"),
    }
}

/// Why leaf `l` of the scores is not a scaled rank-4 `Q·Kᵀ` MatMul (for the decline).
fn not_scores(g: &Graph, l: Value) -> String {
    let node = g.node(l.node);
    let what = format!("'{}' ({})", node.name, node.op.kind_name());
    let mut v = l;
    for _ in 0..6 {
        let n = g.node(v.node);
        match &n.op {
            Op::MatMul => {
                return format!(
                    "{what} reaches MatMul '{}' of rank {}: heads batched into one axis \
                     ([B·H, S, S] scores, as BLOOM and DeBERTa write them) are \
                     not matched, only rank-4 [B, H, Sq, Sk] scores",
                    n.name,
                    g.value_type(v).rank().map_or("?".into(), |r| r.to_string())
                )
            }
            Op::Where => {
                let (x, y) = (g.input(v.node, 1).unwrap(), g.input(v.node, 2).unwrap());
                let konst = |u| crate::rewrite::scalar_const(g, u);
                let (c, other) = match (konst(x), konst(y)) {
                    (None, Some(c)) => (c, x),
                    (Some(c), None) => (c, y),
                    _ => break,
                };
                if c > -1e30 {
                    return format!(
                        "{what} selects the constant {c} where masked: only constants \
                         ≤ -1e30 (finfo.min, -inf) are rewritten as an additive mask"
                    );
                }
                v = other;
            }
            Op::Reshape { .. }
            | Op::Binary(whittle_ir::BinaryOp::Add)
            | Op::Binary(whittle_ir::BinaryOp::Mul)
            | Op::Binary(whittle_ir::BinaryOp::Div) => v = g.input(v.node, 0).unwrap(),
            _ => break,
        }
    }
    what
}

pub fn fuse_attention(g: &mut Graph, cx: &mut PassContext) -> Result<Changed, IrError> {
    let mut namer = Namer::new(g);
    let mut count = 0;
    for id in g.topo_order()? {
        if !g.contains(id) || !matches!(g.node(id).op, Op::Softmax { .. }) {
            continue;
        }
        let m = match match_at(g, id) {
            Ok(m) => m,
            Err(why) => {
                let msg = format!("Softmax '{}': {why}", g.node(id).name);
                cx.explain("fuse-attention", msg);
                continue;
            }
        };
        let base = g.node(id).name.clone();
        let root_ty = g.value_type(m.root).clone();
        let dtype = root_ty.dtype;
        let mut b = Builder {
            g,
            namer: &mut namer,
            base: base.clone(),
            syms: 0,
        };
        let (q, k, v) = (
            heads::build(&mut b, &m.q),
            heads::build(&mut b, &m.k),
            heads::build(&mut b, &m.v),
        );
        let mask = scores::build_mask(&mut b, &m.terms, dtype);
        let att_ty = match m.out {
            Out::Direct => root_ty.clone(),
            Out::Reshape(_) => {
                let w = m.v.width().map_or_else(|| b.fresh_dim(), Dim::Known);
                TensorType::new(dtype, vec![m.q.batch.clone(), m.q.seq.clone(), w])
            }
        };
        let op = Op::Attention {
            num_heads: m.q.heads,
            scale: m.scale,
        };
        let att = new_node(
            g,
            &mut namer,
            &format!("{base}_attention"),
            op,
            &[Some(q), Some(k), Some(v), mask],
            att_ty,
        );
        let new = match m.out {
            Out::Direct => att,
            Out::Reshape(t) => new_node(
                g,
                &mut namer,
                &format!("{base}_merge"),
                g.node(m.root.node).op.clone(),
                &[Some(att), Some(t)],
                root_ty,
            ),
        };
        replace_value(g, &mut namer, m.root, new);
        remove_dead_from(g, &[m.root.node]);
        cx.explain(
            "fuse-attention",
            format!(
                "Softmax '{base}' → Attention ({} heads, scale {}, mask: {}; q {}, k {}, v {})",
                m.q.heads,
                m.scale,
                mask.is_some(),
                describe(&m.q),
                describe(&m.k),
                describe(&m.v)
            ),
        );
        count += 1;
    }
    Ok(if count > 0 { Changed::Yes } else { Changed::No })
}
