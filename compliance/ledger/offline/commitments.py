"""The salted input commitment, recomputed from a disclosed input (the same encoding as
inference.digests, which writes it)."""
from __future__ import annotations

import hashlib
import struct


def input_commitment(salt: bytes, tensors: list[tuple[str, str, list[int], bytes]]) -> str:
    """SHA-256(salt ‖ encoding(inputs)), the encoding of inference/digests.py without numpy:
    per name in sorted order u32 len ‖ name ‖ u32 len ‖ dtype ‖ u32 ndim ‖ u64 dims ‖ u64 nbytes ‖ bytes."""
    h = hashlib.sha256(salt)
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0]):
        name_b, dtype_b = name.encode(), dtype.encode()
        h.update(struct.pack("<I", len(name_b)) + name_b + struct.pack("<I", len(dtype_b)) + dtype_b)
        h.update(struct.pack(f"<I{len(shape)}Q", len(shape), *shape))
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
    return h.hexdigest()
