"""The durable local spool (no Django import); the recorder threads that use it are in
inference/provenance/spooling_recorder.py.

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

import errno
import fcntl
import json
import logging
import os
import struct
import threading
import time
import weakref
import zlib
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
        _open_spools.add(self)

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

    def segment_after(self, segment: Segment) -> Segment | None:
        """The segment written after `segment`, if any."""
        with self._lock:
            for later in self.segments:
                if later.seq > segment.seq:
                    return later
            return None

    def position(self, segment: Segment) -> tuple[int, bool]:
        """(durable end, sealed) of a segment: a sealed segment's end is final."""
        with self._lock:
            return segment.end, segment.sealed

    def read(self, segment: Segment, max_frames: int, max_bytes: int = 32 * 1024 * 1024, *,
             start: int | None = None) -> tuple[list[bytes], int]:
        """Up to max_frames payloads from `start` (by default the committed offset);
        returns them and the offset to commit once they are delivered.  A bad frame
        (torn tail, checksum mismatch) ends the segment: its bytes are moved to
        damaged/."""
        with self._lock:
            start, end = (segment.done_offset if start is None else start), segment.end
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

    def lost(self, segment: Segment) -> int:
        """Forget a segment whose file is gone; returns how many of its acknowledged
        records had not been delivered (they are counted in lost_frames)."""
        with self._lock:
            lost = max(segment.frames - segment.done_frames, 0)
            self.lost_frames += lost
            if segment in self.segments:
                self.segments.remove(segment)
            if not segment.sealed:
                self._fd_close()
                segment.sealed = True
        return lost

    def _fd_close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _drop_if_done(self, segment: Segment) -> None:
        if segment.sealed and segment.done_offset >= segment.end and segment in self.segments:
            segment.path.unlink(missing_ok=True)
            self.segments.remove(segment)

    def fds(self) -> list[int]:
        """This spool's open descriptors (slot lock, current segment)."""
        return [fd for fd in (self._lock_fd, self._fd) if fd is not None]

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


class RejectedFile:
    """A slot's rejected/ file, opened for re-delivery by a process that holds the
    slot's lock (so no recorder appends to it meanwhile): `entries()` are its lines
    ({"at", "reason", "payload"}); `keep(entries)` atomically replaces the file with
    the ones still refused (none: the file goes)."""

    def __init__(self, slot: Path):
        self.slot = Path(slot)
        self.path = self.slot / "rejected" / "rejected.jsonl"
        self._fd: int | None = None

    def __enter__(self) -> "RejectedFile":
        fd = os.open(self.slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SpoolBusy(f"spool slot {self.slot} is in use by a running process") from None
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def keep(self, entries: list[dict]) -> None:
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in entries))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


_open_spools: "weakref.WeakSet[Spool]" = weakref.WeakSet()


def inherited_fds() -> list[int]:
    """Descriptors of every open spool in this process: a forked child closes them, so
    that it never holds a slot's lock after its parent is gone (a restarted parent
    must find its slot free to replay it)."""
    return [fd for spool in list(_open_spools) for fd in spool.fds()]
