#!/usr/bin/env python3
"""Generate the ONNX backend node conformance suite for whittle.

    .venv/bin/python tests/conformance/generate.py [OUTDIR]   # default tests/conformance/data

The `onnx` wheel (pinned 1.23.2 in scripts/requirements.txt) does not ship the
node test data but can generate it: `onnx.backend.test.case.node.collect_testcases()`
runs every `expect(...)` in onnx/backend/test/case/node/*.py, which builds the model
and computes the expected outputs with the ONNX reference implementation.

Each case is written the way the ONNX repo lays out onnx/backend/test/data/node:

    OUTDIR/<case>/model.onnx
    OUTDIR/<case>/test_data_set_<k>/input_<i>.pb    # TensorProto (or SequenceProto,
    OUTDIR/<case>/test_data_set_<k>/output_<i>.pb   #  OptionalProto, MapProto)

plus two manifests:

    OUTDIR/index.tsv    case<TAB>op types<TAB>value types<TAB>opset   (one line per case)
    OUTDIR/skipped.txt  case<TAB>reason   (cases that could not be written; usually empty)

index.tsv columns:
  * op types: sorted, unique, including nodes inside subgraphs (If/Loop/Scan bodies)
    and model-local functions; domain-qualified when not the default domain
    (e.g. `ai.onnx.ml.LabelEncoder`, `com.microsoft.X`).
  * value types: sorted, unique types of all graph inputs and outputs: a tensor is its
    element type (`float32`, `int64`, `bfloat16`, `float8e4m3fn`, ...); non-tensors are
    spelled `seq(T)`, `opt(T)`, `map(K,V)`.
  * opset: the highest version imported for the default ONNX domain (or the highest
    of any domain if the default one is not imported).
  * touched types: every element type the case touches, sorted and unique: graph inputs
    and outputs (inside `seq`/`opt`/`map` too), initializers, `value_info`, tensor and
    type attributes, type-valued integer attributes (`to`, `dtype`, `output_dtype`,
    `stash_type`), recursively through subgraphs and model-local functions. The node-test
    scope (tests/src/conformance.rs) is "no touched type is string, complex, float8,
    float4 or a 2/4-bit integer".

The output directory is recreated from scratch on every run.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import warnings

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case import node as node_cases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "conformance", "data")

# TensorProto enum names whose lower-case spelling is not the one we want.
_DTYPE_RENAME = {"FLOAT": "float32", "DOUBLE": "float64", "UNDEFINED": "undefined"}


def dtype_name(elem_type: int) -> str:
    name = TensorProto.DataType.Name(elem_type)
    return _DTYPE_RENAME.get(name, name.lower())


def type_name(tp: onnx.TypeProto) -> str:
    """Spell a TypeProto compactly: float32, seq(int64), opt(seq(float32)), map(int64,float32)."""
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return dtype_name(tp.tensor_type.elem_type)
    if kind == "sparse_tensor_type":
        return "sparse(%s)" % dtype_name(tp.sparse_tensor_type.elem_type)
    if kind == "sequence_type":
        return "seq(%s)" % type_name(tp.sequence_type.elem_type)
    if kind == "optional_type":
        return "opt(%s)" % type_name(tp.optional_type.elem_type)
    if kind == "map_type":
        return "map(%s,%s)" % (dtype_name(tp.map_type.key_type), type_name(tp.map_type.value_type))
    return "unknown"


def qualified(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}.{op_type}"


def graph_ops(graph: onnx.GraphProto, acc: set[str]) -> None:
    """Collect op types of a graph and, recursively, of its subgraph attributes."""
    for node in graph.node:
        acc.add(qualified(node.domain, node.op_type))
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                graph_ops(attr.g, acc)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    graph_ops(g, acc)


def model_ops(model: onnx.ModelProto) -> list[str]:
    acc: set[str] = set()
    graph_ops(model.graph, acc)
    for fn in model.functions:
        for node in fn.node:
            acc.add(qualified(node.domain, node.op_type))
    return sorted(acc)


def model_opset(model: onnx.ModelProto) -> int:
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(default or [o.version for o in model.opset_import] or [0])


# Integer attributes that hold a TensorProto.DataType.
_TYPE_ATTRS = ("to", "dtype", "output_dtype", "stash_type")


def elem_types(tp: onnx.TypeProto, acc: set[str]) -> None:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        acc.add(dtype_name(tp.tensor_type.elem_type))
    elif kind == "sparse_tensor_type":
        acc.add(dtype_name(tp.sparse_tensor_type.elem_type))
    elif kind == "sequence_type":
        elem_types(tp.sequence_type.elem_type, acc)
    elif kind == "optional_type":
        elem_types(tp.optional_type.elem_type, acc)
    elif kind == "map_type":
        acc.add(dtype_name(tp.map_type.key_type))
        elem_types(tp.map_type.value_type, acc)


def node_types(nodes, acc: set[str]) -> None:
    for node in nodes:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.INT and a.name in _TYPE_ATTRS and a.i:
                acc.add(dtype_name(a.i))
            elif a.type == onnx.AttributeProto.TENSOR:
                acc.add(dtype_name(a.t.data_type))
            elif a.type == onnx.AttributeProto.TYPE_PROTO:
                elem_types(a.tp, acc)
            elif a.type == onnx.AttributeProto.GRAPH:
                graph_types(a.g, acc)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    graph_types(g, acc)


def graph_types(graph: onnx.GraphProto, acc: set[str]) -> None:
    for v in list(graph.input) + list(graph.output) + list(graph.value_info):
        elem_types(v.type, acc)
    for t in graph.initializer:
        acc.add(dtype_name(t.data_type))
    node_types(graph.node, acc)


def touched_types(model: onnx.ModelProto) -> list[str]:
    acc: set[str] = set()
    graph_types(model.graph, acc)
    for fn in model.functions:
        node_types(fn.node, acc)
    acc.discard("undefined")
    return sorted(acc)


def serialize_value(value, vinfo: onnx.ValueInfoProto) -> bytes:
    """Serialize one input/output value exactly as onnx's cmd_tools.generate_data does."""
    tp, name = vinfo.type, vinfo.name
    if tp.HasField("map_type"):
        return numpy_helper.from_dict(value, name).SerializeToString()
    if tp.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if tp.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), name).SerializeToString()


