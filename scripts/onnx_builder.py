"""A tiny helper for building ONNX graphs by hand with onnx.helper.

Used by scripts/minilm_onnx.py and scripts/smollm2_onnx.py (both driven by
scripts/fetch_models.py). Node and value names follow the torch.onnx exporter's
convention: node `/scope/Op`, its output `/scope/Op_output_0`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: set[str] = set()
        self._consts: dict[tuple, str] = {}

    # -- values ---------------------------------------------------------
    def init(self, name: str, arr: np.ndarray) -> str:
        """Add a named initializer; returns its name."""
        assert name not in self.names, name
        self.names.add(name)
        # np.asarray, not np.ascontiguousarray: the latter turns 0-d arrays into 1-d.
        self.inits.append(numpy_helper.from_array(np.asarray(arr, order="C"), name))
        return name

    def const(self, value, dtype=None) -> str:
        """A small constant initializer, shared between users (deduplicated by value)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(f"onnx::Const_{len(self._consts)}", arr)
        return self._consts[key]

    def i64(self, *values: int) -> str:
        """1-D int64 constant (shapes, axes, starts/ends)."""
        return self.const(np.array(values, dtype=np.int64))

    # -- nodes ----------------------------------------------------------
    def op(self, op_type: str, inputs: list[str], name: str, out: str | None = None, **attrs) -> str:
        """Add one node named `name` with a single output; returns the output name."""
        assert name not in self.names, name
        self.names.add(name)
        out = out or f"{name}_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    # -- model ----------------------------------------------------------
    def model(self, inputs, outputs, opset: int, graph_name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="whittle-fetch_models"
        )
        model.ir_version = 8
        return model


def tensor_info(name: str, elem_type: int, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, dims)


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
