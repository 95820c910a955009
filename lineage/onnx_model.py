"""Validate and describe an ONNX file: opset, producer, named inputs/outputs."""
from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper

from compliance.lib.redact import redact_paths

log = logging.getLogger(__name__)


class InvalidModel(ValueError):
    pass


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    dims = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def _dtype(value_info) -> str:
    elem = value_info.type.tensor_type.elem_type
    if not value_info.type.HasField("tensor_type") or elem == 0:
        raise InvalidModel(f"input/output {value_info.name!r} is not a tensor")
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name


def _tensors(graph):
    """Every tensor of a graph: initializers, sparse ones, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def describe(path: str) -> dict:
    """Load (without external data), check and describe an ONNX model.
    Raises InvalidModel with a one-line reason that names no server path (the full
    message is logged)."""
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        log.info("not an ONNX model (%s): %s", path, exc)
        raise InvalidModel(f"not an ONNX model: {redact_paths(_first_line(exc))}") from None
    if not model.graph.node and not model.graph.output:
        raise InvalidModel("not an ONNX model: the file has no graph")
    # An upload is one file: tensor data "outside" it could only be a file of ours.
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise InvalidModel("the model keeps tensor data in external files, which are not accepted: "
                           "save it as one self-contained ONNX file")
    try:
        onnx.checker.check_model(path)
    except Exception as exc:
        log.warning("ONNX checker rejected %s: %s", path, exc)
        raise InvalidModel(f"ONNX checker rejected the model: {redact_paths(_first_line(exc))}") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [
        {"name": vi.name, "dtype": _dtype(vi), "shape": _dims(vi)}
        for vi in model.graph.input
        if vi.name not in initializers
    ]
    outputs = [{"name": vi.name, "dtype": _dtype(vi), "shape": _dims(vi)} for vi in model.graph.output]
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {
        "opset": int(opset),
        "ir_version": int(model.ir_version),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": inputs,
        "outputs": outputs,
    }


def check_feeds(spec: list[dict], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check named inputs against a model's declared inputs (names, dtypes, static
    dimensions). Returns the feeds as contiguous arrays; ValueError otherwise."""
    expected = {i["name"]: i for i in spec}
    missing = sorted(set(expected) - set(feeds))
    extra = sorted(set(feeds) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown input(s) {', '.join(extra)}")
        raise ValueError(f"{'; '.join(parts)} (model takes {', '.join(expected)})")
    out = {}
    for name, info in expected.items():
        array = np.asarray(feeds[name])
        dtype = np.dtype(info["dtype"])
        if array.dtype != dtype:
            if array.dtype.kind in "iuf" and dtype.kind in "iuf" and np.can_cast(array.dtype, dtype, "same_kind"):
                array = array.astype(dtype)
            else:
                raise ValueError(f"input {name!r} has dtype {array.dtype}, model expects {dtype}")
        shape = info["shape"]
        if array.ndim != len(shape):
            raise ValueError(f"input {name!r} has shape {format_shape(array.shape)}, model expects rank {len(shape)} ({format_shape(shape)})")
        for axis, (got, want) in enumerate(zip(array.shape, shape)):
            if isinstance(want, int) and want > 0 and got != want:
                raise ValueError(
                    f"input {name!r} has shape {format_shape(array.shape)}, model expects {format_shape(shape)} (axis {axis})"
                )
        out[name] = array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d inputs 0-d
    return out


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


class FeedChecker:
    """`check_feeds` for one model, with a fast path for the common call: exactly the
    declared names, each an ndarray of the declared dtype, C-contiguous, matching every
    static dimension — then the feeds are passed through untouched.  Anything else
    goes through `check_feeds` (which converts or explains)."""

    def __init__(self, spec: list[dict]):
        self.spec = spec
        self._expected = []
        for i in spec:
            shape = i["shape"]
            static = tuple((axis, d) for axis, d in enumerate(shape) if isinstance(d, int) and d > 0)
            fixed = tuple(shape) if len(static) == len(shape) else None
            self._expected.append((i["name"], np.dtype(i["dtype"]), len(shape), fixed, static))
        self._count = len(self._expected)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if type(feeds) is dict and len(feeds) == self._count:
            for name, dtype, ndim, fixed, static in self._expected:
                array = feeds.get(name)
                if type(array) is not np.ndarray or not (array.dtype is dtype or array.dtype == dtype) \
                        or not array.flags.c_contiguous:
                    break
                shape = array.shape
                if fixed is not None:
                    if shape != fixed:
                        break
                elif len(shape) != ndim or not _dims_match(shape, static):
                    break
            else:
                return feeds
        return check_feeds(self.spec, feeds)


def _dims_match(shape: tuple, static: tuple) -> bool:
    for axis, size in static:
        if shape[axis] != size:
            return False
    return True
