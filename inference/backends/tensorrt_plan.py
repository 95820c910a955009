"""TensorRT build planning without TensorRT: BuildSpec -> the builder settings to apply.

Everything here is plain Python (plus the ``onnx`` package for reading a model's
precision), so the decisions a build makes - which builder and network flags, which
profile shapes, what is refused and why - are unit-tested on machines without
TensorRT. ``tensorrt.py`` applies a :class:`BuildPlan` to the real API.

Version facts the plan encodes (TensorRT documentation, 10.x and 11.x Python API):

* 10.x: networks are always explicit-batch (``create_network`` flags 0); precision is
  enabled by ``BuilderFlag.FP16`` / ``BF16`` / ``INT8`` (weak typing); INT8
  calibrators are deprecated since 10.1, so INT8 is accepted only for an explicitly
  quantized (Q/DQ) model. ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is opt-in.
* 11.x: the precision flags and the calibrators are removed; every network is strongly
  typed (the ``STRONGLY_TYPED`` creation flag is deprecated and ignored), so precision
  comes from the ONNX model itself and a request must match what the model carries.
"""
from __future__ import annotations

from dataclasses import dataclass

from inference.backends.base import PRECISIONS, BuildError, BuildSpec, Profile

SUPPORTED_MAJORS = (10, 11)
PRECISION_FLAGS = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
REDUCED_PRECISIONS = frozenset(PRECISION_FLAGS)
REFIT_OPTIONS = ("refit", "strip_plan", "refit_identical", "refit_individual")
HARDWARE_LEVELS = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}
KNOWN_OPTIONS = frozenset(
    {"hardware_compatibility_level", "version_compatible", "builder_optimization_level", "tf32", "strongly_typed"}
    | set(REFIT_OPTIONS)
)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def one_line(value: object) -> str:
    """First non-empty line of an exception or message, for one-line errors."""
    text = str(value).strip()
    line = text.splitlines()[0].strip() if text else ""
    if not line and isinstance(value, BaseException):
        return type(value).__name__
    return line


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def parse_major(version: str) -> int:
    """TensorRT major version from ``trt.__version__`` ("10.13.0.35" -> 10)."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise BuildError(f"cannot read a TensorRT major version from {version!r}") from None


@dataclass(frozen=True)
class BuildPlan:
    """What the builder is told. Flag entries are member names of the TensorRT enums
    (``NetworkDefinitionCreationFlag``, ``BuilderFlag``, ``HardwareCompatibilityLevel``)."""

    trt_major: int
    precision: str
    precision_source: str  # "builder_flags" (10.x weak typing) or "model" (strongly typed)
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    cleared_builder_flags: tuple[str, ...]
    profiles: dict[str, Profile]
    workspace_bytes: int
    hardware_compatibility_level: str
    builder_optimization_level: int | None
    model_precisions: tuple[str, ...]
    model_has_qdq: bool
    notes: tuple[str, ...] = ()

    def to_metadata(self) -> dict:
        """JSON-safe (no floats) description of the plan for the build record."""
        return {
            "trt_major": self.trt_major,
            "precision": self.precision,
            "precision_source": self.precision_source,
            "strongly_typed": self.strongly_typed,
            "network_flags": list(self.network_flags),
            "builder_flags": list(self.builder_flags),
            "cleared_builder_flags": list(self.cleared_builder_flags),
            "profiles": {name: p.to_dict() for name, p in sorted(self.profiles.items())},
            "workspace_bytes": self.workspace_bytes,
            "builder_optimization_level": self.builder_optimization_level,
            "model_precisions": list(self.model_precisions),
            "model_has_qdq": self.model_has_qdq,
            "notes": list(self.notes),
        }


def validate_profiles(profiles: dict[str, Profile]) -> None:
    """Each profile: same rank for min/opt/max, positive integer dims, min <= opt <= max."""
    problems = []
    for name, profile in sorted(profiles.items()):
        shapes = {"min": profile.min, "opt": profile.opt, "max": profile.max}
        if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for s in shapes.values() for d in s):
            problems.append(f"{name}: dimensions must be positive integers")
            continue
        ranks = {len(s) for s in shapes.values()}
        if len(ranks) != 1 or 0 in ranks:
            problems.append(f"{name}: min, opt and max must have the same non-zero rank "
                            f"({format_shape(profile.min)}:{format_shape(profile.opt)}:{format_shape(profile.max)})")
            continue
        for axis, (lo, mid, hi) in enumerate(zip(profile.min, profile.opt, profile.max)):
            if not lo <= mid <= hi:
                problems.append(f"{name}: axis {axis} needs min <= opt <= max, got {lo}:{mid}:{hi}")
                break
    if problems:
        raise BuildError("invalid optimization profile: " + "; ".join(problems))


def check_profiles_against_inputs(profiles: dict[str, Profile], inputs: dict[str, tuple[int, ...]]) -> None:
    """Match profiles to the parsed network's inputs (name -> shape, -1 = dynamic)."""
    problems = []
    for name in sorted(set(profiles) - set(inputs)):
        problems.append(f"profile for {name!r}, which is not an input (inputs: {', '.join(inputs) or 'none'})")
    for name, shape in inputs.items():
        profile = profiles.get(name)
        if profile is None:
            if any(d < 0 for d in shape):
                problems.append(f"input {name!r} has dynamic shape {format_shape(shape)}: "
                                "give a profile NAME=MIN:OPT:MAX")
            continue
        if len(profile.min) != len(shape):
            problems.append(f"profile for {name!r} has rank {len(profile.min)}, the input has rank {len(shape)} "
                            f"({format_shape(shape)})")
            continue
        for axis, fixed in enumerate(shape):
            if fixed >= 0 and {profile.min[axis], profile.opt[axis], profile.max[axis]} != {fixed}:
                problems.append(f"profile for {name!r} changes static axis {axis} (the model fixes it to {fixed})")
                break
    if problems:
        raise BuildError("profiles do not match the model: " + "; ".join(problems))