def write_case(case, out_dir: str) -> None:
    case_dir = os.path.join(out_dir, case.name)
    os.makedirs(case_dir)
    model = case.model
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for k, (inputs, outputs) in enumerate(case.data_sets):
        ds_dir = os.path.join(case_dir, f"test_data_set_{k}")
        os.makedirs(ds_dir)
        for prefix, values, infos in (("input", inputs, model.graph.input), ("output", outputs, model.graph.output)):
            for i, value in enumerate(values):
                with open(os.path.join(ds_dir, f"{prefix}_{i}.pb"), "wb") as f:
                    f.write(serialize_value(value, infos[i]))


def index_line(case) -> str:
    model = case.model
    types = sorted({type_name(v.type) for v in list(model.graph.input) + list(model.graph.output)})
    return "\t".join(
        [case.name, ",".join(model_ops(model)), ",".join(types), str(model_opset(model)), ",".join(touched_types(model))]
    )


def main(argv: list[str]) -> int:
    out_dir = os.path.abspath(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    t0 = time.time()
    # Several expect() functions divide by zero on purpose (inf/nan cases): keep quiet.
    warnings.simplefilter("ignore")
    with np.errstate(all="ignore"):
        cases = node_cases.collect_testcases(None)
    t1 = time.time()
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    index, skipped = [], []
    for case in sorted(cases, key=lambda c: c.name):
        if case.kind != "node" or case.model is None or not case.data_sets:
            skipped.append(f"{case.name}\tno model/data (kind={case.kind})")
            continue
        try:
            write_case(case, out_dir)
            index.append(index_line(case))
        except Exception as e:  # keep going; record why
            shutil.rmtree(os.path.join(out_dir, case.name), ignore_errors=True)
            skipped.append(f"{case.name}\t{type(e).__name__}: {e}".replace("\n", " "))

    with open(os.path.join(out_dir, "index.tsv"), "w") as f:
        f.write("".join(line + "\n" for line in index))
    with open(os.path.join(out_dir, "skipped.txt"), "w") as f:
        f.write("".join(line + "\n" for line in skipped))
    print(
        f"generate.py: {len(index)} cases written to {os.path.relpath(out_dir)}, "
        f"{len(skipped)} skipped (collect {t1 - t0:.1f}s, write {time.time() - t1:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
