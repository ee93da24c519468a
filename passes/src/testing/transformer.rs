//! Random GPT-style (Pre-LN) and BERT-style (Post-LN) transformers over token ids.
//!
//! Layout (batch 1): `input_ids i64[1,S]` → token `Gather` + position table → blocks →
//! (Pre-LN) final LN → head → `logits [1,S,V]`. Attention is multi-head with an optional
//! causal mask; the MLP is `down(GELU_erf(up(x)))` with GELU spelled as `Erf` arithmetic.

use super::Builder;
use whittle_ir::{BinaryOp, DType, Graph, Op, ReduceOp, UnaryOp, Value};

/// How the LM head gets its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// Its own `[D,V]` weight (and bias when biases are on).
    Untied,
    /// `MatMul(x, Transpose(wte))`: the embedding table is shared.
    TiedTranspose,
    /// `Gemm(x, wte, transB=1)` on `[S,D]`, between two reshapes.
    TiedGemm,
    /// No head: the final LN's output is the graph output (`last_hidden_state` of a base
    /// model).
    None,
}

/// How LayerNorm is spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LnForm {
    /// Opset-17 `LayerNormalization`.
    Op,
    /// `ReduceMean→Sub→Pow→ReduceMean→Add ε→Sqrt→Div→Mul γ→Add β`.
    Decomposed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormPlacement {
    /// GPT-2: `h + f(LN(h))`, a final LN before the head.
    PreLn,
    /// BERT: `LN(h + f(h))`, an LN after the embeddings, no final LN.
    PostLn,
}

#[derive(Clone, Debug)]
pub struct GptConfig {
    pub seed: u64,
    pub dtype: DType,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    pub vocab: usize,
    pub seq: usize,
    pub causal: bool,
    pub head: HeadKind,
    pub biases: bool,
    /// GPT-J / Phi: attention and MLP read one LN, `h + attn(LN h) + mlp(LN h)`.
    pub parallel: bool,
    /// `Mul(λ)` (per-channel) after every attention and MLP writer.
    pub layer_scale: bool,
    /// One `[D,3D]` QKV projection split in three, instead of three projections.
    pub fused_qkv: bool,
    pub placement: NormPlacement,
    pub ln_form: LnForm,
    pub epsilon: f32,
    /// Also output the stream before the final LN as `hidden_states`.
    pub hidden_output: bool,
    /// Put a `Tanh` between the final LN and the head.
    pub ln_into_nonlinearity: bool,
    /// BLOOM: a LayerNorm right after the embeddings whose output is the residual stream
    /// (Pre-LN blocks follow), so the stream's first writer is a norm.
    pub embed_ln: bool,
}

impl Default for GptConfig {
    fn default() -> GptConfig {
        GptConfig {
            seed: 1,
            dtype: DType::F64,
            layers: 2,
            width: 16,
            heads: 2,
            vocab: 23,
            seq: 5,
            causal: true,
            head: HeadKind::Untied,
            biases: true,
            parallel: false,
            layer_scale: false,
            fused_qkv: false,
            placement: NormPlacement::PreLn,
            ln_form: LnForm::Op,
            epsilon: 1e-5,
            hidden_output: false,
            ln_into_nonlinearity: false,
            embed_ln: false,
        }
    }
}

