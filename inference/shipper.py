"""Writing spooled provenance to the database from a child process.

Making a record durable in the database (decode, validate, render its ledger body,
hash it, build Merkle nodes, COPY) is some 15 µs of Python per record.  On a thread
of the serving process that work holds the GIL against the very inference calls it
records: measured on the credit MLP, the audit overhead per call doubled (10 → 22
µs) and plain ONNX Runtime calls slowed by 70 %.  In a child process it runs on an
interpreter of its own; the serving process keeps `record()`, the spool append +
fsync, and handing spooled frames over a pipe.

`ProcessSink` is a SpoolingRecorder sink over raw spool payloads.  It forks its child
on first use — a fork, so that the child has this process's settings, including a
test or benchmark database — sends each batch and maps the reply: stored; `Rejected`
(records the database refuses for good: the recorder isolates them and sets them
aside); anything else is an outage, raised so that the recorder retries with
backoff.  A child that died is started again on the next attempt; a child whose
parent died exits at its next read of the pipe, after finishing the batch it holds
(ingestion is idempotent, so a restarted parent replaying that batch is harmless).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal

from .spool import Rejected, inherited_fds

log = logging.getLogger("traceledger.recorder")

JOIN_TIMEOUT_S = 10.0


class ShipperFailed(RuntimeError):
    """The child could not store a batch (the database is away, or the child died)."""


class ProcessSink:
    def __init__(self, actor: str = "inference", name: str = "provenance"):
        self.actor = actor
        self.name = name
        self._proc = None
        self._conn = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        proc = context.Process(target=_child, args=(theirs, ours, self.actor), name=f"{self.name}-shipper",
                               daemon=True)
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours

    def __call__(self, payloads: list[bytes]) -> None:
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        try:
            self._conn.send(payloads)
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.close()
            raise ShipperFailed(f"the shipper process stopped ({type(exc).__name__})") from None
        status, detail = reply
        if status == "ok":
            return
        if status == "rejected":
            raise Rejected(detail)
        raise ShipperFailed(detail)

    def close(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        if proc is not None:
            proc.join(JOIN_TIMEOUT_S)
            if proc.is_alive():
                log.warning("%s shipper process %s did not stop; killing it", self.name, proc.pid)
                proc.kill()
                proc.join(JOIN_TIMEOUT_S)


def _child(conn, parent_end, actor: str) -> None:
    parent_end.close()  # else the pipe would never report the parent's death
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in inherited_fds():
        try:
            os.close(fd)
        except OSError:
            pass
    from django.db import connections

    # The parent's connections were copied into this process: leave them untouched (a
    # close would end the parent's sessions; psycopg does not close a connection
    # object that another process opened) and let Django open new ones here.
    inherited = []
    for connection in connections.all(initialized_only=True):
        inherited.append(connection.connection)
        connection.connection = None
        connection.in_atomic_block = False
        connection.savepoint_ids = []
        connection.needs_rollback = False

    from .provenance import ProvenanceRecord
    from .recorder import DatabaseSink

    sink = DatabaseSink(actor)
    while True:
        try:
            payloads = conn.recv()
        except (EOFError, OSError):
            break
        if payloads is None:
            break
        try:
            try:
                records = [ProvenanceRecord.decode(p) for p in payloads]
            except ValueError as exc:
                raise Rejected(f"cannot decode: {exc}") from None
            sink(records)
            reply = ("ok", "")
        except Rejected as exc:
            reply = ("rejected", str(exc))
        except Exception as exc:  # an outage: the parent retries with backoff
            text = str(exc).strip()
            reply = ("error", f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
        try:
            conn.send(reply)
        except OSError:
            break
    sink.close()
