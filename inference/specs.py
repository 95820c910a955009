"""Build specs: parsing `NAME=MIN:OPT:MAX` profiles and validating a requested build
against the model before anything is queued."""
from __future__ import annotations

import re

from inference.backends import BACKENDS, SUPPORTED_PRECISIONS, BackendUnavailable, check_available
from inference.backends.base import PRECISIONS, Profile
from inference.backends.tensorrt_plan import KNOWN_OPTIONS as TRT_OPTIONS
from inference.backends.tensorrt_plan import REFIT_OPTIONS as TRT_REFIT_OPTIONS

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


def _is_static(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def validate(model_inputs: list[dict], *, backend: str, precision: str, profiles: dict[str, Profile],
             options: dict | None = None, calibration_inputs: dict | None = None) -> None:
    """Raise SpecError naming the first problem: a backend that is unknown or not offered
    by the build workers, a precision it does not support, unknown or refused options, a
    profile for an input the model does not have, rank or static-dimension mismatch,
    min <= opt <= max violated, a dynamic input without a profile (TensorRT), or a
    calibration set whose inputs do not match the model's."""
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise SpecError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    supported = SUPPORTED_PRECISIONS[backend]
    if precision not in supported:
        raise SpecError(f"backend {backend} does not support precision {precision}; it supports {', '.join(supported)}")
    try:
        check_available(backend)
    except BackendUnavailable as exc:
        raise SpecError(f"{exc}; build with backend onnxruntime, or on workers that have {backend} "
                        f"(TRACELEDGER_BUILD_BACKENDS)") from None
    _validate_options(backend, options or {})
    spec = {i["name"]: i for i in model_inputs}
    for name, profile in profiles.items():
        if name not in spec:
            raise SpecError(f"profile for unknown input {name!r}; the model's inputs are {', '.join(spec)}")
        dims = spec[name]["shape"]
        for label, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            if len(shape) != len(dims):
                raise SpecError(f"input {name!r}: {label} shape has rank {len(shape)}, the model's input has rank {len(dims)}")
            for axis, (got, want) in enumerate(zip(shape, dims)):
                if _is_static(want) and got != want:
                    raise SpecError(f"input {name!r}: {label} shape dimension {axis} is {got}, the model fixes it at {want}")
        for axis in range(len(dims)):
            if not profile.min[axis] <= profile.opt[axis] <= profile.max[axis]:
                raise SpecError(f"input {name!r}: axis {axis} must satisfy min <= opt <= max")
    if backend == "tensorrt":
        for name, info in spec.items():
            dynamic = any(not _is_static(d) for d in info["shape"])
            if dynamic and name not in profiles:
                raise SpecError(f"input {name!r} has dynamic axes; TensorRT needs a profile --shape {name}=MIN:OPT:MAX")
    if calibration_inputs is not None:
        check_calibration_inputs(model_inputs, calibration_inputs)
        for name, profile in profiles.items():
            sample = (1, *calibration_inputs[name]["shape"][1:])
            if any(not lo <= got <= hi for got, lo, hi in zip(sample, profile.min, profile.max)):
                raise SpecError(f"calibration samples of {name!r} have shape {format_shape(sample)}, outside the "
                                f"profile {format_shape(profile.min)}:{format_shape(profile.max)}")


def _validate_options(backend: str, options: dict) -> None:
    if not isinstance(options, dict):
        raise SpecError("build options must be an object")
    known = TRT_OPTIONS if backend == "tensorrt" else frozenset()
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(f"unknown build option(s) {', '.join(unknown)} for backend {backend}"
                        + (f"; known: {', '.join(sorted(known))}" if known else ""))
    refit = [name for name in TRT_REFIT_OPTIONS if options.get(name)]
    if refit:
        raise SpecError(f"refittable engines are refused ({', '.join(refit)}): weights could change after signing")


def check_calibration_inputs(model_inputs: list[dict], calibration_inputs: dict) -> None:
    """A calibration set's arrays (name -> {dtype, shape}, axis 0 = samples) against the
    model's inputs: same names, same dtypes, the model's rank, its static dimensions, and
    a batch axis that takes one sample at a time (dynamic or 1)."""
    expected = {i["name"]: i for i in model_inputs}
    missing = sorted(set(expected) - set(calibration_inputs))
    extra = sorted(set(calibration_inputs) - set(expected))
    if missing or extra:
        parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown input(s) {', '.join(extra)}"] if extra else [])
        raise SpecError(f"calibration set does not match the model: {'; '.join(parts)} "
                        f"(the model takes {', '.join(expected)})")
    for name, info in expected.items():
        got = calibration_inputs[name]
        if got["dtype"] != info["dtype"]:
            raise SpecError(f"calibration input {name!r} has dtype {got['dtype']}, the model expects {info['dtype']}")
        shape, dims = list(got["shape"]), info["shape"]
        if len(shape) != len(dims):
            raise SpecError(f"calibration input {name!r} has shape {format_shape(shape)}: the model's input has rank "
                            f"{len(dims)} ({format_shape(dims)}), with samples along axis 0")
        if _is_static(dims[0]) and dims[0] != 1:
            raise SpecError(f"input {name!r} fixes its first axis at {dims[0]}: calibration needs a batch axis "
                            "(dynamic or 1) to feed one sample at a time")
        for axis in range(1, len(dims)):
            if _is_static(dims[axis]) and shape[axis] != dims[axis]:
                raise SpecError(f"calibration input {name!r} has shape {format_shape(shape)}, the model expects "
                                f"{format_shape(dims)} (axis {axis})")


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)
