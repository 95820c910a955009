"""The salted input commitment: a disclosed input verifies with the salt, no guess can
be checked without it, and erasing the salt (GDPR) leaves the ledger as it was and
verifying."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from compliance.ledger import ledger
from compliance.models import LedgerEntry
from inference import digests
from inference.runtime import AuditedService
from lineage.actions import ActionError, do_erase_input_salt
from lineage.models import Prediction, PredictionSalt
from lineage.trace import trace

pytestmark = pytest.mark.embedded

APPLICANT = np.array([[35, 48.0, 0.25, 4, 0, 6]], dtype=np.float32)


@pytest.fixture
def prediction(credit_deployment):
    _, meta = AuditedService.open("credit").predict({"X": APPLICANT})
    return Prediction.objects.get(inference_id=meta["inference_id"])


def salt_of(prediction) -> bytes:
    return bytes.fromhex(PredictionSalt.objects.get(inference_id=prediction.inference_id).salt)


def test_it_verifies_a_disclosed_input_with_the_salt(prediction):
    salt = salt_of(prediction)
    assert digests.verify_commitment(prediction.input_digest, salt, {"X": APPLICANT})
    assert not digests.verify_commitment(prediction.input_digest, salt, {"X": APPLICANT + 1})
    assert not digests.verify_commitment(prediction.input_digest, bytes(32), {"X": APPLICANT})
    # the ledger holds the commitment, never the salt
    body = LedgerEntry.objects.get(index=prediction.ledger_index).body
    assert prediction.input_digest in body and salt.hex() not in body


def test_it_cannot_be_checked_without_the_salt(prediction):
    """Hashing guesses over the whole plausible input space finds nothing: the true
    applicant is among the guesses, but without the salt no guess reproduces the
    commitment. An unsalted hash of the same input would have given it away."""
    guesses = [np.array([[age, income, 0.25, lines, 0, 6]], dtype=np.float32)
               for age, income, lines in itertools.product(range(30, 41), (44.0, 46.0, 48.0, 50.0), range(2, 7))]
    assert any(np.array_equal(g, APPLICANT) for g in guesses)
    unsalted = [digests.tensors_digest({"X": g}) for g in guesses]
    assert prediction.input_digest not in unsalted
    assert not any(digests.verify_commitment(prediction.input_digest, b"", {"X": g}) for g in guesses)
    salt = salt_of(prediction)
    matches = [g for g in guesses if digests.verify_commitment(prediction.input_digest, salt, {"X": g})]
    assert len(matches) == 1 and np.array_equal(matches[0], APPLICANT)


def test_it_erases_the_salt_and_leaves_the_ledger_verifiable(prediction):
    before = {e.index: (e.body, e.leaf_hash) for e in LedgerEntry.objects.all()}
    assert do_erase_input_salt(prediction.inference_id, acting_user="charlie", reference="DSR-2026-0042")
    assert not PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()
    # every earlier entry is exactly as it was; the erasure is one new entry
    after = {e.index: (e.body, e.leaf_hash) for e in LedgerEntry.objects.all()}
    assert {i: after[i] for i in before} == before
    erasure = LedgerEntry.objects.get(kind="prediction.salt_erased")
    assert erasure.index == max(before) + 1 == ledger.size() - 1
    assert ledger.payload_of(erasure) == {"inference_id": str(prediction.inference_id), "reference": "DSR-2026-0042",
                                          "outputs_still_linkable": False}
    assert json.loads(erasure.body)["actor"] == "charlie"
    assert all(ledger.check_entry(e) is None for e in LedgerEntry.objects.all())
    assert trace(prediction.inference_id).ok  # the prediction and its chain still verify
    # erasing again changes nothing
    assert not do_erase_input_salt(prediction.inference_id, acting_user="charlie")
    assert LedgerEntry.objects.filter(kind="prediction.salt_erased").count() == 1


def test_it_refuses_an_erasure_reference_that_could_carry_personal_data(prediction):
    with pytest.raises(ActionError, match="at most 100"):
        do_erase_input_salt(prediction.inference_id, acting_user="charlie", reference="x" * 101)
    assert PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()


def test_it_erases_from_the_command_line(prediction, capsys):
    call_command("erase_salt", str(prediction.inference_id), "--reference", "DSR-7", "--user", "charlie", "--json")
    assert json.loads(capsys.readouterr().out) == {"inference_id": str(prediction.inference_id), "erased": True,
                                                   "already_erased": False, "outputs_still_linkable": False}
    with pytest.raises(CommandError, match="malformed inference id"):
        call_command("erase_salt", "not-an-id")
    with pytest.raises(CommandError, match="no prediction"):
        call_command("erase_salt", "0190f2c4-0000-7000-8000-000000000000")


def test_it_lets_only_an_admin_erase_through_the_api(prediction, client, alice, bob, charlie):
    url = f"/api/v1/predictions/{prediction.inference_id}/erase-salt/"
    for user in (alice, bob):
        client.force_login(user)
        assert client.post(url, {"reference": "DSR-1"}, content_type="application/json").status_code == 403
    assert PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()
    client.force_login(charlie)
    response = client.post(url, {"reference": "DSR-1"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["erased"] is True
    assert not PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()
    missing = client.post("/api/v1/predictions/0190f2c4-0000-7000-8000-000000000000/erase-salt/", {},
                          content_type="application/json")
    assert missing.status_code == 404 and "no prediction" in missing.json()["error"]


def _engine_outputs(service: AuditedService, candidates: list[np.ndarray]) -> list[dict]:
    """What the kept engine answers for each guessed input, run outside the audit (an
    attacker who has the engine file needs no audited service)."""
    run = service.loaded.runner.run
    return [run({"X": c}) for c in candidates]


def test_an_erased_input_cannot_be_found_through_its_outputs(prediction, credit_deployment):
    """Finding 2 of issue 21: knowing 4 of an applicant's 6 features, the reviewer ran
    every candidate through the kept engine and hashed its outputs; the one whose hash
    was the entry's output digest was the erased input.  With the output digest salted,
    the same search finds nothing once the salt is erased, and finds the input (only)
    while the salt exists, which is what replay needs."""
    service = AuditedService.open("credit")
    candidates = [np.array([[age, income, 0.25, 4, 0, 6]], dtype=np.float32)
                  for age, income in itertools.product(range(18, 81), np.arange(30.0, 62.0, 2.0))]
    assert sum(np.array_equal(c, APPLICANT) for c in candidates) == 1
    outputs = _engine_outputs(service, candidates)
    salt = salt_of(prediction)
    # while the salt exists, replay checks the outputs: exactly the true input's reproduce the commitment
    found = [c for c, out in zip(candidates, outputs) if digests.verify_outputs(prediction.output_digest, salt, out)]
    assert len(found) >= 1 and any(np.array_equal(c, APPLICANT) for c in found)
    assert digests.output_is_salted(prediction.output_digest)
    body = LedgerEntry.objects.get(index=prediction.ledger_index).body
    assert prediction.output_digest in body and salt.hex() not in body

    do_erase_input_salt(prediction.inference_id, acting_user="charlie", reference="DSR-9")
    entry = ledger.payload_of(LedgerEntry.objects.get(index=prediction.ledger_index))
    # the reviewer's search: the entry plus the engine, hashing each candidate's outputs
    unsalted = {digests.tensors_digest(out) for out in outputs}
    assert entry["output_digest"] not in unsalted
    assert entry["output_digest"].removeprefix("v2:") not in unsalted
    # and no salt-free check of any kind is left
    assert not any(digests.verify_outputs(entry["output_digest"], None, out) for out in outputs)


def test_erasing_a_legacy_prediction_says_its_outputs_stay_linkable(prediction, capsys):
    """Entries written before output commitments were salted keep their plain output
    hash: they stay verifiable, and erase_salt says what erasing cannot undo."""
    legacy = Prediction.objects.get(inference_id=prediction.inference_id)
    Prediction.objects.filter(inference_id=legacy.inference_id).update(output_digest="ab" * 32)  # as an old row
    legacy.refresh_from_db()
    assert legacy.outputs_linkable_without_salt
    assert digests.verify_outputs("ab" * 32, None, {"y": np.zeros(1, np.float32)}) is False
    out = {"y": np.ones(2, np.float32)}
    assert digests.verify_outputs(digests.tensors_digest(out), None, out)  # legacy: checkable by anyone
    call_command("erase_salt", str(legacy.inference_id), "--reference", "DSR-8", "--user", "charlie")
    text = capsys.readouterr().out
    assert "WARNING" in text and "plain hash" in text and "What erasure removes" in text
    erasure = LedgerEntry.objects.get(kind="prediction.salt_erased")
    assert ledger.payload_of(erasure)["outputs_still_linkable"] is True


def test_it_derives_one_key_per_use_of_a_salt():
    from compliance.lib import salts

    salt = bytes(range(32))
    commit, encrypt = salts.subkey(salt, salts.OUTPUT_COMMITMENT), salts.subkey(salt, salts.OUTPUT_ENCRYPTION)
    assert commit != encrypt and len(commit) == len(encrypt) == 32
    # RFC 5869 HKDF-Expand with the salt as PRK, one block: T(1) = HMAC-SHA256(PRK, info || 0x01)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    assert commit == HKDFExpand(hashes.SHA256(), 32, salts.OUTPUT_COMMITMENT).derive(salt)
    with pytest.raises(ValueError):
        salts.subkey(b"short", salts.OUTPUT_COMMITMENT)


def test_its_hmac_is_the_standard_librarys_on_random_keys_and_messages():
    """The stamp's HMAC-SHA256 is written over hashlib for speed; it must be RFC 2104's."""
    import hmac
    import os

    from compliance.lib import salts

    for size in (0, 1, 31, 63, 64, 65, 1000, 100_000):
        key, message = os.urandom(32), os.urandom(size)
        mac = salts.HmacSha256(key)
        mac.update(message[: size // 2])
        mac.update(memoryview(message[size // 2:]))
        assert mac.digest() == hmac.digest(key, message, "sha256")
        assert mac.hexdigest() == hmac.new(key, message, "sha256").hexdigest()
    salt = os.urandom(32)
    assert salts.subkey(salt, b"label") == hmac.digest(salt, b"label\x01", "sha256")
    with pytest.raises(ValueError):
        salts.HmacSha256(b"k" * 31)
