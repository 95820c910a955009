"""The ledger API: latest checkpoint, inclusion and consistency proofs, public keys.
Every answer is checked here the way an outsider would, with compliance.ledger.merkle,
compliance.ledger.notes and the public key only."""
from __future__ import annotations

import base64

import pytest
from django.db import connection
from rest_framework.test import APIClient

from compliance.api import tokens
from compliance.ledger import checkpoints, ledger, merkle, notes
from compliance.lib.ids import uuid7
from compliance.models import LedgerEntry
from tests.conftest import PASSWORD, on_postgres

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def api(alice, settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    c = APIClient()
    c.login(username="alice", password=PASSWORD)
    return c


@pytest.fixture
def logged(api, credit_onnx):
    """A ledger with one recorded prediction and two checkpoints."""
    from compliance.benchmarks.provenance import fake_records
    from inference.provenance.writer import write_records
    from tests.inference.conftest import deploy_model

    deployment = deploy_model(credit_onnx, "credit")
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(10)])
    (record,) = fake_records(deployment, 1)
    write_records([record])
    inference_id = record.inference_id
    ledger.append("prediction.salt_erased", {"inference_id": record.id, "reference": "T-1"},
                  subject=f"prediction:{record.id}", actor="alice")
    first = checkpoints.make_checkpoint()
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(13)])
    second = checkpoints.make_checkpoint()
    return {"inference_id": inference_id, "first": first, "second": second}


def ledger_vkey_from_api(api) -> str:
    """The public key, as an outsider would fetch (or better, pin) it."""
    listed = api.get("/api/v1/ledger/keys/").json()["keys"]
    (vkey,) = [k["vkey"] for k in listed if k["purpose"] == "ledger"]
    return vkey


def verified_checkpoint(note: str, vkey: str) -> notes.Checkpoint:
    notes.verify_note(note, [vkey])
    return notes.parse_checkpoint(notes.parse_note(note)[0])


def unb64(values):
    return [base64.b64decode(v) for v in values]


def test_it_serves_the_latest_signed_checkpoint(api, logged):
    response = api.get("/api/v1/ledger/checkpoint/")
    assert response.status_code == 200
    data = response.json()
    vkey = ledger_vkey_from_api(api)
    parsed = verified_checkpoint(data["checkpoint"], vkey)
    assert (parsed.size, data["size"], data["checkpoint_id"]) == (logged["second"].size,) * 2 + (logged["second"].id,)
    assert base64.b64encode(parsed.root_hash).decode() == data["root_hash"]
    assert data["ledger_vkey"] == vkey and data["origin"] == checkpoints.origin()


def test_it_proves_inclusion_of_an_entry_and_of_a_prediction(api, logged):
    vkey = ledger_vkey_from_api(api)
    for query in ("index=3", f"inference_id={logged['inference_id']}"):
        data = api.get(f"/api/v1/ledger/proof/inclusion/?{query}").json()
        parsed = verified_checkpoint(data["checkpoint"], vkey)
        leaf = merkle.leaf_hash(data["entry"].encode())
        assert base64.b64decode(data["leaf_hash"]) == leaf and data["tree_size"] == parsed.size
        assert merkle.verify_inclusion(leaf, data["index"], parsed.size, unb64(data["proof"]), parsed.root_hash)
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), data["index"], parsed.size,
                                           unb64(data["proof"]), parsed.root_hash)
    assert data["kind"] == "prediction.recorded" and str(logged["inference_id"]) in data["entry"]


def test_the_subject_filter_finds_a_predictions_entries_through_the_partial_index(api, logged):
    """prediction.recorded entries are left out of the subject index; the filter still
    finds them (through Prediction.ledger_index) beside the prediction's other entries."""
    subject = f"prediction:{logged['inference_id']}"
    listed = api.get("/api/v1/ledger/entries/", {"subject": subject}).json()["results"]
    assert sorted(e["kind"] for e in listed) == ["prediction.recorded", "prediction.salt_erased"]
    assert api.get("/api/v1/ledger/entries/", {"subject": f"prediction:{uuid7()}"}).json()["results"] == []
    assert api.get("/api/v1/ledger/entries/", {"subject": "prediction:not-a-uuid"}).json()["results"] == []
    assert [e["kind"] for e in api.get("/api/v1/ledger/entries/", {"kind": "prediction.recorded"}).json()["results"]] \
        == ["prediction.recorded"]
    if on_postgres():
        with connection.cursor() as cursor:
            for query, index in [(ledger.about("build:1"), "ledger_subject_index"),
                                 (LedgerEntry.objects.filter(kind="build.succeeded"), "ledger_kind_index")]:
                cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny test table: ask what it could use
                plan = query.order_by("-index")[:50].explain()
                assert index in plan, plan


def test_it_proves_consistency_between_two_checkpoints(api, logged):
    vkey = ledger_vkey_from_api(api)
    first, second = logged["first"], logged["second"]
    data = api.get(f"/api/v1/ledger/proof/consistency/?old={first.size}&new={second.size}").json()
    old = verified_checkpoint(data["old_checkpoint"], vkey)
    new = verified_checkpoint(data["new_checkpoint"], vkey)
    assert merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, unb64(data["proof"]))
    # `new` defaults to the latest checkpoint
    assert api.get(f"/api/v1/ledger/proof/consistency/?old={first.size}").json()["proof"] == data["proof"]


def test_it_answers_bad_requests_with_one_line_errors(api, logged):
    size = logged["second"].size
    cases = [
        (f"/api/v1/ledger/proof/inclusion/?index={size}", 404, "not covered by the latest checkpoint"),
        ("/api/v1/ledger/proof/inclusion/?index=-1", 400, "non-negative integer"),
        ("/api/v1/ledger/proof/inclusion/", 400, "give index=N or inference_id=UUID"),
        ("/api/v1/ledger/proof/inclusion/?inference_id=not-a-uuid", 400, "malformed inference id"),
        (f"/api/v1/ledger/proof/inclusion/?inference_id={uuid7()}", 404, "no ledger entry records prediction"),
        ("/api/v1/ledger/proof/consistency/?old=5&new=4", 400, "0 <= old <= new"),
        (f"/api/v1/ledger/proof/consistency/?old=1&new={size + 1}", 400, "beyond the latest checkpoint"),
        ("/api/v1/ledger/proof/consistency/", 400, "old is required"),
    ]
    for url, status, words in cases:
        response = api.get(url)
        assert response.status_code == status, (url, response.content)
        assert words in response.json()["error"], (url, response.json())


def test_it_says_when_there_is_no_checkpoint_yet(api):
    response = api.get("/api/v1/ledger/checkpoint/")
    assert response.status_code == 404 and "no signed checkpoint yet" in response.json()["error"]


def test_it_needs_a_role(logged, alice, dave):
    assert APIClient().get("/api/v1/ledger/checkpoint/").status_code in (401, 403)
    c = APIClient()
    c.login(username="dave", password=PASSWORD)
    assert c.get("/api/v1/ledger/checkpoint/").status_code == 403
    _, token = tokens.issue(alice)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert c.get("/api/v1/ledger/proof/inclusion/?index=0").status_code == 200
    assert c.post("/api/v1/ledger/checkpoint/").status_code in (403, 405)