/// Builds the model described by `cfg`.
pub fn gpt(cfg: &GptConfig) -> Graph {
    let (d, s, v) = (cfg.width, cfg.seq, cfg.vocab);
    let mut b = Builder::new("gpt", cfg.dtype, cfg.seed);
    let ids = b.g.add_input(
        "input_ids",
        whittle_ir::TensorType::fixed(DType::I64, &[1, s]),
    );
    let wte = b.randn("wte", &[v, d], 0.2, 1.0);
    let tok = b.node(Op::Gather { axis: 0 }, "tok_emb", &[wte, ids]);
    let wpe = b.randn("wpe", &[s, d], -0.1, 0.5);
    let mut h = b.node(Op::Binary(BinaryOp::Add), "emb", &[tok, wpe]);
    let post = cfg.placement == NormPlacement::PostLn;
    if post || cfg.embed_ln {
        h = layer_norm(&mut b, cfg, "emb_ln", h);
    }
    for l in 0..cfg.layers {
        let p = format!("l{l}");
        if post {
            let a = attention(&mut b, cfg, &format!("{p}.attn"), h);
            let r = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res1"), &[h, a]);
            h = layer_norm(&mut b, cfg, &format!("{p}.ln1"), r);
            let m = mlp(&mut b, cfg, &format!("{p}.mlp"), h);
            let r = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res2"), &[h, m]);
            h = layer_norm(&mut b, cfg, &format!("{p}.ln2"), r);
        } else if cfg.parallel {
            let n = layer_norm(&mut b, cfg, &format!("{p}.ln1"), h);
            let a = attention(&mut b, cfg, &format!("{p}.attn"), n);
            let m = mlp(&mut b, cfg, &format!("{p}.mlp"), n);
            let r = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res1"), &[h, a]);
            h = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res2"), &[r, m]);
        } else {
            let n = layer_norm(&mut b, cfg, &format!("{p}.ln1"), h);
            let a = attention(&mut b, cfg, &format!("{p}.attn"), n);
            h = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res1"), &[h, a]);
            let n = layer_norm(&mut b, cfg, &format!("{p}.ln2"), h);
            let m = mlp(&mut b, cfg, &format!("{p}.mlp"), n);
            h = b.node(Op::Binary(BinaryOp::Add), &format!("{p}.res2"), &[h, m]);
        }
    }
    if cfg.hidden_output {
        b.g.add_output(h, "hidden_states");
    }
    let mut x = if post {
        h
    } else {
        layer_norm(&mut b, cfg, "ln_f", h)
    };
    if cfg.ln_into_nonlinearity {
        x = b.node(Op::Unary(UnaryOp::Tanh), "ln_f.tanh", &[x]);
    }
    let logits = match cfg.head {
        HeadKind::Untied => {
            let w = b.randn("lm_head.w", &[d, v], 0.0, 1.0 / (d as f64).sqrt());
            let y = b.node(Op::MatMul, "lm_head", &[x, w]);
            if cfg.biases {
                let c = b.randn("lm_head.b", &[v], 0.0, 0.5);
                b.node(Op::Binary(BinaryOp::Add), "logits", &[y, c])
            } else {
                y
            }
        }
        HeadKind::TiedTranspose => {
            let wt = b.node(
                Op::Transpose {
                    perm: Some(vec![1, 0]),
                },
                "wte.T",
                &[wte],
            );
            b.node(Op::MatMul, "logits", &[x, wt])
        }
        HeadKind::TiedGemm => {
            let shp = b.ints("flat_shape", &[s as i64, d as i64]);
            let flat = b.node(Op::Reshape { allowzero: false }, "ln_f.flat", &[x, shp]);
            let gemm = Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            };
            let y = b.node(gemm, "lm_head", &[flat, wte]);
            let shp = b.ints("logits_shape", &[1, s as i64, v as i64]);
            b.node(Op::Reshape { allowzero: false }, "logits", &[y, shp])
        }
        HeadKind::None => {
            b.g.add_output(x, "last_hidden_state");
            return b.g;
        }
    };
    b.g.add_output(logits, "logits");
    b.g
}

/// `x·W (+ c)` with `W ~ N(0, 1/fan_in)`, `c ~ N(0, 0.5²)`.
pub(super) fn linear(
    b: &mut Builder,
    cfg_biases: bool,
    name: &str,
    x: Value,
    k: usize,
    n: usize,
) -> Value {
    let w = b.randn(&format!("{name}.w"), &[k, n], 0.0, 1.0 / (k as f64).sqrt());
    let y = b.node(Op::MatMul, &format!("{name}.mm"), &[x, w]);
    if cfg_biases {
        let c = b.randn(&format!("{name}.b"), &[n], 0.0, 0.5);
        b.node(Op::Binary(BinaryOp::Add), name, &[y, c])
    } else {
        y
    }
}

