"""Hostile values for property-based tests (hypothesis), shared by every fuzz suite.

Each strategy stands for something an attacker sends on purpose: text with NUL bytes,
lone surrogates and right-to-left marks; integers past 64 bits and below zero;
malformed UUIDs and dates; JSON nested far past any sane depth; base64 that is not;
.npz zip bombs; dtype names that ask numpy for gigabytes. `FUZZ` is the settings
profile (bounded examples, no deadline) that keeps a whole suite under about a minute;
HYPOTHESIS_MAX_EXAMPLES raises it for a longer local run.
"""
from __future__ import annotations

import json
import os
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.fuzz.bombs import lying_header, npz_bytes, zeros_bomb

settings.register_profile(
    "traceledger-fuzz", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25")), deadline=None,
    derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
FUZZ = settings.get_profile("traceledger-fuzz")

NASTY_STRINGS = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202eevil", "../../etc/passwd", "%00", "%2e%2e%2f",
                 "' OR 1=1 --", "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x}", "\r\nSet-Cookie: a=b",
                 "\ufeff", "\U0001f4a3" * 50, "A" * 5000, "null", "true", "-1", "1e309", "NaN", "Infinity"]

# text of every kind, lone surrogates (category Cs) and controls included
hostile_text = st.one_of(st.sampled_from(NASTY_STRINGS),
                         st.text(st.characters(codec=None, categories=None), max_size=60))

huge_ints = st.one_of(st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400]),
                      st.integers(min_value=-(2**70), max_value=2**70))

malformed_uuids = st.sampled_from(["0190f2c4-zzzz", "00000000-0000-0000-0000-000000000000", "{}", "0" * 32,
                                   "0190f2c4-5b0e-7000-8000-00000000000g", "01890000-0000-7000-8000-000000000000" * 3,
                                   "\x00" * 36, "01890000-0000-7000-8000-00000000000\ud800"])

bad_dates = st.sampled_from(["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z",
                             "9999-12-31T23:59:59+14:00", "-2026-01-01", "2026-01-01T00:00:00", "yesterday",
                             "2026-01-01T25:61:61Z", "1" * 400, "2026-01-01T00:00:00+99:00", "\x002026-01-01"])

dtypes = st.one_of(st.sampled_from(["U400000000", "S999999999", "V400000000", "object", "O", "float32", "<f4", ">f8",
                                    "complex256", "datetime64[ns]", "(1000000000,)f8", "f4,f4", "int0", "", "?",
                                    "float32\x00"]),
                   hostile_text, huge_ints)

bad_base64 = st.sampled_from(["====", "a", "ab=", "@@@@", "YQ", "YQ===", "\x00\x00", "YWJj\n", "ü", "A" * 10001])


def nested_json(depth: int, kind: str = "list"):
    """A value nested `depth` levels deep, built without recursion."""
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def deep_json_text(depth: int) -> str:
    return "[" * depth + "]" * depth


json_scalars = st.one_of(st.none(), st.booleans(), huge_ints, hostile_text,
                         st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)), max_leaves=12)
# deeper ones go out as raw text (raw_bodies): json.dumps itself recurses
deep_values = st.sampled_from([10, 40, 200, 800]).flatmap(
    lambda d: st.sampled_from([nested_json(d, "list"), nested_json(d, "dict")]))
any_json = st.one_of(json_values, deep_values)

# raw bodies as they come off the wire, with the content type they claim
raw_bodies = st.one_of(
    any_json.map(lambda v: (json.dumps(v).encode(), "application/json")),
    st.sampled_from([deep_json_text(100_000).encode(), deep_json_text(3000).encode(), b"{", b"\xff\xfe", b'{"a":1}' * 3, b"\x00" * 64,
                     b'{"a": 1e999999}', b'{"a": ' + b"9" * 5000 + b"}", b'"\\ud800"']).map(
        lambda b: (b, "application/json")),
    st.tuples(st.binary(max_size=200), st.sampled_from(["text/plain", "application/xml", "multipart/form-data",
                                                        "application/x-www-form-urlencoded", "application/json; charset=utf-16",
                                                        "", "\x00/\x00"])),
)


def bomb_files() -> list[tuple[str, bytes]]:
    """Hostile .npz files, each a few hundred KB at most."""
    return [("zeros-bomb", zeros_bomb(256 * 1024 * 1024)), ("lying-header", lying_header((1 << 40,))),
            ("object-array", lying_header((4,), "|O")), ("truncated", npz_bytes(X=list(range(100)))[:-40]),
            ("not-a-zip", b"PK\x03\x04" + b"\x00" * 100), ("empty", b"")]


def path_segment(value) -> str:
    """A URL path segment carrying `value` byte for byte (lone surrogates as their raw
    UTF-8 bytes, which no browser would send and an attacker will)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def query(params: dict) -> str:
    return "&".join(f"{path_segment(k)}={path_segment(v)}" for k, v in params.items())
