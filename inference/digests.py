"""Canonical encoding of named tensors and the salted input commitment.

encoding(tensors) = for each name in sorted order:
    u32 len(name) ‖ name (UTF-8) ‖ u32 len(dtype) ‖ dtype ("<f4", "<i8", …)
    ‖ u32 ndim ‖ u64 dim … ‖ u64 nbytes ‖ bytes (C order, little-endian)
input_digest  = SHA-256(salt(32 bytes) ‖ encoding(inputs))      — a commitment
output_digest = "v2:" ‖ hex(HMAC-SHA256(K_out, encoding(outputs)))  — a salted commitment,
                K_out = HKDF-Expand(salt, "traceledger/output-commitment/v2") (compliance.lib.salts)
  legacy (v1, entries written before output commitments were salted): bare hex of
                SHA-256(encoding(outputs)), which anyone with the engine can test guesses against

A plain hash of a small input can be reversed by hashing guesses (a credit applicant's
age and income have few values); with a random per-prediction salt kept outside the
ledger it cannot, and erasing the salt unlinks the input for good.  To verify a
disclosed input: recompute SHA-256(salt ‖ encoding(input)) and compare it with the
prediction's input_digest in the ledger.  The output digest is salted too, because the
engine is kept for replay: unsalted, it let anyone with the entry and the engine run
guessed inputs until one gave the recorded outputs, erased salt or not.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct

import numpy as np

from compliance.lib import salts

SALT_BYTES = salts.SALT_BYTES
OUTPUT_V2 = "v2:"


def _le(array: np.ndarray) -> np.ndarray:
    """Little-endian, C-contiguous, same shape (a 0-d tensor stays 0-d)."""
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
        array = array.astype(array.dtype.newbyteorder("<"))
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    return array


# The header of a tensor (name, dtype, shape, size) depends only on those three, and a
# service sees few distinct ones: cache it, bounded, so the hot path hashes bytes only.
# Keys are made only from arrays already in canonical form (little-endian dtype), so
# a cache hit also says the dtype needs no conversion.
_headers: dict[tuple, bytes] = {}
_MAX_HEADERS = 4096


def _header(name: str, array: np.ndarray) -> bytes:
    name_b = name.encode()
    dtype_b = array.dtype.str.replace("|", "<").encode()
    header = (struct.pack("<I", len(name_b)) + name_b + struct.pack("<I", len(dtype_b)) + dtype_b
              + struct.pack(f"<I{array.ndim}Q", array.ndim, *array.shape) + struct.pack("<Q", array.nbytes))
    if len(_headers) >= _MAX_HEADERS:
        _headers.clear()
    _headers[name, array.dtype, array.shape] = header
    return header


def update_with_tensors(h, tensors: dict[str, np.ndarray]) -> None:
    for name in sorted(tensors):
        array = tensors[name]
        # ORT outputs and checked feeds are already little-endian, C-contiguous
        # ndarrays: hash them in place, no copy.
        try:
            header = _headers[name, array.dtype, array.shape]
            if not array.flags.c_contiguous:
                header = None
        except (AttributeError, KeyError, TypeError):
            header = None
        if header is None:
            array = _le(np.asarray(array))
            header = _header(name, array)
        h.update(header)
        h.update(array)


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    update_with_tensors(h, tensors)
    return h.hexdigest()


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def input_commitment(salt: bytes, tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(salt)
    update_with_tensors(h, tensors)
    return h.hexdigest()


def verify_commitment(digest: str, salt: bytes, tensors: dict[str, np.ndarray]) -> bool:
    return hmac.compare_digest(digest, input_commitment(salt, tensors))


def output_commitment(salt: bytes, outputs: dict[str, np.ndarray]) -> str:
    """The salted output commitment ("v2:" + 64 hex digits)."""
    mac = salts.output_mac(salt)
    update_with_tensors(mac, outputs)
    return OUTPUT_V2 + mac.hexdigest()


def output_is_salted(digest: str) -> bool:
    """Whether an output digest is a salted commitment (v2), not a legacy plain hash."""
    return digest.startswith(OUTPUT_V2)


def verify_outputs(digest: str, salt: bytes | None, outputs: dict[str, np.ndarray]) -> bool:
    """Whether `outputs` are the ones `digest` commits to: a v2 commitment needs the salt
    (after its erasure nothing can be checked against it, by design); a legacy digest
    is a plain hash of the outputs."""
    if output_is_salted(digest):
        return salt is not None and hmac.compare_digest(digest, output_commitment(salt, outputs))
    return hmac.compare_digest(digest, tensors_digest(outputs))
