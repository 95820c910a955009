"""The spooling recorder: buffer → spool → sink on two background threads (no Django
import).  `inference.provenance.recorder.BufferedRecorder` (sink: the database) and
`inference.provenance.client.ProvenanceClient` (sink: the ingestion API) are the two kinds.

Guarantees: `record()` never drops — when the in-memory buffer is full the caller
waits (counted in `blocked_calls`); an item is acknowledged once it is in the spool and
fsynced (`on_durable`); delivery is retried with exponential backoff while the sink is
away, and a restarted process replays what its spool still holds; a sink refusing an
item for good (`Rejected`) gets it isolated and set aside in the spool's rejected/ file.
"""
from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

from inference.provenance.spool import Rejected, Spool

log = logging.getLogger("traceledger.spool")

__all__ = ["SpoolingRecorder", "Rejected", "live_recorders"]


class SpoolingRecorder:
    """Buffer → spool → sink, on two background threads.

    `record(item)` appends to a bounded in-memory buffer and returns (a few hundred
    nanoseconds); with `decode=None` the sink is handed the spooled bytes themselves; when the buffer is full it waits, and `blocked_calls` counts it.
    The spooler thread moves the buffer to the spool every `interval_s` or `batch`
    items (one write and one fsync per batch) and then calls `on_durable(items)`.
    The shipper thread delivers spooled items to `sink(items)` in batches, retrying
    with exponential backoff while the sink fails, and deletes segments once
    delivered.  A sink raises `Rejected` for items it refuses for good: the batch is
    split to find them, and they go to the spool's `rejected/` file.
    """

    def __init__(self, spool_dir: str | Path, *, sink: Callable[[list], None], encode: Callable[[object], bytes],
                 decode: Callable[[bytes], object] | None, batch: int = 5000, interval_s: float = 0.05,
                 buffer_max: int = 100_000, backoff_max_s: float = 5.0,
                 on_durable: Callable[[list], None] | None = None, name: str = "recorder"):
        self.spool = Spool(spool_dir)
        self.sink = sink
        self.encode = encode
        self.decode = decode
        self.batch = max(1, batch)
        self.interval_s = interval_s
        self.buffer_max = max(1, buffer_max)
        self.backoff_max_s = backoff_max_s
        self.on_durable = on_durable
        self.name = name
        self._buffer: list = []
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._ship_wake = threading.Event()
        self._progress = threading.Condition()
        self._closing = False
        self._closed = False
        self._ship_deadline: float | None = None
        self._spooling: list = []
        # counters (read by metrics(); plain ints, updated by one thread each)
        self.recorded = 0
        self.blocked_calls = 0
        self.spooled = 0
        self.delivered = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error = ""
        self.spool_errors = 0
        self._spooler = threading.Thread(target=self._spool_loop, name=f"{name}-spooler", daemon=True)
        self._shipper = threading.Thread(target=self._ship_loop, name=f"{name}-shipper", daemon=True)
        self._spooler.start()
        self._shipper.start()
        _live.add(self)

    # -- the hot path --------------------------------------------------------------
    def record(self, item) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"{self.name} is closed")
            if len(self._buffer) >= self.buffer_max:
                self.blocked_calls += 1
                self._wake.set()
                while len(self._buffer) >= self.buffer_max and not self._closing:
                    self._room.wait()
            self._buffer.append(item)
            self.recorded += 1
            if len(self._buffer) == self.batch:
                self._wake.set()

    # -- spooler -------------------------------------------------------------------
    def _spool_loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.interval_s)
            self._wake.clear()
            with self._lock:
                if not self._spooling:
                    self._spooling, self._buffer = self._buffer, []
                    self._room.notify_all()
                closing = self._closing
            batch = self._spooling
            if batch:
                try:
                    self.spool.append(self._encode_all(batch))
                except OSError as exc:
                    # Disk full or failing: keep the batch, retry; callers block once
                    # the buffer fills. Nothing is acknowledged that is not on disk.
                    self.spool_errors += 1
                    self.last_error = f"spool: {exc}"
                    log.error("%s: cannot write the spool (%s); retrying", self.name, exc)
                    backoff = min(max(backoff * 2, 0.05), self.backoff_max_s)
                    if closing and self._ship_deadline is not None and time.monotonic() > self._ship_deadline:
                        log.error("%s: closing with %d record(s) not acknowledged (the spool cannot be written)",
                                  self.name, len(batch) + len(self._buffer))
                        break
                    continue
                backoff = 0.0
                self._spooling = []
                self.spooled += len(batch)
                self._ship_wake.set()
                if self.on_durable is not None:
                    try:
                        self.on_durable(batch)
                    except Exception:
                        log.exception("%s: on_durable hook failed", self.name)
                self._notify_progress()
            if closing and not batch:
                with self._lock:
                    if not self._buffer:
                        break

    def _encode_all(self, batch: list) -> list[bytes]:
        try:
            return [self.encode(item) for item in batch]
        except Exception:
            pass
        encoded = []
        for item in batch:  # find the item that cannot be encoded; keep it aside, loudly
            try:
                encoded.append(self.encode(item))
            except Exception as exc:
                self.spool.reject(repr(item).encode(), f"cannot encode: {type(exc).__name__}: {exc}")
        return encoded

    # -- shipper -------------------------------------------------------------------
    def _ship_loop(self) -> None:
        try:
            self._ship()
        finally:
            close = getattr(self.sink, "close", None)
            if close is not None:
                close()  # e.g. the shipper thread's database connection
            self._notify_progress()

    def _ship(self) -> None:
        """Deliver spooled batches in spool order and commit each once delivered.  A
        sink with `submit`/`wait` (and `depth` > 1) gets the next batches read ahead
        and submitted while the first is being stored; on any failure the read-ahead
        is dropped and read again from the committed offset (ingestion is
        idempotent, so a batch stored twice is stored once)."""
        backoff = 0.0
        pipelined = self.decode is None and hasattr(self.sink, "submit")
        depth = max(1, getattr(self.sink, "depth", 1)) if pipelined else 1
        inflight: deque = deque()  # (segment, payloads, end offset, ticket or None)
        cursor = None  # (segment, offset) where the next read-ahead starts
        while True:
            while len(inflight) < depth and not self._past_deadline():
                batch = self._read_next(cursor)
                if batch is None:
                    break
                if batch is _SKIP:
                    cursor = None
                    continue
                segment, payloads, end = batch
                cursor = (segment, end)
                ticket = self.sink.submit(payloads) if pipelined and payloads else None
                inflight.append((segment, payloads, end, ticket))
            if not inflight:
                if self._past_deadline():
                    break
                if self._closing and not self._spooler.is_alive() and self.spool.next_pending() is None:
                    break
                self._ship_wake.wait(self.interval_s)
                self._ship_wake.clear()
                continue
            segment, payloads, end, ticket = inflight.popleft()
            try:
                if ticket is None:
                    self._deliver(payloads)
                elif not self._settle(ticket, payloads, inflight):
                    cursor = None  # the read-ahead was dropped: read it again after this batch
            except Exception as exc:  # the sink is away: keep everything, retry later
                self._abandon(inflight)
                cursor = None
                self.failures += 1
                self.consecutive_failures += 1
                text = str(exc).strip()
                self.last_error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
                backoff = min(max(backoff * 2, 0.1), self.backoff_max_s)
                log.warning("%s: delivery failed (%s); retrying in %.1fs", self.name, self.last_error, backoff)
                self._ship_wake.wait(backoff * random.uniform(0.8, 1.2))
                self._ship_wake.clear()
                continue
            backoff = 0.0
            self.consecutive_failures = 0
            try:
                self.spool.commit(segment, end, len(payloads))
            except OSError as exc:  # the segment could not be removed: it is replayed later, idempotently
                log.error("%s: %s", self.name, exc)
            self.delivered += len(payloads)
            self._notify_progress()

    def _past_deadline(self) -> bool:
        return self._ship_deadline is not None and time.monotonic() > self._ship_deadline

    def _read_next(self, cursor):
        """(segment, payloads, end) of the next batch after `cursor` (or after the
        committed offset), None when nothing is pending, _SKIP when a segment
        vanished (counted and logged)."""
        if cursor is None:
            segment = self.spool.next_pending()
            if segment is None:
                return None
            start = None
        else:
            segment, start = cursor
            end, sealed = self.spool.position(segment)
            if start >= end:
                if not sealed:
                    return None
                segment, start = self.spool.segment_after(segment), None
                if segment is None:
                    return None
        try:
            payloads, end = self.spool.read(segment, self.batch, start=start)
        except FileNotFoundError:
            # removed behind our back (not by us): say so loudly, go on with the rest
            lost = self.spool.lost(segment)
            if lost:
                self.last_error = f"spool segment {segment.path} disappeared with {lost} undelivered record(s)"
                log.error("%s: %s", self.name, self.last_error)
            return _SKIP
        return segment, payloads, end

    def _settle(self, ticket, payloads: list[bytes], inflight: deque) -> bool:
        """Wait for a submitted batch; False if the read-ahead had to be dropped."""
        try:
            self.sink.wait(ticket)
            return True
        except Rejected:
            # isolate the refused payloads one call at a time, the read-ahead dropped
            # first (its batches are read and sent again once this one is settled)
            self._abandon(inflight)
            self._deliver_items(payloads, payloads)
            return False

    def _abandon(self, inflight: deque) -> None:
        while inflight:
            ticket = inflight.popleft()[3]
            if ticket is not None:
                try:
                    self.sink.wait(ticket)
                except Exception:
                    pass

    def _deliver(self, payloads: list[bytes]) -> None:
        if not payloads:
            return
        if self.decode is None:  # the sink takes the spooled bytes as they are
            self._deliver_items(payloads, payloads)
            return
        items = []
        for payload in payloads:
            try:
                items.append(self.decode(payload))
            except Exception as exc:
                self.spool.reject(payload, f"cannot decode: {exc}")
        if items:
            self._deliver_items(items, payloads if len(items) == len(payloads) else None)

    def _deliver_items(self, items: list, payloads: list[bytes] | None) -> None:
        try:
            self.sink(items)
        except Rejected as exc:
            if len(items) == 1:
                self.spool.reject(payloads[0] if payloads else self.encode(items[0]), str(exc))
                return
            half = len(items) // 2
            self._deliver_items(items[:half], payloads[:half] if payloads else None)
            self._deliver_items(items[half:], payloads[half:] if payloads else None)

    # -- control -------------------------------------------------------------------
    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _wait(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while not done():
                if not self._shipper.is_alive() and not self._spooler.is_alive():
                    return done()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wake.set()
                self._ship_wake.set()
                self._progress.wait(min(left, 0.1) if left is not None else 0.1)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is acknowledged (spooled + fsynced)."""
        target = self.recorded
        return self._wait(lambda: self.spooled >= target, timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is delivered downstream."""
        if not self.flush(timeout):
            return False
        return self._wait(lambda: self.spool.depth()[0] == 0, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Spool what is buffered, deliver for up to `timeout` seconds, stop. What is
        not delivered by then stays in the spool for the next start. Returns whether
        everything was delivered."""
        if self._closed:
            return True
        with self._lock:
            self._closing = True
            self._room.notify_all()
        self._ship_deadline = time.monotonic() + timeout
        self._wake.set()
        self._spooler.join()
        self._ship_wake.set()
        self._shipper.join()
        delivered = self.spool.depth()[0] == 0
        self.spool.close()
        self._closed = True
        _live.discard(self)
        return delivered

    def metrics(self) -> dict:
        frames, size, oldest = self.spool.depth()
        return {
            "name": self.name,
            "spool_dir": str(self.spool.dir),
            "buffer_depth": len(self._buffer) + len(self._spooling),
            "buffer_max": self.buffer_max,
            "blocked_calls": self.blocked_calls,
            "recorded": self.recorded,
            "acknowledged": self.spooled,
            "delivered": self.delivered,
            "spool_depth": frames,
            "spool_bytes": size,
            "ingest_lag_s": round(time.time() - oldest, 3) if oldest is not None else 0.0,
            "delivery_failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "spool_errors": self.spool_errors,
            "torn_bytes": self.spool.torn_bytes,
            "rejected": self.spool.rejected,
            "lost": self.spool.lost_frames,
            "last_error": self.last_error,
        }


_SKIP = object()
_live: "weakref.WeakSet[SpoolingRecorder]" = weakref.WeakSet()


def live_recorders() -> list[SpoolingRecorder]:
    return list(_live)


def _close_all_at_exit() -> None:
    for recorder in list(_live):
        try:
            recorder.close(timeout=2.0)
        except Exception:
            log.exception("closing %s at exit", recorder.name)


atexit.register(_close_all_at_exit)
