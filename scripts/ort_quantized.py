"""Quantize the fetched MiniLM-L6 with onnxruntime's own tools, as a deployment engineer would.

    .venv/bin/python scripts/ort_quantized.py          # after scripts/fetch_models.py

Writes two model folders next to models/cache/minilm-l6, laid out like the fetched ones (so
scripts/bench_compare.py and tests/models/check.py read them):
  minilm-dyn  quantize_dynamic, MatMul only, per-channel s8 weights
              (DynamicQuantizeLinear + MatMulInteger + Cast + Mul)
  minilm-qdq  quantize_static, QDQ, MatMul only, per-channel weights, u8 activations,
              calibrated (MinMax) on 16 pydoc sentences disjoint from the test input
Expected outputs are onnxruntime's on the quantized model (what whittle must match).
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, "models", "cache")
SRC = os.path.join(CACHE, "minilm-l6")


def calibration_feeds(n: int = 16) -> list[dict]:
    from tokenizers import Tokenizer
    import pydoc_data.topics as topics

    tok = Tokenizer.from_file(os.path.join(SRC, "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding(length=128)
    text = " ".join(topics.topics[k] for k in sorted(topics.topics))
    words = text.split()
    # The test input is the start of the text; calibration reads from the far end.
    feeds = []
    for i in range(n):
        chunk = " ".join(words[-(i + 1) * 80: len(words) - i * 80])
        e = tok.encode(chunk)
        feeds.append({
            "input_ids": np.array([e.ids], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids], dtype=np.int64),
        })
    return feeds


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def finish(name: str, how: str) -> None:
    out = os.path.join(CACHE, name)
    with open(os.path.join(SRC, "meta.json")) as f:
        meta = json.load(f)
    for d in ("inputs",):
        shutil.copytree(os.path.join(SRC, d), os.path.join(out, d), dirs_exist_ok=True)
    shutil.copy(os.path.join(SRC, "tokenizer.json"), out)
    model = os.path.join(out, f"{name}.onnx")
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = {n: np.load(os.path.join(out, p)) for n, p in meta["input_files"].items()}
    y = sess.run(None, feeds)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    for o, v in zip(sess.get_outputs(), y):
        np.save(os.path.join(out, "expected", f"{o.name}.npy"), v)
    meta.update({"model": f"{name}.onnx", "source": f"minilm-l6 through onnxruntime {how}"})
    meta.pop("ort_ms_1thread", None)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    with open(os.path.join(out, "model_path.txt"), "w") as f:
        f.write(f"{name}.onnx")
    print(f"{name}: {os.path.getsize(model)} bytes", flush=True)


def main() -> int:
    src = os.path.join(SRC, "minilm-l6.onnx")
    if not os.path.exists(src):
        print("run scripts/fetch_models.py first", file=sys.stderr)
        return 1
    os.makedirs(os.path.join(CACHE, "minilm-dyn"), exist_ok=True)
    quantize_dynamic(src, os.path.join(CACHE, "minilm-dyn", "minilm-dyn.onnx"),
                     op_types_to_quantize=["MatMul"], per_channel=True,
                     weight_type=QuantType.QInt8)
    finish("minilm-dyn", "quantize_dynamic (MatMul, per-channel s8)")
    os.makedirs(os.path.join(CACHE, "minilm-qdq"), exist_ok=True)
    quantize_static(src, os.path.join(CACHE, "minilm-qdq", "minilm-qdq.onnx"),
                    Reader(calibration_feeds()), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finish("minilm-qdq", "quantize_static (QDQ, MatMul, per-channel s8 weights, u8 activations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
