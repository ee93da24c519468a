"""SmolLM2-135M (LLaMA) GGUF -> ONNX, plus its tokenizer.

load_gguf(path) reads the config from the GGUF metadata and dequantizes every
tensor (Q4_1 / Q8_0 / F32 ...) to float32 with gguf.quants.dequantize. The Q and K
projections are un-permuted from llama.cpp's interleaved-pair layout back to the
Hugging Face layout, so the graph uses HF's rotate_half RoPE.

build_model(weights, cfg) returns an opset-17 ModelProto:
  input  input_ids int64 [1, sequence]
  output logits    float32 [1, sequence, vocab]
per layer: decomposed RMSNorm (Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma);
Q/K/V MatMul (no bias), Reshape/Transpose to heads; RoPE q*cos + rotate_half(q)*sin
with cos/sin tables [max_pos, head_dim] as constants sliced to the sequence length;
grouped-query attention by Unsqueeze/Expand/Reshape of K and V (repeat_kv);
causal mask Trilu(ConstantOfShape([S, S], finfo.min), upper, k=1); Softmax; output
projection + residual; SwiGLU MLP: (g * Sigmoid(g)) * up, down + residual. Final
RMSNorm and a tied head MatMul(x, Transpose(embedding)).

tokenizer(reader) builds a `tokenizers` byte-level BPE tokenizer from the GGUF's
vocabulary and merges (pre-tokenizer "smollm": digits split, GPT-2 regex).
"""
from __future__ import annotations

import math

import gguf
import numpy as np

from onnx_builder import FLOAT, INT64, Builder, tensor_info


def read_config(r: gguf.GGUFReader) -> dict:
    arch = r.fields["general.architecture"].contents()

    def f(key):
        return r.fields[f"{arch}.{key}"].contents()

    cfg = {
        "layers": int(f("block_count")),
        "hidden": int(f("embedding_length")),
        "ffn": int(f("feed_forward_length")),
        "heads": int(f("attention.head_count")),
        "kv_heads": int(f("attention.head_count_kv")),
        "rope_theta": float(f("rope.freq_base")),
        "eps": float(f("attention.layer_norm_rms_epsilon")),
        "context": int(f("context_length")),
    }
    cfg["head_dim"] = cfg["hidden"] // cfg["heads"]
    return cfg


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf.py's LlamaModel.permute (rows of a [out, in] matrix)."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def load_gguf(path: str) -> tuple[dict, dict, gguf.GGUFReader]:
    r = gguf.GGUFReader(path)
    cfg = read_config(r)
    w = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        a = a.reshape([int(d) for d in reversed(t.shape)]) if a.ndim > 1 else a.reshape(-1)
        if t.name.endswith("attn_q.weight"):
            a = _unpermute(a, cfg["heads"])
        elif t.name.endswith("attn_k.weight"):
            a = _unpermute(a, cfg["kv_heads"])
        w[t.name] = np.ascontiguousarray(a)
    return cfg, w, r


def tokenizer(r: gguf.GGUFReader):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    control = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(control)
    return tok


def rope_tables(cfg: dict, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """HF LlamaRotaryEmbedding: cos/sin of pos * theta^(-2i/d), duplicated to the full head_dim."""
    d = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, d, 2, dtype=np.float64) / d))
    freqs = np.outer(np.arange(n_pos, dtype=np.float64), inv)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


