//! The embedded demo model: a small BERT-style Post-LN encoder (2 layers, width 32,
//! 4 heads) built in code with seeded pseudo-random weights, so `whittle demo` needs no
//! download. It uses the same op mix as a `torch.onnx` BERT export: Gather embeddings,
//! LayerNormalization, MatMul+Add, Reshape/Transpose heads, masked Softmax attention and
//! erf GELU spelled out as Div/Erf/Add/Mul.

use whittle_ir::{BinaryOp, DType, Graph, Op, Tensor, TensorType, UnaryOp, Value, ValueInfo};

pub const SEQ: usize = 16;
pub const HIDDEN: usize = 32;
pub const HEADS: usize = 4;
pub const FFN: usize = 64;
pub const VOCAB: usize = 100;
pub const LAYERS: usize = 2;

/// Deterministic xorshift generator, so the demo's weights are the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(
            shape.to_vec(),
            (0..n)
                .map(|_| self.next_f32() * scale)
                .collect::<Vec<f32>>(),
        )
    }
}

struct Builder {
    g: Graph,
    rng: Rng,
    count: usize,
}

impl Builder {
    fn node(&mut self, op: Op, ins: &[Value], dtype: DType, shape: &[usize]) -> Value {
        self.count += 1;
        let name = format!("{}_{}", op.kind_name().to_lowercase(), self.count);
        let ins: Vec<Option<Value>> = ins.iter().copied().map(Some).collect();
        let out = ValueInfo {
            name: name.clone(),
            ty: TensorType::fixed(dtype, shape),
        };
        let id = self.g.add_node(op, name, &ins, vec![out]);
        Value::new(id, 0)
    }
    fn f32(&mut self, op: Op, ins: &[Value], shape: &[usize]) -> Value {
        self.node(op, ins, DType::F32, shape)
    }
    fn weight(&mut self, name: &str, shape: &[usize], scale: f32) -> Value {
        let t = self.rng.tensor(shape, scale);
        self.g.add_const(name, t)
    }
    fn konst(&mut self, name: &str, t: Tensor) -> Value {
        self.g.add_const(name, t)
    }
    /// A small constant; its name gets a counter so value names stay unique.
    fn scalar(&mut self, name: &str, v: f32) -> Value {
        self.count += 1;
        self.g
            .add_const(format!("{name}_{}", self.count), Tensor::scalar(v))
    }
    fn bin(&mut self, op: BinaryOp, a: Value, b: Value, shape: &[usize]) -> Value {
        self.f32(Op::Binary(op), &[a, b], shape)
    }
    fn linear(&mut self, prefix: &str, x: Value, k: usize, n: usize) -> Value {
        let w = self.weight(
            &format!("{prefix}.weight"),
            &[k, n],
            1.0 / (k as f32).sqrt(),
        );
        let b = self.weight(&format!("{prefix}.bias"), &[n], 0.1);
        let y = self.f32(Op::MatMul, &[x, w], &[1, SEQ, n]);
        self.bin(BinaryOp::Add, y, b, &[1, SEQ, n])
    }
    fn layer_norm(&mut self, prefix: &str, x: Value) -> Value {
        let gamma = self.konst(
            &format!("{prefix}.weight"),
            Tensor::from_vec(vec![HIDDEN], vec![1.0f32; HIDDEN]),
        );
        let beta = self.konst(
            &format!("{prefix}.bias"),
            Tensor::from_vec(vec![HIDDEN], vec![0.0f32; HIDDEN]),
        );
        self.f32(
            Op::LayerNormalization {
                axis: -1,
                epsilon: 1e-12,
            },
            &[x, gamma, beta],
            &[1, SEQ, HIDDEN],
        )
    }
    fn shape_const(&mut self, name: &str, dims: &[i64]) -> Value {
        self.count += 1;
        let name = format!("{name}_{}", self.count);
        self.konst(&name, Tensor::from_vec(vec![dims.len()], dims.to_vec()))
    }
    /// `[1,S,H]` → `[1,heads,S,d]` (or `[1,heads,d,S]` for keys).
    fn heads(&mut self, x: Value, key: bool) -> Value {
        let d = HIDDEN / HEADS;
        let shape = self.shape_const("heads_shape", &[1, SEQ as i64, HEADS as i64, d as i64]);
        let r = self.f32(
            Op::Reshape { allowzero: false },
            &[x, shape],
            &[1, SEQ, HEADS, d],
        );
        let (perm, out) = if key {
            (vec![0, 2, 3, 1], [1, HEADS, d, SEQ])
        } else {
            (vec![0, 2, 1, 3], [1, HEADS, SEQ, d])
        };
        self.f32(Op::Transpose { perm: Some(perm) }, &[r], &out)
    }
}

