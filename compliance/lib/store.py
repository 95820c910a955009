"""Content-addressed artifact store: <root>/sha256/ab/cdef….

Writes are atomic (temp file in the store, fsync, rename) and the SHA-256 is computed
while the bytes are written, so a file is never read twice to learn its digest and a
reader never sees a partial file.  `pinned` reads a stored file so that the bytes a
caller uses are the bytes it hashed.  Paths are derived only from validated hex digests,
so nothing outside the store can be named.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import re
import shutil
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from django.conf import settings

log = logging.getLogger("traceledger.store")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class StoreError(ValueError):
    pass


class TooLarge(StoreError):
    pass


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    path: Path
    created: bool  # False when identical content was already stored


def check_digest(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise StoreError(f"not a sha256 digest: {str(sha256)[:80]!r}")
    return sha256


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file via mmap: one pass, no Python-level copies; hashlib hands the
    mapped pages to OpenSSL directly."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            if hasattr(mapped, "madvise"):
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            return hashlib.sha256(mapped).hexdigest()


class Pinned:
    """A file's bytes held so that the bytes hashed are the bytes used (see `pinned`).
    `data` and `sha256` are valid inside the `with`; call `unchanged()` after the last
    use of `data`."""

    def __init__(self, data: memoryview | bytes, sha256: str, leased_fd: int | None):
        self.data = data
        self.sha256 = sha256
        self.mapped = leased_fd is not None
        self._fd = leased_fd

    @property
    def path(self) -> str | None:
        """A path to the very file that was hashed (`/proc/self/fd/N`: the descriptor
        under the lease, whatever has been renamed over the store path since), for
        libraries that read an engine only from a path or bytes; None without a lease.
        Reading it does not break the lease (only an open for writing does)."""
        if self._fd is None or not os.path.isdir("/proc/self/fd"):
            return None
        return f"/proc/self/fd/{self._fd}"

    def unchanged(self) -> bool:
        """False when someone opened the mapped file for writing (or truncated it) while
        it was held: the bytes used may then differ from the bytes hashed."""
        if self._fd is None:
            return True  # a private copy: nothing outside the process can change it
        try:
            return fcntl.fcntl(self._fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK
        except OSError:
            return False


# The kernel tells a lease holder of a pending write with a signal, SIGIO unless told
# otherwise, and SIGIO's default action ends the process.  SIGURG's default is to
# ignore it; `Pinned.unchanged` asks the lease instead.
_LEASE_SIGNAL = signal.SIGURG


def _read_lease(fd: int) -> bool:
    """Take a read lease on `fd`; False where the kernel will not grant one (not Linux,
    a file system without leases, a file we neither own nor have CAP_LEASE for, or one
    that is open for writing somewhere right now)."""
    if not hasattr(fcntl, "F_SETLEASE"):
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _LEASE_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    return True


@contextmanager
def pinned(path: str | os.PathLike) -> Iterator[Pinned]:
    """Yield a file's bytes and their SHA-256, hashed once, with no way for the bytes
    used inside the `with` to differ from the bytes hashed unnoticed.

    Where the kernel grants a read lease, the file is mapped, hashed through the mapping
    and handed on without a copy: while we hold the lease, an open for writing or a
    truncate of the file waits until we let go (for at most
    /proc/sys/fs/lease-break-time) and the lease records that it came, which
    `Pinned.unchanged()` reports.  A rename over the path does not touch the file we
    hold.  A writer kept waiting past lease-break-time gets in: the verdict is then a
    refusal, or, had it truncated the file, the process ends on SIGBUS; either way no
    unverified byte is used.  Where no lease is granted, the bytes are read once into
    private memory and hashed there (a copy: slower, and just as safe).  Raises
    FileNotFoundError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        leased = _read_lease(fd)
        size = os.fstat(fd).st_size  # after the lease: a truncate now waits for us
        if leased and size:
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
                if hasattr(mapped, "madvise"):
                    mapped.madvise(mmap.MADV_SEQUENTIAL)
                view = memoryview(mapped)
                try:
                    yield Pinned(view, hashlib.sha256(view).hexdigest(), fd)
                finally:
                    view.release()
            return
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        yield Pinned(data, hashlib.sha256(data).hexdigest(), None)
    finally:
        os.close(fd)  # and with it the lease


