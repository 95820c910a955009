"""Parity check: a new engine against its ONNX model run in FP32 on ONNX Runtime.

Engines are not byte-reproducible, so this is how a build (or a rebuild) is shown to
compute what the model computes.  Golden inputs come from the build's calibration set
(its first samples), else are generated to shapes the model accepts (inference.golden_shapes:
the profile's opt shape, else sizes checked by ONNX shape inference); floats are standard
normal, integers lie inside the embedding tables they index, all from a seed derived from
the model digest so that anyone can regenerate them.  When no valid input can be made,
or the ONNX model itself cannot run on ONNX Runtime, the check is "not run" (with the
reason): no equivalence is shown, and nothing is claimed either way.

An element passes when |engine - reference| <= atol + rtol * |reference| (numpy.allclose,
NaN equal to NaN), with atol/rtol per precision from TRACELEDGER_PARITY_TOLERANCE.
Errors are reported per output as decimal strings (no floats in signed JSON).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from inference import digests, golden_shapes


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


def golden_inputs(model_inputs: list[dict], profiles: dict, *, seed_hex: str, calibration_path: str | None = None,
                  max_samples: int = 8, onnx_path: str | None = None) -> Golden:
    """Golden input batches for the parity check (see the module docstring).  Raises
    golden_shapes.NoGoldenInput when no valid input can be made."""
    if calibration_path:
        arrays = {i["name"]: _first_samples(calibration_path, i["name"], max_samples) for i in model_inputs}
        # One sample per batch: the model's batch axis may be fixed at 1.
        count = min(len(a) for a in arrays.values())
        return Golden("calibration", [{n: a[k:k + 1] for n, a in arrays.items()} for k in range(count)])
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    batch = {}
    for name, item in golden_shapes.plan(model_inputs, profiles, onnx_path).items():
        if item.dtype.kind == "f":
            batch[name] = rng.standard_normal(item.shape).astype(item.dtype)
        elif item.dtype.kind in "iu":
            batch[name] = rng.integers(0, item.high, size=item.shape).astype(item.dtype)
        else:
            batch[name] = rng.integers(0, 2, size=item.shape).astype(bool)
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
    return record(golden, tolerance) | {"status": "checked", "outputs": outputs, "ok": ok}


def record(golden: Golden, tolerance: dict) -> dict:
    return {
        "inputs": golden.source,
        "samples": golden.samples,
        "shapes": {name: "x".join(str(d) for d in array.shape)
                   for name, array in (golden.batches[0].items() if golden.batches else ())},
        "golden_sha256": golden.digest(),
        "reference": f"onnxruntime {ort.__version__} fp32 CPUExecutionProvider ORT_DISABLE_ALL",
        "tolerance": {"atol": str(tolerance["atol"]), "rtol": str(tolerance["rtol"]),
                      "rule": "|engine - reference| <= atol + rtol * |reference|"},
    }


def not_run(golden: Golden, tolerance: dict, reason: str) -> dict:
    """The record when no valid golden input can be made or the reference cannot run:
    no equivalence shown, and no failure either (parity_ok stays None)."""
    return record(golden, tolerance) | {"status": "not_run", "outputs": {}, "ok": None, "reason": reason[:500]}
