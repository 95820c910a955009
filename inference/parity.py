"""Parity check: a new engine against its ONNX model run in FP32 on ONNX Runtime.

Engines are not byte-reproducible, so this is how a build (or a rebuild) is shown to
compute what the model computes.  Golden inputs come from the build's calibration set
(its first samples), else are generated to the model's shapes: dynamic axes take the
profile's opt shape (1 without a profile), floats are standard normal, integers are 0
or 1 (valid indices for any embedding), all from a seed derived from the model digest
so that anyone can regenerate them.

An element passes when |engine - reference| <= atol + rtol * |reference| (numpy.allclose,
NaN equal to NaN), with atol/rtol per precision from TRACELEDGER_PARITY_TOLERANCE.
Errors are reported per output as decimal strings (no floats in signed JSON).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from inference import digests


def number(value: float) -> str:
    """A float for signed JSON: shortest round-trippable-enough decimal text."""
    return f"{float(value):.6g}"


@dataclass
class Golden:
    source: str  # "calibration" or "generated"
    batches: list[dict[str, np.ndarray]]

    @property
    def samples(self) -> int:
        return sum(len(next(iter(b.values()))) if b else 0 for b in self.batches)

    def digest(self) -> str:
        """sha256 over the canonical encoding of every batch, in order."""
        import hashlib

        h = hashlib.sha256()
        for batch in self.batches:
            digests.update_with_tensors(h, batch)
        return h.hexdigest()


def _first_samples(npz_path: str, name: str, count: int) -> np.ndarray:
    """The first `count` samples of one array of an .npz, reading only those bytes when
    the member is stored uncompressed (numpy.savez), else loading the whole array."""
    with zipfile.ZipFile(npz_path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                shape, fortran, dtype = read_header(member) if read_header else ((), True, np.dtype(object))
                if not fortran and not dtype.hasobject and shape:
                    rows = min(count, shape[0])
                    per_row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
                    data = member.read(rows * per_row)
                    return np.frombuffer(data, dtype=dtype).reshape((rows, *shape[1:])).copy()
    with np.load(npz_path, allow_pickle=False) as data:
        return data[name][:count]


def _static(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def golden_inputs(model_inputs: list[dict], profiles: dict, *, seed_hex: str, calibration_path: str | None = None,
                  max_samples: int = 8) -> Golden:
    """Golden input batches for the parity check (see the module docstring)."""
    if calibration_path:
        arrays = {i["name"]: _first_samples(calibration_path, i["name"], max_samples) for i in model_inputs}
        # One sample per batch: the model's batch axis may be fixed at 1.
        count = min(len(a) for a in arrays.values())
        return Golden("calibration", [{n: a[k:k + 1] for n, a in arrays.items()} for k in range(count)])
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    # A named dynamic axis ("batch") takes the same value in every input: the opt shape
    # of a profile that names it, else 1.
    named: dict[str, int] = {}
    for info in model_inputs:
        profile = profiles.get(info["name"])
        if profile:
            for dim, value in zip(info["shape"], profile["opt"]):
                if isinstance(dim, str) and dim not in ("", "?"):
                    named.setdefault(dim, int(value))
    batch = {}
    for info in model_inputs:
        profile = profiles.get(info["name"])
        shape = tuple(profile["opt"]) if profile else tuple(
            d if _static(d) else named.get(d, 1) if isinstance(d, str) else 1 for d in info["shape"])
        dtype = np.dtype(info["dtype"])
        if dtype.kind == "f":
            batch[info["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            batch[info["name"]] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            batch[info["name"]] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ValueError(f"cannot generate golden inputs of dtype {dtype} for {info['name']!r}")
    return Golden("generated", [batch])


def reference_session(onnx_path: str) -> ort.InferenceSession:
    """The ONNX model itself, FP32, on the CPU, with no graph rewriting."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    # One thread: it runs beside the backend's build and must not compete with it.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])


def reference_outputs(onnx_path: str, golden: Golden) -> list[dict[str, np.ndarray]]:
    """The ONNX model's outputs for every golden batch (independent of the engine, so the
    builder computes them while the backend builds)."""
    session = reference_session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(names, batch))) for batch in golden.batches]


def check(runner, golden: Golden, tolerance: dict, reference: list[dict[str, np.ndarray]]) -> dict:
    """Run `golden` through the engine's runner and compare with `reference`; the parity
    record.  Raises ValueError when the engine cannot run them or gives other outputs."""
    atol, rtol = float(tolerance["atol"]), float(tolerance["rtol"])
    names = list(reference[0]) if reference else []
    worst: dict[str, dict] = {n: {"abs": 0.0, "rel": 0.0, "ok": True, "checked": 0} for n in names}
    for batch, expected in zip(golden.batches, reference):
        produced = runner.run(batch)
        for name in names:
            ref = np.asarray(expected[name])
            if name not in produced:
                raise ValueError(f"the engine does not produce output {name!r}")
            got = np.asarray(produced[name])
            if got.shape != ref.shape:
                raise ValueError(f"output {name!r}: the engine gives shape {got.shape}, the model {ref.shape}")
            ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
            both_nan = np.isnan(ref64) & np.isnan(got64)
            diff = np.where(both_nan, 0.0, np.abs(got64 - ref64))
            diff = np.where(np.isnan(diff), np.inf, diff)
            rel = diff / np.maximum(np.abs(ref64), np.finfo(np.float32).tiny)
            entry = worst[name]
            if diff.size:
                entry["abs"] = max(entry["abs"], float(diff.max()))
                entry["rel"] = max(entry["rel"], float(rel.max()))
                entry["ok"] = entry["ok"] and bool(np.all(diff <= atol + rtol * np.abs(ref64)))
            entry["checked"] += int(diff.size)
    outputs = {
        name: {"max_abs_error": number(e["abs"]), "max_rel_error": number(e["rel"]), "elements": e["checked"],
               "ok": e["ok"]}
        for name, e in worst.items()
    }
    ok = bool(outputs) and all(o["ok"] for o in outputs.values())
    return record(golden, tolerance) | {"outputs": outputs, "ok": ok}


def record(golden: Golden, tolerance: dict) -> dict:
    return {
        "inputs": golden.source,
        "samples": golden.samples,
        "golden_sha256": golden.digest(),
        "reference": f"onnxruntime {ort.__version__} fp32 CPUExecutionProvider ORT_DISABLE_ALL",
        "tolerance": {"atol": str(tolerance["atol"]), "rtol": str(tolerance["rtol"]),
                      "rule": "|engine - reference| <= atol + rtol * |reference|"},
    }


def unavailable(golden: Golden, tolerance: dict, reason: str) -> dict:
    """The record when the reference could not run (a model ONNX Runtime cannot execute):
    no equivalence shown, so the build is flagged."""
    return record(golden, tolerance) | {"outputs": {}, "ok": False, "error": reason[:500]}
