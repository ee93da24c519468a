//! A random ViT-style Pre-LN encoder: patch `Conv` → `Reshape` → `Transpose`, a CLS token
//! concatenated in front, a position table, Pre-LN blocks, a final LN, mean pooling over
//! tokens and a linear head → `logits [1,classes]`.

use super::transformer::{attention, layer_norm, mlp, GptConfig};
use super::Builder;
use whittle_ir::{AutoPad, BinaryOp, DType, Graph, Op, ReduceOp, TensorType, Window};

#[derive(Clone, Debug)]
pub struct VitConfig {
    pub seed: u64,
    pub dtype: DType,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    pub channels: usize,
    pub image: usize,
    pub patch: usize,
    pub classes: usize,
}

impl Default for VitConfig {
    fn default() -> VitConfig {
        VitConfig {
            seed: 3,
            dtype: DType::F64,
            layers: 1,
            width: 12,
            heads: 2,
            channels: 3,
            image: 8,
            patch: 4,
            classes: 7,
        }
    }
}

/// Builds the model described by `cfg`; its input is `pixels [1,C,H,W]`.
pub fn vit(cfg: &VitConfig) -> Graph {
    let (d, c, p) = (cfg.width, cfg.channels, cfg.patch);
    let grid = cfg.image / p;
    let n = grid * grid;
    let tokens = n + 1;
    let block_cfg = GptConfig {
        seed: cfg.seed,
        dtype: cfg.dtype,
        layers: cfg.layers,
        width: d,
        heads: cfg.heads,
        seq: tokens,
        causal: false,
        ..GptConfig::default()
    };
    let mut b = Builder::new("vit", cfg.dtype, cfg.seed);
    let px = b.g.add_input(
        "pixels",
        TensorType::fixed(cfg.dtype, &[1, c, cfg.image, cfg.image]),
    );
    let w = b.randn(
        "patch.w",
        &[d, c, p, p],
        0.05,
        1.0 / ((c * p * p) as f64).sqrt(),
    );
    let bias = b.randn("patch.b", &[d], 0.1, 0.5);
    let conv = Op::Conv {
        window: Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: vec![p, p],
            strides: vec![p, p],
            dilations: vec![],
            pads: vec![],
        },
        group: 1,
    };
    let y = b.node(conv, "patch", &[px, w, bias]);
    let shp = b.ints("patch.shape", &[1, d as i64, n as i64]);
    let y = b.node(Op::Reshape { allowzero: false }, "patch.flat", &[y, shp]);
    let y = b.node(
        Op::Transpose {
            perm: Some(vec![0, 2, 1]),
        },
        "patch.tokens",
        &[y],
    );
    let cls = b.randn("cls_token", &[1, 1, d], 0.2, 1.0);
    let y = b.node(Op::Concat { axis: 1 }, "with_cls", &[cls, y]);
    let pos = b.randn("pos_embedding", &[1, tokens, d], 0.0, 0.5);
    let mut h = b.node(Op::Binary(BinaryOp::Add), "emb", &[y, pos]);
    for l in 0..cfg.layers {
        let pre = format!("l{l}");
        let x = layer_norm(&mut b, &block_cfg, &format!("{pre}.ln1"), h);
        let a = attention(&mut b, &block_cfg, &format!("{pre}.attn"), x);
        h = b.node(Op::Binary(BinaryOp::Add), &format!("{pre}.res1"), &[h, a]);
        let x = layer_norm(&mut b, &block_cfg, &format!("{pre}.ln2"), h);
        let m = mlp(&mut b, &block_cfg, &format!("{pre}.mlp"), x);
        h = b.node(Op::Binary(BinaryOp::Add), &format!("{pre}.res2"), &[h, m]);
    }
    let x = layer_norm(&mut b, &block_cfg, "ln_f", h);
    let axes = b.ints("pool.axes", &[1]);
    let pooled = b.node(
        Op::Reduce {
            op: ReduceOp::Mean,
            keepdims: false,
            noop_with_empty_axes: false,
        },
        "pool",
        &[x, axes],
    );
    let wh = b.randn("head.w", &[d, cfg.classes], 0.0, 1.0 / (d as f64).sqrt());
    let y = b.node(Op::MatMul, "head.mm", &[pooled, wh]);
    let bh = b.randn("head.b", &[cfg.classes], 0.0, 0.5);
    let logits = b.node(Op::Binary(BinaryOp::Add), "logits", &[y, bh]);
    b.g.add_output(logits, "logits");
    b.g
}
