"""Canonical JSON (RFC 8785) for everything that is hashed or signed.

Floats are refused: their text form is not stable across languages, so signed
payloads carry them as decimal strings instead (see `decimal_str`).

Ledger entries are written at ingest rates of tens of thousands per second, and the
reference serializer costs tens of microseconds per entry.  For the values ledger
payloads are made of (dicts with ASCII keys, lists, str, bool, None and ints within
±(2**53 - 1)) the standard library's C encoder with sorted keys and no whitespace
produces exactly the RFC 8785 bytes: ASCII keys sort the same by code point as by
UTF-16 unit, and both escape the same characters the same way.  Anything else takes
the reference path (tests/compliance/test_canonical.py checks both agree).
"""
from __future__ import annotations

import json

import rfc8785

_INT_LIMIT = 2**53 - 1
# Two encoders: the ASCII-escaping one is about twice as fast in CPython, and its output
# is canonical unless it had to escape something as \uXXXX (a control character is
# escaped that way by RFC 8785 too, but a non-ASCII character is not), in which case
# the UTF-8 one is used.
_FAST_ASCII = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_FAST_UTF8 = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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


def _plain(value) -> bool:
    """True when the standard encoder yields the canonical bytes for `value`.
    Iterative and inlined: it runs once per ledger entry, at ingest rates."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            try:
                if not "".join(node).isascii():
                    return False
            except TypeError:  # a key that is not a str
                return False
            items = node.values()
        elif kind is list or kind is tuple:
            items = node
        else:
            items = (node,)
        for item in items:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if -_INT_LIMIT <= item <= _INT_LIMIT:
                    continue
                return False
            if kind is dict or kind is list or kind is tuple:
                stack.append(item)
                continue
            return False
    return True


def canonical_json(value) -> bytes:
    """RFC 8785 bytes of `value` (dicts, lists, str, int, bool, None only)."""
    if _plain(value):
        text = _FAST_ASCII.encode(value)
        if "\\u" not in text:
            return text.encode()
        try:
            return _FAST_UTF8.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference path raises its own error
    _check(value)
    return rfc8785.dumps(value)


def decimal_str(value: float, digits: int = 6) -> str:
    """A float as a fixed decimal string, for signed payloads."""
    return f"{value:.{digits}f}"
