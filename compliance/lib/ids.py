"""UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version, 74 random bits.
Time-ordered, so inference ids index well and sort by creation."""
from __future__ import annotations

import os
import re
import time
import uuid

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def uuid7(ms: int | None = None) -> uuid.UUID:
    if ms is None:
        ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFFFFFFFFFF) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def parse_inference_id(text: str) -> uuid.UUID:
    """Parse an inference id strictly; ValueError with a clear reason otherwise."""
    candidate = (text or "").strip().lower()
    if not _UUID_RE.match(candidate):
        raise ValueError(f"malformed inference id {text!r}: expected a UUID like 0190f2c4-…")
    return uuid.UUID(candidate)
