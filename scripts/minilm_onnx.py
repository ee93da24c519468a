"""all-MiniLM-L6-v2 (BERT, Post-LN) safetensors -> ONNX, laid out like torch.onnx exports BERT.

build_model(weights, config) returns an opset-17 ModelProto with inputs
input_ids / attention_mask / token_type_ids (int64 [batch, sequence]) and output
last_hidden_state (float32 [batch, sequence, hidden]). The graph follows what
torch.onnx.export(BertModel, opset_version=17) produces:

  * extended mask  (1 - Cast(Unsqueeze(mask, [1, 2]))) * finfo(float32).min
  * embeddings     Gather(word) + Gather(token type) + Gather(position table at
                   Slice(position_ids, 0, Unsqueeze(Gather(Shape(input_ids), 1)))),
                   then LayerNormalization
  * each layer     MatMul+Add for Q, K, V (weights pre-transposed [in, out]),
                   Reshape/Transpose to heads, MatMul QK^T, Div sqrt(head_dim), Add mask,
                   Softmax(-1), MatMul V, Transpose/Reshape, MatMul+Add, Add residual,
                   LayerNormalization; MatMul+Add, erf GELU as
                   Mul(Mul(x, 0.5), Add(Erf(Div(x, sqrt 2)), 1)), MatMul+Add, Add residual,
                   LayerNormalization.

reference(weights, config, ids, mask, types) is an independent float64 numpy
implementation of the same network used to validate the export.
"""
from __future__ import annotations

import math

import numpy as np

from onnx_builder import FLOAT, INT64, Builder, tensor_info


def _linear(b: Builder, x: str, w: dict, prefix: str, scope: str) -> str:
    wt = b.init(f"{prefix}.weight_T", w[f"{prefix}.weight"].T)
    y = b.op("MatMul", [x, wt], f"{scope}/MatMul")
    return b.op("Add", [b.init(f"{prefix}.bias", w[f"{prefix}.bias"]), y], f"{scope}/Add")


def _layer_norm(b: Builder, x: str, w: dict, prefix: str, scope: str, eps: float, out=None) -> str:
    g = b.init(f"{prefix}.weight", w[f"{prefix}.weight"])
    beta = b.init(f"{prefix}.bias", w[f"{prefix}.bias"])
    return b.op("LayerNormalization", [x, g, beta], f"{scope}/LayerNormalization", out=out, axis=-1, epsilon=eps)