/// A writer, followed by `Mul(λ)` when layer scale is on.
fn writer(b: &mut Builder, cfg: &GptConfig, name: &str, x: Value, k: usize) -> Value {
    let y = linear(b, cfg.biases, name, x, k, cfg.width);
    if cfg.layer_scale {
        let lam = b.uniform(&format!("{name}.ls"), &[cfg.width], 0.2, 1.5);
        b.node(
            Op::Binary(BinaryOp::Mul),
            &format!("{name}.scaled"),
            &[y, lam],
        )
    } else {
        y
    }
}

/// LayerNorm over the last axis with random γ ∈ [0.5, 1.5) and β ~ N(0, 0.3²).
pub(super) fn ln_with(
    b: &mut Builder,
    form: LnForm,
    eps: f32,
    name: &str,
    x: Value,
    d: usize,
) -> Value {
    let gamma = b.uniform(&format!("{name}.g"), &[d], 0.5, 1.5);
    let beta = b.randn(&format!("{name}.b"), &[d], 0.0, 0.3);
    match form {
        LnForm::Op => {
            let op = Op::LayerNormalization {
                axis: -1,
                epsilon: eps,
            };
            b.node(op, name, &[x, gamma, beta])
        }
        LnForm::Decomposed => {
            let mean_op = Op::Reduce {
                op: ReduceOp::Mean,
                keepdims: true,
                noop_with_empty_axes: false,
            };
            let axes = b.ints(&format!("{name}.axes"), &[-1]);
            let m = b.node(mean_op.clone(), &format!("{name}.mean"), &[x, axes]);
            let c = b.node(
                Op::Binary(BinaryOp::Sub),
                &format!("{name}.centred"),
                &[x, m],
            );
            let two = b.konst(&format!("{name}.two"), &[], &[2.0]);
            let sq = b.node(Op::Binary(BinaryOp::Pow), &format!("{name}.sq"), &[c, two]);
            let var = b.node(mean_op, &format!("{name}.var"), &[sq, axes]);
            let e = b.konst(&format!("{name}.eps"), &[], &[eps as f64]);
            let ve = b.node(
                Op::Binary(BinaryOp::Add),
                &format!("{name}.var_eps"),
                &[var, e],
            );
            let sd = b.node(Op::Unary(UnaryOp::Sqrt), &format!("{name}.std"), &[ve]);
            let n = b.node(Op::Binary(BinaryOp::Div), &format!("{name}.norm"), &[c, sd]);
            let s = b.node(
                Op::Binary(BinaryOp::Mul),
                &format!("{name}.scaled"),
                &[n, gamma],
            );
            b.node(Op::Binary(BinaryOp::Add), name, &[s, beta])
        }
    }
}

pub(super) fn layer_norm(b: &mut Builder, cfg: &GptConfig, name: &str, x: Value) -> Value {
    ln_with(b, cfg.ln_form, cfg.epsilon, name, x, cfg.width)
}

