"""Client of the ingestion API for inference servers that do not run inside
TraceLedger (no Django, no database access: numpy and the standard library only).

    from inference.provenance.client import ProvenanceClient
    from inference.provenance.stamp import Stamper

    client = ProvenanceClient("https://traceledger.example.com", token, spool_dir="/var/spool/traceledger")
    client.report_load(service="credit-scoring", deployment_id=7, verdict="verified",
                       expected_sha256=pinned, actual_sha256=sha256_of_the_engine_bytes)
    stamp = Stamper(deployment_id=7, service="credit-scoring", engine_sha256=pinned)
    ...
    record, meta = stamp(feeds, outputs, latency_us)   # per inference, a few µs
    client.record(record)                              # appends to memory, never blocks on the network
    ...
    client.close()                                     # on shutdown

It gives the same guarantees as the in-process BufferedRecorder: records are spooled
to local disk (fsync) before they count as acknowledged, POSTed in batches with retry
and exponential backoff while the API is unreachable or failing, and a restarted
process replays its spool; the API is idempotent by inference id, so a batch posted
twice is stored once.  Unreachable, 5xx, 408, 429 and 401 (a token being rotated) are
retried; a record the API refuses for good (400, 403: not this service's, 404, 413)
is isolated and kept in the spool's rejected/rejected.jsonl with the reason.
"""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from inference.provenance.spool import Rejected
from inference.provenance.spooling_recorder import SpoolingRecorder
from inference.provenance.stamp import ProvenanceRecord

PREDICTION, LOAD = b"P", b"L"


class ApiUnavailable(RuntimeError):
    """The API could not be reached or failed in a way worth retrying."""


def _encode(item) -> bytes:
    if isinstance(item, ProvenanceRecord):
        return PREDICTION + item.encode()
    return LOAD + json.dumps(item, sort_keys=True).encode()


def _decode(payload: bytes):
    kind, body = payload[:1], payload[1:]
    if kind == PREDICTION:
        return ProvenanceRecord.decode(body)
    if kind == LOAD:
        return json.loads(body)
    raise ValueError(f"unknown spool frame kind {kind!r}")


class HttpSink:
    def __init__(self, base_url: str, token: str, *, max_batch: int, timeout_s: float):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.max_batch = max_batch
        self.timeout_s = timeout_s

    def __call__(self, items: list) -> None:
        run: list[ProvenanceRecord] = []
        for item in items:
            if isinstance(item, ProvenanceRecord):
                run.append(item)
                if len(run) == self.max_batch:
                    self._post_records(run)
                    run = []
                continue
            if run:
                self._post_records(run)
                run = []
            self.post("/api/v1/ingest/engine-loads/", item)
        if run:
            self._post_records(run)

    def _post_records(self, records: list[ProvenanceRecord]) -> None:
        self.post("/api/v1/ingest/predictions/", {"records": [r.to_json() for r in records]})

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            reason = _error_text(exc)
            if exc.code in (401, 408, 429) or exc.code >= 500:
                raise ApiUnavailable(f"HTTP {exc.code}: {reason}") from None
            raise Rejected(f"HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError, socket.timeout, ValueError) as exc:
            raise ApiUnavailable(f"{type(exc).__name__}: {exc}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read()).get("error", "") or exc.reason
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)


class ProvenanceClient(SpoolingRecorder):
    """Spool first, then POST: `record(record)` for predictions, `report_load(...)`
    for engine-load attempts. Create one per process (after any fork)."""

    def __init__(self, base_url: str, token: str, *, spool_dir: str | Path | None = None, batch: int = 1000,
                 interval_ms: int = 50, buffer_max: int = 100_000, backoff_max_s: float = 5.0,
                 timeout_s: float = 30.0, on_durable=None, name: str = "provenance-client"):
        spool_dir = spool_dir or Path(os.environ.get("TRACELEDGER_SPOOL_DIR", "var/spool")) / "client"
        self.http = HttpSink(base_url, token, max_batch=batch, timeout_s=timeout_s)
        super().__init__(spool_dir, sink=self.http, encode=_encode, decode=_decode, batch=batch,
                         interval_s=interval_ms / 1000, buffer_max=buffer_max, backoff_max_s=backoff_max_s,
                         on_durable=on_durable, name=name)

    def report_load(self, *, service: str, verdict: str, deployment_id: int | None = None,
                    expected_sha256: str = "", actual_sha256: str = "", detail: str = "", host: str | None = None,
                    attempt_id: str | None = None, wait_s: float | None = 10.0) -> str:
        """Queue an engine-load attempt (spooled like a record; by default waits until
        it is on disk). Returns its attempt id."""
        attempt_id = attempt_id or str(uuid.uuid4())
        self.record({"attempt_id": attempt_id, "service": service, "deployment_id": deployment_id,
                     "verdict": verdict, "expected_sha256": expected_sha256, "actual_sha256": actual_sha256,
                     "detail": detail, "host": host if host is not None else socket.gethostname()})
        if wait_s:
            self.flush(wait_s)
        return attempt_id
