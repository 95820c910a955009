"""A small real dataset for dashboard tests: a registered model, a build run in this
process by the real builder (ONNX Runtime), a signed engine, a deployment and a few
audited predictions; plus one refused load of a tampered engine."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from compliance.lib.store import default_store
from inference.build_requests import do_request_build
from inference.builder import run_build
from inference.loader import EngineRefused, load_verified
from inference.runtime import AuditedService
from lineage.actions import do_deploy
from lineage.models import Build, Deployment, Engine, ModelSource, Prediction
from tests.conftest import register, wait_for_build


@dataclass
class Data:
    model: ModelSource
    build: Build
    engine: Engine
    deployment: Deployment
    predictions: list[Prediction]


def build_now(model, precision="fp32", submitter="bob") -> Build:
    """Request a build and run it here (the queued task finds it already claimed)."""
    build = do_request_build(model, precision=precision, submitter=submitter, commit="b" * 40)
    if transaction.get_connection().in_atomic_block:
        run_build(build.id)  # inside a test transaction the queued task is never sent
    wait_for_build(build)  # else the worker (or the in-process eager task) runs it
    assert build.status == Build.SUCCEEDED, build.error
    return build


def seed(credit_onnx: bytes, predictions: int = 3, service: str = "credit") -> Data:
    model = register(credit_onnx, name="credit-mlp")
    build = build_now(model)
    deployment = do_deploy(build.engine, service=service, acting_user="bob")
    audited = AuditedService.open(service)
    x = np.array([[35, 48.0, 0.3, 4, 0, 6]], dtype=np.float32)
    for _ in range(predictions):
        audited.predict({"X": x})
    return Data(model, build, build.engine, deployment, list(Prediction.objects.all()))


def tamper_and_load(engine: Engine, service: str) -> str:
    path = default_store().path_for(engine.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        load_verified(service)
    except EngineRefused as exc:
        return exc.verdict
    raise AssertionError("the tampered engine was loaded")
