"""Golden input shapes and value ranges read from the model itself, for the parity check.

A dynamic axis set to 1 is not a shape every graph accepts: a text detector that
downsamples by 32 and resizes back up fails on a 1x1 map, and token ids drawn as 0/1
say nothing about an embedding.  So, per input:

- a dynamic axis takes the profile's opt shape when the build names one;
- else a size the graph accepts: the batch axis 1, spatial axes of image-like inputs
  (float, rank 4, NCHW or NHWC, or rank 3 CHW) a multiple of 32, the sequence axis
  of token inputs (integers of rank 1 or 2) and of float sequences (rank 3) 16;
  a named axis (``batch``, ``seq``) takes one value in every input that names it;
  the candidates are checked with ONNX shape inference (strict), next candidate on
  refusal;
- integer inputs draw their values inside the range of the Gather (embedding) tables
  they index, through Cast/Unsqueeze/Reshape-like steps; other integers are 0 or 1.

`NoGoldenInput` says why no valid input can be made (the parity check is then "not
run", never a failure).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import shape_inference

log = logging.getLogger("traceledger.parity")

SPATIAL_CANDIDATES = (64, 32, 128, 224)  # multiples of 32: five stride-2 stages leave >= 1 pixel
SEQUENCE_CANDIDATES = (16, 8, 32, 128)
# ops that hand their first input's values on unchanged (as far as index ranges go)
_PASS_THROUGH = {"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand", "Transpose"}
_IMAGE_CHANNELS = (1, 2, 3, 4)


class NoGoldenInput(ValueError):
    """No valid golden input can be made for this model (the reason is the message)."""


@dataclass(frozen=True)
class InputPlan:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    high: int | None  # integers are drawn in [0, high); None for other dtypes


def _static(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def _named(dim) -> str | None:
    return dim if isinstance(dim, str) and dim not in ("", "?") else None


def _axis_roles(shape: list, dtype: np.dtype) -> dict[int, str]:
    """axis -> "batch" | "spatial" | "sequence" | "other" for every dynamic axis."""
    rank = len(shape)
    spatial: tuple[int, ...] = ()
    if dtype.kind == "f" and rank == 4:
        nhwc = _static(shape[3]) and shape[3] in _IMAGE_CHANNELS and not (
            _static(shape[1]) and shape[1] in _IMAGE_CHANNELS)
        spatial = (1, 2) if nhwc else (2, 3)
    elif dtype.kind == "f" and rank == 3 and _static(shape[0]) and shape[0] in _IMAGE_CHANNELS:
        spatial = (1, 2)
    roles = {}
    for axis, dim in enumerate(shape):
        if _static(dim):
            continue
        if axis in spatial:
            roles[axis] = "spatial"
        elif axis == 0 and rank > 1 or (axis == 0 and rank == 1 and dtype.kind == "f"):
            roles[axis] = "batch"
        elif dtype.kind in "iu" and rank <= 2 or dtype.kind == "f" and rank == 3 and axis == 1:
            roles[axis] = "sequence"
        else:
            roles[axis] = "other"
    return roles


def _shapes(model_inputs: list[dict], profiles: dict, attempt: int) -> dict[str, tuple[int, ...]]:
    named: dict[str, int] = {}
    for info in model_inputs:  # a profile's opt value for a named axis holds everywhere
        profile = profiles.get(info["name"])
        if profile:
            for dim, value in zip(info["shape"], profile["opt"]):
                if _named(dim):
                    named.setdefault(dim, int(value))
    sizes = {"batch": 1, "spatial": SPATIAL_CANDIDATES[attempt], "sequence": SEQUENCE_CANDIDATES[attempt],
             "other": 1}
    shapes = {}
    for info in model_inputs:
        profile = profiles.get(info["name"])
        if profile:
            shapes[info["name"]] = tuple(int(v) for v in profile["opt"])
            continue
        roles = _axis_roles(info["shape"], np.dtype(info["dtype"]))
        shape = []
        for axis, dim in enumerate(info["shape"]):
            if _static(dim):
                shape.append(dim)
                continue
            value = named.get(dim) if _named(dim) else None
            if value is None:
                value = sizes[roles[axis]]
                if _named(dim):
                    named[dim] = value
            shape.append(value)
        shapes[info["name"]] = tuple(shape)
    return shapes


def _load(onnx_path: str) -> onnx.ModelProto | None:
    try:
        return onnx.load(onnx_path, load_external_data=False)
    except Exception as exc:  # not our business here: registration checked the file
        log.warning("golden inputs: cannot read %s: %s", onnx_path, exc)
        return None


def _refusal(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """Why strict ONNX shape inference refuses these input shapes, or None."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for vi in fixed.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            for dim, value in zip(dims, shapes[vi.name]):
                dim.Clear()
                dim.dim_value = value
    try:
        shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
    except Exception as exc:
        return str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
    return None


