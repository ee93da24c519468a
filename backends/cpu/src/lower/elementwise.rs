//! Fused elementwise kernels: an expression tree over broadcast leaf inputs (`FusedExpr`),
//! the loop geometry for one concrete output shape (`LoopNest`), and the Cranelift code for
//! both — one loop nest over the output, `f32x4` lanes along the contiguous innermost
//! dimension and a scalar tail.

use super::math::Em;
use crate::jit::Jit;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use whittle_ir::{BinaryOp, GeluApprox, UnaryOp};

/// One operation in a fused expression; arguments are indices of earlier nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum ENode {
    /// Leaf input `i` of the kernel (a buffer, broadcast to the output shape).
    Leaf(usize),
    /// A scalar constant baked into the code.
    Imm(f32),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Min(usize, usize),
    Max(usize, usize),
    LeakyRelu(f32, usize),
    HardSigmoid(f32, f32, usize),
    Gelu(GeluApprox, usize),
    Clip(Option<f32>, Option<f32>, usize),
}

/// A tree of [`ENode`]s in evaluation order; the last node is the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FusedExpr {
    pub nodes: Vec<ENode>,
}

/// Whether the kernel can compute `op` on f32 (the ops the fusion may take in).
pub fn unary_supported(op: UnaryOp) -> bool {
    use UnaryOp::*;
    matches!(
        op,
        Neg | Abs
            | Sqrt
            | Reciprocal
            | Exp
            | Erf
            | Tanh
            | Sigmoid
            | Relu
            | Floor
            | Ceil
            | Round
            | Sign
            | HardSwish
    )
}

pub fn binary_supported(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
    )
}

/// Loop geometry: the output shape with adjacent dimensions merged where every leaf allows
/// it, and each leaf's element strides over those dimensions (0 where it is broadcast).
#[derive(Clone, Debug, PartialEq)]
pub struct LoopNest {
    pub dims: Vec<usize>,
    pub strides: Vec<Vec<usize>>,
}

