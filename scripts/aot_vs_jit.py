#!/usr/bin/env python3
"""AOT vs JIT latency, side by side: `whittle compile` a cached model (models/cache/NAME, see
scripts/fetch_models.py) for its inputs' shapes, link examples/c/main.c against the object
and libwhittle_rt.a, then alternate timed runs of that program with `whittle bench` (JIT,
same passes, same thread count) and print the medians of the per-round p50s and their ratio.

    scripts/aot_vs_jit.py ppocr-cls --threads 1 --rounds 7 --iters 300
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "models"))
import numpy as np  # noqa: E402
from check import C_TYPES, Model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a prepared model under models/cache (e.g. minilm-l6)")
    ap.add_argument("--whittle", default=os.path.join(REPO, "target", "release", "whittle"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    a = ap.parse_args()
    m = Model(os.path.join(REPO, "models", "cache", a.model))
    lib_dir = os.path.dirname(a.whittle)
    d = tempfile.mkdtemp(prefix=f"aot-vs-jit-{a.model}-")
    shapes = []
    for n, arr in m.inputs.items():
        shapes += ["--input-shape", f"{n}={'x'.join(map(str, arr.shape))}"]
    subprocess.run([a.whittle, "compile", m.path, "-o", f"{d}/model.o", "--header", f"{d}/model.h",
                    "--name", "model"] + shapes, check=True, capture_output=True)
    app = f"{d}/app"
    subprocess.run(["cc", "-O2", "-I", d, os.path.join(REPO, "examples", "c", "main.c"), f"{d}/model.o",
                    "-L", lib_dir, "-lwhittle_rt", "-lm", "-lpthread", "-ldl", "-static-libgcc",
                    "-Wl,--gc-sections", "-o", app], check=True)
    header = open(f"{d}/model.h").read()
    n_in = int(re.search(r"#define MODEL_NUM_INPUTS (\d+)", header).group(1))
    n_out = int(re.search(r"#define MODEL_NUM_OUTPUTS (\d+)", header).group(1))
    ins, npys = [], []
    for i in range(n_in):
        name = re.search(rf'#define MODEL_INPUT{i}_NAME "([^"]*)"', header).group(1)
        dt = re.search(rf'#define MODEL_INPUT{i}_DTYPE "([^"]*)"', header).group(1)
        np.ascontiguousarray(m.inputs[name], dtype=C_TYPES[dt]).tofile(f"{d}/in{i}.bin")
        ins.append(f"{d}/in{i}.bin")
        npys += ["--input", f"{name}={m.input_files[name]}"]
    outs = [f"{d}/out{o}.bin" for o in range(n_out)]
    env = dict(os.environ, WHITTLE_THREADS=str(a.threads))
    aot, jit = [], []
    for r in range(a.rounds):
        p = subprocess.run([app] + ins + outs + [str(a.iters)], env=env, capture_output=True,
                           text=True, check=True)
        aot.append(float(re.search(r"p50 ([0-9.]+)", p.stdout).group(1)) / 1000.0)
        p = subprocess.run([a.whittle, "bench", m.path, "--threads", str(a.threads), "--iters",
                            str(a.iters), "--json"] + npys, capture_output=True, text=True, check=True)
        jit.append(json.loads(p.stdout.strip().splitlines()[-1])["p50_ms"])
        print(f"round {r + 1}: aot {aot[-1]:.3f} ms, jit {jit[-1]:.3f} ms", flush=True)
    ma, mj = statistics.median(aot), statistics.median(jit)
    print(f"{a.model} threads={a.threads}: AOT p50 median {ma:.3f} ms, JIT {mj:.3f} ms, "
          f"AOT/JIT {ma / mj:.3f}; program {os.path.getsize(app) / 1e6:.1f} MB, "
          f"object {os.path.getsize(f'{d}/model.o') / 1e6:.1f} MB")
    if not a.keep:
        subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