class _Graph:
    """Holds the builder and the per-model shared values (sequence length, tables, mask)."""

    def __init__(self, w: dict, cfg: dict):
        self.b, self.w, self.cfg = Builder(), w, cfg

    def weight_t(self, name: str) -> str:
        """A Linear weight [out, in] stored pre-transposed [in, out] (as torch.onnx exports it)."""
        return self.b.init(name.replace(".weight", ".weight_T"), self.w[name].T)

    def rms_norm(self, x: str, name: str, scope: str, out=None) -> str:
        b = self.b
        p = b.op("Pow", [x, b.const(np.float32(2.0))], f"{scope}/Pow")
        m = b.op("ReduceMean", [p], f"{scope}/ReduceMean", axes=[-1], keepdims=1)
        m = b.op("Add", [m, b.const(np.float32(self.cfg["eps"]))], f"{scope}/Add")
        m = b.op("Sqrt", [m], f"{scope}/Sqrt")
        y = b.op("Div", [x, m], f"{scope}/Div")
        return b.op("Mul", [b.init(name, self.w[name]), y], f"{scope}/Mul", out=out)

    def prologue(self) -> str:
        b, cfg = self.b, self.cfg
        shape = b.op("Shape", ["input_ids"], "/Shape")
        seq = b.op("Gather", [shape, b.const(np.int64(1))], "/Gather", axis=0)
        self.seq = b.op("Unsqueeze", [seq, b.i64(0)], "/Unsqueeze")
        cos, sin = rope_tables(cfg, cfg["context"])
        self.cos = b.op("Slice", [b.init("rotary_emb.cos_cached", cos), b.i64(0), self.seq, b.i64(0)],
                        "/rotary_emb/Slice")
        self.sin = b.op("Slice", [b.init("rotary_emb.sin_cached", sin), b.i64(0), self.seq, b.i64(0)],
                        "/rotary_emb/Slice_1")
        sq = b.op("Concat", [self.seq, self.seq], "/mask/Concat", axis=0)
        full = b.op("ConstantOfShape", [sq], "/mask/ConstantOfShape",
                    value=_scalar_tensor(np.finfo(np.float32).min))
        self.mask = b.op("Trilu", [full, b.const(np.int64(1))], "/mask/Trilu", upper=1)
        emb = b.init("embed_tokens.weight", self.w["token_embd.weight"])
        return b.op("Gather", [emb, "input_ids"], "/embed_tokens/Gather")

    def rope(self, x: str, scope: str) -> str:
        b, half = self.b, self.cfg["head_dim"] // 2
        x1 = b.op("Slice", [x, b.i64(0), b.i64(half), b.i64(-1)], f"{scope}/Slice")
        x2 = b.op("Slice", [x, b.i64(half), b.i64(2 * half), b.i64(-1)], f"{scope}/Slice_1")
        rot = b.op("Concat", [b.op("Neg", [x2], f"{scope}/Neg"), x1], f"{scope}/Concat", axis=-1)
        a = b.op("Mul", [x, self.cos], f"{scope}/Mul")
        c = b.op("Mul", [rot, self.sin], f"{scope}/Mul_1")
        return b.op("Add", [a, c], f"{scope}/Add")

    def heads(self, x: str, n: int, scope: str) -> str:
        b = self.b
        x = b.op("Reshape", [x, b.i64(0, 0, n, self.cfg["head_dim"])], f"{scope}/Reshape")
        return b.op("Transpose", [x], f"{scope}/Transpose", perm=[0, 2, 1, 3])

    def repeat_kv(self, x: str, scope: str) -> str:
        b, rep = self.b, self.cfg["heads"] // self.cfg["kv_heads"]
        if rep == 1:
            return x
        x = b.op("Unsqueeze", [x, b.i64(2)], f"{scope}/Unsqueeze")
        x = b.op("Expand", [x, b.i64(1, 1, rep, 1, 1)], f"{scope}/Expand")
        return b.op("Reshape", [x, b.i64(0, self.cfg["heads"], -1, self.cfg["head_dim"])], f"{scope}/Reshape")

    def attention(self, x: str, i: int) -> str:
        b, cfg, p, s = self.b, self.cfg, f"blk.{i}", f"/layers.{i}/self_attn"
        h = self.rms_norm(x, f"{p}.attn_norm.weight", f"/layers.{i}/input_layernorm")
        q = b.op("MatMul", [h, self.weight_t(f"{p}.attn_q.weight")], f"{s}/q_proj/MatMul")
        k = b.op("MatMul", [h, self.weight_t(f"{p}.attn_k.weight")], f"{s}/k_proj/MatMul")
        v = b.op("MatMul", [h, self.weight_t(f"{p}.attn_v.weight")], f"{s}/v_proj/MatMul")
        q = self.rope(self.heads(q, cfg["heads"], f"{s}/q"), f"{s}/q_rope")
        k = self.rope(self.heads(k, cfg["kv_heads"], f"{s}/k"), f"{s}/k_rope")
        k = self.repeat_kv(k, f"{s}/k_repeat")
        v = self.repeat_kv(self.heads(v, cfg["kv_heads"], f"{s}/v"), f"{s}/v_repeat")
        kt = b.op("Transpose", [k], f"{s}/Transpose", perm=[0, 1, 3, 2])
        sc = b.op("MatMul", [q, kt], f"{s}/MatMul")
        sc = b.op("Div", [sc, b.const(np.float32(math.sqrt(cfg["head_dim"])))], f"{s}/Div")
        sc = b.op("Add", [sc, self.mask], f"{s}/Add")
        pr = b.op("Softmax", [sc], f"{s}/Softmax", axis=-1)
        o = b.op("MatMul", [pr, v], f"{s}/MatMul_1")
        o = b.op("Transpose", [o], f"{s}/Transpose_1", perm=[0, 2, 1, 3])
        o = b.op("Reshape", [o, b.i64(0, 0, cfg["hidden"])], f"{s}/Reshape")
        o = b.op("MatMul", [o, self.weight_t(f"{p}.attn_output.weight")], f"{s}/o_proj/MatMul")
        return b.op("Add", [x, o], f"/layers.{i}/Add")

    def mlp(self, x: str, i: int) -> str:
        b, p, s = self.b, f"blk.{i}", f"/layers.{i}/mlp"
        h = self.rms_norm(x, f"{p}.ffn_norm.weight", f"/layers.{i}/post_attention_layernorm")
        g = b.op("MatMul", [h, self.weight_t(f"{p}.ffn_gate.weight")], f"{s}/gate_proj/MatMul")
        u = b.op("MatMul", [h, self.weight_t(f"{p}.ffn_up.weight")], f"{s}/up_proj/MatMul")
        a = b.op("Mul", [g, b.op("Sigmoid", [g], f"{s}/act_fn/Sigmoid")], f"{s}/act_fn/Mul")
        a = b.op("Mul", [a, u], f"{s}/Mul")
        d = b.op("MatMul", [a, self.weight_t(f"{p}.ffn_down.weight")], f"{s}/down_proj/MatMul")
        return b.op("Add", [x, d], f"/layers.{i}/Add_1")

    def head(self, x: str) -> str:
        b = self.b
        h = self.rms_norm(x, "output_norm.weight", "/norm")
        et = b.op("Transpose", ["embed_tokens.weight"], "/lm_head/Transpose", perm=[1, 0])
        return b.op("MatMul", [h, et], "/lm_head/MatMul", out="logits")


def _scalar_tensor(v: np.floating):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([v], dtype=np.float32), "value")


def build_model(w: dict, cfg: dict):
    g = _Graph(w, cfg)
    x = g.prologue()
    for i in range(cfg["layers"]):
        x = g.mlp(g.attention(x, i), i)
    g.head(x)
    vocab = w["token_embd.weight"].shape[0]
    inputs = [tensor_info("input_ids", INT64, [1, "sequence"])]
    outputs = [tensor_info("logits", FLOAT, [1, "sequence", vocab])]
    return g.b.model(inputs, outputs, opset=17, graph_name="main_graph")
