"""The one small interface every engine backend implements.

build(ONNX path, BuildSpec) -> BuildResult (engine bytes + JSON-safe metadata);
load(engine bytes, or a read-only buffer of them) -> Runner; Runner.run(named numpy
inputs) -> named numpy outputs; describe_device().  Metadata never carries floats:
they are written as strings so that it can go into signed, canonical JSON unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine (library missing, no device)."""


class BuildError(RuntimeError):
    """The backend refused or failed to build; the message is one line."""


@dataclass(frozen=True)
class Profile:
    """One optimization-profile entry for one input: shapes min <= opt <= max."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class BuildSpec:
    precision: str = "fp32"
    profiles: dict[str, Profile] = field(default_factory=dict)
    calibration_path: str | None = None
    workspace_bytes: int = 1 << 30
    timing_cache_path: str | None = None
    options: dict = field(default_factory=dict)
    # Scratch space for intermediate files; inside the store's tmp/ so that what a
    # killed build leaves behind is swept with it.
    work_dir: str | None = None


@dataclass
class BuildResult:
    engine: bytes
    metadata: dict
    log: str = ""
    artifacts: dict[str, bytes] = field(default_factory=dict)


class Runner(Protocol):
    inputs: dict[str, tuple[str, tuple]]
    outputs: dict[str, tuple[str, tuple]]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def describe_device(self) -> dict: ...

    def supported_precisions(self) -> tuple[str, ...]: ...

    def build(self, onnx_path: str, spec: BuildSpec) -> BuildResult: ...

    def load(self, engine: bytes | memoryview, *, threads: int | None = None, path: str | None = None) -> Runner:
        """A runner on the engine.  `path`, when given, names the same verified bytes
        as a file (held unchanged by the caller), for backends that would otherwise
        copy `engine` to load it."""
        ...
