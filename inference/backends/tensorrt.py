"""TensorRT backend: the production GPU path, written against the TensorRT 10.x and
11.x Python API (``import tensorrt``) and pycuda for device buffers.

TensorRT is imported lazily: this module imports everywhere, and constructing
:class:`TensorRTBackend` where ``tensorrt`` does not import raises BackendUnavailable
with a one-line reason. What a build does with a spec is decided in
``tensorrt_plan.py`` (plain Python, unit-tested without TensorRT); this module applies
that plan with Builder + OnnxParser + IBuilderConfig, records the timing cache and the
IEngineInspector layer information, and refuses refittable engines.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import threading
import time
from collections import deque

import numpy as np

from inference.backends.base import PRECISIONS, BackendUnavailable, BuildError, BuildResult, BuildSpec
from inference.backends.tensorrt_plan import (
    BuildPlan,
    check_profiles_against_inputs,
    format_parser_errors,
    format_shape,
    inspect_onnx_precision,
    one_line,
    parse_major,
    plan_build,
)


def _import_tensorrt():
    try:
        return importlib.import_module("tensorrt")
    except Exception as exc:  # ImportError, or OSError when libnvinfer cannot be loaded
        raise BackendUnavailable(
            f"TensorRT is not installed: the tensorrt module does not import ({one_line(exc)})"
        ) from None


def _import_pycuda():
    """pycuda.driver, initialised explicitly (no pycuda.autoinit)."""
    try:
        cuda = importlib.import_module("pycuda.driver")
    except Exception as exc:
        raise BackendUnavailable(f"pycuda is not installed: pycuda.driver does not import ({one_line(exc)})") from None
    try:
        cuda.init()
    except Exception as exc:
        raise BackendUnavailable(f"CUDA is not usable here: cuda.init() failed ({one_line(exc)})") from None
    return cuda


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _cuda_version(number: int) -> str:
    """CUDA encodes versions as 1000 * major + 10 * minor (12040 -> "12.4")."""
    return f"{number // 1000}.{(number % 1000) // 10}"


_LOGGERS: dict[int, object] = {}
_LOGGERS_LOCK = threading.Lock()


def _shared_logger(trt):
    """One trt.ILogger per process (TensorRT keeps the first logger it is given as the
    global one), keeping INFO and more severe messages; callers read their own part
    of the record through mark() / since()."""
    with _LOGGERS_LOCK:
        if id(trt) in _LOGGERS:
            return _LOGGERS[id(trt)]

        class CapturingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self._lock = threading.Lock()
                self._messages: deque[tuple[int, str, str]] = deque(maxlen=20000)
                self._seq = 0

            def log(self, severity, msg):
                if int(severity) <= int(trt.ILogger.Severity.INFO):
                    with self._lock:
                        self._messages.append((self._seq, getattr(severity, "name", str(severity)), str(msg)))
                        self._seq += 1

            def mark(self) -> int:
                with self._lock:
                    return self._seq

            def since(self, mark: int) -> list[tuple[str, str]]:
                with self._lock:
                    return [(sev, msg) for seq, sev, msg in self._messages if seq >= mark]

        _LOGGERS[id(trt)] = CapturingLogger()
        return _LOGGERS[id(trt)]


def _log_text(messages: list[tuple[str, str]]) -> str:
    return "\n".join(f"[{sev}] {msg}" for sev, msg in messages)


def _log_errors(messages: list[tuple[str, str]]) -> str:
    bad = [one_line(msg) for sev, msg in messages if sev in ("ERROR", "INTERNAL_ERROR")]
    return "; ".join(bad) if bad else "TensorRT logged no error"


def _dtype_name(trt, trt_dtype) -> str:
    """numpy dtype name for a TensorRT DataType (trt.nptype; bfloat16 via ml_dtypes),
    or "tensorrt:<TYPE>" for types numpy cannot hold (fp8, int4, ...)."""
    try:
        return np.dtype(trt.nptype(trt_dtype)).name
    except TypeError:
        if trt_dtype == trt.bfloat16:
            return "bfloat16"
        return "tensorrt:" + str(getattr(trt_dtype, "name", trt_dtype))


def _numpy_extra() -> dict:
    try:
        import ml_dtypes
    except ImportError:
        return {}
    return {"bfloat16": np.dtype(ml_dtypes.bfloat16)}


_NUMPY_EXTRA = _numpy_extra()


def _io_tensors(trt, engine) -> tuple[dict, dict]:
    """name -> (numpy dtype name, shape with -1 for dynamic axes), inputs and outputs."""
    inputs, outputs = {}, {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = (_dtype_name(trt, engine.get_tensor_dtype(name)), tuple(int(d) for d in engine.get_tensor_shape(name)))
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs)[name] = entry
    return inputs, outputs


class TensorRTRunner:
    """Runs a deserialized engine: pycuda buffers, set_tensor_address, execute_async_v3."""

    def __init__(self, trt, cuda, engine_bytes: bytes | memoryview, device_index: int = 0,
                 allow_engine_host_code: bool = False):
        self._trt, self._cuda = trt, cuda
        self._lock = threading.Lock()
        self._logger = _shared_logger(trt)
        start = self._logger.mark()
        self._ctx = cuda.Device(device_index).retain_primary_context()
        self._ctx.push()
        try:
            self._runtime = trt.Runtime(self._logger)
            if allow_engine_host_code:  # version-compatible engines embed the lean runtime (host code)
                self._runtime.engine_host_code_allowed = True
            self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
            if self._engine is None:
                raise ValueError(f"TensorRT could not deserialize the engine: {_log_errors(self._logger.since(start))}")
            self.inputs, self.outputs = _io_tensors(trt, self._engine)
            self._dtypes = {}
            for name, (dtype, _) in {**self.inputs, **self.outputs}.items():
                if dtype.startswith("tensorrt:"):
                    raise ValueError(f"tensor {name!r} has TensorRT type {dtype[9:]}, which has no numpy equivalent")
                self._dtypes[name] = _NUMPY_EXTRA.get(dtype) or np.dtype(dtype)
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise ValueError("TensorRT could not create an execution context: "
                                 + _log_errors(self._logger.since(start)))
            self._stream = cuda.Stream()
        except BaseException:
            self._context = self._engine = self._runtime = None
            cuda.Context.pop()
            self._ctx.detach()
            self._ctx = None
            raise
        cuda.Context.pop()

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing, extra = sorted(set(self.inputs) - set(feeds)), sorted(set(feeds) - set(self.inputs))
        if missing or extra:
            raise ValueError(f"engine takes inputs {', '.join(self.inputs)}; missing: {', '.join(missing) or 'none'}; "
                             f"unknown: {', '.join(extra) or 'none'}")
        arrays = {}
        for name, (dtype, shape) in self.inputs.items():
            array = np.ascontiguousarray(feeds[name])
            if array.dtype != self._dtypes[name]:
                raise ValueError(f"input {name!r} has dtype {array.dtype}, the engine expects {dtype}")
            if array.ndim != len(shape) or any(w >= 0 and g != w for g, w in zip(array.shape, shape)):
                raise ValueError(f"input {name!r} has shape {format_shape(array.shape)}, "
                                 f"the engine expects {format_shape(shape)}")
            arrays[name] = array
        return arrays

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, context = self._cuda, self._context
        arrays = self._check_feeds(feeds)
        with self._lock:
            if self._ctx is None:
                raise RuntimeError("this TensorRT runner is closed")
            self._ctx.push()
            device_buffers, host_outputs = [], {}
            start = self._logger.mark()
            try:
                for name, array in arrays.items():
                    if context.set_input_shape(name, array.shape) is False:
                        raise ValueError(f"input {name!r} shape {format_shape(array.shape)} is outside the engine's "
                                         f"optimization profile")
                    host = cuda.pagelocked_empty(array.shape, self._dtypes[name])
                    host[...] = array
                    device = cuda.mem_alloc(max(host.nbytes, 1))
                    device_buffers.append((device, host))
                    cuda.memcpy_htod_async(device, host, self._stream)
                    context.set_tensor_address(name, int(device))
                for name in self.outputs:
                    shape = tuple(int(d) for d in context.get_tensor_shape(name))
                    if any(d < 0 for d in shape):
                        raise RuntimeError(f"output {name!r} has a data-dependent shape {format_shape(shape)}, "
                                           f"which this runner does not support")
                    host = cuda.pagelocked_empty(shape, self._dtypes[name])
                    device = cuda.mem_alloc(max(host.nbytes, 1))
                    device_buffers.append((device, host))
                    host_outputs[name] = (host, device)
                    context.set_tensor_address(name, int(device))
                if not context.execute_async_v3(self._stream.handle):
                    raise RuntimeError(f"TensorRT execute_async_v3 failed: {_log_errors(self._logger.since(start))}")
                for host, device in host_outputs.values():
                    cuda.memcpy_dtoh_async(host, device, self._stream)
                self._stream.synchronize()
                return {name: np.array(host) for name, (host, _) in host_outputs.items()}
            finally:
                try:
                    self._stream.synchronize()
                finally:
                    for device, _ in device_buffers:
                        device.free()
                    cuda.Context.pop()

    def close(self) -> None:
        with self._lock:
            if getattr(self, "_ctx", None) is None:
                return
            self._ctx.push()
            try:
                self._context = self._engine = self._runtime = self._stream = None
            finally:
                self._cuda.Context.pop()
                self._ctx.detach()
                self._ctx = None


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, device_index: int = 0, allow_engine_host_code: bool = False):
        """``allow_engine_host_code``: let load() deserialize engines that carry host
        code (version-compatible engines with the lean runtime); off by default."""
        self._trt = _import_tensorrt()
        self.trt_major = parse_major(self._trt.__version__)
        self.device_index = device_index
        self.allow_engine_host_code = allow_engine_host_code

    def version(self) -> str:
        return str(self._trt.__version__)

    def supported_precisions(self) -> tuple[str, ...]:
        # 10.x: by builder flags (INT8 only for Q/DQ models); 11.x: the model must carry it.
        return PRECISIONS

    def describe_device(self) -> dict:
        cuda = _import_pycuda()
        try:
            device = cuda.Device(self.device_index)
            major, minor = device.compute_capability()
            return {
                "kind": "gpu",
                "name": str(device.name()),
                "device_index": str(self.device_index),
                "pci_bus_id": str(device.pci_bus_id()),
                "compute_capability": f"{major}.{minor}",
                "total_memory_bytes": str(device.total_memory()),
                "driver_version": _cuda_version(cuda.get_driver_version()),  # CUDA version the driver supports
                "cuda_version": ".".join(str(v) for v in cuda.get_version()),  # CUDA pycuda was built against
                "backend": self.name,
                "backend_version": self.version(),
            }
        except cuda.Error as exc:
            raise BackendUnavailable(f"CUDA device {self.device_index} is not usable: {one_line(exc)}") from None

    def load(self, engine: bytes | memoryview, *, threads: int | None = None,
             path: str | None = None) -> TensorRTRunner:
        # Deserialized from the buffer itself, no copy; `threads` and `path` are for
        # backends that need them.
        return TensorRTRunner(self._trt, _import_pycuda(), engine, self.device_index, self.allow_engine_host_code)

    def plan(self, onnx_path: str, spec: BuildSpec) -> BuildPlan:
        """The plan for this spec and model on the installed TensorRT (no build)."""
        import onnx

        try:
            model = onnx.load(onnx_path, load_external_data=False)
        except Exception as exc:
            raise BuildError(f"not a readable ONNX model: {one_line(exc)}") from None
        has_qdq, precisions = inspect_onnx_precision(model)
        return plan_build(spec, self.trt_major, has_qdq, precisions)

    def build(self, onnx_path: str, spec: BuildSpec) -> BuildResult:
        trt = self._trt
        if not os.path.isfile(onnx_path):
            raise BuildError(f"ONNX file not found: {onnx_path}")
        plan = self.plan(onnx_path, spec)
        logger = _shared_logger(trt)
        log_start = logger.mark()
        timings: dict[str, str] = {}

        started = time.perf_counter()
        builder = trt.Builder(logger)
        flags = 0
        for name in plan.network_flags:
            flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        with open(onnx_path, "rb") as f:
            onnx_bytes = f.read()
        parsed = parser.parse(onnx_bytes, onnx_path)  # the path lets the parser find external weights
        if not parsed or parser.num_errors:
            errors = []
            for i in range(parser.num_errors):
                err = parser.get_error(i)
                errors.append({"desc": err.desc(), "node": err.node(), "node_name": err.node_name(),
                               "op": err.node_operator()})
            raise BuildError(f"TensorRT's ONNX parser rejected the model: {format_parser_errors(errors)}")
        timings["parse_ms"] = _ms(time.perf_counter() - started)
        inputs = {}
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            inputs[tensor.name] = tuple(int(d) for d in tensor.shape)
        check_profiles_against_inputs(plan.profiles, inputs)

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        for name in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, name))
        for name in plan.cleared_builder_flags:
            config.clear_flag(getattr(trt.BuilderFlag, name))
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, plan.hardware_compatibility_level)
        if plan.builder_optimization_level is not None:
            config.builder_optimization_level = plan.builder_optimization_level
        if plan.profiles:
            profile = builder.create_optimization_profile()
            for name, p in plan.profiles.items():
                profile.set_shape(name, p.min, p.opt, p.max)
            if config.add_optimization_profile(profile) < 0:
                raise BuildError(f"TensorRT rejected the optimization profile: {_log_errors(logger.since(log_start))}")

        cache_in, cache, cache_state = b"", None, "new"
        if spec.timing_cache_path and os.path.isfile(spec.timing_cache_path):
            with open(spec.timing_cache_path, "rb") as f:
                cache_in = f.read()
        if cache_in:
            try:
                cache = config.create_timing_cache(cache_in)
            except Exception:  # a damaged cache file must not stop the build
                cache = None
            if cache is not None and config.set_timing_cache(cache, False):
                cache_state = "loaded"
            else:
                cache, cache_state = None, "rejected (damaged, or made on another device or version); started empty"
        if cache is None:
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)

        started = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        timings["build_ms"] = _ms(time.perf_counter() - started)
        if serialized is None:
            raise BuildError(f"TensorRT could not build the engine: {_log_errors(logger.since(log_start))}")
        engine_bytes = bytes(memoryview(serialized))
        timing_cache = bytes(memoryview(config.get_timing_cache().serialize()))

        started = time.perf_counter()
        runtime = trt.Runtime(logger)
        if "VERSION_COMPATIBLE" in plan.builder_flags:  # our own engine, with the lean runtime inside
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(engine_bytes)
        if engine is None:
            raise BuildError("TensorRT could not deserialize the engine it built: "
                             + _log_errors(logger.since(log_start)))
        if engine.refittable:
            raise BuildError("the built engine is refittable: weights could change after signing")
        inspector_json = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
        inspector_bytes = str(inspector_json).encode("utf-8")
        timings["inspect_ms"] = _ms(time.perf_counter() - started)
        io_inputs, io_outputs = _io_tensors(trt, engine)

        try:
            device = self.describe_device()
        except Exception as exc:
            device = {"kind": "gpu", "unavailable": one_line(exc),
                      "backend": self.name, "backend_version": self.version()}
        metadata = {
            "backend": self.name,
            "backend_version": self.version(),
            "device": device,
            **plan.to_metadata(),
            "hardware_compatibility_level": getattr(config.hardware_compatibility_level, "name",
                                                    plan.hardware_compatibility_level),
            "version_compatible": bool(config.get_flag(trt.BuilderFlag.VERSION_COMPATIBLE)),
            "refittable": bool(engine.refittable),
            "profiling_verbosity": "DETAILED",
            "num_layers": int(engine.num_layers),
            "io": {"inputs": {n: {"dtype": d, "shape": list(s)} for n, (d, s) in io_inputs.items()},
                   "outputs": {n: {"dtype": d, "shape": list(s)} for n, (d, s) in io_outputs.items()}},
            "timing_cache": {"source": spec.timing_cache_path, "state": cache_state,
                             "input_sha256": _sha256(cache_in) if cache_in else None,
                             "sha256": _sha256(timing_cache)},
            "artifacts": {"inspector.json": _sha256(inspector_bytes), "timing.cache": _sha256(timing_cache)},
            "engine_sha256": _sha256(engine_bytes),
            "onnx_sha256": _sha256(onnx_bytes),
            "timings": timings,
        }
        return BuildResult(
            engine=engine_bytes,
            metadata=metadata,
            log=_log_text(logger.since(log_start)),
            artifacts={"inspector.json": inspector_bytes, "timing.cache": timing_cache},
        )
