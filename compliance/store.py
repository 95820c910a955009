"""Content-addressed artifact store: <root>/sha256/ab/cdef….

Writes are atomic (temp file in the store, fsync, rename) and the SHA-256 is computed
while the bytes are written, so a file is never read twice to learn its digest and a
reader never sees a partial file.  Paths are derived only from validated hex digests,
so nothing outside the store can be named.
"""
from __future__ import annotations

import hashlib
import logging
import mmap
import os
import re
import shutil
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
