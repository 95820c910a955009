"""The durable local spool and the spooling recorder built on it (no Django import).

A record is *acknowledged* once it is in a spool segment on local disk and fsynced;
from then on it survives the process being killed and the database or the ingestion
API being away.  Segments are deleted only after every record in them is committed
downstream, and a restarted process replays whatever is left.

Layout: `<spool dir>/slot-N/NNNNNNNNNNNN.seg`.  A process takes the first slot it can
lock (flock), so several server processes can share one spool dir and a restarted
one picks up the slot, and the records, of the process it replaces.

Segment format: the 8-byte magic `TLSPOOL1`, then frames
    u32 length ‖ u32 crc32(payload) ‖ payload
A crash while appending leaves at most a torn last frame: it fails its length or its
checksum, is skipped, and its bytes are moved to `damaged/` (never silently lost —
they were never acknowledged, but they are kept for inspection).  A payload the sink
rejects for good (a record the database or the API refuses, not an outage) is moved to
`rejected/` with the reason, so one bad record cannot block the spool forever.
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import json
import logging
import os
import random
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("traceledger.spool")

MAGIC = b"TLSPOOL1"
FRAME = struct.Struct("<II")
MAX_FRAME = 16 * 1024 * 1024
MAX_SLOTS = 256


class SpoolBusy(RuntimeError):
    pass


class Rejected(Exception):
    """Raised by a sink for items it refuses for good (bad data, not an outage)."""


class Segment:
    __slots__ = ("seq", "path", "end", "frames", "done_offset", "done_frames", "sealed", "spooled_at")

    def __init__(self, seq: int, path: Path, end: int, frames: int, sealed: bool, spooled_at: float):
        self.seq = seq
        self.path = path
        self.end = end  # bytes durable on disk (fsynced)
        self.frames = frames  # frames durable on disk
        self.done_offset = len(MAGIC)  # bytes committed downstream
        self.done_frames = 0
        self.sealed = sealed
        self.spooled_at = spooled_at  # time.time() of the oldest frame not yet committed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_frames(data: bytes) -> tuple[int, int]:
    """(frames, bytes) of the well-formed prefix of a segment's bytes."""
    offset, frames = len(MAGIC), 0
    while offset + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, offset)
        start = offset + FRAME.size
        if length > MAX_FRAME or start + length > len(data) or zlib.crc32(data[start:start + length]) != crc:
            break
        offset, frames = start + length, frames + 1
    return frames, offset


