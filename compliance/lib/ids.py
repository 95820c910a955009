"""Identifiers and time stamps. UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version,
74 random bits; time-ordered, so inference ids index well and sort by creation.
Times travel as integer microseconds since the Unix epoch (UTC); digests as 64 lowercase
hex digits. No Django import: inference servers outside TraceLedger use this too."""
from __future__ import annotations

import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX = frozenset("0123456789abcdef")


def us_from_datetime(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def datetime_from_us(ts_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_us)


# The database's integer columns (BigAutoField, BigIntegerField) are signed 64-bit.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1


def parse_db_int(value, name: str, *, minimum: int = DB_INT_MIN, maximum: int = DB_INT_MAX) -> int:
    """An integer parameter (query value, path part, cursor field), bounded to the
    database's signed 64-bit range and to [minimum, maximum]; ValueError naming the
    parameter otherwise.  Every filter on an integer column goes through this, so that
    no crafted number reaches the database (SQLite overflows, PostgreSQL errors)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} must be an integer")
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
            if digits.isascii() and digits.isdigit():
                raise ValueError(f"{name} is out of range: it must fit a signed 64-bit integer")
            raise ValueError(f"{name} must be an integer")
        value = int(text)
    if not DB_INT_MIN <= value <= DB_INT_MAX:
        raise ValueError(f"{name} is out of range: it must fit a signed 64-bit integer")
    if not minimum <= value <= maximum:
        if maximum == DB_INT_MAX and minimum in (0, 1):
            raise ValueError(f"{name} must be a {'non-negative' if minimum == 0 else 'positive'} integer")
        raise ValueError(f"{name} must be between {minimum} and {maximum}")
    return value


def is_hex64(value) -> bool:
    return type(value) is str and len(value) == 64 and _HEX.issuperset(value)


def iso_utc(dt: datetime) -> str:
    """A time as ISO 8601 in UTC to the second, with Z (build predicates, messages)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
