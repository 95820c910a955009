"""Build specs: parsing `NAME=MIN:OPT:MAX` profiles and validating a requested build
against the model before anything is queued."""
from __future__ import annotations

import re

from .backends import BACKENDS
from .backends.base import PRECISIONS, Profile

_SHAPE_RE = re.compile(r"^\d+(x\d+)*$")


class SpecError(ValueError):
    pass


def parse_shape(text: str) -> tuple[int, ...]:
    text = text.strip()
    if not _SHAPE_RE.match(text):
        raise SpecError(f"bad shape {text!r}: write dimensions with x, e.g. 1x3x224x224")
    dims = tuple(int(d) for d in text.split("x"))
    if any(d <= 0 for d in dims):
        raise SpecError(f"bad shape {text!r}: dimensions must be positive")
    return dims


def parse_profile(text: str) -> tuple[str, Profile]:
    """`NAME=MIN:OPT:MAX`, or `NAME=SHAPE` for a fixed shape."""
    if "=" not in text:
        raise SpecError(f"bad profile {text!r}: expected NAME=MIN:OPT:MAX")
    name, _, shapes = text.partition("=")
    parts = shapes.split(":")
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not name:
        raise SpecError(f"bad profile {text!r}: expected NAME=MIN:OPT:MAX")
    lo, opt, hi = (parse_shape(p) for p in parts)
    return name, Profile(lo, opt, hi)


def profiles_from_json(data: dict) -> dict[str, Profile]:
    try:
        return {name: Profile(tuple(p["min"]), tuple(p["opt"]), tuple(p["max"])) for name, p in data.items()}
    except (KeyError, TypeError) as exc:
        raise SpecError(f"bad profiles: {exc}") from None


def validate(model_inputs: list[dict], *, backend: str, precision: str,
             profiles: dict[str, Profile], supported_precisions: tuple[str, ...] | None = None) -> None:
    """Raise SpecError naming the first problem: unknown backend or precision, profile
    for an input the model does not have, rank or static-dimension mismatch,
    min <= opt <= max violated, a dynamic input without a profile (TensorRT)."""
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise SpecError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if supported_precisions is not None and precision not in supported_precisions:
        raise SpecError(f"backend {backend} does not support precision {precision}; it supports {', '.join(supported_precisions)}")
    spec = {i["name"]: i for i in model_inputs}
    for name, profile in profiles.items():
        if name not in spec:
            raise SpecError(f"profile for unknown input {name!r}; the model's inputs are {', '.join(spec)}")
        dims = spec[name]["shape"]
        for label, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            if len(shape) != len(dims):
                raise SpecError(f"input {name!r}: {label} shape has rank {len(shape)}, the model's input has rank {len(dims)}")
            for axis, (got, want) in enumerate(zip(shape, dims)):
                if isinstance(want, int) and want > 0 and got != want:
                    raise SpecError(f"input {name!r}: {label} shape dimension {axis} is {got}, the model fixes it at {want}")
        for axis in range(len(dims)):
            if not profile.min[axis] <= profile.opt[axis] <= profile.max[axis]:
                raise SpecError(f"input {name!r}: axis {axis} must satisfy min <= opt <= max")
    if backend == "tensorrt":
        for name, info in spec.items():
            dynamic = any(not (isinstance(d, int) and d > 0) for d in info["shape"])
            if dynamic and name not in profiles:
                raise SpecError(f"input {name!r} has dynamic axes; TensorRT needs a profile --shape {name}=MIN:OPT:MAX")
