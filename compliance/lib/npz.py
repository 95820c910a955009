"""Reading untrusted .npz files without letting them decide how much memory we spend.

An .npz is a zip of .npy arrays. A few megabytes of zeros can declare gigabytes once
unpacked, and an .npy header can declare any shape. Before anything is unpacked, every
member's declared size in the zip directory and every array's shape × itemsize from its
.npy header are checked against a per-tensor and a per-file limit; only then is the
array read, and no more bytes than the header declared. A refusal is `NpzRefused`
(a ValueError) with one line; a MemoryError never escapes.

Limits default to the settings TRACELEDGER_MAX_TENSOR_BYTES and
TRACELEDGER_MAX_REQUEST_BYTES; callers with larger needs (calibration sets) pass theirs.
Imports nothing of ours: any layer may use it.
"""
from __future__ import annotations

import zipfile
import zlib
from typing import BinaryIO, Iterator

import numpy as np
from numpy.lib import format as npy_format

# Pickled (object) arrays are never accepted; neither are dtypes whose size is not fixed.
_ACCEPTED_KINDS = "biufcSUVMm"


class NpzRefused(ValueError):
    pass


def _limits(max_tensor_bytes: int | None, max_total_bytes: int | None) -> tuple[int, int]:
    from django.conf import settings

    tensor = max_tensor_bytes if max_tensor_bytes is not None else settings.TRACELEDGER_MAX_TENSOR_BYTES
    total = max_total_bytes if max_total_bytes is not None else settings.TRACELEDGER_MAX_REQUEST_BYTES
    return tensor, total


def _header(member: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise NpzRefused(f"array {name!r} has an unsupported .npy version {version}")
    except NpzRefused:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NpzRefused(f"array {name!r} has no valid .npy header: {first}") from None
    if dtype.hasobject or dtype.kind not in _ACCEPTED_KINDS:
        raise NpzRefused(f"array {name!r} has dtype {dtype}: only plain numeric or string arrays are accepted")
    return shape, fortran, dtype


def _declared_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    count = 1
    for d in shape:
        count *= int(d)  # Python ints: a crafted shape cannot overflow
    return count * dtype.itemsize


def describe(source, *, max_tensor_bytes: int | None = None,
             max_total_bytes: int | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) from the .npy headers alone, bounded as `iter_arrays`
    bounds them, without unpacking any array: check these against what you expect
    before paying for the data."""
    return dict(iter_arrays(source, max_tensor_bytes=max_tensor_bytes, max_total_bytes=max_total_bytes,
                            headers_only=True))


def iter_arrays(source, *, max_tensor_bytes: int | None = None, max_total_bytes: int | None = None,
                headers_only: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, array) from an .npz (a path or a file object), one array at a time,
    each bounded before it is unpacked (with `headers_only`: (name, (shape, dtype)))."""
    tensor_limit, total_limit = _limits(max_tensor_bytes, max_total_bytes)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise NpzRefused(f"not an .npz file (or a truncated one): {exc}") from None
    with archive:
        members = archive.infolist()
        if not members or any(not m.filename.endswith(".npy") for m in members):
            raise NpzRefused("not an .npz file: expected an archive of .npy arrays (numpy.savez)")
        declared = 0
        for m in members:
            if m.file_size > tensor_limit + 4096:  # the .npy header is at most a few KiB
                raise NpzRefused(f"array {m.filename[:-4]!r} unpacks to {m.file_size} bytes, "
                                 f"more than the {tensor_limit} byte limit per array")
            declared += m.file_size
        if declared > total_limit + 4096 * len(members):
            raise NpzRefused(f"the .npz unpacks to {declared} bytes, more than the {total_limit} byte limit")
        names = [m.filename[:-4] for m in members]
        if len(set(names)) != len(names):
            raise NpzRefused("the .npz holds two arrays of the same name")
        total = 0
        for m, name in zip(members, names):
            try:
                with archive.open(m) as member:
                    shape, fortran, dtype = _header(member, name)
                    size = _declared_bytes(shape, dtype)
                    if size > tensor_limit:
                        raise NpzRefused(f"array {name!r} declares {size} bytes ({dtype}, shape {list(shape)}), "
                                         f"more than the {tensor_limit} byte limit per array")
                    total += size
                    if total > total_limit:
                        raise NpzRefused(f"the .npz declares more than the {total_limit} byte limit in all")
                    data = None if headers_only else bytearray(size)
                    view, got = memoryview(data) if data is not None else None, 0
                    while data is not None and got < size:
                        chunk = member.read(min(size - got, 1 << 20))
                        if not chunk:
                            raise NpzRefused(f"array {name!r} is truncated: {got} of {size} bytes")
                        view[got:got + len(chunk)] = chunk
                        got += len(chunk)
            except NpzRefused:
                raise
            except MemoryError:
                raise NpzRefused(f"array {name!r} does not fit in memory") from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise NpzRefused(f"array {name!r} is unreadable (truncated or damaged .npz): {first}") from None
            if headers_only:
                yield name, (tuple(int(d) for d in shape), dtype)
            else:
                yield name, np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load(source, *, max_tensor_bytes: int | None = None, max_total_bytes: int | None = None) -> dict[str, np.ndarray]:
    """All named arrays of an .npz, bounded (see module docstring)."""
    try:
        return dict(iter_arrays(source, max_tensor_bytes=max_tensor_bytes, max_total_bytes=max_total_bytes))
    except MemoryError:
        raise NpzRefused("the .npz does not fit in memory") from None