def _embeddings(b: Builder, w: dict, eps: float) -> str:
    s = "/embeddings"
    words = b.op("Gather", [b.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                            "input_ids"], f"{s}/word_embeddings/Gather")
    types = b.op("Gather", [b.init("embeddings.token_type_embeddings.weight",
                                   w["embeddings.token_type_embeddings.weight"]),
                            "token_type_ids"], f"{s}/token_type_embeddings/Gather")
    x = b.op("Add", [words, types], f"{s}/Add")
    shape = b.op("Shape", ["input_ids"], f"{s}/Shape")
    seq = b.op("Gather", [shape, b.const(np.int64(1))], f"{s}/Gather", axis=0)
    seq = b.op("Unsqueeze", [seq, b.i64(0)], f"{s}/Unsqueeze")
    pos_ids = b.init("embeddings.position_ids", w["embeddings.position_ids"].astype(np.int64))
    pos_ids = b.op("Slice", [pos_ids, b.i64(0), seq, b.i64(1), b.i64(1)], f"{s}/Slice")
    pos = b.op("Gather", [b.init("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]),
                          pos_ids], f"{s}/position_embeddings/Gather")
    x = b.op("Add", [x, pos], f"{s}/Add_1")
    return _layer_norm(b, x, w, "embeddings.LayerNorm", f"{s}/LayerNorm", eps)


def _extended_mask(b: Builder) -> str:
    m = b.op("Unsqueeze", ["attention_mask", b.i64(1, 2)], "/Unsqueeze")
    m = b.op("Cast", [m], "/Cast", to=FLOAT)
    m = b.op("Sub", [b.const(np.float32(1.0)), m], "/Sub")
    return b.op("Mul", [m, b.const(np.float32(np.finfo(np.float32).min))], "/Mul")


def _attention(b: Builder, x: str, mask: str, w: dict, i: int, cfg: dict) -> str:
    nh = cfg["num_attention_heads"]
    hd = cfg["hidden_size"] // nh
    p, s = f"encoder.layer.{i}.attention", f"/encoder/layer.{i}/attention"
    heads = b.i64(0, 0, nh, hd)
    q = _linear(b, x, w, f"{p}.self.query", f"{s}/self/query")
    k = _linear(b, x, w, f"{p}.self.key", f"{s}/self/key")
    v = _linear(b, x, w, f"{p}.self.value", f"{s}/self/value")
    q = b.op("Transpose", [b.op("Reshape", [q, heads], f"{s}/self/Reshape")], f"{s}/self/Transpose", perm=[0, 2, 1, 3])
    k = b.op("Transpose", [b.op("Reshape", [k, heads], f"{s}/self/Reshape_1")], f"{s}/self/Transpose_1",
             perm=[0, 2, 3, 1])
    v = b.op("Transpose", [b.op("Reshape", [v, heads], f"{s}/self/Reshape_2")], f"{s}/self/Transpose_2",
             perm=[0, 2, 1, 3])
    scores = b.op("MatMul", [q, k], f"{s}/self/MatMul")
    scores = b.op("Div", [scores, b.const(np.float32(math.sqrt(hd)))], f"{s}/self/Div")
    scores = b.op("Add", [scores, mask], f"{s}/self/Add")
    probs = b.op("Softmax", [scores], f"{s}/self/Softmax", axis=-1)
    ctx = b.op("MatMul", [probs, v], f"{s}/self/MatMul_1")
    ctx = b.op("Transpose", [ctx], f"{s}/self/Transpose_3", perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", [ctx, b.i64(0, 0, cfg["hidden_size"])], f"{s}/self/Reshape_3")
    y = _linear(b, ctx, w, f"{p}.output.dense", f"{s}/output/dense")
    y = b.op("Add", [y, x], f"{s}/output/Add")
    return _layer_norm(b, y, w, f"{p}.output.LayerNorm", f"{s}/output/LayerNorm", cfg["layer_norm_eps"])


def _feed_forward(b: Builder, x: str, w: dict, i: int, cfg: dict, out=None) -> str:
    p, s = f"encoder.layer.{i}", f"/encoder/layer.{i}"
    h = _linear(b, x, w, f"{p}.intermediate.dense", f"{s}/intermediate/dense")
    a = b.op("Div", [h, b.const(np.float32(math.sqrt(2.0)))], f"{s}/intermediate/intermediate_act_fn/Div")
    a = b.op("Erf", [a], f"{s}/intermediate/intermediate_act_fn/Erf")
    a = b.op("Add", [a, b.const(np.float32(1.0))], f"{s}/intermediate/intermediate_act_fn/Add")
    a = b.op("Mul", [h, a], f"{s}/intermediate/intermediate_act_fn/Mul")
    a = b.op("Mul", [a, b.const(np.float32(0.5))], f"{s}/intermediate/intermediate_act_fn/Mul_1")
    y = _linear(b, a, w, f"{p}.output.dense", f"{s}/output/dense")
    y = b.op("Add", [y, x], f"{s}/output/Add")
    return _layer_norm(b, y, w, f"{p}.output.LayerNorm", f"{s}/output/LayerNorm", cfg["layer_norm_eps"], out=out)


def build_model(w: dict, cfg: dict):
    b = Builder()
    mask = _extended_mask(b)
    x = _embeddings(b, w, cfg["layer_norm_eps"])
    n = cfg["num_hidden_layers"]
    for i in range(n):
        x = _attention(b, x, mask, w, i, cfg)
        x = _feed_forward(b, x, w, i, cfg, out="last_hidden_state" if i == n - 1 else None)
    dims = ["batch", "sequence"]
    inputs = [tensor_info(name, INT64, dims) for name in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [tensor_info("last_hidden_state", FLOAT, dims + [cfg["hidden_size"]])]
    return b.model(inputs, outputs, opset=17, graph_name="main_graph")


# ---------------------------------------------------------------------------
# numpy reference (float64)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _ln(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def reference(w: dict, cfg: dict, ids, mask, types) -> np.ndarray:
    W = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}
    eps, nh = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    B, S = ids.shape
    hd = cfg["hidden_size"] // nh
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.token_type_embeddings.weight"][types]
    x = x + W["embeddings.position_embeddings.weight"][np.arange(S)][None]
    x = _ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    ext = (1.0 - mask[:, None, None, :].astype(np.float64)) * np.finfo(np.float32).min

    def lin(t, p):
        return t @ W[p + ".weight"].T + W[p + ".bias"]

    def split(t):
        return t.reshape(B, S, nh, hd).transpose(0, 2, 1, 3)

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (split(lin(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + ext
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, S, -1)
        x = _ln(lin(ctx, f"{p}.attention.output.dense") + x,
                W[f"{p}.attention.output.LayerNorm.weight"], W[f"{p}.attention.output.LayerNorm.bias"], eps)
        h = lin(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
        x = _ln(lin(h, f"{p}.output.dense") + x, W[f"{p}.output.LayerNorm.weight"], W[f"{p}.output.LayerNorm.bias"], eps)
    return x


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers Pooling(mean) + Normalize, as all-MiniLM-L6-v2's modules.json chains them."""
    m = mask[..., None].astype(np.float64)
    v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
