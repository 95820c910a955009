"""Audited inference: run a verified engine and stamp every answer with provenance.

    service = AuditedService.open("credit-scoring", recorder=BufferedRecorder())
    outputs, meta = service.predict({"features": x})

`meta` has inference_id (UUIDv7), deployment, engine_sha256, timestamp, input_digest
(a salted commitment), output_digest and latency_ms.  The provenance record goes to a
recorder: `SyncRecorder` (the default: written before the call returns), or
`BufferedRecorder` for serving (appended to memory, spooled to disk and written to the
database in bulk by background threads; see inference/provenance/recorder.py).

The per-call audit work (feed check, stamp, enqueue) is a few microseconds; it is kept
off the engine's timing, which `latency_ms` reports.
"""
from __future__ import annotations

import time

import numpy as np

from inference.loader import LoadedEngine, load_verified
from inference.provenance.recorder import SyncRecorder
from inference.provenance.stamp import Stamper
from lineage import onnx_model


class AuditedService:
    def __init__(self, loaded: LoadedEngine, recorder=None):
        self.loaded = loaded
        self.recorder = recorder if recorder is not None else SyncRecorder()
        self.deployment = loaded.deployment
        self._check = onnx_model.FeedChecker(loaded.model_inputs)
        self._run = loaded.runner.run
        self._stamp = Stamper(loaded.deployment.id, loaded.deployment.service, loaded.engine.sha256)
        self._commit = self._stamp.commit
        self._finish = self._stamp.finish
        self._record = self.recorder.record

    @classmethod
    def open(cls, service: str, environment: str | None = None, recorder=None) -> "AuditedService":
        """Load the service's deployed engine through the verified loader (the load
        attempt is recorded; a refusal raises EngineRefused and nothing runs)."""
        return cls(load_verified(service, environment), recorder)

    def predict(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
        feeds = self._check(feeds)
        random, input_digest = self._commit(feeds)
        started = time.perf_counter_ns()
        outputs = self._run(feeds)
        latency_us = (time.perf_counter_ns() - started) // 1000
        record, meta = self._finish(random, input_digest, outputs, latency_us)
        self._record(record)
        return outputs, meta
