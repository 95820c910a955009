"""ONNX Runtime backend: the runnable engine path (CPU, or GPU where onnxruntime-gpu
is installed).

"Building" an engine means: optional precision conversion (FP16 with
onnxconverter-common, INT8 static quantization from a calibration set or dynamic
quantization without one), then ORT graph optimization saved as the engine — an
optimized ONNX model.  Offline, only the portable optimizations (ORT_ENABLE_EXTENDED:
fusions, constant folding); at load ORT adds the layout transformations for the CPU
it runs on (ORT_ENABLE_ALL), which ORT's documentation says not to save, since they
depend on the hardware.  Without them a CNN runs about 40% slower here.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from inference.backends.base import BuildError, BuildResult, BuildSpec

OPT_LEVEL = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
OPT_LEVEL_NAME = "ORT_ENABLE_EXTENDED"
LOAD_OPT_LEVEL = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
LOAD_OPT_LEVEL_NAME = "ORT_ENABLE_ALL"


def _providers() -> list[str]:
    available = ort.get_available_providers()
    preferred = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return preferred or ["CPUExecutionProvider"]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


class OrtRunner:
    def __init__(self, session: ort.InferenceSession, loaded_from: str = "bytes"):
        self.session = session
        self.loaded_from = loaded_from  # "bytes" or "path"
        self.inputs = {i.name: (i.type, tuple(d if isinstance(d, int) else -1 for d in i.shape))
                       for i in session.get_inputs()}
        self.outputs = {o.name: (o.type, tuple(d if isinstance(d, int) else -1 for d in o.shape))
                        for o in session.get_outputs()}
        self._output_names = [o.name for o in session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values))


def _retarget_casts(model: onnx.ModelProto) -> None:
    """The FP16 converter types a Cast's output as float16 but leaves its `to`
    attribute at float (skl2onnx pipelines have such Casts), which ORT rejects; point
    those Casts at float16.  (Blocking Cast in the converter instead makes it loop.)"""
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.output)}
    for node in model.graph.node:
        if node.op_type != "Cast":
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT and types.get(node.output[0]) == onnx.TensorProto.FLOAT16:
                attr.i = onnx.TensorProto.FLOAT16


class _NpzReader:
    """CalibrationDataReader over an .npz of named input arrays (first axis = samples)."""

    def __init__(self, path: str, input_names: list[str]):
        data = np.load(path, allow_pickle=False)
        self.arrays = {name: data[name] for name in input_names}
        self.count = min(len(a) for a in self.arrays.values())
        self.position = 0

    def get_next(self):
        if self.position >= self.count:
            return None
        i = self.position
        self.position += 1
        return {name: array[i:i + 1] for name, array in self.arrays.items()}

    def rewind(self):
        self.position = 0


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def version(self) -> str:
        return ort.__version__

    def supported_precisions(self) -> tuple[str, ...]:
        return ("fp32", "fp16", "int8")

    def describe_device(self) -> dict:
        providers = _providers()
        return {
            "kind": "gpu" if "CUDAExecutionProvider" in providers else "cpu",
            "name": _cpu_name(),
            "ort_device": ort.get_device(),
            "execution_providers": providers,
            "cpu_count": str(os.cpu_count() or 0),
            "machine": platform.machine(),
        }

    def build(self, onnx_path: str, spec: BuildSpec) -> BuildResult:
        if spec.precision not in self.supported_precisions():
            raise BuildError(f"onnxruntime backend does not support precision {spec.precision!r}")
        log: list[str] = []
        timings: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="ort-build-", dir=spec.work_dir) as tmp:
            source = onnx_path
            started = time.perf_counter()
            if spec.precision == "fp16":
                source = self._to_fp16(onnx_path, tmp, log)
            elif spec.precision == "int8":
                source = self._to_int8(onnx_path, spec, tmp, log)
            timings["convert_ms"] = _ms(time.perf_counter() - started)
            optimized = os.path.join(tmp, "engine.onnx")
            options = ort.SessionOptions()
            options.graph_optimization_level = OPT_LEVEL
            options.optimized_model_filepath = optimized
            options.log_severity_level = 2
            started = time.perf_counter()
            try:
                ort.InferenceSession(source, options, providers=_providers())
            except Exception as exc:
                raise BuildError(f"onnxruntime could not optimize the model: {str(exc).splitlines()[0]}") from None
            timings["optimize_ms"] = _ms(time.perf_counter() - started)
            engine = Path(optimized).read_bytes()
        log.append(f"optimized with {OPT_LEVEL_NAME} on {', '.join(_providers())}: {len(engine)} bytes")
        inspector = self.inspect(engine)
        metadata = {
            "backend": self.name,
            "backend_version": self.version(),
            "precision": spec.precision,
            "optimization_level": OPT_LEVEL_NAME,
            "load_optimization_level": LOAD_OPT_LEVEL_NAME,
            "execution_providers": _providers(),
            "profiles": {name: p.to_dict() for name, p in spec.profiles.items()},
            "timings": timings,
        }
        if spec.precision == "int8":
            metadata["quantization"] = "static" if spec.calibration_path else "dynamic"
            metadata["quantization_format"] = "QDQ, symmetric" if spec.calibration_path else "QOperator"
            metadata["weight_type"] = "QInt8"
            if spec.calibration_path:
                metadata["calibration_method"] = "MinMax"
        elif spec.precision == "fp16":
            metadata["fp16_conversion"] = "onnxconverter_common.float16, keep_io_types"
        return BuildResult(engine=engine, metadata=metadata, log="\n".join(log),
                           artifacts={"inspector.json": inspector})

    def inspect(self, engine: bytes) -> bytes:
        """The engine's layer information, like TensorRT's IEngineInspector: every node of
        the optimized graph (name, op type, domain, inputs, outputs) as canonical JSON."""
        model = onnx.ModelProto.FromString(engine)
        layers = [{"name": n.name, "op_type": n.op_type, "domain": n.domain or "ai.onnx",
                   "inputs": list(n.input), "outputs": list(n.output)} for n in model.graph.node]
        info = {
            "format": "traceledger/onnxruntime-layers/v1",
            "backend_version": self.version(),
            "optimization_level": OPT_LEVEL_NAME,
            "execution_providers": _providers(),
            "opsets": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
            "initializers": len(model.graph.initializer),
            "layers": layers,
        }
        return json.dumps(info, sort_keys=True, separators=(",", ":")).encode()

    def _to_fp16(self, onnx_path: str, tmp: str, log: list[str]) -> str:
        from onnxconverter_common import float16

        model = onnx.load(onnx_path)
        # The converter names the Casts around the nodes it keeps in FP32 (Resize, ...)
        # after those nodes: two unnamed ones would give two Casts the same output name.
        taken = {node.name for node in model.graph.node}
        for position, node in enumerate(model.graph.node):
            if not node.name:
                node.name = next(n for n in (f"{node.op_type}_{position}", f"{node.op_type}_{position}_")
                                 if n not in taken)
                taken.add(node.name)
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
        _retarget_casts(converted)
        out = os.path.join(tmp, "fp16.onnx")
        onnx.save(converted, out)
        log.append("converted weights and activations to FP16 (inputs/outputs kept in their types)")
        return out

    def _to_int8(self, onnx_path: str, spec: BuildSpec, tmp: str, log: list[str]) -> str:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = os.path.join(tmp, "prepared.onnx")
        try:
            quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
        except Exception as exc:
            log.append(f"quantization pre-processing skipped: {str(exc).splitlines()[0]}")
            prepared = onnx_path
        out = os.path.join(tmp, "int8.onnx")
        try:
            if spec.calibration_path:
                model = onnx.load(prepared, load_external_data=False)
                initializers = {i.name for i in model.graph.initializer}
                names = [i.name for i in model.graph.input if i.name not in initializers]
                reader = _NpzReader(spec.calibration_path, names)
                quantize_static(
                    prepared, out, reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   "DefaultTensorType": onnx.TensorProto.FLOAT},
                )
                log.append(f"static INT8 quantization (symmetric Q/DQ) calibrated on {reader.count} samples")
            else:
                quantize_dynamic(prepared, out, weight_type=QuantType.QInt8,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
                log.append("dynamic INT8 quantization of weights")
        except Exception as exc:
            raise BuildError(f"INT8 quantization failed: {str(exc).splitlines()[0]}") from None
        return out

    def load(self, engine: bytes | memoryview, *, threads: int | None = None,
             path: str | None = None) -> OrtRunner:
        """A session on the engine, with `threads` intra-op threads (default
        TRACELEDGER_ORT_THREADS, else 1: a serving process runs many sessions).
        ONNX Runtime's Python API takes a path or bytes, not a buffer: given `path` (the
        verified file, held by the loader) it reads that, else a mapping is copied."""
        source, loaded_from = (path, "path") if path else (
            engine if isinstance(engine, bytes) else bytes(engine), "bytes")
        options = ort.SessionOptions()
        # The engine carries the portable optimizations; the layout ones for this CPU
        # are made here (the parity check runs the engine loaded this way too).
        options.graph_optimization_level = LOAD_OPT_LEVEL
        options.intra_op_num_threads = threads or int(os.environ.get("TRACELEDGER_ORT_THREADS", "1"))
        return OrtRunner(ort.InferenceSession(source, options, providers=_providers()), loaded_from)