def plan_build(spec: BuildSpec, trt_major: int, model_has_qdq: bool,
               model_precisions: frozenset[str] | set[str] = frozenset({"fp32"})) -> BuildPlan:
    """Decide the builder settings for ``spec`` on TensorRT ``trt_major``.

    ``model_has_qdq``: the ONNX model has QuantizeLinear/DequantizeLinear nodes.
    ``model_precisions``: float precisions the model carries ("fp32", "fp16", "bf16").
    Raises BuildError (one line) for anything refused."""
    if trt_major not in SUPPORTED_MAJORS:
        raise BuildError(f"TensorRT {trt_major}.x is not supported: this backend is written for TensorRT "
                         f"{' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}")
    precision = spec.precision
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    options = dict(spec.options or {})
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise BuildError(f"unknown TensorRT build option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(KNOWN_OPTIONS))}")
    refit = [name for name in REFIT_OPTIONS if options.get(name)]
    if refit:
        raise BuildError(f"refittable engines are refused ({', '.join(refit)}): weights could change after signing")
    if not isinstance(spec.workspace_bytes, int) or isinstance(spec.workspace_bytes, bool) or spec.workspace_bytes <= 0:
        raise BuildError(f"workspace_bytes must be a positive integer, got {spec.workspace_bytes!r}")
    validate_profiles(spec.profiles)

    carried = set(model_precisions) | ({"int8"} if model_has_qdq else set())
    carried_text = ", ".join(sorted(carried)) or "fp32"
    strongly_typed = trt_major >= 11 or bool(options.get("strongly_typed"))
    notes: list[str] = []
    builder_flags: list[str] = []
    network_flags: list[str] = []
    if strongly_typed:
        reduced = carried & REDUCED_PRECISIONS
        if precision == "fp32" and reduced:
            raise BuildError(f"a strongly typed build takes precision from the model, which carries {carried_text}: "
                             f"request {sorted(reduced)[0]} or build from an fp32 model")
        if precision != "fp32" and precision not in carried:
            how = "quantize it to Q/DQ (explicit quantization)" if precision == "int8" else \
                f"convert it to {precision} (for example with ModelOpt AutoCast)"
            raise BuildError(f"TensorRT {trt_major}.x builds strongly typed networks and takes no "
                             f"{PRECISION_FLAGS[precision]} builder flag: the model carries {carried_text}; "
                             f"{how} first")
        if trt_major == 10:
            network_flags.append("STRONGLY_TYPED")
        else:
            notes.append("strongly typed: always on in TensorRT 11, where the STRONGLY_TYPED "
                         "creation flag is deprecated and ignored")
        source = "model"
    else:
        if precision == "int8" and not model_has_qdq:
            raise BuildError("INT8 needs an explicitly quantized model: quantize it to Q/DQ first "
                             "(TensorRT INT8 calibrators are deprecated since 10.1 and removed in 11"
                             + ("; the calibration set alone is not used)" if spec.calibration_path else ")"))
        if model_has_qdq and precision != "int8":
            raise BuildError(f"the model is explicitly quantized (Q/DQ nodes): request precision int8, not {precision}")
        if precision in PRECISION_FLAGS:
            builder_flags.append(PRECISION_FLAGS[precision])
        if precision == "fp32" and carried & REDUCED_PRECISIONS:
            notes.append(f"precision fp32 requested but the model itself carries {carried_text}")
        source = "builder_flags"
    if precision == "int8" and spec.calibration_path:
        notes.append("calibration set not used: the model's Q/DQ scales define INT8")

    if options.get("version_compatible"):
        builder_flags.append("VERSION_COMPATIBLE")
    cleared = ("TF32",) if options.get("tf32") is False else ()
    level_key = str(options.get("hardware_compatibility_level", "none")).lower()
    if level_key not in HARDWARE_LEVELS:
        raise BuildError(f"unknown hardware_compatibility_level {options.get('hardware_compatibility_level')!r}; "
                         f"choose one of {', '.join(HARDWARE_LEVELS)}")
    opt_level = options.get("builder_optimization_level")
    if opt_level is not None and (not isinstance(opt_level, int) or isinstance(opt_level, bool)
                                  or not 0 <= opt_level <= 5):
        raise BuildError(f"builder_optimization_level must be an integer 0..5, got {opt_level!r}")

    return BuildPlan(
        trt_major=trt_major, precision=precision, precision_source=source, strongly_typed=strongly_typed,
        network_flags=tuple(network_flags), builder_flags=tuple(builder_flags), cleared_builder_flags=cleared,
        profiles=dict(spec.profiles), workspace_bytes=spec.workspace_bytes,
        hardware_compatibility_level=HARDWARE_LEVELS[level_key], builder_optimization_level=opt_level,
        model_precisions=tuple(sorted(model_precisions)), model_has_qdq=bool(model_has_qdq), notes=tuple(notes),
    )


