"""whittle as a drop-in for onnxruntime: the same script body runs with `onnxruntime` and with
`whittle` as the module, on every model of the exporter corpus (tests/corpus) and on the real
models fetched by scripts/fetch_models.py when present, and the outputs agree; plus the API
surface (inputs/outputs, types, providers, options) and its errors.

    .venv/bin/python -m pytest python/tests -q
"""
from __future__ import annotations

import csv
import os
import threading

import numpy as np
import onnxruntime
import pytest

import whittle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(REPO, "tests", "corpus")


def corpus_models() -> list[str]:
    with open(os.path.join(CORPUS, "manifest.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["name"] for r in rows
            if os.path.exists(os.path.join(CORPUS, "models", r["name"] + ".onnx"))]


def script(ort, path: str, feeds: dict) -> list:
    """What a user writes for onnxruntime; `ort` is either module."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: feeds[n] for n in names})


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    d = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / (d if d > 0 else 1.0))


def assert_same(got: list, want: list, what: str):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape} vs {w.shape}"
        assert g.dtype == w.dtype, f"{what} output {i}: dtype {g.dtype} vs {w.dtype}"
        if np.issubdtype(w.dtype, np.floating):
            assert rel_l2(g, w) <= 1e-4, f"{what} output {i}: rel L2 {rel_l2(g, w):.2e}"
        else:
            assert np.array_equal(g, w), f"{what} output {i} differs"


@pytest.mark.parametrize("name", corpus_models())
def test_corpus_model_runs_like_onnxruntime(name):
    path = os.path.join(CORPUS, "models", name + ".onnx")
    feeds = dict(np.load(os.path.join(CORPUS, "data", name, "shape0.npz")))
    assert_same(script(whittle, path, feeds), script(onnxruntime, path, feeds), name)


REAL = {
    "minilm-l6": lambda: {"input_ids": np.arange(1, 129, dtype=np.int64).reshape(1, 128) % 1000,
                          "attention_mask": np.ones((1, 128), np.int64),
                          "token_type_ids": np.zeros((1, 128), np.int64)},
    "ppocr-cls": lambda: {"x": np.random.default_rng(0).random((1, 3, 48, 192), np.float32)},
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_model_runs_like_onnxruntime(name):
    d = os.path.join(REPO, "models", "cache", name)
    paths = [os.path.join(d, f) for f in sorted(os.listdir(d))] if os.path.isdir(d) else []
    path = next((p for p in paths if p.endswith(".onnx")), None)
    if path is None:
        pytest.skip(f"{name} not fetched (scripts/fetch_models.py)")
    feeds = REAL[name]()
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs() if i.name in feeds}
    assert_same(script(whittle, path, feeds), script(onnxruntime, path, feeds), name)


BERT = os.path.join(CORPUS, "models", "bert.onnx")


def test_inputs_and_outputs_are_described_as_onnxruntime_does():
    w = whittle.InferenceSession(BERT)
    o = onnxruntime.InferenceSession(BERT, providers=["CPUExecutionProvider"])
    for a, b in [(w.get_inputs(), o.get_inputs()), (w.get_outputs(), o.get_outputs())]:
        assert [x.name for x in a] == [x.name for x in b]
        assert [x.type for x in a] == [x.type for x in b]
        assert [len(x.shape) for x in a] == [len(x.shape) for x in b]
    assert [x.shape for x in w.get_inputs()] == [x.shape for x in o.get_inputs()]
    assert w.get_providers() == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in whittle.get_available_providers()


def test_options_bytes_reference_provider_and_output_names():
    feeds = dict(np.load(os.path.join(CORPUS, "data", "bert", "shape0.npz")))
    want = script(onnxruntime, BERT, feeds)
    with open(BERT, "rb") as f:
        data = f.read()
    opts = whittle.SessionOptions()
    opts.graph_optimization_level = whittle.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = whittle.InferenceSession(data, opts, providers=["WhittleReferenceExecutionProvider"])
    assert_same(ref.run(None, feeds), want, "reference provider")
    sess = whittle.InferenceSession(BERT)
    last = sess.get_outputs()[-1].name
    assert_same(sess.run([last], feeds), want[-1:], "named output")
    # Non-contiguous input: copied once, same result.
    ids = np.asfortranarray(feeds["input_ids"])
    assert_same(sess.run(None, {**feeds, "input_ids": ids}), want, "fortran-order input")


def errors_of(ort, sess, feeds):
    """The exception class names each bad call raises (None: it ran)."""
    good = dict(feeds)
    first = next(iter(good))
    cases = {
        "unknown input": {**good, "nope": good[first]},
        "missing input": {k: v for k, v in good.items() if k != first},
        "wrong dtype": {**good, first: good[first].astype(np.float32)},
        "wrong rank": {**good, first: good[first][0]},
    }
    out = {}
    for what, f in cases.items():
        try:
            sess.run(None, f)
            out[what] = None
        except Exception as e:  # noqa: BLE001 - the class is what we compare
            out[what] = type(e).__name__
    return out


def test_bad_inputs_raise_onnxruntimes_exception_classes():
    feeds = dict(np.load(os.path.join(CORPUS, "data", "bert", "shape0.npz")))
    w = errors_of(whittle, whittle.InferenceSession(BERT), feeds)
    o = errors_of(onnxruntime, onnxruntime.InferenceSession(BERT), feeds)
    for what in w:
        want = "ValueError" if what == "missing input" else "InvalidArgument"
        assert w[what] == want, (what, w[what])
        # Where onnxruntime refuses too, it uses the same class name (it ignores an
        # unknown extra input with a warning; whittle refuses it).
        if o[what] is not None:
            assert o[what] == w[what], (what, o[what])
    with pytest.raises(whittle.NoSuchFile):
        whittle.InferenceSession("/nonexistent/model.onnx")
    with pytest.raises(whittle.InvalidGraph):
        whittle.InferenceSession(b"not a model")
    with pytest.raises(whittle.InvalidArgument):
        whittle.InferenceSession(BERT, providers=["CUDAExecutionProvider"])
    assert issubclass(whittle.InvalidArgument, RuntimeError)


def test_one_session_serves_threads():
    feeds = dict(np.load(os.path.join(CORPUS, "data", "bert", "shape0.npz")))
    sess = whittle.InferenceSession(BERT)
    want = sess.run(None, feeds)
    errors = []

    def worker():
        try:
            for _ in range(10):
                assert_same(sess.run(None, feeds), want, "threaded run")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_optimize_writes_a_model_onnxruntime_runs(tmp_path):
    out = str(tmp_path / "opt.onnx")
    whittle.optimize(BERT, out)
    feeds = dict(np.load(os.path.join(CORPUS, "data", "bert", "shape0.npz")))
    assert_same(script(onnxruntime, out, feeds), script(onnxruntime, BERT, feeds), "optimized")