/// Builds the demo encoder: inputs `input_ids` i64[1,16] and `attention_mask` i64[1,16],
/// output `last_hidden_state` f32[1,16,32].
pub fn build_demo_graph() -> Graph {
    let mut b = Builder {
        g: Graph::new("whittle-demo-encoder"),
        rng: Rng(0x5eed_1234_abcd_0001),
        count: 0,
    };
    let ids =
        b.g.add_input("input_ids", TensorType::fixed(DType::I64, &[1, SEQ]));
    let mask =
        b.g.add_input("attention_mask", TensorType::fixed(DType::I64, &[1, SEQ]));
    let word = b.weight("embeddings.word_embeddings.weight", &[VOCAB, HIDDEN], 1.0);
    let pos = b.weight("embeddings.position_embeddings.weight", &[SEQ, HIDDEN], 0.5);
    let e = b.f32(Op::Gather { axis: 0 }, &[word, ids], &[1, SEQ, HIDDEN]);
    let e = b.bin(BinaryOp::Add, e, pos, &[1, SEQ, HIDDEN]);
    let mut h = b.layer_norm("embeddings.LayerNorm", e);

    // Additive mask: (1 - mask) * -10000, shaped [1,1,1,S].
    let mf = b.f32(Op::Cast { to: DType::F32 }, &[mask], &[1, SEQ]);
    let axes = b.shape_const("mask_axes", &[1, 2]);
    let mu = b.f32(Op::Unsqueeze, &[mf, axes], &[1, 1, 1, SEQ]);
    let one = b.scalar("one", 1.0);
    let inv = b.bin(BinaryOp::Sub, one, mu, &[1, 1, 1, SEQ]);
    let big = b.scalar("mask_value", -10000.0);
    let add_mask = b.bin(BinaryOp::Mul, inv, big, &[1, 1, 1, SEQ]);

    let d = HIDDEN / HEADS;
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        let q = b.linear(&format!("{p}.attention.self.query"), h, HIDDEN, HIDDEN);
        let k = b.linear(&format!("{p}.attention.self.key"), h, HIDDEN, HIDDEN);
        let v = b.linear(&format!("{p}.attention.self.value"), h, HIDDEN, HIDDEN);
        let (q, k, v) = (b.heads(q, false), b.heads(k, true), b.heads(v, false));
        let s = b.f32(Op::MatMul, &[q, k], &[1, HEADS, SEQ, SEQ]);
        let scale = b.scalar("attn_scale", (d as f32).sqrt());
        let s = b.bin(BinaryOp::Div, s, scale, &[1, HEADS, SEQ, SEQ]);
        let s = b.bin(BinaryOp::Add, s, add_mask, &[1, HEADS, SEQ, SEQ]);
        let pr = b.f32(
            Op::Softmax {
                axis: -1,
                coerce_2d: false,
            },
            &[s],
            &[1, HEADS, SEQ, SEQ],
        );
        let c = b.f32(Op::MatMul, &[pr, v], &[1, HEADS, SEQ, d]);
        let c = b.f32(
            Op::Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            },
            &[c],
            &[1, SEQ, HEADS, d],
        );
        let flat = b.shape_const("merge_shape", &[1, SEQ as i64, HIDDEN as i64]);
        let c = b.f32(
            Op::Reshape { allowzero: false },
            &[c, flat],
            &[1, SEQ, HIDDEN],
        );
        let o = b.linear(&format!("{p}.attention.output.dense"), c, HIDDEN, HIDDEN);
        let r = b.bin(BinaryOp::Add, o, h, &[1, SEQ, HIDDEN]);
        h = b.layer_norm(&format!("{p}.attention.output.LayerNorm"), r);

        let f = b.linear(&format!("{p}.intermediate.dense"), h, HIDDEN, FFN);
        let sqrt2 = b.scalar("sqrt2", std::f32::consts::SQRT_2);
        let half = b.scalar("half", 0.5);
        let one = b.scalar("one", 1.0);
        let t = b.bin(BinaryOp::Div, f, sqrt2, &[1, SEQ, FFN]);
        let t = b.f32(Op::Unary(UnaryOp::Erf), &[t], &[1, SEQ, FFN]);
        let t = b.bin(BinaryOp::Add, t, one, &[1, SEQ, FFN]);
        let t = b.bin(BinaryOp::Mul, f, t, &[1, SEQ, FFN]);
        let gelu = b.bin(BinaryOp::Mul, t, half, &[1, SEQ, FFN]);
        let o = b.linear(&format!("{p}.output.dense"), gelu, FFN, HIDDEN);
        let r = b.bin(BinaryOp::Add, o, h, &[1, SEQ, HIDDEN]);
        h = b.layer_norm(&format!("{p}.output.LayerNorm"), r);
    }
    let id = b.f32(Op::Identity, &[h], &[1, SEQ, HIDDEN]);
    b.g.node_mut(id.node).outputs[0].name = "last_hidden_state".into();
    b.g.add_output(id, "last_hidden_state");
    b.g
}

/// Demo inputs: 12 real tokens then 4 padding positions.
pub fn demo_inputs() -> Vec<(String, Tensor)> {
    let ids: Vec<i64> = (0..SEQ as i64)
        .map(|i| {
            if i < 12 {
                (i * 37 + 11) % VOCAB as i64
            } else {
                0
            }
        })
        .collect();
    let mask: Vec<i64> = (0..SEQ).map(|i| (i < 12) as i64).collect();
    vec![
        ("input_ids".into(), Tensor::from_vec(vec![1, SEQ], ids)),
        (
            "attention_mask".into(),
            Tensor::from_vec(vec![1, SEQ], mask),
        ),
    ]
}
