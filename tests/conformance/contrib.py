#!/usr/bin/env python3
"""Write test cases for onnxruntime's contrib ops (domain com.microsoft) that whittle maps,
in the layout of the ONNX node tests, with onnxruntime's outputs as the expected ones.

    .venv/bin/python tests/conformance/contrib.py [OUTDIR]     (default tests/conformance/contrib)
    target/release/conformance --data tests/conformance/contrib --all --backend cpu

Each case is OUTDIR/NAME/model.onnx and OUTDIR/NAME/test_data_set_0/{input,output}_N.pb,
plus OUTDIR/index.tsv (the columns of generate.py's). The cases cover the forms exporters
and onnxruntime's tools write: MatMulNBits (2/4/8 bits, K not a multiple of the block,
packed and unpacked zero points, bias), MatMulIntegerToFloat (u8/i8 pairings, per-tensor
or per-column scales and zero points, bias), MultiHeadAttention (bias, key padding mask,
attention bias, cross attention, KV cache, causal, custom scale, BNSH key/value),
GroupQueryAttention (prompt, decode, chunk, packed QKV, rotary, local window, softcap,
multi-query, attention bias) and RotaryEmbedding (3-D and 4-D input, position ids or a start offset, interleaved, partial
rotary). onnxruntime is the reference: whatever it computes is what whittle must compute.
"""
from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"
HERE = os.path.dirname(os.path.abspath(__file__))
NP2ONNX = {np.float32: TensorProto.FLOAT, np.int64: TensorProto.INT64,
           np.int32: TensorProto.INT32, np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def tinfo(name: str, a: np.ndarray):
    return helper.make_tensor_value_info(name, NP2ONNX[a.dtype.type], list(a.shape))


class Case:
    def __init__(self, name: str, op: str, inputs: dict, outputs: list, attrs: dict,
                 consts: dict | None = None):
        self.name, self.op = name, op
        self.inputs = inputs            # graph inputs, name -> array ("" = absent port)
        self.consts = consts or {}      # initializers, name -> array
        self.outputs = outputs          # output names ("" = unused port)
        self.attrs = attrs
        self.order: list[str] = []      # the node's input names in port order

    def ports(self, *names: str) -> "Case":
        self.order = list(names)
        return self

    def model(self) -> onnx.ModelProto:
        node = helper.make_node(self.op, self.order, self.outputs, domain=MS, **self.attrs)
        ins = [tinfo(n, a) for n, a in self.inputs.items()]
        inits = [numpy_helper.from_array(a, n) for n, a in self.consts.items()]
        outs = [onnx.ValueInfoProto(name=o) for o in self.outputs if o]
        g = helper.make_graph([node], self.name, ins, outs, inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid(MS, 1)])
        m.ir_version = 8
        return m


def rng(seed: int):
    return np.random.default_rng(seed)


def f32(r, *shape, lo=-1.0, hi=1.0):
    return r.uniform(lo, hi, shape).astype(np.float32)


