"""canonical_json is RFC 8785: byte for byte what the rfc8785 package produces, and the
ledger accepts as canonical exactly what it writes."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.ledger.canonical import FloatInSignedPayload, canonical_json
from compliance.ledger.ledger import Event, check_row, entry_body

safe_ints = st.integers(-(2**53 - 1), 2**53 - 1)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
ascii_texts = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | safe_ints | texts | ascii_texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts | ascii_texts, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_it_matches_rfc8785_byte_for_byte(value):
    assert canonical_json(value) == rfc8785.dumps(value)


def leaf_hex(body: bytes) -> str:
    return hashlib.sha256(b"\x00" + body).hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(texts | ascii_texts, json_values, max_size=4), st.integers(0, 2**40))
def test_the_ledger_accepts_exactly_what_it_writes(payload, index):
    body = entry_body(index, Event("trace.viewed", payload, subject="s"), datetime.now(timezone.utc))
    assert check_row(index, "trace.viewed", "s", body.decode(), leaf_hex(body))[1] is None
    reordered = json.dumps(dict(reversed(json.loads(body).items())), separators=(",", ":"),
                           ensure_ascii=False).encode()
    assert check_row(index, "trace.viewed", "s", reordered.decode(), leaf_hex(reordered))[1] == \
        "body is not canonical JSON"


def test_it_refuses_floats_and_unsafe_integers():
    with pytest.raises(FloatInSignedPayload):
        canonical_json({"p": 0.1})
    with pytest.raises(ValueError, match="outside"):
        canonical_json({"n": 2**53})
    assert canonical_json({"b": "é", "a": "\u2028", "é": 1}) == rfc8785.dumps({"b": "é", "a": "\u2028", "é": 1})
    body = b'{"actor":"system","index":1,"kind":"trace.viewed","payload":{"x":1.5},"subject":"","time":"t"}'
    assert "not canonical" in check_row(1, "trace.viewed", "", body.decode(), leaf_hex(body))[1]
