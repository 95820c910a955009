"""The offline verifier's own pieces, without a database: the numpy-free input
commitment, pinned-key files, and the strict canonical parsing of a bundle."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from compliance.ledger import notes, purposes
from compliance.ledger.offline.checks import verify_bytes
from compliance.ledger.offline.commitments import input_commitment
from compliance.ledger.offline.parse import FORMAT, TOP_KEYS, Malformed, encode_bundle, parse_bundle
from compliance.ledger.offline.pinned import load_key_file, parse_key_argument
from compliance.ledger.offline.report import main
from compliance.ledger.purposes import PurposeError
from inference import digests


@pytest.mark.parametrize("tensors", [
    {"X": np.arange(12, dtype=np.float32).reshape(2, 6)},
    {"features": np.ones((3, 4), np.float32), "category": np.array([1, 7, 2], np.int64)},
    {"flag": np.array([True, False]), "scalar": np.array(2.5, np.float64)},
    {"big_endian": np.arange(4, dtype=">i4"), "half": np.zeros((1, 2), np.float16)},
])
def test_it_computes_the_input_commitment_without_numpy(tensors):
    salt = digests.new_salt()
    encoded = []
    for name, array in tensors.items():
        le = array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array
        le = le if le.flags.c_contiguous else le.copy(order="C")  # the project's encoding keeps the shape, 0-d too
        encoded.append((name, le.dtype.str.replace("|", "<"), list(le.shape), le.tobytes()))
    assert input_commitment(salt, encoded) == digests.input_commitment(salt, tensors)


def test_it_reads_pinned_keys_in_every_documented_form(tmp_path):
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    (tmp_path / "a.vkey").write_text("# ledger\n" + notes.format_vkey("log.example/x", raw) + "\n")
    (tmp_path / "a.pem").write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "a.b64").write_text(base64.b64encode(raw).decode() + "\n")
    (tmp_path / "a.hex").write_text(raw.hex())
    for name in ("a.vkey", "a.pem", "a.b64", "a.hex"):
        (pinned,) = load_key_file(tmp_path / name, "build")
        assert pinned.raw == raw and pinned.purpose == "build"
    assert load_key_file(tmp_path / "a.vkey", "ledger")[0].name == "log.example/x"
    (tmp_path / "bad").write_text("hello world\n")
    with pytest.raises(ValueError, match="not a vkey"):
        load_key_file(tmp_path / "bad", "ledger")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no key"):
        load_key_file(tmp_path / "empty", "ledger")


def test_it_binds_every_pinned_key_to_one_stated_purpose(tmp_path, capsys):
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (tmp_path / "a.b64").write_text(base64.b64encode(raw).decode() + "\n")
    # a bare key of no stated purpose is refused, with the way to state one
    with pytest.raises(ValueError, match="purpose is not stated: pin it as --key ledger="):
        load_key_file(tmp_path / "a.b64")
    assert main([str(tmp_path / "a.b64"), "--key", str(tmp_path / "a.b64")]) == 2
    assert "purpose is not stated" in capsys.readouterr().err
    # the purpose from the file's own line, from the names export_report writes, or from PURPOSE=
    (tmp_path / "k.pub").write_text("purpose: witness\n" + base64.b64encode(raw).decode() + "\n")
    assert load_key_file(tmp_path / "k.pub")[0].purpose == "witness"
    (tmp_path / "build.pub").write_text(base64.b64encode(raw).decode() + "\n")
    assert load_key_file(tmp_path / "build.pub")[0].purpose == "build"
    assert parse_key_argument(f"ledger={tmp_path / 'a.b64'}") == ("ledger", str(tmp_path / "a.b64"))
    assert parse_key_argument("build.pub") == (None, "build.pub")
    with pytest.raises(ValueError, match="says it holds witness keys"):
        load_key_file(tmp_path / "k.pub", "build")
    with pytest.raises(PurposeError):
        load_key_file(tmp_path / "a.b64", "webhook")
    (tmp_path / "w.vkey").write_text(notes.format_vkey("w.example/1", raw, notes.SIG_COSIGNATURE_V1) + "\n")
    assert load_key_file(tmp_path / "w.vkey")[0].purpose == "witness"  # a cosignature/v1 key by its type
    with pytest.raises(ValueError, match="is a witness key"):
        load_key_file(tmp_path / "w.vkey", "ledger")
    # and a key pinned for one purpose matches only that purpose
    (pinned,) = load_key_file(tmp_path / "build.pub")
    assert pinned.matches(raw, None, "build") and not pinned.matches(raw, "log.example/x", "ledger")


def test_purposes_name_what_each_key_may_sign():
    assert purposes.may_sign("ledger", purposes.CHECKPOINT, key_name="o.example/log", origin="o.example/log") == ""
    assert "origin" in purposes.may_sign("ledger", purposes.CHECKPOINT, key_name="w.example", origin="o.example/log")
    assert "only a ledger key" in purposes.may_sign("build", purposes.CHECKPOINT, key_name="o", origin="o")
    assert "only a ledger key" in purposes.may_sign("witness", purposes.CHECKPOINT, key_name="o", origin="o")
    assert "only a build key" in purposes.may_sign("ledger", purposes.ENGINE_MANIFEST)
    assert "only a witness key" in purposes.may_sign("build", purposes.COSIGNATURE)
    assert "no stated purpose" in purposes.may_sign(None, purposes.ENGINE_MANIFEST)
    assert purposes.may_sign("build", purposes.ENGINE_MANIFEST) == purposes.may_sign("witness", purposes.COSIGNATURE) == ""


def minimal() -> dict:
    return {k: [] for k in TOP_KEYS} | {"format": FORMAT, "scope": {"kind": "prediction", "inference_id": "x"},
                                         "checkpoint": {"note": ""}, "keys": {}, "disclosed_input": None}


def test_it_accepts_only_the_canonical_encoding():
    bundle = minimal()
    data = encode_bundle(bundle)
    assert data.endswith(b"}\n") and data.isascii() and b" " not in data.replace(b'"inference_id"', b"")
    assert parse_bundle(data) == bundle
    for edited, reason in [
        (json.dumps(bundle, sort_keys=True, indent=1).encode() + b"\n", "canonical"),
        (data[:-1], "canonical"),
        (json.dumps(bundle).encode() + b"\n", "canonical"),
        (data.replace(b'"format"', b'"format":1,"format"', 1), "duplicate"),
        (data.replace(b'"disclosed_input":null', b'"disclosed_input":1.5'), "float"),
        (encode_bundle(bundle | {"format": "traceledger-evidence/v0"}), "format"),
        (encode_bundle(bundle | {"extra": 1}), "unexpected"),
        (b"\xff" + data, "not a JSON bundle"),
    ]:
        with pytest.raises(Malformed, match=reason):
            parse_bundle(edited)
    result = verify_bytes(b"[]\n")
    assert not result.ok and result.checks[0].name == "bundle"


@pytest.mark.parametrize("depth", [65, 5000, 200_000])
def test_it_refuses_deep_nesting_with_a_clear_message_not_a_recursion_error(depth):
    from compliance.ledger.offline.parse import MAX_DEPTH

    bundle = minimal()
    data = encode_bundle(bundle).replace(b'"disclosed_input":null',
                                         b'"disclosed_input":' + b"[" * depth + b"]" * depth)
    with pytest.raises(Malformed, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_bundle(data)
    result = verify_bytes(data)
    assert not result.ok and f"nests deeper than {MAX_DEPTH} levels" in result.checks[0].detail


def test_a_deeply_nested_ledger_entry_body_is_malformed_not_a_crash():
    bundle = minimal()
    bundle["predictions"] = [{"record": {}, "entry": {"index": 0, "body": "[" * 100_000 + "]" * 100_000,
                                                      "proof": []}}]
    result = verify_bytes(encode_bundle(bundle))
    assert not result.ok


def test_the_command_line_reports_a_deep_bundle_in_one_line(tmp_path, capsys):
    from compliance.ledger.offline.report import main

    path = tmp_path / "deep.json"
    path.write_bytes(encode_bundle(minimal()).replace(b'"disclosed_input":null',
                                                      b'"disclosed_input":' + b"[" * 10_000 + b"]" * 10_000))
    assert main([str(path)]) == 1
    from compliance.ledger.offline.parse import MAX_DEPTH

    assert f"nests deeper than {MAX_DEPTH} levels" in capsys.readouterr().out