def inspect_onnx_precision(model) -> tuple[bool, frozenset[str]]:
    """(has Q/DQ nodes, float precisions carried) of an ``onnx.ModelProto``, looking at
    every node (subgraphs and local functions too), initializer and typed value."""
    from onnx import TensorProto

    names = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
    found: set[str] = set()
    has_qdq = False

    def visit(graph) -> None:
        for tensor in graph.initializer:
            if tensor.data_type in names:
                found.add(names[tensor.data_type])
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
            if elem in names:
                found.add(names[elem])
        for node in graph.node:
            visit_node(node)

    def visit_node(node) -> None:
        nonlocal has_qdq
        if node.op_type in QDQ_OPS:
            has_qdq = True
        for attr in node.attribute:
            if attr.name == "to" and attr.i in names and node.op_type == "Cast":
                found.add(names[attr.i])
            if attr.HasField("t") and attr.t.data_type in names:
                found.add(names[attr.t.data_type])
            if attr.HasField("g"):
                visit(attr.g)
            for sub in attr.graphs:
                visit(sub)

    visit(model.graph)
    for function in model.functions:
        for node in function.node:
            visit_node(node)
    return has_qdq, frozenset(found or {"fp32"})


def format_parser_errors(errors: list[dict]) -> str:
    """One line from the ONNX parser's errors (dicts with desc, node, node_name, op)."""
    parts = []
    for err in errors:
        where = []
        if err.get("node", -1) is not None and int(err.get("node", -1)) >= 0:
            where.append(f"node {err['node']}")
        if err.get("node_name"):
            where.append(repr(err["node_name"]))
        if err.get("op"):
            where.append(f"({err['op']})")
        prefix = " ".join(where)
        parts.append(f"{prefix}: {one_line(err.get('desc', ''))}" if prefix else one_line(err.get("desc", "")))
    return "; ".join(parts) if parts else "no error detail from the parser"
