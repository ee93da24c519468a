#!/usr/bin/env python3
"""onnxruntime on the node-test scope: the rate whittle's conformance runner is held to.

    .venv/bin/python tests/conformance/ort_baseline.py [--data DIR] [--write FILE]

Runs every in-scope case of `tests/conformance/generate.py`'s output (the scope of
`tests/src/conformance.rs`: all ops; no touched type is string, complex, float8, float4
or a 2/4-bit integer) through onnxruntime's CPU provider and compares with the expected
outputs at the same tolerances as whittle's runner (rtol 1e-3, atol 1e-7; integers and
bools exactly; sequences and optionals element by element). Prints one line with the
count and rate; `--write FILE` lists the passing cases.
"""
from __future__ import annotations

import argparse
import glob
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_OUT_OF_SCOPE = re.compile(r"^(string|complex.*|float8.*|float4.*|u?int[24])$")


def in_scope(touched: str) -> bool:
    return not any(_OUT_OF_SCOPE.match(t) for t in touched.split(",") if t)


def read_value(path: str):
    data = open(path, "rb").read()
    t = onnx.TensorProto()
    t.ParseFromString(data)
    if t.data_type:
        return t.name, numpy_helper.to_array(t)
    s = onnx.SequenceProto()
    s.ParseFromString(data)
    if s.elem_type:
        return s.name, numpy_helper.to_list(s)
    o = onnx.OptionalProto()
    o.ParseFromString(data)
    return o.name, numpy_helper.to_optional(o)


def close(got, want) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    if want is None:
        return got is None
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if want.dtype.kind in "fc":
        return bool(np.allclose(got, want, rtol=1e-3, atol=1e-7, equal_nan=True))
    return bool(np.array_equal(got, want))


def numbered(folder: str, prefix: str) -> list[str]:
    files = glob.glob(os.path.join(folder, prefix + "*.pb"))
    return sorted(files, key=lambda p: int(os.path.basename(p)[len(prefix) : -3]))


def run_case(case_dir: str) -> bool:
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(os.path.join(case_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        feeds = {}
        for i, p in enumerate(numbered(ds, "input_")):
            name, value = read_value(p)
            feeds[name or names[i]] = value
        want = [read_value(p)[1] for p in numbered(ds, "output_")]
        got = sess.run(None, feeds)
        if len(got) != len(want) or not all(map(close, got, want)):
            return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "tests", "conformance", "data"))
    ap.add_argument("--write", help="list the passing cases in this file")
    args = ap.parse_args()
    cases = []
    for line in open(os.path.join(args.data, "index.tsv")):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 5 and in_scope(f[4]):
            cases.append(f[0])
    passed = []
    for c in cases:
        try:
            if run_case(os.path.join(args.data, c)):
                passed.append(c)
        except Exception:  # onnxruntime refused or failed the case: it does not pass
            pass
    print(f"onnxruntime {ort.__version__}: in-scope cases {len(cases)}, passed {len(passed)} ({100 * len(passed) / max(len(cases), 1):.1f}%)")
    if args.write:
        with open(args.write, "w") as f:
            f.write("".join(c + "\n" for c in passed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