class Spool:
    """Append-only segments of checksummed frames in one locked slot directory."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = 16 * 1024 * 1024, fsync: bool = True):
        self.base = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir, self._lock_fd = self._take_slot()
        self.segments: list[Segment] = []
        self._fd: int | None = None
        self.torn_bytes = 0
        self.lost_frames = 0
        self.damaged_files = 0
        self.rejected = 0
        for path in sorted(self.dir.glob("*.seg")):
            data = path.read_bytes()
            if len(data) < len(MAGIC) or not data.startswith(MAGIC):
                self._quarantine_bytes(path.name, 0, data, "no spool header")
                path.unlink()
                continue
            frames, _ = _count_frames(data)
            self.segments.append(Segment(int(path.stem), path, len(data), frames, True, path.stat().st_mtime))
        self._next_seq = (self.segments[-1].seq + 1) if self.segments else 1

    def _take_slot(self) -> tuple[Path, int]:
        """Lock a slot, preferring one that holds segments left by a process that is
        gone (so a restarted server replays them), then the lowest free one."""
        existing = sorted((p for p in self.base.glob("slot-*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:]))
        with_data = [p for p in existing if any(p.glob("*.seg"))]
        candidates = with_data + [p for p in existing if p not in with_data]
        candidates += [self.base / f"slot-{n}" for n in range(MAX_SLOTS)]
        for slot in candidates:
            slot.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    continue
                raise
            return slot, fd
        raise SpoolBusy(f"all {MAX_SLOTS} spool slots under {self.base} are in use")

    # -- writing -------------------------------------------------------------------
    def append(self, payloads: list[bytes]) -> None:
        """Append frames and fsync them; when this returns they are acknowledged.
        On an OSError the frames may or may not be on disk: the caller retries them
        (into a fresh segment), and downstream ingestion is idempotent."""
        if not payloads:
            return
        data = b"".join([FRAME.pack(len(p), zlib.crc32(p)) + p for p in payloads])
        with self._lock:
            current = self.segments[-1] if self.segments and not self.segments[-1].sealed else None
            if current is None or current.end >= self.segment_bytes:
                current = self._rotate()
            fd = self._fd
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
            if os.fstat(fd).st_nlink == 0:  # the segment was deleted under us: these bytes reach nobody
                raise OSError(errno.ENOENT, "spool segment removed while in use", str(current.path))
        except OSError:
            try:
                size = os.fstat(fd).st_size
            except OSError:
                size = None
            with self._lock:
                self._seal_current(size=size)
            raise
        with self._lock:
            if current.frames == current.done_frames:
                current.spooled_at = time.time()
            current.end += len(data)
            current.frames += len(payloads)

    def _rotate(self) -> Segment:
        self._seal_current()
        seq = self._next_seq
        self._next_seq += 1
        path = self.dir / f"{seq:012d}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            os.write(fd, MAGIC)
            if self.fsync:
                os.fsync(fd)
                _fsync_dir(self.dir)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd = fd
        segment = Segment(seq, path, len(MAGIC), 0, False, time.time())
        self.segments.append(segment)
        return segment

    def _seal_current(self, size: int | None = None) -> None:
        self._fd_close()
        if self.segments and not self.segments[-1].sealed:
            current = self.segments[-1]
            current.sealed = True
            if size is not None and size > current.end:
                current.end = size  # bytes of a failed append: read them back, idempotently
            self._drop_if_done(current)

    # -- reading -------------------------------------------------------------------
    def next_pending(self) -> Segment | None:
        with self._lock:
            for segment in self.segments:
                if segment.done_offset < segment.end:
                    return segment
            return None

    def read(self, segment: Segment, max_frames: int, max_bytes: int = 32 * 1024 * 1024) -> tuple[list[bytes], int]:
        """Up to max_frames payloads after the committed offset; returns them and the
        offset to commit once they are delivered.  A bad frame (torn tail, checksum
        mismatch) ends the segment: its bytes are moved to damaged/."""
        with self._lock:
            start, end = segment.done_offset, segment.end
        with open(segment.path, "rb") as f:
            f.seek(start)
            data = f.read(min(end - start, max_bytes))
        size = len(data)
        partial = start + size < end  # this read stopped short of the durable end
        payloads: list[bytes] = []
        offset = 0
        while len(payloads) < max_frames and offset < size:
            if offset + FRAME.size > size:
                if partial:
                    break
                return self._torn(segment, payloads, start + offset, "truncated frame header")
            length, crc = FRAME.unpack_from(data, offset)
            first = offset + FRAME.size
            if length > MAX_FRAME:
                return self._torn(segment, payloads, start + offset, "frame length out of range")
            if first + length > size:
                if partial and start + first + length <= end:
                    break
                return self._torn(segment, payloads, start + offset, "truncated frame")
            payload = data[first:first + length]
            if zlib.crc32(payload) != crc:
                return self._torn(segment, payloads, start + offset, "checksum mismatch")
            payloads.append(payload)
            offset = first + length
        return payloads, start + offset

    def _torn(self, segment: Segment, payloads: list[bytes], at: int, why: str) -> tuple[list[bytes], int]:
        with self._lock:
            end = segment.end
        log.warning("spool %s: %s at byte %d; %d byte(s) moved to damaged/", segment.path, why, at, end - at)
        with open(segment.path, "rb") as f:
            f.seek(at)
            rest = f.read(end - at)
        self._quarantine_bytes(segment.path.name, at, rest, why)
        self.torn_bytes += end - at
        return payloads, end

    def _quarantine_bytes(self, name: str, at: int, data: bytes, why: str) -> None:
        target = self.dir / "damaged"
        target.mkdir(exist_ok=True, mode=0o700)
        path = target / f"{name}.{at}.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        (target / f"{name}.{at}.why").write_text(why + "\n")
        self.damaged_files += 1

    def reject(self, payload: bytes, reason: str) -> None:
        """Keep a payload the sink refused for good, with the reason, out of the way."""
        target = self.dir / "rejected"
        target.mkdir(exist_ok=True, mode=0o700)
        line = json.dumps({"at": time.time(), "reason": reason, "payload": payload.decode("latin-1")}) + "\n"
        fd = os.open(target / "rejected.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rejected += 1
        log.error("spool %s: rejected a record for good: %s", self.dir, reason)

    def commit(self, segment: Segment, offset: int, frames: int) -> None:
        """Everything up to `offset` is committed downstream."""
        with self._lock:
            segment.done_offset = offset
            segment.done_frames += frames
            if segment.done_offset >= segment.end or segment.done_frames >= segment.frames:
                segment.done_frames = segment.frames
                segment.spooled_at = time.time()
            self._drop_if_done(segment)

    def lost(self, segment: Segment) -> None:
        with self._lock:
            self.lost_frames += max(segment.frames - segment.done_frames, 0)
            if segment in self.segments:
                self.segments.remove(segment)
            if not segment.sealed:
                self._fd_close()
                segment.sealed = True

    def _fd_close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _drop_if_done(self, segment: Segment) -> None:
        if segment.sealed and segment.done_offset >= segment.end:
            segment.path.unlink(missing_ok=True)
            self.segments.remove(segment)

    # -- state -------------------------------------------------------------------
    def depth(self) -> tuple[int, int, float | None]:
        """(frames, bytes, time.time() of the oldest) acknowledged but not committed."""
        with self._lock:
            frames = sum(max(s.frames - s.done_frames, 0) for s in self.segments)
            size = sum(max(s.end - s.done_offset, 0) for s in self.segments)
            oldest = min((s.spooled_at for s in self.segments if s.done_offset < s.end), default=None)
        return frames, size, oldest

    def close(self) -> None:
        with self._lock:
            self._seal_current()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class SpoolingRecorder:
    """Buffer → spool → sink, on two background threads.

    `record(item)` appends to a bounded in-memory buffer and returns (a few hundred
    nanoseconds); when the buffer is full it waits, and `blocked_calls` counts it.
    The spooler thread moves the buffer to the spool every `interval_s` or `batch`
    items (one write and one fsync per batch) and then calls `on_durable(items)`.
    The shipper thread delivers spooled items to `sink(items)` in batches, retrying
    with exponential backoff while the sink fails, and deletes segments once
    delivered.  A sink raises `Rejected` for items it refuses for good: the batch is
    split to find them, and they go to the spool's `rejected/` file.
    """

    def __init__(self, spool_dir: str | Path, *, sink: Callable[[list], None], encode: Callable[[object], bytes],
                 decode: Callable[[bytes], object], batch: int = 5000, interval_s: float = 0.05,
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
        backoff = 0.0
        while True:
            segment = self.spool.next_pending()
            if segment is None:
                if self._closing and not self._spooler.is_alive():
                    break
                self._ship_wake.wait(self.interval_s)
                self._ship_wake.clear()
                continue
            if self._ship_deadline is not None and time.monotonic() > self._ship_deadline:
                break
            try:
                payloads, offset = self.spool.read(segment, self.batch)
            except FileNotFoundError:
                # removed behind our back (not by us): say so loudly, go on with the rest
                self.spool.lost(segment)
                self.last_error = f"spool segment {segment.path} disappeared"
                log.error("%s: %s; its undelivered records are lost", self.name, self.last_error)
                continue
            try:
                self._deliver(payloads)
            except Exception as exc:  # the sink is away: keep everything, retry later
                self.failures += 1
                self.consecutive_failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                backoff = min(max(backoff * 2, 0.1), self.backoff_max_s)
                log.warning("%s: delivery failed (%s); retrying in %.1fs", self.name, self.last_error, backoff)
                self._ship_wake.wait(backoff * random.uniform(0.8, 1.2))
                self._ship_wake.clear()
                continue
            backoff = 0.0
            self.consecutive_failures = 0
            try:
                self.spool.commit(segment, offset, len(payloads))
            except OSError as exc:  # the segment could not be removed: it is replayed later, idempotently
                log.error("%s: %s", self.name, exc)
            self.delivered += len(payloads)
            self._notify_progress()

    def _deliver(self, payloads: list[bytes]) -> None:
        if not payloads:
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
