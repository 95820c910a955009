"""Audited inference: run a verified engine and stamp every answer with provenance.

    service = AuditedService.open("credit-scoring")
    outputs, meta = service.predict({"features": x})

`meta` has inference_id (UUIDv7), deployment, engine_sha256, timestamp, input_digest
(a salted commitment), output_digest and latency_ms.  The provenance record goes to a
recorder: synchronous by default here; a buffered recorder can batch off the request path.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from compliance.ids import uuid7

from . import digests, onnx_model
from .loader import LoadedEngine, load_verified
from .recorder import ProvenanceRecord, SyncRecorder


@dataclass
class AuditedService:
    loaded: LoadedEngine
    recorder: object

    @classmethod
    def open(cls, service: str, environment: str | None = None, recorder=None) -> "AuditedService":
        return cls(load_verified(service, environment), recorder or SyncRecorder())

    def predict(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
        feeds = onnx_model.check_feeds(self.loaded.model_inputs, feeds)
        started = time.perf_counter_ns()
        outputs = self.loaded.runner.run(feeds)
        elapsed_ns = time.perf_counter_ns() - started
        now_ns = time.time_ns()
        inference_id = uuid7(now_ns // 1_000_000)
        salt = digests.new_salt()
        record = ProvenanceRecord(
            inference_id=inference_id,
            deployment_id=self.loaded.deployment.id,
            engine_sha256=self.loaded.engine.sha256,
            timestamp=datetime.fromtimestamp(now_ns / 1e9, tz=timezone.utc),
            input_digest=digests.input_commitment(salt, feeds),
            output_digest=digests.tensors_digest(outputs),
            latency_us=elapsed_ns // 1000,
            salt=salt.hex(),
        )
        self.recorder.record(record)
        return outputs, record.metadata(self.loaded.deployment.service)