def _index_ranges(model: onnx.ModelProto) -> dict[str, int]:
    """Graph input name -> the smallest table size of the Gathers it indexes."""
    tables = {i.name: list(i.dims) for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:  # a Constant table
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tables[node.output[0]] = list(node.attribute[0].t.dims)
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, position))

    def table_dims(name: str) -> list[int] | None:
        seen = 0
        while name not in tables and name in producers and seen < 4:  # e.g. a dequantized table
            node = producers[name]
            if node.op_type not in _PASS_THROUGH | {"DequantizeLinear"}:
                return None
            name, seen = node.input[0], seen + 1
        return tables.get(name)

    ranges: dict[str, int] = {}
    for vi in model.graph.input:
        frontier, highs, visited = [vi.name], [], set()
        while frontier:
            value = frontier.pop()
            if value in visited:
                continue
            visited.add(value)
            for node, position in consumers.get(value, []):
                if node.op_type == "Gather" and position == 1:
                    dims = table_dims(node.input[0])
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    if dims and -len(dims) <= axis < len(dims) and dims[axis] > 0:
                        highs.append(int(dims[axis]))
                elif node.op_type in _PASS_THROUGH and position == 0:
                    frontier.extend(node.output)
        if highs:
            ranges[vi.name] = min(highs)
    return ranges


def plan(model_inputs: list[dict], profiles: dict, onnx_path: str | None = None) -> dict[str, InputPlan]:
    """The shape and value range of every input (see the module docstring).
    Raises NoGoldenInput when none can be made."""
    for info in model_inputs:
        kind = np.dtype(info["dtype"]).kind
        if kind not in "fiub":
            raise NoGoldenInput(f"cannot generate golden inputs of dtype {info['dtype']} for {info['name']!r}")
    model = _load(onnx_path) if onnx_path else None
    shapes, refusal = _shapes(model_inputs, profiles, 0), None
    guessed = any(not profiles.get(i["name"]) and not all(_static(d) for d in i["shape"]) for i in model_inputs)
    if guessed and model is not None and len(model.graph.node) and _refusal(model, {}) is None:
        for attempt in range(len(SPATIAL_CANDIDATES)):
            shapes = _shapes(model_inputs, profiles, attempt)
            refusal = _refusal(model, shapes)
            if refusal is None:
                break
        else:
            raise NoGoldenInput(f"ONNX shape inference refuses every input size tried "
                                f"({', '.join(f'{n}={_fmt(s)}' for n, s in shapes.items())}): {refusal}")
    ranges = _index_ranges(model) if model is not None else {}
    plans = {}
    for info in model_inputs:
        dtype = np.dtype(info["dtype"])
        high = ranges.get(info["name"], 2) if dtype.kind in "iu" else None
        if high is not None and dtype.kind in "iu":
            high = min(high, int(np.iinfo(dtype).max) + 1)
        plans[info["name"]] = InputPlan(info["name"], shapes[info["name"]], dtype, high)
    return plans


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)
