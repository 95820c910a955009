"""Engine backends behind one interface (see base.py)."""
from __future__ import annotations

from .base import Backend, BackendUnavailable, BuildError, BuildResult, BuildSpec, Profile  # noqa: F401

BACKENDS = ("onnxruntime", "tensorrt")


def get_backend(name: str) -> Backend:
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if name == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend()
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
