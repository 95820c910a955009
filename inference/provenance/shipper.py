"""Writing spooled provenance to the database from a child process.

Making a record durable in the database (check and format its spool line, render
its ledger body, hash it, build Merkle nodes, COPY) is some 12 µs of Python per
record (16 before the spool lines were formatted without decoding them into record
objects first: recorder.prepare_spooled).  On a thread
of the serving process that work holds the GIL against the very inference calls it
records: measured on the credit MLP, the audit overhead per call doubled (10 → 22
µs) and plain ONNX Runtime calls slowed by 70 %.  In a child process it runs on an
interpreter of its own; the serving process keeps `record()`, the spool append +
fsync, and handing spooled frames over a pipe.

`ProcessSink` is a SpoolingRecorder sink over raw spool payloads.  It forks its
children on first use — a fork, so that the child has this process's settings, including a
test or benchmark database — sends each batch and maps the reply: stored; `Rejected`
(records the database refuses for good: the recorder isolates them and sets them
aside); anything else is an outage, raised so that the recorder retries with
backoff.  A child that died is started again on the next attempt; a child whose
parent died exits at its next read of the pipe, after finishing the batch it holds
(ingestion is idempotent, so a restarted parent replaying that batch is harmless).
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal

from inference.provenance.spool import Rejected, inherited_fds

log = logging.getLogger("traceledger.recorder")

JOIN_TIMEOUT_S = 10.0


class ShipperFailed(RuntimeError):
    """The child could not store a batch (the database is away, or the child died)."""


class _Child:
    __slots__ = ("proc", "conn")

    def __init__(self, proc, conn):
        self.proc, self.conn = proc, conn


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


class ProcessSink:
    """`submit(payloads)` hands a batch to the next of `processes` children and returns
    a ticket; `wait(ticket)` returns once it is stored or raises.  With two children
    one stores a batch while the other decodes and checks the next, then waits for
    the ledger head; SpoolingRecorder keeps `depth` batches in flight."""

    def __init__(self, actor: str = "inference", name: str = "provenance", processes: int = 2):
        self.actor = actor
        self.name = name
        self.depth = max(1, processes)
        self._children: list[_Child | None] = [None] * self.depth
        self._next = 0

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c is not None]

    def _child(self, slot: int) -> _Child:
        child = self._children[slot]
        if child is not None and child.proc.is_alive():
            return child
        self._stop(slot)
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        # the child closes its siblings' pipe ends, so each sees its parent go
        siblings = [c.conn.fileno() for c in self._children if c is not None]
        proc = context.Process(target=_serve, args=(theirs, ours, self.actor, siblings),
                               name=f"{self.name}-shipper-{slot}", daemon=True)
        proc.start()
        theirs.close()
        child = self._children[slot] = _Child(proc, ours)
        return child

    def submit(self, payloads: list[bytes]):
        slot = self._next
        self._next = (slot + 1) % self.depth
        child = self._child(slot)
        try:
            child.conn.send(payloads)
        except OSError as exc:
            self._stop(slot)
            return _Failed(ShipperFailed(f"the shipper process stopped ({type(exc).__name__})"))
        return slot, child

    def wait(self, ticket) -> None:
        if isinstance(ticket, _Failed):
            raise ticket.error
        slot, child = ticket
        if self._children[slot] is not child:
            raise ShipperFailed("the shipper process was restarted before it answered")
        try:
            status, detail = child.conn.recv()
        except (EOFError, OSError) as exc:
            self._stop(slot)
            raise ShipperFailed(f"the shipper process stopped ({type(exc).__name__})") from None
        if status == "ok":
            return
        if status == "rejected":
            raise Rejected(detail)
        raise ShipperFailed(detail)

    def __call__(self, payloads: list[bytes]) -> None:
        self.wait(self.submit(payloads))

    def close(self) -> None:
        for slot in range(self.depth):
            self._stop(slot)

    def _stop(self, slot: int) -> None:
        child = self._children[slot]
        self._children[slot] = None
        if child is None:
            return
        try:
            child.conn.send(None)
        except OSError:
            pass
        child.conn.close()
        child.proc.join(JOIN_TIMEOUT_S)
        if child.proc.is_alive():
            log.warning("%s shipper process %s did not stop; killing it", self.name, child.proc.pid)
            child.proc.kill()
            child.proc.join(JOIN_TIMEOUT_S)


def _serve(conn, parent_end, actor: str, siblings: list[int]) -> None:
    # Keep the cyclic collector off everything inherited from the parent (a serving
    # process: models, sessions, its whole heap), or every full collection here walks
    # it and, touching each object, copies its pages: under `manage.py bench
    # provenance` that cost the ingest rate 5-10%.  Inherited cyclic garbage, if any,
    # stays as it was at the fork, a fixed amount.
    gc.freeze()
    parent_end.close()  # else the pipe would never report the parent's death
    for fd in siblings:
        try:
            os.close(fd)
        except OSError:
            pass
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

    from inference.provenance.writer import DatabaseSink

    sink = DatabaseSink(actor)
    while True:
        try:
            payloads = conn.recv()
        except (EOFError, OSError):
            break
        if payloads is None:
            break
        try:
            sink.write_spooled(payloads)
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
