"""Canonical JSON (RFC 8785) for everything that is hashed or signed.

Floats are refused: their text form is not stable across languages, so signed
payloads carry them as decimal strings instead (see `decimal_str`).
"""
from __future__ import annotations

import rfc8785


class FloatInSignedPayload(TypeError):
    pass


def _check(value, path: str = "$") -> None:
    if isinstance(value, float):
        raise FloatInSignedPayload(f"float at {path}: encode it as a string")
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
    return rfc8785.dumps(value)


def decimal_str(value: float, digits: int = 6) -> str:
    """A float as a fixed decimal string, for signed payloads."""
    return f"{value:.{digits}f}"
