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

import os
import threading
import time

import numpy as np

from compliance.lib.store import default_store
from compliance.models import SigningKey
from inference.loader import LoadedEngine, load_verified
from inference.provenance.recorder import SyncRecorder
from inference.provenance.stamp import Stamper
from lineage import onnx_model
from lineage.actions import live_deployment


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


_cache: dict[str, tuple[tuple, AuditedService]] = {}
_cache_lock = threading.Lock()


def _cache_key(service: str) -> tuple | None:
    """What must be unchanged for a verified load to be reused: the live deployment and
    its pins, the engine's usability, the engine file itself (device, inode, size,
    mtime and ctime: any write or replacement changes one) and the key revocations."""
    deployment = live_deployment(service)
    if deployment is None:
        return None
    try:
        st = os.stat(default_store().path_for(deployment.engine_sha256))
    except OSError:
        return None
    return (deployment.id, deployment.engine_sha256, deployment.manifest_sha256, deployment.engine.usable,
            st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            SigningKey.objects.filter(revoked_at__isnull=False).count())


def open_cached(service: str) -> AuditedService:
    """The service's AuditedService, loaded through the verified loader once and reused
    while nothing it was verified against has changed (the predict API's path: the
    engine is not re-hashed on every request). Anything changed: a fresh verified load,
    recorded as such, which refuses a tampered engine."""
    key = _cache_key(service)
    with _cache_lock:
        cached = _cache.get(service)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
    audited = AuditedService.open(service)
    with _cache_lock:
        if key is not None:
            _cache[service] = (key, audited)
    return audited


def forget_cached() -> None:
    with _cache_lock:
        _cache.clear()