# ------------------------------------------------------------------ MatMulNBits
def matmul_nbits(name, seed, a_shape, k, n, bits, block, zp=None, bias=False):
    r = rng(seed)
    kb = (k + block - 1) // block
    blob = block * bits // 8
    consts = {
        "B": r.integers(0, 256, (n, kb, blob), dtype=np.uint8),
        "scales": f32(r, n * kb, lo=0.01, hi=0.2),
    }
    order = ["A", "B", "scales"]
    if zp == "packed":
        consts["zp"] = r.integers(0, 256, (n, (kb * bits + 7) // 8), dtype=np.uint8)
        order.append("zp")
    elif zp == "float":
        consts["zp"] = f32(r, n * kb, lo=0.0, hi=float(2 ** bits - 1))
        order.append("zp")
    if bias:
        consts["bias"] = f32(r, n)
        order += [""] * (4 - len(order)) + ["", "bias"]
    attrs = dict(K=k, N=n, bits=bits, block_size=block)
    c = Case(name, "MatMulNBits", {"A": f32(r, *a_shape)}, ["Y"], attrs, consts)
    return c.ports(*order)


# ------------------------------------------------------------------ MatMulIntegerToFloat
def matmul_integer_to_float(name, seed, a_shape, n, a_dt=np.uint8, b_dt=np.int8,
                            per_column=True, zps=True, bias=True):
    r = rng(seed)
    k = a_shape[-1]
    lim = lambda dt: (0, 256) if dt == np.uint8 else (-128, 128)
    ins = {"A": r.integers(*lim(a_dt), a_shape, dtype=a_dt),
           "a_scale": np.array(r.uniform(0.01, 0.05), np.float32)}
    # An s8 B stays within ±64: onnxruntime's AVX2 u8×s8 kernel (vpmaddubsw) saturates its
    # i16 pair sums beyond that, so on CPUs without VNNI its results are not the op's (the
    # op battery checks full-range B, exactly, against ir::eval).
    b_lim = (-64, 64) if b_dt == np.int8 else lim(b_dt)
    consts = {"B": r.integers(*b_lim, (k, n), dtype=b_dt),
              "b_scale": f32(r, n if per_column else 1, lo=0.001, hi=0.02).reshape(
                  (n,) if per_column else ())}
    order = ["A", "B", "a_scale", "b_scale"]
    if zps:
        ins["a_zp"] = np.array(r.integers(*lim(a_dt)), a_dt)
        consts["b_zp"] = r.integers(*lim(b_dt), (n,) if per_column else (), dtype=b_dt)
        order += ["a_zp", "b_zp"]
    if bias:
        consts["bias"] = f32(r, n)
        order += [""] * (6 - len(order)) + ["bias"]
    return Case(name, "MatMulIntegerToFloat", ins, ["Y"], {}, consts).ports(*order)


# ------------------------------------------------------------------ MultiHeadAttention
def mha(name, seed, b=2, s=4, skv=None, heads=2, d=8, bias=False, kpm=False, ab=False,
        past=0, causal=False, scale=None, bnsh_kv=False):
    r = rng(seed)
    skv = s if skv is None else skv
    hid = heads * d
    ins = {"q": f32(r, b, s, hid)}
    if bnsh_kv:
        ins["k"] = f32(r, b, heads, skv, d)
        ins["v"] = f32(r, b, heads, skv, d)
    else:
        ins["k"] = f32(r, b, skv, hid)
        ins["v"] = f32(r, b, skv, hid)
    order = ["q", "k", "v"]
    consts = {}
    if bias:
        consts["bias"] = f32(r, 3 * hid)
    total = past + skv
    if kpm:
        m = np.ones((b, total), np.int32)
        m[0, -1] = 0
        if total > 2:
            m[1, 1] = 0
        ins["kpm"] = m
    if ab:
        ins["ab"] = f32(r, 1, heads, s, total)
    if past:
        ins["past_k"] = f32(r, b, heads, past, d)
        ins["past_v"] = f32(r, b, heads, past, d)
    opt = [("bias", "bias" in consts), ("kpm", kpm), ("ab", ab), ("past_k", past > 0),
           ("past_v", past > 0)]
    last = max([i for i, (_, on) in enumerate(opt) if on], default=-1)
    for i in range(last + 1):
        nm, on = opt[i]
        order.append(nm if on else "")
    attrs = dict(num_heads=heads)
    if causal:
        attrs["unidirectional"] = 1
    if scale is not None:
        attrs["scale"] = scale
    outs = ["out"] + (["present_k", "present_v"] if past else [])
    return Case(name, "MultiHeadAttention", ins, outs, attrs, consts).ports(*order)


# ------------------------------------------------------------------ GroupQueryAttention
def gqa(name, seed, b=1, s=4, past=0, hq=4, hkv=2, d=16, packed=False, rotary=False,
        interleaved=False, softcap=0.0, window=-1, scale=None, ab=False, max_pos=16):
    r = rng(seed)
    ins = {}
    ports = [""] * 11  # query key value past_k past_v seqlens_k total cos sin pos_ids bias
    if packed:
        ins["q"] = f32(r, b, s, (hq + 2 * hkv) * d)
        ports[0] = "q"
    else:
        ins["q"] = f32(r, b, s, hq * d)
        ins["k"] = f32(r, b, s, hkv * d)
        ins["v"] = f32(r, b, s, hkv * d)
        ports[0:3] = ["q", "k", "v"]
    ins["past_k"] = f32(r, b, hkv, past, d)
    ins["past_v"] = f32(r, b, hkv, past, d)
    ins["seqlens_k"] = np.full((b,), past + s - 1, np.int32)
    ins["total_len"] = np.array(past + s, np.int32)
    ports[3:7] = ["past_k", "past_v", "seqlens_k", "total_len"]
    consts = {}
    if rotary:
        ang = r.uniform(0, 6.3, (max_pos, d // 2))
        consts["cos"] = np.cos(ang).astype(np.float32)
        consts["sin"] = np.sin(ang).astype(np.float32)
        ports[7:9] = ["cos", "sin"]
    if ab:
        ins["ab"] = f32(r, b, 1, s, past + s)
        ports[10] = "ab"
    while ports[-1] == "":
        ports.pop()
    attrs = dict(num_heads=hq, kv_num_heads=hkv)
    if rotary:
        attrs["do_rotary"] = 1
        attrs["rotary_interleaved"] = int(interleaved)
    if softcap:
        attrs["softcap"] = softcap
    if window > 0:
        attrs["local_window_size"] = window
    if scale is not None:
        attrs["scale"] = scale
    outs = ["out", "present_k", "present_v"]
    return Case(name, "GroupQueryAttention", ins, outs, attrs, consts).ports(*ports)


# ------------------------------------------------------------------ RotaryEmbedding
def rotary(name, seed, shape, heads, rot_dim=0, interleaved=False, pos="ids", max_pos=12):
    r = rng(seed)
    x = f32(r, *shape)
    if len(shape) == 4:
        b, s, d = shape[0], shape[2], shape[3]
    else:
        b, s = shape[0], shape[1]
        d = shape[2] // heads if heads else 8  # ORT: head size 2·cos.shape[1]
    half = (rot_dim or d) // 2
    ang = r.uniform(0, 6.3, (max_pos, half))
    ins = {"x": x}
    if pos == "ids":
        ins["pos"] = r.integers(0, max_pos, (b, s)).astype(np.int64)
    else:
        ins["pos"] = np.array([3], np.int64)
    consts = {"cos": np.cos(ang).astype(np.float32), "sin": np.sin(ang).astype(np.float32)}
    attrs = dict(interleaved=int(interleaved))
    if heads:
        attrs["num_heads"] = heads
    if rot_dim:
        attrs["rotary_embedding_dim"] = rot_dim
    return Case(name, "RotaryEmbedding", ins, ["y"], attrs, consts).ports("x", "pos", "cos", "sin")


def cases() -> list[Case]:
    return [
        matmul_nbits("contrib_matmulnbits_4bit", 1, (2, 3, 64), 64, 24, 4, 32),
        matmul_nbits("contrib_matmulnbits_4bit_ragged_k_zp_bias", 2, (5, 40), 40, 12, 4, 16,
                     zp="packed", bias=True),
        matmul_nbits("contrib_matmulnbits_4bit_float_zp", 3, (3, 64), 64, 8, 4, 32, zp="float"),
        matmul_nbits("contrib_matmulnbits_8bit_zp", 4, (2, 48), 48, 10, 8, 16, zp="packed"),
        matmul_nbits("contrib_matmulnbits_2bit", 5, (4, 32), 32, 6, 2, 16, zp="packed"),
        matmul_integer_to_float("contrib_matmulintegertofloat_u8s8", 6, (2, 9, 70), 40),
        matmul_integer_to_float("contrib_matmulintegertofloat_u8u8_per_tensor", 7, (5, 33), 17,
                                b_dt=np.uint8, per_column=False),
        matmul_integer_to_float("contrib_matmulintegertofloat_s8s8_no_zp", 8, (3, 16), 8,
                                a_dt=np.int8, zps=False),
        matmul_integer_to_float("contrib_matmulintegertofloat_no_bias", 9, (4, 12), 5,
                                bias=False),
        mha("contrib_mha_self", 10),
        mha("contrib_mha_bias_key_padding_mask", 11, bias=True, kpm=True),
        mha("contrib_mha_attention_bias_scale", 12, ab=True, scale=0.3),
        mha("contrib_mha_cross", 13, s=3, skv=5, bias=True),
        mha("contrib_mha_past_causal", 14, s=2, past=3, causal=True, kpm=True),
        mha("contrib_mha_past_attention_bias", 15, s=3, past=2, ab=True),
        mha("contrib_mha_bnsh_kv", 16, s=3, skv=6, bnsh_kv=True),
        gqa("contrib_gqa_prompt", 30),
        gqa("contrib_gqa_decode", 31, b=2, s=1, past=5),
        gqa("contrib_gqa_chunk_packed_rotary", 32, s=3, past=2, packed=True, rotary=True),
        gqa("contrib_gqa_decode_rotary_interleaved", 33, b=2, s=1, past=4, rotary=True,
            interleaved=True),
        gqa("contrib_gqa_softcap_window", 34, s=5, past=1, softcap=2.0, window=2),
        gqa("contrib_gqa_mqa_scale_bias", 35, s=3, past=2, hkv=1, scale=0.2, ab=True),
        rotary("contrib_rotary_3d", 20, (2, 5, 16), 2),
        rotary("contrib_rotary_3d_interleaved", 21, (2, 5, 16), 2, interleaved=True),
        rotary("contrib_rotary_offset", 22, (1, 4, 16), 2, pos="offset"),
        rotary("contrib_rotary_partial", 23, (2, 3, 16), 2, rot_dim=4),
        rotary("contrib_rotary_4d", 24, (2, 2, 5, 8), 0),
        rotary("contrib_rotary_no_num_heads", 25, (2, 5, 16), 0),
    ]


def write_case(out_dir: str, c: Case) -> str:
    m = c.model()
    d = os.path.join(out_dir, c.name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    res = sess.run(None, c.inputs)
    ds = os.path.join(d, "test_data_set_0")
    for i, (n, a) in enumerate(c.inputs.items()):
        onnx.save_tensor(numpy_helper.from_array(a, n), os.path.join(ds, f"input_{i}.pb"))
    outs = [o for o in c.outputs if o]
    for i, (n, a) in enumerate(zip(outs, res)):
        onnx.save_tensor(numpy_helper.from_array(a, n), os.path.join(ds, f"output_{i}.pb"))
    types = sorted({np.dtype(a.dtype).name for a in list(c.inputs.values()) + res})
    touched = sorted(set(types) | {np.dtype(a.dtype).name for a in c.consts.values()})
    return "\t".join([c.name, f"{MS}.{c.op}", ",".join(types), "17", ",".join(touched)])


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "contrib")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    index = [write_case(out_dir, c) for c in cases()]
    with open(os.path.join(out_dir, "index.tsv"), "w") as f:
        f.write("".join(line + "\n" for line in index))
    print(f"contrib.py: {len(index)} cases written to {os.path.relpath(out_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
