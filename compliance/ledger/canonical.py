"""Canonical JSON (RFC 8785) for everything that is hashed or signed.

Floats are refused: their text form is not stable across languages, so signed
payloads carry them as decimal strings instead (see `decimal_str`).  So are integers
outside ±(2**53 - 1), which RFC 8785 cannot represent exactly.

For ASCII-only values, RFC 8785 is exactly Python's compact, key-sorted JSON (code-point
order equals UTF-16 order below U+0080, and the escaping rules agree), which is
several times faster than the pure-Python `rfc8785` package; anything else goes
through `rfc8785` itself.  tests/compliance/test_canonical.py holds the two equal.
"""
from __future__ import annotations

import json

import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1


class FloatInSignedPayload(TypeError):
    pass


def _check(value, path: str = "$") -> None:
    if isinstance(value, float):
        raise FloatInSignedPayload(f"float at {path}: encode it as a string")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer at {path} is outside ±(2**53 - 1): encode it as a string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"non-string key at {path}")
            _check(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")


def canonical_json(value) -> bytes:
    """RFC 8785 bytes of `value` (dicts, lists, str, int, bool, None only)."""
    _check(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii():
        return text.encode()
    return rfc8785.dumps(value)


def decimal_str(value: float, digits: int = 6) -> str:
    """A float as a fixed decimal string, for signed payloads."""
    return f"{value:.{digits}f}"
