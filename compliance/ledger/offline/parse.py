"""Parsing a bundle: its one canonical byte form and strictly typed fields (a bundle
that is not exactly `encode_bundle()` of its content, or has a field of the wrong
type, is Malformed before any check runs)."""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime

FORMAT = "traceledger-evidence/v2"
UNSIGNED_FORMATS = ("traceledger-evidence/v1",)
TOP_KEYS = {"format", "scope", "checkpoint", "keys", "key_events", "predictions", "deployments",
            "alerts", "case_events", "disclosed_input", "signature"}
CHAIN_KEYS = {"deployment", "engine_manifest", "build", "build_started", "build_succeeded", "model"}
BODY_KEYS = {"index", "kind", "subject", "actor", "time", "payload"}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DTYPE = re.compile(r"<([biufc])([0-9]{1,2})")
# Bounds checked before any parsing: the largest bundle a service export can make is a
# few MiB per thousand predictions, and no field nests deeper than 8.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 32


def encode_bundle(bundle: dict) -> bytes:
    """The one byte serialization of a bundle (the exporter writes exactly this)."""
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii") + b"\n"


def _same(a, b) -> bool:
    """JSON equality that tells 1 from true and 1 from "1"."""
    return encode_bundle({"v": a}) == encode_bundle({"v": b})


class Malformed(ValueError):
    """The bundle is not a well-formed, canonical traceledger-evidence/v2 document."""


# ------------------------------------------------------------------ parsing


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise Malformed(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_floats(text):
    raise Malformed(f"non-integer number {text!r}: bundles carry no floats")


def _depth_ok(data: bytes) -> bool:
    """Whether no JSON array or object nests deeper than MAX_DEPTH (strings left out)."""
    depth = 0
    for b in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if b in b"[{" else -1
        if depth > MAX_DEPTH:
            return False
    return True


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_bundle(data: bytes) -> dict:
    if not isinstance(data, (bytes, bytearray)):
        raise Malformed("a bundle is bytes")
    if len(data) > MAX_BUNDLE_BYTES:
        raise Malformed(f"larger than {MAX_BUNDLE_BYTES} bytes")
    if not _depth_ok(data):
        raise Malformed(f"the bundle nests deeper than {MAX_DEPTH} levels")
    try:
        bundle = json.loads(data.decode("ascii"), object_pairs_hook=_reject_duplicates,
                            parse_float=_no_floats, parse_constant=_no_floats)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"not a JSON bundle: {exc}") from None
    except RecursionError:
        raise Malformed(f"the bundle nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(bundle, dict):
        raise Malformed("a bundle is a JSON object")
    if encode_bundle(bundle) != data:
        raise Malformed("bytes are not the canonical encoding of the bundle: it was edited")
    if bundle.get("format") in UNSIGNED_FORMATS:
        raise Malformed(f"{bundle['format']} bundles are not signed as a whole and cannot be proven complete: "
                        "export the bundle again")
    _keys(bundle, TOP_KEYS, "bundle")
    if bundle["format"] != FORMAT:
        raise Malformed(f"format is {bundle['format']!r}, expected {FORMAT!r}")
    return bundle


def _keys(obj, keys: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise Malformed(f"{where} must be an object")
    if set(obj) != keys:
        odd = sorted(set(obj) ^ keys)
        raise Malformed(f"{where} has missing or unexpected fields: {', '.join(odd)}")
    return obj


def _str(value, where: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{where} must be a string")
    return value


def _int(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"{where} must be a non-negative integer")
    return value


def _list(value, where: str) -> list:
    if not isinstance(value, list):
        raise Malformed(f"{where} must be a list")
    return value


def _b64(value, where: str, size: int | None = None) -> bytes:
    """Strict canonical base64: a changed padding bit is a changed bundle."""
    text = _str(value, where)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{where} is not base64") from None
    if base64.b64encode(raw).decode() != text or (size is not None and len(raw) != size):
        raise Malformed(f"{where} is not canonical base64{f' of {size} bytes' if size else ''}")
    return raw


def _time(value, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(_str(value, where))
    except ValueError:
        raise Malformed(f"{where} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise Malformed(f"{where} has no time zone")
    return when