class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        sha256 = check_digest(sha256)
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    @contextmanager
    def _tempfile(self) -> Iterator[tuple[BinaryIO, str]]:
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                yield f, tmp
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def spool(self, source: BinaryIO | bytes, max_bytes: int | None = None) -> "Spooled":
        """Stream `source` into a temp file inside the store, hashing as it goes. The
        caller validates the temp file, then commits it with `Spooled.commit()`."""
        return Spooled(self, source, max_bytes)

    def put_bytes(self, data: bytes) -> Stored:
        with self.spool(data) as spooled:
            return spooled.commit()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path_for(sha256), "rb")

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def pinned(self, sha256: str):
        """A stored file's bytes and their recomputed digest, held unchanged while used
        (see `pinned`)."""
        return pinned(self.path_for(sha256))

    def verify(self, sha256: str) -> str | None:
        """Re-hash a stored file; None when it matches, else the reason."""
        path = self.path_for(sha256)
        if not path.exists():
            return "file is missing from the store"
        actual = hash_file(path)
        if actual != sha256:
            return f"stored file hashes to {actual[:16]}…, expected {sha256[:16]}…"
        return None

    @contextmanager
    def removing_on_error(self, *stored: Stored):
        """Around the transaction that records newly stored files: if it fails, the
        files it created go too, so no unreferenced artifact is left behind."""
        try:
            yield
        except BaseException:
            for item in stored:
                if item.created:
                    self.remove(item.sha256)
            raise

    def remove(self, sha256: str) -> None:
        """Remove a file written by a transaction that then failed."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            pass

    def sweep_temp(self, older_than_s: float = 3600) -> int:
        """Remove temp files left by a killed writer; returns how many."""
        import time

        removed = 0
        tmpdir = self.root / "tmp"
        if not tmpdir.exists():
            return 0
        for path in tmpdir.iterdir():
            try:
                if time.time() - path.stat().st_mtime <= older_than_s:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)  # a killed build's scratch directory
                else:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
            removed += 1
        return removed


class Spooled:
    def __init__(self, store: ArtifactStore, source, max_bytes: int | None):
        self.store = store
        self.source = source
        self.max_bytes = max_bytes
        self.sha256 = ""
        self.size = 0
        self.path: str = ""

    def __enter__(self) -> "Spooled":
        self._cm = self.store._tempfile()
        f, self.path = self._cm.__enter__()
        digest = hashlib.sha256()
        try:
            chunks = [self.source] if isinstance(self.source, (bytes, bytearray, memoryview)) else iter(
                lambda: self.source.read(CHUNK), b""
            )
            for chunk in chunks:
                self.size += len(chunk)
                if self.max_bytes is not None and self.size > self.max_bytes:
                    raise TooLarge(f"file is larger than the {self.max_bytes} byte limit")
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise
        self.sha256 = digest.hexdigest()
        return self

    def commit(self) -> Stored:
        final = self.store.path_for(self.sha256)
        if final.exists():
            if hash_file(final) == self.sha256:
                return Stored(self.sha256, self.size, final, created=False)
            # The stored copy was altered or truncated; we hold the genuine bytes, so
            # put them back (the loader has already refused and recorded the bad copy).
            log.warning("store: %s did not match its digest; replaced with the verified bytes", final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o444)
        os.replace(self.path, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return Stored(self.sha256, self.size, final, created=True)

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)


def default_store() -> ArtifactStore:
    return ArtifactStore(settings.TRACELEDGER_STORE_DIR)
