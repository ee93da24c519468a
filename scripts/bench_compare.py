#!/usr/bin/env python3
"""Side-by-side latency of whittle, onnxruntime and tract on one prepared model.

    .venv/bin/python scripts/bench_compare.py MODEL [--backend cpu] [--threads 1]
        [--rounds 5] [--iters 20] [--cache models/cache] [--whittle target/release/whittle]
        [--passes exact] [--seq N]

MODEL is a directory name under the cache written by scripts/fetch_models.py (minilm-l6,
smollm2-135m, ppocr-cls, minilm-int8); its inputs/*.npy are the inputs of every engine.
The engines alternate within each round (whittle, then onnxruntime, then tract), so they
share the machine's state; each reports the median of --iters warm runs, and the script
prints the median over rounds and the ratios. tract (PyPI `tract`) is single-threaded and
optional: pip install tract into the venv to include it. --seq N resizes every [1, S]
integer input (token ids, masks, type ids) to [1, N] by repeating its tokens, so the
transformers can be measured at another sequence length than the cached inputs'.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, iters: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def ort_runner(path: str, feeds: dict, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feeds)


def tract_runner(path: str, feeds: dict, names: list[str]):
    try:
        import tract
    except ImportError:
        return None
    m = tract.onnx().load(path)
    for i, n in enumerate(names):
        a = feeds[n]
        dt = {np.dtype("float32"): "f32", np.dtype("int64"): "i64"}[a.dtype]
        m.set_input_fact(i, ",".join(map(str, a.shape)) + "," + dt)
    runnable = m.into_model().into_runnable()
    args = [feeds[n] for n in names]
    return lambda: runnable.run(args)


def whittle_median(args, model: str, inputs: dict) -> float:
    cmd = [args.whittle, "bench", model, "--backend", args.backend, "--json",
           "--iters", str(args.iters), "--warmup", "3"]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--passes", args.passes]
    for name, path in inputs.items():
        cmd += ["--input", f"{name}={path}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"whittle bench failed: {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])["p50_ms"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--cache", default=os.path.join(REPO, "models", "cache"))
    ap.add_argument("--whittle", default=os.path.join(REPO, "target", "release", "whittle"))
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="threads for whittle and onnxruntime (default: whittle's default, ORT 1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-tract", action="store_true")
    ap.add_argument("--passes", default="exact", help="whittle passes before compiling (`exact`, `none`, or a list)")
    ap.add_argument("--seq", type=int, default=None, help="resize [1, S] integer inputs to [1, N]")
    args = ap.parse_args()

    mdir = os.path.join(args.cache, args.model)
    with open(os.path.join(mdir, "meta.json")) as f:
        meta = json.load(f)
    path = os.path.join(mdir, meta["model"])
    inputs = {n: os.path.join(mdir, p) for n, p in meta["input_files"].items()}
    feeds = {n: np.load(p) for n, p in inputs.items()}
    if args.seq:
        tmp = tempfile.mkdtemp(prefix="bench-seq-")
        for n, a in feeds.items():
            if a.ndim == 2 and a.shape[0] == 1 and a.dtype.kind in "iu":
                feeds[n] = np.resize(a, (1, args.seq)).astype(a.dtype)
                inputs[n] = os.path.join(tmp, n + ".npy")
                np.save(inputs[n], feeds[n])
    ort_run = ort_runner(path, feeds, args.threads or 1)
    tract_run = None if args.no_tract else tract_runner(path, feeds, list(meta["inputs"]))

    res = {"whittle": [], "onnxruntime": [], "tract": []}
    for r in range(args.rounds):
        res["whittle"].append(whittle_median(args, path, inputs))
        res["onnxruntime"].append(timed(ort_run, args.iters))
        if tract_run:
            res["tract"].append(timed(tract_run, args.iters))
        line = "  ".join(f"{k} {v[-1]:.2f} ms" for k, v in res.items() if v)
        print(f"round {r + 1}/{args.rounds}: {line}", flush=True)
    med = {k: statistics.median(v) for k, v in res.items() if v}
    seq = f", seq {args.seq}" if args.seq else ""
    print(f"\n{args.model}{seq}, backend {args.backend}, passes {args.passes}, threads {args.threads or 'default'}: median of {args.rounds} rounds x {args.iters} runs")
    for k, v in med.items():
        print(f"  {k:<12} {v:8.2f} ms")
    print(f"  whittle/onnxruntime = {med['whittle'] / med['onnxruntime']:.2f}")
    if "tract" in med:
        print(f"  whittle/tract       = {med['whittle'] / med['tract']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
