"""Mutation fuzzing of the offline verifier over real bundles (issue 21, item 4): it never
raises, whatever the bytes, and never says VERIFIED for a bundle whose signed content
changed.  The bundles are real exports of the demo dataset (a prediction, cosigned by
our witness, and a service window), verified with the key files an auditor pins."""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.ledger import checkpoints
from compliance.ledger.offline.checks import verify_bytes
from compliance.ledger.offline.parse import encode_bundle
from compliance.ledger.offline.pinned import load_key_file
from compliance.ledger.witness import Witness
from tests.compliance.test_reports import demo  # noqa: F401  (a module fixture)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large,
                                                                          HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bundles(demo, django_db_blocker):
    """{name: (bytes, pinned keys)} for a prediction bundle and a service bundle."""
    out = {}
    with django_db_blocker.unblock(), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoints.make_checkpoint()
        Witness(directory=tmp / "witness").cosign_latest()
        call_command("export_report", demo["disputed_inference_id"], "--bundle", str(tmp / "p.json"),
                     "--keys", str(tmp), stdout=io.StringIO())
        pins = [k for name in ("ledger.vkey", "build.pub", "witness.vkey") for k in load_key_file(tmp / name)]
        out["prediction"] = ((tmp / "p.json").read_bytes(), pins)
        call_command("export_report", "--service", "credit-scoring", "--since", "2000-01-01T00:00:00Z",
                     "--until", "2100-01-01T00:00:00Z", "--max-predictions", "25", "--bundle", str(tmp / "s.json"),
                     stdout=io.StringIO())
        out["service"] = ((tmp / "s.json").read_bytes(), pins)
    for name, (data, pins) in out.items():
        assert verify_bytes(data, pins).ok, (name, verify_bytes(data, pins).to_dict())
    return out


def leaves(value, path=()):
    """Every scalar of a JSON document, by its path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


def replaced(doc, path, new):
    *head, last = path
    target = doc
    for p in head:
        target = target[p]
    target[last] = new
    return doc


# What a scalar becomes: another string (one character changed, cut, or new), another
# number (near, huge, negative), another type.
def other_scalar(old):
    strings = st.text(max_size=40)
    if isinstance(old, str) and old:
        strings = st.one_of(strings, st.builds(
            lambda i, c: old[:i % len(old)] + c + old[i % len(old) + 1:],
            st.integers(0, 10**6), st.characters(codec="ascii")),
            st.builds(lambda i: old[:i % len(old)], st.integers(0, 10**6)))
    numbers = st.one_of(st.integers(-2**64, 2**64), st.sampled_from([0, 1, -1, 2**53, 2**62, 2**63, 10**30]))
    if isinstance(old, int) and not isinstance(old, bool):
        numbers = st.one_of(numbers, st.builds(lambda d: old + d, st.integers(-3, 3)))
    return st.one_of(strings, numbers, st.booleans(), st.none(), st.just([]), st.just({})).filter(
        lambda new: encode_bundle({"v": new}) != encode_bundle({"v": old}))


@pytest.mark.parametrize("which", ["prediction", "service"])
@FUZZ
@given(data=st.data())
def test_a_changed_scalar_never_verifies(bundles, which, data):
    raw, pins = bundles[which]
    doc = json.loads(raw)
    paths = [p for p, _ in leaves(doc)]
    if which == "service":  # the window's bounds are the exporter's claim, not signed content
        paths = [p for p in paths if p[:2] not in (("scope", "since"), ("scope", "until"))]
    path = data.draw(st.sampled_from(paths), label="path")
    old = dict(leaves(doc))[path]
    new = data.draw(other_scalar(old), label="new")
    edited = encode_bundle(replaced(doc, path, new))
    for keys in (pins, []):
        result = verify_bytes(edited, keys)
        assert not result.ok, f"{path}: {old!r} -> {new!r} still verifies"


@pytest.mark.parametrize("which", ["prediction", "service"])
@FUZZ
@given(data=st.data())
def test_a_dropped_field_never_verifies(bundles, which, data):
    raw, pins = bundles[which]
    doc = json.loads(raw)
    objects = [p[:-1] for p, _ in leaves(doc) if p and isinstance(p[-1], str)]
    path = data.draw(st.sampled_from(objects), label="object")
    target = doc
    for p in path:
        target = target[p]
    key = data.draw(st.sampled_from(sorted(target)), label="key")
    del target[key]
    assert not verify_bytes(encode_bundle(doc), pins).ok


@FUZZ
@given(data=st.data())
def test_edited_bytes_never_raise_and_never_verify(bundles, data):
    raw, pins = bundles["prediction"]
    edits = data.draw(st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                                         st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1, max_size=4))
    edited = bytearray(raw)
    for kind, pos, byte in edits:
        pos %= max(len(edited), 1)
        if not edited:
            edited.append(byte)
        elif kind == "flip":
            edited[pos] ^= byte or 1
        elif kind == "insert":
            edited.insert(pos, byte)
        elif kind == "delete" and edited:
            del edited[pos]
        else:
            del edited[pos:]
    result = verify_bytes(bytes(edited), pins)
    assert bytes(edited) == raw or not result.ok


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=30)


@FUZZ
@given(value=json_values, data=st.data())
def test_any_document_is_answered_never_raised(bundles, value, data):
    """Arbitrary JSON, and the real bundle with any one field replaced by arbitrary JSON:
    a verdict every time, never an exception."""
    raw, pins = bundles["prediction"]
    assert not verify_bytes(encode_bundle(value) if not isinstance(value, float) else b"", pins).ok
    doc = json.loads(raw)
    path = data.draw(st.sampled_from([p for p, _ in leaves(doc)]), label="path")
    old = dict(leaves(doc))[path]
    edited = encode_bundle(replaced(doc, path, value))
    result = verify_bytes(edited, pins)
    assert encode_bundle({"v": value}) == encode_bundle({"v": old}) or not result.ok
    assert not verify_bytes(b"[" * 100_000 + b"]" * 100_000, pins).ok  # deep nesting: a verdict, no RecursionError
