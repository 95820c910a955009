"""Calibration sets: an .npz of named input arrays (axis 0 = samples), registered for one
model, stored content-addressed with its sha256, sample count and per-input dtype and
shape.  INT8 static quantization calibrates on it, and the parity check takes its
golden inputs from it.  Validated before anything is stored: a bad file leaves nothing.
"""
from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.db import transaction

from compliance.ledger import ledger
from compliance.lib import npz
from compliance.lib.store import TooLarge, default_store
from inference import specs
from lineage.actions import ActionError
from lineage.models import CalibrationSet, ModelSource


def describe_npz(path: str, *, max_unpacked_bytes: int, check_inputs=None) -> tuple[int, dict[str, dict]]:
    """(sample count, name -> {dtype, shape}) of an .npz of numeric arrays that all hold
    the same number of samples along axis 0.  Each array's declared size is checked
    before it is unpacked (compliance.lib.npz).  ActionError with a one-line reason."""
    arrays: dict[str, dict] = {}
    counts: dict[str, int] = {}
    limits = {"max_tensor_bytes": max_unpacked_bytes, "max_total_bytes": max_unpacked_bytes}
    try:
        # names, dtypes and shapes from the headers first: checked (check_inputs) before any array is unpacked
        for name, (shape, dtype) in npz.describe(path, **limits).items():
            if dtype.kind not in "biuf":
                raise ActionError(f"calibration input {name!r} has dtype {dtype}: only numeric arrays")
            if len(shape) == 0:
                raise ActionError(f"calibration input {name!r} is a scalar: put samples along axis 0")
            arrays[name] = {"dtype": dtype.name, "shape": list(shape)}
            counts[name] = shape[0]
        if check_inputs is not None:
            check_inputs(arrays)
        for name, array in npz.iter_arrays(path, **limits):
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ActionError(f"calibration input {name!r} contains NaN or infinite values")
    except npz.NpzRefused as exc:
        raise ActionError(f"calibration set refused: {exc}") from None
    except MemoryError:
        raise ActionError("calibration set does not fit in memory") from None
    if len(set(counts.values())) > 1:
        raise ActionError("calibration inputs hold different sample counts: "
                          + ", ".join(f"{n}={c}" for n, c in sorted(counts.items())))
    return next(iter(counts.values())), arrays


def _check_inputs(model: ModelSource, arrays: dict[str, dict]) -> None:
    try:
        specs.check_calibration_inputs(model.inputs, arrays)
    except specs.SpecError as exc:
        raise ActionError(str(exc)) from None


def do_register_calibration(source: BinaryIO | bytes, *, model: ModelSource, name: str,
                            registered_by: str) -> tuple[CalibrationSet, bool]:
    """Validate an .npz against `model`'s inputs and store it; returns (set, created).
    Registering the same bytes for the same model again returns the existing set."""
    store = default_store()
    limit = settings.TRACELEDGER_MAX_UPLOAD_BYTES
    try:
        with store.spool(source, max_bytes=limit) as spooled:
            if spooled.size == 0:
                raise ActionError("the calibration file is empty: not an .npz file")
            count, arrays = describe_npz(spooled.path, max_unpacked_bytes=4 * limit,
                                         check_inputs=lambda found: _check_inputs(model, found))
            minimum = settings.TRACELEDGER_MIN_CALIBRATION_SAMPLES
            if count < minimum:
                raise ActionError(f"calibration set has {count} samples; at least {minimum} are needed")
            existing = CalibrationSet.objects.filter(model=model, sha256=spooled.sha256).first()
            if existing:
                return existing, False
            stored = spooled.commit()
    except TooLarge as exc:
        raise ActionError(str(exc)) from None
    with store.removing_on_error(stored), transaction.atomic():
        calibration = CalibrationSet.objects.create(
            model=model, name=name or "calibration", sha256=stored.sha256, size=stored.size,
            sample_count=count, inputs=arrays, registered_by=registered_by,
        )
        entry = ledger.append(
            "calibration.registered",
            {"calibration_id": calibration.id, "model_id": model.id, "model_sha256": model.sha256,
             "name": calibration.name, "sha256": calibration.sha256, "size": calibration.size,
             "sample_count": count, "inputs": arrays, "registered_by": registered_by},
            subject=f"calibration:{calibration.sha256}", actor=registered_by,
        )
        CalibrationSet.objects.filter(pk=calibration.pk).update(ledger_index=entry.index)
        calibration.ledger_index = entry.index
    return calibration, True


def register_calibration_file(path: str, model: ModelSource, *, registered_by: str = "") -> CalibrationSet:
    """Register the .npz at `path` for `model` (the CLI's --calibration)."""
    if not os.path.isfile(path):
        raise ActionError(f"no such calibration file: {path}")
    if not registered_by:
        from compliance.lib.cli import ci_user

        registered_by = ci_user()
    with open(path, "rb") as f:
        calibration, _ = do_register_calibration(
            f, model=model, name=os.path.splitext(os.path.basename(path))[0], registered_by=registered_by)
    return calibration


def get_calibration(ref, model: ModelSource | None = None) -> CalibrationSet:
    """A calibration set by id or sha256 (for `model` when given)."""
    ref = str(ref).strip()
    query = CalibrationSet.objects.filter(sha256=ref.lower()) if len(ref) == 64 else (
        CalibrationSet.objects.filter(pk=int(ref)) if ref.isdigit() else CalibrationSet.objects.none())
    if model is not None:
        query = query.filter(model=model)
    calibration = query.first()
    if calibration is None:
        raise ActionError(f"unknown calibration set {ref!r}"
                          + (f" for model {model.id}: register it for this model first" if model else ""))
    return calibration
