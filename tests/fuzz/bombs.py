"""Hostile files built without holding their unpacked size in memory: zip bombs whose
.npy members declare (and, deflated, really hold) far more than they cost to send,
and archives whose .npy header lies about its shape."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from numpy.lib import format as npy_format


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()  # magic, version and the padded header dict


def zeros_bomb(unpacked_bytes: int, name: str = "X") -> bytes:
    """An .npz whose one member really unpacks to `unpacked_bytes` of zeros (float64),
    deflated to about a thousandth of that."""
    count = unpacked_bytes // 8
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            member.write(npy_header((1, count)))
            chunk = bytes(1 << 20)
            left = count * 8
            while left:
                member.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
    return out.getvalue()


def lying_header(shape: tuple[int, ...], dtype: str = "<f8", name: str = "X") -> bytes:
    """A tiny member whose .npy header declares `shape`: numpy would allocate it all."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(f"{name}.npy", npy_header(shape, dtype) + bytes(64))
    return out.getvalue()


def npz_bytes(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()
