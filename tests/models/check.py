#!/usr/bin/env python3
"""Check whittle against the real models prepared by scripts/fetch_models.py.

    .venv/bin/python tests/models/check.py [--whittle PATH] [--cache models/cache]
                                           [--models a,b] [--backends reference,cpu] [--ort-only] [--keep]

For every prepared model directory (see the layout at the top of scripts/fetch_models.py)
two checks run:

  run        WHITTLE run MODEL --input NAME=inputs/NAME.npy ... --output-dir TMP --backend B, for each
             backend B of --backends (default reference,cpu),
             then each TMP/<sanitized output>.npy is compared with expected/<same>.npy:
             pass when the relative L2 error ||a-b|| / ||b|| <= 1e-4 (and shapes match).
  roundtrip  WHITTLE optimize MODEL -o TMP/rt.onnx --passes none  (load + write back; external
             data may be written next to rt.onnx), then onnxruntime runs rt.onnx and the original
             with the same inputs: with graph optimizations off the outputs must be identical
             (rel L2 = 0); with them on (fusion choices may differ) rel L2 <= 1e-6.
  run:cpu+exact     the run check on the cpu backend after the exact pipeline (--passes exact).
  optimize:exact    WHITTLE optimize MODEL -o TMP/exact.onnx --passes exact, then onnxruntime runs
             it and the original: rel L2 <= 1e-5.
  aot        WHITTLE compile for the cached inputs' shapes, examples/c/main.c linked with cc against
             the object and libwhittle_rt.a (next to the binary), run: outputs within 1e-5 of
             run:reference's and 1e-4 of onnxruntime's (models over 200 MB are skipped).
  aot:rust   MiniLM-L6 and PP-OCR also through examples/rust-aot (its build.rs compiles the
             model named by WHITTLE_AOT_MODEL; cargo build, run, same comparisons). PP-OCR's
             object is compiled for x86-64-v3 there (`aot:rust@x86-64-v3`): a portable object.
  optimize:exact@old-opset  the same with --opset 14 (or the lowest opset the model's own ops
             allow): LayerNormalization, Gelu, RMSNormalization are written as primitives.

--ort-only replaces both by one check per model that only needs onnxruntime: the cached
model run on the cached inputs reproduces the cached expected outputs (rel L2 <= 1e-4).

One line per check, then a closing line exactly `N passed, N failed`; the exit status is
non-zero when any check failed. The whittle binary defaults to target/release/whittle,
else target/debug/whittle; when none exists each whittle check fails saying so.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TOL = 1e-4
ROUNDTRIP_TOL = 1e-6
EXACT_TOL = 1e-5


class Result:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def report(self, ok: bool, model: str, check: str, detail: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'}  {model:<14} {check:<10} {detail}", flush=True)


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def compare(outputs: dict, reference: dict, tol: float, where: str = "") -> tuple[bool, str]:
    """Compare named outputs; returns (ok, 'name rel_l2=.. max_abs=..; ...')."""
    ok, parts = True, []
    for name, ref in reference.items():
        got = outputs.get(name)
        if got is None:
            ok = False
            parts.append(f"{name}: missing" + (f" (no {sanitize(name)}.npy in {where})" if where else ""))
        elif got.shape != ref.shape:
            ok = False
            parts.append(f"{name}: shape {list(got.shape)} != expected {list(ref.shape)}")
        else:
            e = rel_l2(got, ref)
            ok = ok and e <= tol
            parts.append(f"{name} rel_l2={e:.2e} max_abs={max_abs(got, ref):.2e}")
    return ok, "; ".join(parts)


# --------------------------------------------------------------------------- model dirs

class Model:
    def __init__(self, mdir: str):
        with open(os.path.join(mdir, "meta.json")) as f:
            self.meta = json.load(f)
        self.dir = mdir
        self.name = os.path.basename(mdir)
        self.path = os.path.join(mdir, self.meta["model"])
        self.input_files = {n: os.path.join(mdir, p) for n, p in self.meta["input_files"].items()}
        self.inputs = {n: np.load(p) for n, p in self.input_files.items()}

    def expected(self) -> dict:
        return {n: np.load(os.path.join(self.dir, p)) for n, p in self.meta["output_files"].items()}


def find_models(cache: str, only: list[str] | None) -> tuple[list[Model], list[str]]:
    names = sorted(d for d in os.listdir(cache) if os.path.exists(os.path.join(cache, d, "meta.json")))
    missing = [m for m in (only or []) if m not in names]
    return [Model(os.path.join(cache, n)) for n in names if not only or n in only], missing


def ort_run(path: str, feeds: dict, optimize: bool = True) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


# --------------------------------------------------------------------------- checks

def check_ort(m: Model, res: Result) -> None:
    t = time.time()
    try:
        ok, detail = compare(ort_run(m.path, m.inputs), m.expected(), RUN_TOL)
    except Exception as e:
        ok, detail = False, f"onnxruntime failed: {type(e).__name__}: {e}"
    res.report(ok, m.name, "ort", f"{detail} ({time.time() - t:.1f}s)")


def whittle_cmd(binary: str, args: list[str], timeout: float) -> tuple[bool, str]:
    try:
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f}s"
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return False, f"exit {p.returncode}: " + " | ".join(tail)
    return True, ""


def check_run(m: Model, binary: str, tmp: str, timeout: float, res: Result, backend: str,
              passes: str = "none") -> None:
    label = backend if passes == "none" else f"{backend}+{passes}"
    out_dir = os.path.join(tmp, "run-" + label)
    os.makedirs(out_dir, exist_ok=True)
    args = ["run", m.path]
    for name, path in m.input_files.items():
        args += ["--input", f"{name}={path}"]
    args += ["--output-dir", out_dir, "--backend", backend, "--passes", passes]
    t = time.time()
    ok, why = whittle_cmd(binary, args, timeout)
    if not ok:
        res.report(False, m.name, f"run:{label}", f"whittle run {why}")
        return
    got = {}
    for name in m.meta["outputs"]:
        f = os.path.join(out_dir, sanitize(name) + ".npy")
        if os.path.exists(f):
            got[name] = np.load(f)
    ok, detail = compare(got, m.expected(), RUN_TOL, where="whittle's --output-dir")
    res.report(ok, m.name, f"run:{label}", f"{detail} ({time.time() - t:.1f}s)")


def check_roundtrip(m: Model, binary: str, tmp: str, timeout: float, res: Result) -> None:
    rt = os.path.join(tmp, "rt", "rt.onnx")
    os.makedirs(os.path.dirname(rt), exist_ok=True)
    t = time.time()
    ok, why = whittle_cmd(binary, ["optimize", m.path, "-o", rt, "--passes", "none"], timeout)
    if not ok:
        res.report(False, m.name, "roundtrip", f"whittle optimize {why}")
        return
    if not os.path.exists(rt):
        res.report(False, m.name, "roundtrip", f"whittle optimize exited 0 but wrote no {rt}")
        return
    try:
        # The same graph must give bit-identical outputs when onnxruntime runs it as written;
        # with its graph optimizations on, its fusion choices may differ (whittle writes
        # value_info for every value, which enables more fusions), so that run gets a tolerance.
        exact, exact_detail = compare(ort_run(rt, m.inputs, False), ort_run(m.path, m.inputs, False), 0.0)
        ok, detail = compare(ort_run(rt, m.inputs), ort_run(m.path, m.inputs), ROUNDTRIP_TOL)
        ok, detail = ok and exact, f"unoptimized: {exact_detail}; optimized: {detail}"
    except Exception as e:
        ok, detail = False, f"onnxruntime on rt.onnx failed: {type(e).__name__}: {e}"
    res.report(ok, m.name, "roundtrip", f"{detail} ({time.time() - t:.1f}s)")


def check_optimized(m: Model, binary: str, tmp: str, timeout: float, res: Result,
                    opset: int | None = None) -> None:
    """`whittle optimize --passes exact` writes a model onnxruntime runs within 1e-5 of the
    original (the exact pipeline's fused ops are decomposed back into standard ONNX). With
    `opset`, the file is written for that opset (or the lowest the model's own ops allow,
    when whittle says the graph needs more): compound ops it lacks become primitives."""
    label = "optimize:exact" if opset is None else "optimize:exact@old-opset"
    out = os.path.join(tmp, "exact", f"exact{opset or ''}.onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    t = time.time()
    args = ["optimize", m.path, "-o", out, "--passes", "exact"]
    ok, why = whittle_cmd(binary, args + (["--opset", str(opset)] if opset else []), timeout)
    needs = re.search(r"but the graph needs (\d+)", why or "")
    if not ok and opset and needs:
        opset = int(needs.group(1))
        ok, why = whittle_cmd(binary, args + ["--opset", str(opset)], timeout)
    if not ok:
        res.report(False, m.name, label, f"whittle optimize {why}")
        return
    try:
        ok, detail = compare(ort_run(out, m.inputs), ort_run(m.path, m.inputs), EXACT_TOL)
        if opset:
            detail = f"opset {opset}: {detail}"
    except Exception as e:
        ok, detail = False, f"onnxruntime on {os.path.basename(out)} failed: {type(e).__name__}: {e}"
    res.report(ok, m.name, label, f"{detail} ({time.time() - t:.1f}s)")


AOT_MAX_BYTES = 200 << 20
# Models also built into examples/rust-aot (a cargo build each).
RUST_AOT_MODELS = {"minilm-l6", "ppocr-cls"}
# ... and the CPU level their object is compiled for there (default: native), so that a
# portable object (AVX2 micro-kernel and packed layout) is checked too.
RUST_AOT_CPU = {"ppocr-cls": "x86-64-v3"}


def host_has(*flags: str) -> bool:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    have = set(next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), []))
    return all(f in have for f in flags)
C_TYPES = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "i32": np.int32,
           "i8": np.int8, "u8": np.uint8, "bool": np.bool_, "f16": np.float16}


def check_aot(m: Model, binary: str, tmp: str, timeout: float, res: Result) -> None:
    """`whittle compile` the model for its inputs' shapes, link examples/c/main.c against the
    object and libwhittle_rt.a with cc, run it, and compare its outputs with the reference
    evaluator's (`run:reference` wrote them; rel L2 <= 1e-5) and onnxruntime's (<= 1e-4)."""
    if os.path.getsize(m.path) > AOT_MAX_BYTES:
        print(f"      {m.name}: aot skipped (model over {AOT_MAX_BYTES >> 20} MB)")
        return
    d = os.path.join(tmp, "aot")
    os.makedirs(d, exist_ok=True)
    lib_dir = os.path.dirname(binary)
    if not os.path.exists(os.path.join(lib_dir, "libwhittle_rt.a")):
        res.report(False, m.name, "aot", f"no libwhittle_rt.a in {lib_dir} (cargo build --release --workspace)")
        return
    t = time.time()
    args = ["compile", m.path, "-o", os.path.join(d, "model.o"), "--header", os.path.join(d, "model.h"),
            "--name", "model"]
    for n, a in m.inputs.items():
        args += ["--input-shape", f"{n}={'x'.join(map(str, a.shape))}"]
    ok, why = whittle_cmd(binary, args, timeout)
    if not ok:
        res.report(False, m.name, "aot", f"whittle compile {why}")
        return
    app = os.path.join(d, "app")
    cc = subprocess.run(["cc", "-O2", "-I", d, os.path.join(REPO, "examples", "c", "main.c"),
                         os.path.join(d, "model.o"), "-L", lib_dir, "-lwhittle_rt", "-lm", "-lpthread",
                         "-ldl", "-static-libgcc", "-Wl,--gc-sections", "-o", app], capture_output=True, text=True)
    if cc.returncode != 0:
        res.report(False, m.name, "aot", "cc failed: " + " | ".join(cc.stderr.strip().splitlines()[-3:]))
        return
    header = open(os.path.join(d, "model.h")).read()
    field = lambda kind, i, what: re.search(rf'#define MODEL_{kind}{i}_{what} "?([^"\n]*)"?', header).group(1)
    n_in = int(re.search(r"#define MODEL_NUM_INPUTS (\d+)", header).group(1))
    n_out = int(re.search(r"#define MODEL_NUM_OUTPUTS (\d+)", header).group(1))
    files = []
    for i in range(n_in):
        name, dt = field("INPUT", i, "NAME"), field("INPUT", i, "DTYPE")
        path = os.path.join(d, f"in{i}.bin")
        np.ascontiguousarray(m.inputs[name], dtype=C_TYPES[dt]).tofile(path)
        files.append(path)
    outs = []
    for i in range(n_out):
        outs.append((field("OUTPUT", i, "NAME"), field("OUTPUT", i, "DTYPE"), os.path.join(d, f"out{i}.bin")))
    run = subprocess.run([app] + files + [o[2] for o in outs], capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        res.report(False, m.name, "aot", f"app exit {run.returncode}: {(run.stderr or run.stdout).strip()}")
        return
    expected = m.expected()
    got = {name: np.fromfile(path, dtype=C_TYPES[dt]).reshape(expected[name].shape) for name, dt, path in outs}
    ok, detail = compare(got, expected, RUN_TOL)
    ref_dir = os.path.join(tmp, "run-reference")
    ref = {n: np.load(os.path.join(ref_dir, sanitize(n) + ".npy")) for n in expected
           if os.path.exists(os.path.join(ref_dir, sanitize(n) + ".npy"))}

    def verdict(got: dict) -> tuple[bool, str]:
        ok, detail = compare(got, expected, RUN_TOL)
        if ref:
            ok_ref, detail_ref = compare(got, ref, EXACT_TOL)
            ok, detail = ok and ok_ref, f"vs onnxruntime: {detail}; vs ir::eval: {detail_ref}"
        return ok, detail

    ok, detail = verdict(got)
    res.report(ok, m.name, "aot", f"{detail} ({time.time() - t:.1f}s)")
    if m.name not in RUST_AOT_MODELS:
        return
    # The same model through examples/rust-aot: its build.rs compiles WHITTLE_AOT_MODEL.
    t = time.time()
    cpu = RUST_AOT_CPU.get(m.name, "native")
    if cpu == "x86-64-v3" and not host_has("avx2", "fma"):
        cpu = "native"
    label = "aot:rust" if cpu == "native" else f"aot:rust@{cpu}"
    env = dict(os.environ, WHITTLE_AOT_MODEL=m.path, CARGO_TARGET_DIR=os.path.dirname(lib_dir), WHITTLE_AOT_CPU=cpu,
               WHITTLE_AOT_SHAPES=",".join(f"{n}={'x'.join(map(str, a.shape))}" for n, a in m.inputs.items()))
    profile = ["--release"] if os.path.basename(lib_dir) == "release" else []
    b = subprocess.run(["cargo", "build", "-q", "-p", "whittle-example-rust-aot"] + profile,
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if b.returncode != 0:
        res.report(False, m.name, label, "cargo build failed: " + " | ".join(b.stderr.strip().splitlines()[-3:]))
        return
    exe = os.path.join(lib_dir, "whittle-example-rust-aot")
    rust_outs = [os.path.join(d, f"rust_out{i}.bin") for i in range(n_out)]
    run = subprocess.run([exe] + files + rust_outs, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        res.report(False, m.name, label, f"exit {run.returncode}: {(run.stderr or run.stdout).strip()}")
        return
    got = {name: np.fromfile(path, dtype=C_TYPES[dt]).reshape(expected[name].shape)
           for (name, dt, _), path in zip(outs, rust_outs)}
    ok, detail = verdict(got)
    res.report(ok, m.name, label, f"{detail} ({time.time() - t:.1f}s)")


def default_binary() -> str:
    for sub in ("release", "debug"):
        path = os.path.join(REPO, "target", sub, "whittle")
        if os.path.exists(path):
            return path
    return os.path.join(REPO, "target", "release", "whittle")


def main() -> int:
    ap = argparse.ArgumentParser(description="Check whittle on the real models in the cache.")
    ap.add_argument("--whittle", default=None, help="whittle binary (default target/{release,debug}/whittle)")
    ap.add_argument("--cache", default=os.path.join(REPO, "models", "cache"))
    ap.add_argument("--models", default="", help="comma-separated subset of the prepared models")
    ap.add_argument("--ort-only", action="store_true", help="only validate the cache with onnxruntime")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per whittle command")
    ap.add_argument("--keep", action="store_true", help="keep the temporary output directories")
    ap.add_argument("--backends", default="reference,cpu", help="comma-separated backends for the run check")
    args = ap.parse_args()

    res = Result()
    only = [m for m in args.models.split(",") if m] or None
    cache = os.path.abspath(args.cache)
    models, missing = find_models(cache, only) if os.path.isdir(cache) else ([], only or ["(any)"])
    for name in missing:
        res.report(False, name, "prepare", f"not prepared in {cache}: run .venv/bin/python scripts/fetch_models.py")
    if not models and not missing:
        res.report(False, "(none)", "prepare", f"no prepared models in {cache}: run scripts/fetch_models.py")

    binary = os.path.abspath(args.whittle) if args.whittle else default_binary()
    have_binary = os.path.isfile(binary) and os.access(binary, os.X_OK)
    for m in models:
        if args.ort_only:
            check_ort(m, res)
            continue
        if not have_binary:
            for check in ("run", "roundtrip", "optimize:exact", "optimize:exact@old-opset", "aot"):
                res.report(False, m.name, check, f"whittle binary not found at {binary} (cargo build --release)")
            continue
        tmp = tempfile.mkdtemp(prefix=f"whittle-check-{m.name}-")
        try:
            for backend in [b for b in args.backends.split(",") if b]:
                check_run(m, binary, tmp, args.timeout, res, backend)
            if "cpu" in args.backends.split(","):
                check_run(m, binary, tmp, args.timeout, res, "cpu", "exact")
            check_roundtrip(m, binary, tmp, args.timeout, res)
            check_optimized(m, binary, tmp, args.timeout, res)
            check_optimized(m, binary, tmp, args.timeout, res, opset=14)
            check_aot(m, binary, tmp, args.timeout, res)
        finally:
            if args.keep:
                print(f"      outputs kept in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)

    print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
