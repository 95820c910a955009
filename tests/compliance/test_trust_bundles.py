"""Bundles and receipts against the auditor's trust file: a bundle is signed as a whole
and carries the complete key registry its checkpoint commits to, so a record dropped
and the bundle re-encoded (even re-signed with the operator's own ledger key) fails;
a bundle re-signed with a key outside the trust file fails; a prediction's receipt
(C2SP tlog-proof) verifies offline against the trust file."""
from __future__ import annotations

import base64
import json

import pytest
from django.core.management import CommandError, call_command

from compliance.ledger import checkpoints, keys, trustfile
from compliance.ledger.offline import completeness
from compliance.ledger.offline.receipt import HEADER, parse_receipt
from compliance.ledger.witness import Witness
from compliance.verify_bundle import encode_bundle, verify_bytes
from tests.compliance.test_reports import demo, export, forge, run_verifier  # noqa: F401  (demo is a fixture)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def audited(demo, tmp_path, settings):  # noqa: F811
    """A witnessed checkpoint, the auditor's trust file, and a bundle for the disputed
    prediction."""
    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    settings.TRACELEDGER_WITNESS_QUORUM = 1
    checkpoints.make_checkpoint()
    Witness().cosign_latest()
    call_command("trust", "export", str(tmp_path / "trust.json"))
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    return tmp_path


def failed(data: bytes, trust=None) -> dict[str, str]:
    result = verify_bytes(data, trust=trust)
    return {c.name: c.detail for c in result.checks if not c.ok}


def test_it_verifies_a_bundle_against_the_trust_file(audited):
    bundle = json.loads((audited / "b.json").read_bytes())
    assert bundle["format"] == "traceledger-evidence/v2" and bundle["signature"]["key_id"]
    assert {json.loads(e["entry"]["body"])["kind"] for e in bundle["key_events"]} >= {"key.registered"}
    cli = run_verifier(audited / "b.json", "--trust", audited / "trust.json")
    assert cli.returncode == 0, cli.stdout
    assert "PASS  signature" in cli.stdout and "pinned witness" in cli.stdout and "WARNING" not in cli.stdout


@pytest.mark.parametrize("trusted", [False, True])
def test_a_dropped_alert_is_detected(audited, trusted):
    trust = trustfile.read(str(audited / "trust.json")) if trusted else None
    bundle = json.loads((audited / "b.json").read_bytes())
    assert bundle["alerts"], "the demo's refused engine load raises an alert in the window"
    bundle["alerts"].pop()
    problems = failed(encode_bundle(bundle), trust)
    assert "signature does not verify: a record was removed" in problems["signature"]


@pytest.mark.parametrize("trusted", [False, True])
def test_a_dropped_key_registration_is_detected_even_re_signed_by_the_operator(audited, trusted):
    trust = trustfile.read(str(audited / "trust.json")) if trusted else None
    bundle = json.loads((audited / "b.json").read_bytes())
    bundle["key_events"] = [e for e in bundle["key_events"] if e["record"].get("purpose") != "webhook"
                            and json.loads(e["entry"]["body"])["kind"] == "key.registered"][:-1] or []
    signer = keys.get_signer("ledger")  # the operator holds the ledger key and re-signs
    resigned = encode_bundle(completeness.sign(bundle, signer.key_id, signer.sign))
    problems = failed(resigned, trust)
    assert "signature" not in problems
    assert "not the complete key registry the checkpoint commits to" in problems["keys"]
    (audited / "dropped.json").write_bytes(resigned)
    cli = run_verifier(audited / "dropped.json", *(["--trust", audited / "trust.json"] if trusted else []))
    assert cli.returncode == 1 and "FAILED" in cli.stdout


def test_a_bundle_re_signed_with_a_key_outside_the_trust_file_is_refused(audited):
    forged = forge(json.loads((audited / "b.json").read_bytes()))
    assert verify_bytes(forged).ok  # consistent with the keys it brings along
    problems = failed(forged, trustfile.read(str(audited / "trust.json")))
    assert "not pinned" in problems["signature"] and "not pinned" in problems["checkpoint"]
    assert "not pinned" in problems["engine"]
    (audited / "forged.json").write_bytes(forged)
    cli = run_verifier(audited / "forged.json", "--trust", audited / "trust.json")
    assert cli.returncode == 1


def test_an_unsigned_v1_bundle_is_refused(audited):
    bundle = json.loads((audited / "b.json").read_bytes())
    bundle["format"] = "traceledger-evidence/v1"
    problems = failed(encode_bundle(bundle))
    assert "not signed as a whole" in problems["bundle"]


def test_a_receipt_verifies_offline_against_the_trust_file(audited, demo):  # noqa: F811
    out = audited / "p.tlog-proof"
    call_command("receipt", demo["disputed_inference_id"], "--out", str(out))
    text = out.read_text()
    body, index, proof, note = parse_receipt(text)
    assert text.startswith(HEADER + "\nextra ") and json.loads(body)["kind"] == "prediction.recorded"
    assert json.loads(body)["subject"] == f"prediction:{demo['disputed_inference_id']}" and proof
    assert "\u2014 " + Witness().name in note  # cosigned
    ok = run_verifier(out, "--trust", audited / "trust.json")
    assert ok.returncode == 0 and "TraceLedger receipt" in ok.stdout, ok.stdout
    assert run_verifier(out).returncode == 1  # a receipt needs the trust file

    lines = text.split("\n")
    lines[3] = base64.b64encode(bytes(32)).decode()  # a forged proof hash
    (audited / "bad.tlog-proof").write_text("\n".join(lines))
    bad = run_verifier(audited / "bad.tlog-proof", "--trust", audited / "trust.json")
    assert bad.returncode == 1 and "inclusion proof fails" in bad.stdout


def test_a_receipt_for_an_unknown_prediction_is_refused(audited):
    with pytest.raises(CommandError, match="no ledger entry records prediction"):
        call_command("receipt", "0190d5a4-0000-7000-8000-000000000000", "--out", str(audited / "x"))
    with pytest.raises(CommandError):
        call_command("receipt", "not-an-id", "--out", str(audited / "x"))
    assert not (audited / "x").exists()
