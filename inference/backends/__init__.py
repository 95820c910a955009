"""Engine backends behind one interface (see base.py)."""
from __future__ import annotations

from inference.backends.base import (
    PRECISIONS,
    Backend,
    BackendUnavailable,
    BuildError,
    BuildResult,
    BuildSpec,
    Profile,
)

BACKENDS = ("onnxruntime", "tensorrt")
# What each backend can be asked for, known without importing it (TensorRT may be
# installed only on the GPU workers).
SUPPORTED_PRECISIONS = {"onnxruntime": ("fp32", "fp16", "int8"), "tensorrt": PRECISIONS}


def get_backend(name: str) -> Backend:
    if name == "onnxruntime":
        from inference.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if name == "tensorrt":
        from inference.backends.tensorrt import TensorRTBackend

        return TensorRTBackend()
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def check_available(name: str) -> None:
    """Raise BackendUnavailable (one line) unless the build workers offer `name`:
    those listed in TRACELEDGER_BUILD_BACKENDS, or, when that is empty, those that
    import on this machine."""
    from django.conf import settings

    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    declared = settings.TRACELEDGER_BUILD_BACKENDS
    if declared:
        if name not in declared:
            raise BackendUnavailable(f"backend {name} is not offered by the build workers "
                                     f"(TRACELEDGER_BUILD_BACKENDS: {', '.join(declared)})")
        return
    get_backend(name)
