"""Recorders, the front of the provenance path (see inference/provenance/__init__.py):
- `SyncRecorder`: writes each record before the call returns (simple, slow).
- `ListRecorder`: collects records for one bulk write (`flush`), for batch jobs.
- `BufferedRecorder`: for serving. `record()` appends to a bounded buffer; a spooler
  thread appends batches to a local spool (fsync) — from then on the record is
  acknowledged and survives a crash — and a shipper (two child processes on
  PostgreSQL, see shipper.py; a thread elsewhere) writes them to the database in
  bulk with the writer (writer.py), retrying with backoff while the database is away;
  a restarted process replays its spool. See spool.py.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import connection

from inference.provenance.shipper import ProcessSink
from inference.provenance.spooling_recorder import SpoolingRecorder, live_recorders
from inference.provenance.stamp import ProvenanceRecord
from inference.provenance.writer import DatabaseSink, write_records

__all__ = ["SyncRecorder", "ListRecorder", "BufferedRecorder", "metrics"]


class SyncRecorder:
    """Writes each record before the call returns."""

    def record(self, record: ProvenanceRecord) -> None:
        write_records([record])


class ListRecorder:
    """Collects records for one bulk write (`flush`), e.g. for batch scoring jobs."""

    def __init__(self):
        self.records: list[ProvenanceRecord] = []

    def record(self, record: ProvenanceRecord) -> None:
        self.records.append(record)

    def flush(self) -> int:
        written = write_records(self.records).stored
        self.records = []
        return written


class BufferedRecorder(SpoolingRecorder):
    """The serving recorder: buffer → local spool (fsync) → database in bulk.

    Settings: TRACELEDGER_PROVENANCE_BATCH (records per spool write and per
    database transaction), TRACELEDGER_PROVENANCE_INTERVAL_MS (longest a record
    waits in memory before it is spooled), TRACELEDGER_PROVENANCE_BUFFER_MAX (records
    in memory before `record()` blocks), TRACELEDGER_SPOOL_DIR, and
    TRACELEDGER_PROVENANCE_SHIPPER: "process" (the default) writes to the database
    from a child process, off this process's GIL (see inference/provenance/shipper.py), on
    PostgreSQL; "thread", and any other database (an in-memory SQLite test database
    is invisible to a child), write from a thread.  Create it in the process that
    serves (after any fork), and `close()` it on shutdown (also done at interpreter
    exit)."""

    def __init__(self, spool_dir: str | Path | None = None, *, batch: int | None = None,
                 interval_ms: int | None = None, buffer_max: int | None = None, backoff_max_s: float = 5.0,
                 on_durable=None, actor: str = "inference", name: str = "provenance", shipper: str | None = None):
        shipper = shipper or settings.TRACELEDGER_PROVENANCE_SHIPPER
        if shipper not in ("process", "thread"):
            raise ValueError(f"TRACELEDGER_PROVENANCE_SHIPPER must be 'process' or 'thread', not {shipper!r}")
        if shipper == "process" and connection.vendor == "postgresql":
            sink, decode = ProcessSink(actor, name), None
        else:
            sink, decode = DatabaseSink(actor), ProvenanceRecord.decode
        self.shipper = "process" if decode is None else "thread"
        super().__init__(
            spool_dir or Path(settings.TRACELEDGER_SPOOL_DIR) / "recorder",
            sink=sink, encode=ProvenanceRecord.encode, decode=decode,
            batch=batch or settings.TRACELEDGER_PROVENANCE_BATCH,
            interval_s=(interval_ms if interval_ms is not None else settings.TRACELEDGER_PROVENANCE_INTERVAL_MS) / 1000,
            buffer_max=buffer_max or settings.TRACELEDGER_PROVENANCE_BUFFER_MAX,
            backoff_max_s=backoff_max_s, on_durable=on_durable, name=name,
        )

    def metrics(self) -> dict:
        return super().metrics() | {"shipper": self.shipper}


_SUMMED = ("buffer_depth", "blocked_calls", "recorded", "acknowledged", "delivered", "spool_depth", "spool_bytes",
           "delivery_failures", "spool_errors", "torn_bytes", "rejected", "lost")


def metrics() -> dict:
    """The provenance pipeline's state in this process, for /metrics and dashboards:
    totals over every live recorder (buffered recorders and API clients) plus each
    one's own figures. ingest_lag_s is the age of the oldest acknowledged record not
    yet in the database (0 when none is waiting)."""
    each = [r.metrics() for r in live_recorders()]
    totals = {key: sum(m[key] for m in each) for key in _SUMMED}
    totals["ingest_lag_s"] = max((m["ingest_lag_s"] for m in each), default=0.0)
    return totals | {"recorders": each}
