"""whittle: an optimizing compiler from ONNX graphs to native kernels, with onnxruntime's
Python API.

    import whittle as ort          # or: import whittle
    sess = ort.InferenceSession("model.onnx")
    outputs = sess.run(None, {"input_ids": ids})

`InferenceSession(path_or_bytes, sess_options=None, providers=None)` compiles the model
for the cpu backend ("CPUExecutionProvider"; "WhittleReferenceExecutionProvider" runs the
reference evaluator) after whittle's exact optimization pipeline (`SessionOptions.
graph_optimization_level = ORT_DISABLE_ALL` runs the graph as loaded; `whittle_passes`
names a pipeline). Errors raise `whittle.InvalidArgument`, `NoSuchFile`, `InvalidGraph`,
`NotImplemented` or `Fail` (all `RuntimeError`s), as onnxruntime names them; a missing
input raises `ValueError`, as onnxruntime's does.
"""
from ._whittle import (  # noqa: F401
    Fail,
    GraphOptimizationLevel,
    InferenceSession,
    InvalidArgument,
    InvalidGraph,
    NodeArg,
    NoSuchFile,
    NotImplemented,
    SessionOptions,
    get_available_providers,
    optimize,
)

__all__ = [
    "Fail",
    "GraphOptimizationLevel",
    "InferenceSession",
    "InvalidArgument",
    "InvalidGraph",
    "NodeArg",
    "NoSuchFile",
    "NotImplemented",
    "SessionOptions",
    "get_available_providers",
    "optimize",
]
