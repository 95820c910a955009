"""The predict API under hostile input: dtypes only as the model declares them, bytes
bounded before an array is made, service tokens bound to their service, unknown
services a 404 with one aggregated alert, and the engine verified once per change
rather than re-hashed on every request."""
from __future__ import annotations

import io
import json
import os
import time

import pytest
from django.core.management import call_command

from compliance.models import AccessRecord, Alert, ApiToken, LedgerEntry
from inference.runtime import forget_cached
from lineage.models import EngineLoad, Prediction
from tests.inference.conftest import deploy_model

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
X = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]


@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    forget_cached()
    yield
    forget_cached()


@pytest.fixture
def credit(db, credit_onnx):
    return deploy_model(credit_onnx, "credit-scoring")


def service_token(name: str) -> str:
    out = io.StringIO()
    call_command("create_service_token", name, "--json", stdout=out)
    return json.loads(out.getvalue())["token"]


def predict(client, service, inputs, token=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    return client.post(f"/api/v1/services/{service}/predict/", json.dumps({"inputs": inputs}),
                       content_type="application/json", **headers, **extra)


def test_it_predicts_with_the_declared_dtype_or_none(client, bob, credit):
    client.force_login(bob)
    assert predict(client, "credit-scoring", {"X": {"data": X, "dtype": "float32"}}).status_code == 200
    assert predict(client, "credit-scoring", {"X": {"data": X}}).status_code == 200
    assert Prediction.objects.count() == 2


@pytest.mark.parametrize("dtype", ["U400000000", "float64", "S99999999", "object", "V400000000", "<f4" * 10, 7])
def test_it_refuses_any_dtype_but_the_declared_one_before_allocating(client, bob, credit, dtype):
    client.force_login(bob)
    started = time.perf_counter()
    r = predict(client, "credit-scoring", {"X": {"data": X, "dtype": dtype}})
    assert r.status_code == 400 and r.json()["error"] == "input 'X': dtype must be float32, the model's declared dtype"
    assert time.perf_counter() - started < 2
    assert Prediction.objects.count() == 0


def test_it_bounds_each_tensor_by_its_declared_bytes(client, bob, credit, settings):
    client.force_login(bob)
    settings.TRACELEDGER_MAX_TENSOR_BYTES = 6 * 4 * 10
    assert predict(client, "credit-scoring", {"X": {"data": X * 10}}).status_code == 200
    r = predict(client, "credit-scoring", {"X": {"data": X * 11}})
    assert r.status_code == 413 and "264 bytes, more than the 240 byte limit" in r.json()["error"]
    settings.TRACELEDGER_MAX_REQUEST_BYTES = 40
    r = predict(client, "credit-scoring", {"X": {"data": X}})
    assert r.status_code == 413 and "more than the 40 byte limit" in r.json()["error"]
    assert Prediction.objects.count() == 1


@pytest.mark.parametrize("data", [[[10 ** 400] * 6], [["1"] * 6], [[{"a": 1}] * 6], [[[[[[[1]]]]]]], "abc", None])
def test_it_refuses_values_that_are_not_numbers_of_the_dtype(client, bob, credit, data):
    client.force_login(bob)
    r = predict(client, "credit-scoring", {"X": {"data": data}})
    assert r.status_code == 400, r.content
    assert Prediction.objects.count() == 0


def test_a_service_token_predicts_for_its_own_service_only(client, credit, credit_onnx):
    deploy_model(credit_onnx, "fraud-screening", name="fraud")
    fraud = service_token("fraud-screening")
    assert predict(client, "fraud-screening", {"X": {"data": X}}, fraud).status_code == 200
    entries = LedgerEntry.objects.count()
    for _ in range(3):
        r = predict(client, "credit-scoring", {"X": {"data": X}}, fraud)
        assert r.status_code == 403
        assert r.json()["error"] == ("the token of service 'fraud-screening' cannot run predictions for service "
                                     "'credit-scoring'")
    assert Prediction.objects.filter(deployment=credit).count() == 0
    refused = AccessRecord.objects.filter(action="predict", outcome="refused")
    assert refused.count() == 3 and {r.actor for r in refused} == {"fraud-screening"}
    alert = Alert.objects.get(kind="api.token_misused")
    assert alert.details["count"] == 3 and alert.subject == "service:fraud-screening"
    assert LedgerEntry.objects.count() == entries + 1  # the one alert.raised entry
    assert ApiToken.objects.get(service="fraud-screening").use_count == 4


def test_unknown_services_get_a_404_and_one_alert_with_a_count(client, bob, credit):
    client.force_login(bob)
    loads, entries = EngineLoad.objects.count(), LedgerEntry.objects.count()
    for i in range(30):
        r = predict(client, f"no-such-service-{i % 3}", {"X": {"data": X}})
        assert r.status_code == 404 and r.json()["error"] == f"no service 'no-such-service-{i % 3}' is deployed"
    alerts = Alert.objects.filter(kind="api.unknown_service")
    assert alerts.count() == 1 and alerts[0].details["count"] == 30 and alerts[0].severity == "warning"
    assert not Alert.objects.filter(severity="critical").exists()
    assert EngineLoad.objects.count() == loads and LedgerEntry.objects.count() == entries + 1
    assert AccessRecord.objects.filter(outcome="refused", action="predict").count() == 30


def test_it_verifies_the_engine_once_and_again_only_when_its_file_changes(client, bob, credit):
    from compliance.lib.store import default_store

    client.force_login(bob)
    for _ in range(5):
        assert predict(client, "credit-scoring", {"X": {"data": X}}).status_code == 200
    assert EngineLoad.objects.filter(deployment=credit).count() == 1
    path = default_store().path_for(credit.engine_sha256)
    mode = os.stat(path).st_mode
    os.chmod(path, 0o600)
    with open(path, "ab") as f:
        f.write(b"\0")
    os.chmod(path, mode)
    r = predict(client, "credit-scoring", {"X": {"data": X}})
    assert r.status_code == 409 and r.json()["detail"]["verdict"] == "digest_mismatch"
    assert EngineLoad.objects.filter(deployment=credit).count() == 2
    assert Prediction.objects.count() == 5