impl LoopNest {
    /// Geometry for leaves of `leaf_shapes` broadcast (numpy rules) to `out`. Errors when a
    /// leaf does not broadcast to `out`.
    pub fn new(out: &[usize], leaf_shapes: &[Vec<usize>]) -> Result<LoopNest, String> {
        let r = out.len();
        let mut strides = Vec::with_capacity(leaf_shapes.len());
        for s in leaf_shapes {
            if s.len() > r {
                return Err(format!(
                    "input shape {s:?} has a higher rank than the output {out:?}"
                ));
            }
            let pad = r - s.len();
            let mut st = vec![0usize; r];
            let mut acc = 1usize;
            for d in (0..r).rev() {
                let sz = if d < pad { 1 } else { s[d - pad] };
                if sz == out[d] && sz != 1 {
                    st[d] = acc;
                } else if sz != 1 {
                    return Err(format!("input shape {s:?} does not broadcast to {out:?}"));
                }
                acc *= sz;
            }
            strides.push(st);
        }
        // Drop size-1 dims, then merge dim d into d+1 when every leaf is contiguous across them.
        let mut dims: Vec<usize> = Vec::new();
        let mut merged: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
        for d in 0..r {
            if out[d] == 1 {
                continue;
            }
            let can_merge = !dims.is_empty()
                && strides.iter().zip(&merged).all(|(st, m)| {
                    let prev = *m.last().unwrap_or(&0);
                    prev == st[d] * out[d]
                });
            if can_merge {
                *dims.last_mut().unwrap_or(&mut 0) *= out[d];
                for (st, m) in strides.iter().zip(merged.iter_mut()) {
                    if let Some(l) = m.last_mut() {
                        *l = st[d];
                    }
                }
            } else {
                dims.push(out[d]);
                for (st, m) in strides.iter().zip(merged.iter_mut()) {
                    m.push(st[d]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(if out.contains(&0) { 0 } else { 1 });
            for m in merged.iter_mut() {
                m.push(0);
            }
        }
        if out.contains(&0) {
            dims = vec![0];
            merged.iter_mut().for_each(|m| *m = vec![0]);
        }
        Ok(LoopNest {
            dims,
            strides: merged,
        })
    }
}

/// Emits `kernel(args)` computing `expr` over `nest`: `args[0..leaves]` are the leaf buffers,
/// `args[leaves]` the output.
pub fn emit_kernel(
    jit: &mut Jit,
    name: &str,
    expr: &FusedExpr,
    nest: &LoopNest,
) -> Result<usize, String> {
    let leaves = nest.strides.len();
    jit.define_kernel(name, |b, args, fma| {
        let ptr_ty = types::I64;
        let mut bases = Vec::with_capacity(leaves + 1);
        for i in 0..=leaves {
            bases.push(
                b.ins()
                    .load(ptr_ty, MemFlagsData::trusted(), args, (8 * i) as i32),
            );
        }
        let mut offs = vec![Vec::new(); leaves + 1];
        let out_strides: Vec<usize> = {
            let mut s = vec![1usize; nest.dims.len()];
            for d in (0..nest.dims.len().saturating_sub(1)).rev() {
                s[d] = s[d + 1] * nest.dims[d + 1];
            }
            s
        };
        let mut cx = Cx {
            expr,
            nest,
            bases,
            out_strides,
            fma,
        };
        cx.level(b, 0, &mut offs);
        b.ins().return_(&[]);
    })
}

struct Cx<'e> {
    expr: &'e FusedExpr,
    nest: &'e LoopNest,
    bases: Vec<Value>,
    out_strides: Vec<usize>,
    fma: bool,
}

/// Emits `for v in 0..n { body(v) }` with an i64 counter stepping by `step`.
fn counted_loop(
    b: &mut FunctionBuilder,
    start: i64,
    end: i64,
    step: i64,
    body: impl FnOnce(&mut FunctionBuilder, Value),
) {
    if start >= end {
        return;
    }
    let var: Variable = b.declare_var(types::I64);
    let s = b.ins().iconst(types::I64, start);
    b.def_var(var, s);
    let head = b.create_block();
    let body_blk = b.create_block();
    let exit = b.create_block();
    b.ins().jump(head, &[]);
    b.switch_to_block(head);
    let i = b.use_var(var);
    let lim = b.ins().iconst(types::I64, end - step + 1);
    let c = b.ins().icmp(IntCC::SignedLessThan, i, lim);
    b.ins().brif(c, body_blk, &[], exit, &[]);
    b.switch_to_block(body_blk);
    body(b, i);
    let i = b.use_var(var);
    let n = b.ins().iadd_imm_s(i, step);
    b.def_var(var, n);
    b.ins().jump(head, &[]);
    b.switch_to_block(exit);
}

impl Cx<'_> {
    /// Emits loops for dimension `d` onward; `offs[leaf]` holds byte offsets of the outer
    /// loop indices (one entry per outer dimension).
    fn level(&mut self, b: &mut FunctionBuilder, d: usize, offs: &mut Vec<Vec<Value>>) {
        let last = self.nest.dims.len() - 1;
        if d == last {
            self.inner(b, offs);
            return;
        }
        let n = self.nest.dims[d] as i64;
        counted_loop(b, 0, n, 1, |b, i| {
            for (leaf, o) in offs.iter_mut().enumerate() {
                let st = if leaf < self.nest.strides.len() {
                    self.nest.strides[leaf][d]
                } else {
                    self.out_strides[d]
                };
                let v = b.ins().imul_imm_s(i, (st * 4) as i64);
                o.push(v);
            }
            self.level(b, d + 1, offs);
            offs.iter_mut().for_each(|o| {
                o.pop();
            });
        });
    }

    /// Emits the innermost loop: vectors of 4, then a scalar tail.
    fn inner(&mut self, b: &mut FunctionBuilder, offs: &[Vec<Value>]) {
        let d = self.nest.dims.len() - 1;
        let n = self.nest.dims[d] as i64;
        if n == 0 {
            return;
        }
        // Row base pointers.
        let mut rows = Vec::with_capacity(offs.len());
        for (leaf, o) in offs.iter().enumerate() {
            let mut p = self.bases[leaf];
            for &v in o {
                p = b.ins().iadd(p, v);
            }
            rows.push(p);
        }
        let leaves = self.nest.strides.len();
        let inner_stride: Vec<usize> = (0..leaves).map(|l| self.nest.strides[l][d]).collect();
        // Leaves constant along the row: load once.
        let flags = MemFlagsData::new().with_notrap();
        let mut row_scalars: Vec<Option<Value>> = vec![None; leaves];
        for l in 0..leaves {
            if inner_stride[l] == 0 {
                row_scalars[l] = Some(b.ins().load(types::F32, flags, rows[l], 0));
            }
        }
        let n4 = n - n % 4;
        let pass = |b: &mut FunctionBuilder, start: i64, end: i64, ty: Type, lanes: i64| {
            counted_loop(b, start, end, lanes, |b, j| {
                let byte = b.ins().imul_imm_s(j, 4);
                let mut vals = Vec::with_capacity(leaves);
                for l in 0..leaves {
                    let v = match row_scalars[l] {
                        Some(s) if ty.is_vector() => b.ins().splat(ty, s),
                        Some(s) => s,
                        None => {
                            let a = b.ins().iadd(rows[l], byte);
                            b.ins().load(ty, flags, a, 0)
                        }
                    };
                    vals.push(v);
                }
                let mut em = Em {
                    b,
                    ty,
                    fma: self.fma,
                };
                let r = eval(&mut em, self.expr, &vals);
                let a = b.ins().iadd(rows[leaves], byte);
                b.ins().store(flags, r, a, 0);
            });
        };
        pass(b, 0, n4, types::F32X4, 4);
        pass(b, n4, n, types::F32, 1);
    }
}

/// Emits the expression at the emitter's lane type; `leaves` are the loaded leaf values.
fn eval(em: &mut Em, expr: &FusedExpr, leaves: &[Value]) -> Value {
    let mut v: Vec<Value> = Vec::with_capacity(expr.nodes.len());
    for node in &expr.nodes {
        let r = match *node {
            ENode::Leaf(i) => leaves[i],
            ENode::Imm(c) => em.c(c),
            ENode::Unary(op, a) => unary(em, op, v[a]),
            ENode::Binary(op, a, c) => match op {
                BinaryOp::Add => em.add(v[a], v[c]),
                BinaryOp::Sub => em.sub(v[a], v[c]),
                BinaryOp::Mul => em.mul(v[a], v[c]),
                _ => em.div(v[a], v[c]),
            },
            ENode::Min(a, c) => em.min(v[a], v[c]),
            ENode::Max(a, c) => em.max(v[a], v[c]),
            ENode::LeakyRelu(alpha, a) => {
                let (x, z, k) = (v[a], em.c(0.0), em.c(alpha));
                let ax = em.mul(x, k);
                em.select(FloatCC::LessThan, x, z, ax, x)
            }
            ENode::HardSigmoid(alpha, beta, a) => {
                let (ka, kb) = (em.c(alpha), em.c(beta));
                let y = em.fma(v[a], ka, kb);
                let (z, one) = (em.c(0.0), em.c(1.0));
                let y = em.min(y, one);
                em.max(y, z)
            }
            ENode::Gelu(GeluApprox::None, a) => {
                let x = v[a];
                let k = em.c(std::f32::consts::FRAC_1_SQRT_2);
                let z = em.mul(x, k);
                let e = em.one_plus_erf(z);
                let half = em.c(0.5);
                let hx = em.mul(x, half);
                em.mul(hx, e)
            }
            ENode::Gelu(GeluApprox::Tanh, a) => {
                // 0.5·x·(1 + tanh(u)) = x·sigmoid(2u), u = √(2/π)·(x + 0.044715x³).
                let x = v[a];
                let x2 = em.mul(x, x);
                let k = em.c(0.044_715);
                let one = em.c(1.0);
                let p = em.fma(x2, k, one);
                let c2 = em.c(2.0 * 0.797_884_6);
                let u2 = em.mul(x, c2);
                let u2 = em.mul(u2, p);
                let s = em.sigmoid(u2);
                em.mul(x, s)
            }
            ENode::Clip(lo, hi, a) => {
                let mut x = v[a];
                if let Some(l) = lo {
                    let l = em.c(l);
                    x = em.max(x, l);
                }
                if let Some(h) = hi {
                    let h = em.c(h);
                    x = em.min(x, h);
                }
                x
            }
        };
        v.push(r);
    }
    *v.last().expect("a fused expression has at least one node")
}

fn unary(em: &mut Em, op: UnaryOp, x: Value) -> Value {
    use UnaryOp::*;
    match op {
        Neg => em.b.ins().fneg(x),
        Abs => em.abs(x),
        Sqrt => em.b.ins().sqrt(x),
        Reciprocal => {
            let one = em.c(1.0);
            em.div(one, x)
        }
        Exp => em.exp(x),
        Erf => em.erf(x),
        Tanh => em.tanh(x),
        Sigmoid => em.sigmoid(x),
        Relu => {
            let z = em.c(0.0);
            em.max(x, z)
        }
        Floor => em.b.ins().floor(x),
        Ceil => em.b.ins().ceil(x),
        Round => em.b.ins().nearest(x),
        Sign => {
            let (z, one, m1) = (em.c(0.0), em.c(1.0), em.c(-1.0));
            let neg = em.select(FloatCC::LessThan, x, z, m1, x);
            em.select(FloatCC::GreaterThan, x, z, one, neg)
        }
        HardSwish => {
            let six = em.c(6.0);
            let half = em.c(0.5);
            let q = em.div(x, six);
            let q = em.add(q, half);
            let (z, one) = (em.c(0.0), em.c(1.0));
            let q = em.min(q, one);
            let q = em.max(q, z);
            em.mul(x, q)
        }
        // Filtered out by `unary_supported` before lowering.
        Log | Sin | Cos | Not | Tan | Asin | Acos | Atan | Sinh | Cosh | Asinh | Acosh | Atanh
        | Softplus | Softsign | Mish | BitwiseNot => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_nest_merges_contiguous_dims_and_keeps_broadcast_ones() {
        // [2,3,4] + [4]: leaf 0 contiguous over all, leaf 1 broadcast over the first two.
        let n = LoopNest::new(&[2, 3, 4], &[vec![2, 3, 4], vec![4]]).unwrap();
        assert_eq!(n.dims, vec![6, 4]);
        assert_eq!(n.strides, vec![vec![4, 1], vec![0, 1]]);
        // [2,3] + [2,1]: the column broadcast blocks merging.
        let n = LoopNest::new(&[2, 3], &[vec![2, 3], vec![2, 1]]).unwrap();
        assert_eq!(n.dims, vec![2, 3]);
        assert_eq!(n.strides, vec![vec![3, 1], vec![1, 0]]);
        // Scalars and empty outputs.
        assert_eq!(LoopNest::new(&[], &[vec![]]).unwrap().dims, vec![1]);
        assert_eq!(LoopNest::new(&[3, 0], &[vec![3, 0]]).unwrap().dims, vec![0]);
        assert!(LoopNest::new(&[3], &[vec![2]]).is_err());
    }
}
