"""canonical_json's fast path must give exactly the reference RFC 8785 bytes."""
from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.canonical import FloatInSignedPayload, canonical_json

pytestmark = pytest.mark.embedded

scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_it_matches_the_reference_serializer(value):
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        with pytest.raises(type(exc)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_it_sorts_keys_by_utf16_units_and_escapes_like_the_reference():
    value = {"\U0001f600": 1, "\ufb01": 2, "a": "tab\tquote\"nul\x00 é", "b": [True, None, -(2**53 - 1)]}
    assert canonical_json(value) == rfc8785.dumps(value)


def test_it_refuses_floats_and_large_integers():
    with pytest.raises(FloatInSignedPayload, match=r"\$\.a\[1\]"):
        canonical_json({"a": [1, 2.5]})
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_json({"n": 2**53})