/// Multi-head self-attention reading `x [1,S,D]`; returns the out-projection (a writer).
pub(super) fn attention(b: &mut Builder, cfg: &GptConfig, p: &str, x: Value) -> Value {
    let (d, s, h) = (cfg.width, cfg.seq, cfg.heads);
    let dh = d / h;
    let (q, k, v) = if cfg.fused_qkv {
        let qkv = linear(b, cfg.biases, &format!("{p}.qkv"), x, d, 3 * d);
        let parts = b.node_n(
            Op::Split {
                axis: -1,
                num_outputs: 3,
            },
            &format!("{p}.split"),
            &[Some(qkv)],
            3,
        );
        (parts[0], parts[1], parts[2])
    } else {
        (
            linear(b, cfg.biases, &format!("{p}.q"), x, d, d),
            linear(b, cfg.biases, &format!("{p}.k"), x, d, d),
            linear(b, cfg.biases, &format!("{p}.v"), x, d, d),
        )
    };
    let heads_shape = b.ints(
        &format!("{p}.heads_shape"),
        &[1, s as i64, h as i64, dh as i64],
    );
    let split_heads = |b: &mut Builder, t: Value, name: &str, perm: Vec<usize>| {
        let r = b.node(
            Op::Reshape { allowzero: false },
            &format!("{p}.{name}.r"),
            &[t, heads_shape],
        );
        b.node(
            Op::Transpose { perm: Some(perm) },
            &format!("{p}.{name}.t"),
            &[r],
        )
    };
    let q = split_heads(b, q, "q", vec![0, 2, 1, 3]);
    let k = split_heads(b, k, "k", vec![0, 2, 3, 1]);
    let v = split_heads(b, v, "v", vec![0, 2, 1, 3]);
    let scores = b.node(Op::MatMul, &format!("{p}.scores"), &[q, k]);
    let scale = b.konst(&format!("{p}.scale"), &[], &[1.0 / (dh as f64).sqrt()]);
    let mut scores = b.node(
        Op::Binary(BinaryOp::Mul),
        &format!("{p}.scaled"),
        &[scores, scale],
    );
    if cfg.causal {
        let mask: Vec<f64> = (0..s * s)
            .map(|i| if i % s > i / s { -1e9 } else { 0.0 })
            .collect();
        let m = b.konst(&format!("{p}.mask"), &[s, s], &mask);
        scores = b.node(
            Op::Binary(BinaryOp::Add),
            &format!("{p}.masked"),
            &[scores, m],
        );
    }
    let probs = b.node(
        Op::Softmax {
            axis: -1,
            coerce_2d: false,
        },
        &format!("{p}.probs"),
        &[scores],
    );
    let ctx = b.node(Op::MatMul, &format!("{p}.ctx"), &[probs, v]);
    let ctx = b.node(
        Op::Transpose {
            perm: Some(vec![0, 2, 1, 3]),
        },
        &format!("{p}.ctx.t"),
        &[ctx],
    );
    let merged_shape = b.ints(&format!("{p}.merged_shape"), &[1, s as i64, d as i64]);
    let ctx = b.node(
        Op::Reshape { allowzero: false },
        &format!("{p}.ctx.r"),
        &[ctx, merged_shape],
    );
    writer(b, cfg, &format!("{p}.out"), ctx, d)
}

/// `x·W1 + b1 → GELU (erf form) → ·W2 + b2`; returns the down-projection (a writer).
pub(super) fn mlp(b: &mut Builder, cfg: &GptConfig, p: &str, x: Value) -> Value {
    let d = cfg.width;
    let up = linear(b, cfg.biases, &format!("{p}.up"), x, d, 4 * d);
    let act = gelu_erf(b, p, up);
    writer(b, cfg, &format!("{p}.down"), act, 4 * d)
}

/// `0.5·x·(1 + erf(x/√2))`.
pub(super) fn gelu_erf(b: &mut Builder, p: &str, x: Value) -> Value {
    let r2 = b.konst(&format!("{p}.sqrt2"), &[], &[std::f64::consts::SQRT_2]);
    let t = b.node(
        Op::Binary(BinaryOp::Div),
        &format!("{p}.gelu.div"),
        &[x, r2],
    );
    let e = b.node(Op::Unary(UnaryOp::Erf), &format!("{p}.gelu.erf"), &[t]);
    let one = b.konst(&format!("{p}.one"), &[], &[1.0]);
    let e1 = b.node(
        Op::Binary(BinaryOp::Add),
        &format!("{p}.gelu.add"),
        &[e, one],
    );
    let xe = b.node(
        Op::Binary(BinaryOp::Mul),
        &format!("{p}.gelu.mul"),
        &[x, e1],
    );
    let half = b.konst(&format!("{p}.half"), &[], &[0.5]);
    b.node(Op::Binary(BinaryOp::Mul), &format!("{p}.gelu"), &[xe, half])
}
