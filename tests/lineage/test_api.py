"""REST API: roles, token auth, 4xx JSON errors with nothing half-stored, and the trace
page behind login."""
from __future__ import annotations

import io

import pytest
from django.test import Client

from compliance.api import tokens
from compliance.models import AccessRecord, LedgerEntry
from inference.build_requests import do_request_build
from lineage.actions import do_deploy
from lineage.models import Build, Deployment, ModelSource, Prediction
from tests.conftest import PASSWORD, register, wait_for_build

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def upload(client, data: bytes, **fields):
    f = io.BytesIO(data)
    f.name = "model.onnx"
    return client.post("/api/v1/models/", {"file": f, "repo": "https://git.example.com/r", "commit": "d" * 40, **fields})


def test_it_registers_builds_deploys_predicts_and_traces_over_http(worker, bob, two_input_onnx):
    client = login(bob)
    r = upload(client, two_input_onnx)
    assert r.status_code == 201, r.json()
    model = r.json()
    r = client.post("/api/v1/builds/", {"model": model["sha256"], "precision": "fp32",
                                        "shapes": ["features=1x4:2x4:8x4", "category=1:2:8"]}, content_type="application/json")
    assert r.status_code == 202, r.json()
    build = wait_for_build(Build.objects.get(pk=r.json()["id"]))
    assert client.get(f"/api/v1/builds/{build.id}/").json()["status"] == "succeeded"
    r = client.post("/api/v1/deployments/", {"engine": build.engine.sha256, "service": "fraud"}, content_type="application/json")
    assert r.status_code == 201, r.json()
    r = client.post("/api/v1/services/fraud/predict/",
                    {"inputs": {"features": {"data": [[1, 2, 3, 4]], "dtype": "float32"},
                                "category": {"data": [3], "dtype": "int64"}}}, content_type="application/json")
    assert r.status_code == 200, r.json()
    iid = r.json()["metadata"]["inference_id"]
    r = client.get(f"/api/v1/trace/{iid}/")
    assert r.status_code == 200 and r.json()["ok"] is True


def test_it_answers_bad_input_with_4xx_json_and_stores_nothing(bob, credit_onnx, settings):
    client = login(bob)
    entries = LedgerEntry.objects.count()
    r = upload(client, b"not onnx")
    assert r.status_code == 400 and "not an ONNX model" in r.json()["error"]
    r = upload(client, credit_onnx[:200])
    assert r.status_code == 400 and "ONNX" in r.json()["error"]
    settings.TRACELEDGER_MAX_UPLOAD_BYTES = 1000
    r = upload(client, credit_onnx)
    assert r.status_code == 400 and "larger than the 1000 byte limit" in r.json()["error"]
    r = client.post("/api/v1/models/", {"repo": "r", "commit": "a" * 40})
    assert r.status_code == 400 and "file is required" in r.json()["error"]
    assert ModelSource.objects.count() == 0 and LedgerEntry.objects.count() == entries

    r = client.post("/api/v1/builds/", {"model": "12345"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["error"] == "unknown model '12345': give a registered model id or sha256"
    settings.TRACELEDGER_MAX_UPLOAD_BYTES = 10**9
    model = ModelSource.objects.get(pk=upload(client, credit_onnx).json()["id"])
    r = client.post("/api/v1/builds/", {"model": model.id, "shapes": ["X=1x7:1x7:1x7"]}, content_type="application/json")
    assert r.status_code == 400 and "the model fixes it at 6" in r.json()["error"]
    assert Build.objects.count() == 0
    r = client.get("/api/v1/trace/nope/")
    assert r.status_code == 400 and "malformed inference id" in r.json()["error"]
    r = client.get("/api/v1/trace/01890000-0000-7000-8000-000000000000/")
    assert r.status_code == 404


def test_it_rejects_prediction_inputs_that_do_not_match(worker, bob, credit_onnx):
    model = register(credit_onnx)
    build = wait_for_build(do_request_build(model, submitter="bob"))
    do_deploy(build.engine, service="credit", acting_user="bob")
    client = login(bob)
    r = client.post("/api/v1/services/credit/predict/", {"inputs": {"X": {"data": [[1, 2, 3]], "dtype": "float32"}}},
                    content_type="application/json")
    assert r.status_code == 400 and "model expects ?x6 (axis 1)" in r.json()["error"]
    r = client.post("/api/v1/services/credit/predict/", {"inputs": {"Y": {"data": [[1] * 6]}}}, content_type="application/json")
    assert r.status_code == 400 and "missing input(s) X" in r.json()["error"]
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize("role, read, write", [("alice", 200, 403), ("bob", 200, 400), ("charlie", 200, 400),
                                               ("dave", 403, 403)])
def test_it_enforces_roles_on_the_api(role, read, write, request):
    user = request.getfixturevalue(role)
    client = login(user)
    assert client.get("/api/v1/models/").status_code == read
    assert client.get("/api/v1/builds/").status_code == read
    assert client.post("/api/v1/builds/", {"model": "1"}, content_type="application/json").status_code == write
    assert client.post("/api/v1/deployments/", {}, content_type="application/json").status_code == write


def test_it_refuses_anonymous_api_calls_and_accepts_tokens(bob):
    anonymous = Client()
    assert anonymous.get("/api/v1/models/").status_code in (401, 403)
    _, token = tokens.issue(bob)
    r = Client().get("/api/v1/models/", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.status_code == 200
    r = Client().get("/api/v1/models/", HTTP_AUTHORIZATION="Token not-a-real-token")
    assert r.status_code == 401


def test_it_requires_csrf_for_session_writes(bob):
    client = Client(enforce_csrf_checks=True)
    client.login(username="bob", password=PASSWORD)
    r = client.post("/api/v1/deployments/", {}, content_type="application/json")
    assert r.status_code == 403 and "CSRF" in r.json()["error"]


def test_it_shows_the_trace_page_only_after_login(worker, alice, dave, credit_onnx):
    import numpy as np

    from inference.runtime import AuditedService

    model = register(credit_onnx)
    build = wait_for_build(do_request_build(model, submitter="bob"))
    do_deploy(build.engine, service="credit", acting_user="bob")
    _, meta = AuditedService.open("credit").predict({"X": np.ones((1, 6), np.float32)})
    url = f"/trace/{meta['inference_id']}/"
    r = Client().get(url)
    assert r.status_code == 302 and r["Location"].startswith("/login/")
    assert login(dave).get(url).status_code == 403
    r = login(alice).get(url)
    assert r.status_code == 200
    body = r.content.decode()
    assert "Every link verified" in body and build.engine.sha256 in body and "bob" in body
    # the view is in the access log; a GET writes nothing to the ledger
    assert not LedgerEntry.objects.filter(kind="trace.viewed").exists()
    assert AccessRecord.objects.filter(action="trace.viewed", target=f"prediction:{meta['inference_id']}",
                                       actor="alice").exists()
    assert Deployment.objects.count() == 1
