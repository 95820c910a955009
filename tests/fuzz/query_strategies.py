"""Crafted query values for the fuzz suite of issue 22 (no 5xx for any query).

Each strategy stands for a value that once answered 500: cursors that decode to the
wrong type or range, integers past 64 bits, lone UTF-16 surrogates and NUL bytes.
The next such value should be found by this suite, not by a person."""
from __future__ import annotations

import base64
import json
import os
import uuid
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "traceledger-queries", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "60")), deadline=None,
    derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
QUERIES = settings.get_profile("traceledger-queries")

# integers around and past the signed 64-bit range, as the digits a client sends
overflowing_ints = st.one_of(
    st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**22, 10**30, -(10**30)]),
    st.integers(min_value=-(2**80), max_value=2**80),
).map(str)
int_like = st.one_of(overflowing_ints, st.sampled_from(["", "+1", " 7", "1e3", "0x10", "١٢", "1.5", "-0", "9" * 5000]))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                         st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=6)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# what a forger makes of a cursor: base64 of JSON of any shape (the old unsigned format),
# base64 of "<microseconds>:<uuid>" (the old `after=`), signed-looking strings, noise
cursors = st.one_of(
    json_values.map(lambda v: _b64(json.dumps(v).encode())),
    st.tuples(overflowing_ints, st.uuids().map(str)).map(lambda t: _b64(f"{t[0]}:{t[1]}".encode())),
    st.tuples(st.text(max_size=30), st.text(max_size=30)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.sampled_from(["WyJhYmMiXQ", "W3sieCI6IDF9LCAieSJd", "W251bGxd", "%%%", "=", ":", "a:b:c", "WzFd:forged"]),
    st.binary(max_size=40).map(_b64),
)

# text with lone surrogates and NUL bytes mixed into ordinary characters
surrogate_or_nul = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
poisoned_text = st.tuples(st.text(max_size=10), surrogate_or_nul, st.text(max_size=10)).map("".join)
any_text = st.one_of(st.text(st.characters(codec=None, categories=None), max_size=30), poisoned_text,
                     st.sampled_from(["../..", "..", ".", "<b>x</b>", "' OR 1=1 --", "a" * 300]))


def query_value(text: str) -> str:
    """`text` percent-encoded as a client would send it; lone surrogates become the
    CESU-8 bytes a broken client sends (Django decodes them to U+FFFD)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def path_segment(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


ids = st.one_of(overflowing_ints, st.sampled_from(["0", "1", "-1", "abc", str(uuid.uuid4())]))
