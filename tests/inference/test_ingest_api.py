"""The ingestion API for external inference servers: per-service tokens, strict
validation with the reason, nothing partial stored, idempotent across batches; and
the library's client, streaming through a connection that drops."""
from __future__ import annotations

import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from compliance.benchmarks.provenance import fake_records
from compliance.ledger import ledger
from compliance.models import Alert, LedgerEntry
from lineage.models import EngineLoad, Prediction, PredictionSalt

RECORDS = "/api/v1/ingest/predictions/"
LOADS = "/api/v1/ingest/engine-loads/"


def service_token(name: str) -> str:
    out = io.StringIO()
    call_command("create_service_token", name, "--json", stdout=out)
    return json.loads(out.getvalue())["token"]


def post(client, url, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def batch(deployment, n: int = 5) -> list[dict]:
    return [r.to_json() for r in fake_records(deployment, n)]


@pytest.mark.embedded
def test_it_stores_a_batch_once_and_reports_duplicates_across_batches(client, credit_deployment):
    token = service_token("credit")
    records = batch(credit_deployment, 6)
    response = post(client, RECORDS, {"records": records[:4]}, token)
    assert response.status_code == 200, response.json()
    assert response.json() == {"received": 4, "stored": 4, "duplicates": []}
    again = post(client, RECORDS, {"records": records[2:]}, token)  # a retry overlapping the first batch
    assert again.status_code == 200
    assert again.json()["stored"] == 2
    assert sorted(again.json()["duplicates"]) == sorted(r["inference_id"] for r in records[2:4])
    assert Prediction.objects.count() == 6 == PredictionSalt.objects.count()
    entry = LedgerEntry.objects.get(subject=f"prediction:{records[0]['inference_id']}")
    assert json.loads(entry.body)["actor"] == "service:credit"
    assert ledger.payload_of(entry) == Prediction.objects.get(inference_id=records[0]["inference_id"]).ledger_payload()


def _bad(mutate):
    def apply(records, deployment):
        mutate(records[2], deployment)
        return {"records": records}
    return apply


BAD_BATCHES = {
    "deployment id as a string": (_bad(lambda r, d: r.update(deployment_id=str(d.id))), 400,
                                  "records[2].deployment_id must be an integer"),
    "float latency": (_bad(lambda r, d: r.update(latency_us=1.5)), 400, "records[2].latency_us must be an integer"),
    "malformed uuid": (_bad(lambda r, d: r.update(inference_id="0190f2c4-zzzz")), 400,
                       "records[2].inference_id is not a UUID"),
    "random uuid": (_bad(lambda r, d: r.update(inference_id=str(uuid.uuid4()))), 400, "must be a UUIDv7"),
    "unknown deployment": (_bad(lambda r, d: r.update(deployment_id=d.id + 1000)), 400,
                           "records[2].deployment_id: unknown deployment"),
    "engine not the deployed one": (_bad(lambda r, d: r.update(engine_sha256="f" * 64)), 400,
                                    "records[2].engine_sha256 is not the engine deployment"),
    "digest not hex": (_bad(lambda r, d: r.update(input_digest="Z" * 64)), 400, "records[2].input_digest must be 64"),
    "salt not hex": (_bad(lambda r, d: r.update(salt="00ff")), 400, "records[2].salt must be 64"),
    "naive timestamp": (_bad(lambda r, d: r.update(timestamp="2026-01-01T00:00:00")), 400, "must include a time zone"),
    "future timestamp": (_bad(lambda r, d: r.update(
        timestamp=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat())), 400, "cannot come from the future"),
    "before the deployment existed": (_bad(lambda r, d: r.update(
        timestamp=(d.created_at - timedelta(days=3)).isoformat())), 400,
        "records[2].timestamp lies outside the lifetime of deployment"),
    "ten minutes before the deployment": (_bad(lambda r, d: r.update(
        timestamp=(d.created_at - timedelta(minutes=10)).isoformat())), 400, "give or take 0:05:00"),
    "missing field": (_bad(lambda r, d: r.pop("output_digest")), 400, "records[2] is missing output_digest"),
    "unsalted output digest": (_bad(lambda r, d: r.update(output_digest="ab" * 32)), 400,
                               "records[2].output_digest must be a salted output commitment"),
    "unknown field": (_bad(lambda r, d: r.update(score=0.7)), 400, "records[2] has unknown field(s) score"),
    "duplicate id in the batch": (_bad(lambda r, d: r.update(inference_id=r["_first_id"])), 400,
                                  "appears twice in this batch (also records[0])"),
    "records not a list": (lambda records, d: {"records": {"a": 1}}, 400, "records must be a list"),
    "not an object": (lambda records, d: [1, 2], 400, 'must be a JSON object {"records"'),
    "oversized": (lambda records, d: {"records": records * 3}, 413, "at most 10 records, this one has 15"),
}


@pytest.mark.embedded
@pytest.mark.parametrize("case", list(BAD_BATCHES))
@override_settings(TRACELEDGER_INGEST_MAX_BATCH=10)
def test_it_rejects_a_bad_batch_with_the_reason_and_stores_nothing(client, credit_deployment, case):
    token = service_token("credit")
    make, status, reason = BAD_BATCHES[case]
    records = batch(credit_deployment, 5)
    records[2]["_first_id"] = records[0]["inference_id"]
    body = make(records, credit_deployment)
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        for r in body["records"]:
            r.pop("_first_id", None)
    size = ledger.size()
    response = post(client, RECORDS, body, token)
    assert response.status_code == status, response.json()
    assert reason in response.json()["error"]
    assert Prediction.objects.count() == 0 and PredictionSalt.objects.count() == 0 and ledger.size() == size


@pytest.mark.embedded
def test_it_accepts_reports_only_from_the_service_s_own_token(client, credit_deployment, alice, bob, charlie):
    from compliance.api import tokens

    records = {"records": batch(credit_deployment, 2)}
    assert post(client, RECORDS, records).status_code == 401
    other = service_token("fraud")
    refused = post(client, RECORDS, records, other)
    assert refused.status_code == 403
    assert "token of service 'fraud' cannot report for service 'credit'" in refused.json()["error"]
    for user in (alice, bob, charlie):  # people do not post predictions, not even with a token
        client.force_login(user)
        assert post(client, RECORDS, records).status_code == 401
        assert post(client, RECORDS, records, tokens.issue(user)[1]).status_code == 403
    client.logout()
    assert Prediction.objects.count() == 0


@pytest.mark.embedded
def test_it_records_engine_loads_reported_by_an_external_runtime(client, credit_deployment):
    token = service_token("credit")
    attempt = str(uuid.uuid4())
    verified = {"attempt_id": attempt, "service": "credit", "deployment_id": credit_deployment.id,
                "verdict": "verified", "expected_sha256": credit_deployment.engine_sha256,
                "actual_sha256": credit_deployment.engine_sha256, "host": "gpu-node-7"}
    response = post(client, LOADS, verified, token)
    assert response.status_code == 201, response.json()
    load = EngineLoad.objects.get(attempt_id=attempt)
    assert load.verdict == "verified" and load.host == "gpu-node-7" and load.ledger_index is not None
    entry = LedgerEntry.objects.get(index=load.ledger_index)
    assert entry.kind == "engine.loaded" and ledger.payload_of(entry)["attempt_id"] == attempt
    repeated = post(client, LOADS, verified, token)
    assert repeated.status_code == 200 and repeated.json()["duplicate"] is True
    assert EngineLoad.objects.count() == 1

    refused = verified | {"attempt_id": str(uuid.uuid4()), "verdict": "digest_mismatch", "actual_sha256": "e" * 64,
                          "detail": "engine file hashes to eeee…"}
    assert post(client, LOADS, refused, token).status_code == 201
    alert = Alert.objects.get(kind="engine.load_refused")
    assert alert.severity == "critical" and alert.details["host"] == "gpu-node-7"
    assert LedgerEntry.objects.filter(kind="engine.load_refused").count() == 1


@pytest.mark.embedded
@pytest.mark.parametrize("change, reason", [
    ({"verdict": "verified", "actual_sha256": "e" * 64}, "a verified load must report actual_sha256 equal"),
    ({"expected_sha256": "e" * 64}, "expected_sha256 is not the engine deployment"),
    ({"deployment_id": 999999}, "unknown deployment 999999"),
    ({"verdict": "trust-me"}, "verdict must be one of"),
    ({"attempt_id": "nope"}, "attempt_id is not a UUID"),
    ({"service": "fraud"}, "cannot report for service 'fraud'"),
])
def test_it_rejects_a_bad_engine_load_report_and_stores_nothing(client, credit_deployment, change, reason):
    token = service_token("credit")
    report = {"attempt_id": str(uuid.uuid4()), "service": "credit", "deployment_id": credit_deployment.id,
              "verdict": "verified", "actual_sha256": credit_deployment.engine_sha256}
    response = post(client, LOADS, report | change, token)
    assert 400 <= response.status_code < 500 and reason in response.json()["error"]
    assert EngineLoad.objects.count() == 0 and Alert.objects.count() == 0


@pytest.mark.embedded
def test_it_creates_a_service_token_once_and_rotates_it_on_request(client, credit_deployment):
    token = service_token("credit")
    with pytest.raises(CommandError, match="already has a token; pass --rotate"):
        service_token("credit")
    out = io.StringIO()
    call_command("create_service_token", "credit", "--rotate", "--json", stdout=out)
    rotated = json.loads(out.getvalue())["token"]
    assert rotated != token
    records = {"records": batch(credit_deployment, 1)}
    stale = post(client, RECORDS, records, token)
    assert stale.status_code == 401 and "the token was revoked" in stale.json()["error"]
    assert post(client, RECORDS, records, rotated).status_code == 200
    with pytest.raises(CommandError, match="letters, digits"):
        service_token("bad name!")


# The ingestion API path is the HTTP request and the database; it does not use Redis
# or Celery, so there is no broker outage to survive on it. What the client must
# survive is the API being unreachable: here the connection is cut mid-stream.
@pytest.mark.django_db(transaction=True)
def test_the_client_streams_10000_predictions_through_a_dropping_connection(live_server, credit_onnx, tmp_path):
    from inference.loader import load_verified
    from inference.provenance.client import ProvenanceClient
    from inference.provenance.stamp import Stamper
    from tests.inference.conftest import deploy_model
    from tests.tcp_proxy import TcpProxy

    deployment = deploy_model(credit_onnx, "credit")
    token = service_token("credit")
    port = int(live_server.url.rsplit(":", 1)[1])
    proxy = TcpProxy(port).start()
    client = ProvenanceClient(f"http://127.0.0.1:{proxy.port}", token, spool_dir=tmp_path / "spool", batch=500,
                              interval_ms=20, backoff_max_s=0.3, timeout_s=10)
    try:
        engine = load_verified("credit")  # an external runtime's own engine, loaded and verified
        client.report_load(service="credit", deployment_id=deployment.id, verdict="verified",
                           expected_sha256=deployment.engine_sha256, actual_sha256=engine.engine.sha256)
        stamp = Stamper(deployment.id, "credit", deployment.engine_sha256)
        x = np.random.default_rng(3).normal(size=(10_000, 6)).astype(np.float32)
        ids = []
        for i in range(10_000):
            feeds = {"X": x[i:i + 1]}
            record, meta = stamp(feeds, engine.runner.run(feeds), 50)
            client.record(record)
            ids.append(meta["inference_id"])
            if i == 3000:
                deadline = time.monotonic() + 30
                while Prediction.objects.count() < 1000 and time.monotonic() < deadline:
                    time.sleep(0.02)
                proxy.stop()  # the API is unreachable: connections cut, new ones refused
            if i == 7000:
                assert Prediction.objects.count() < 7000
                proxy.start()
        assert client.drain(timeout=90), client.metrics()
        figures = client.metrics()
    finally:
        client.close(timeout=5)
        proxy.stop()
    assert figures["delivery_failures"] > 0 and figures["rejected"] == 0
    assert Prediction.objects.count() == 10_000
    assert {str(i) for i in Prediction.objects.values_list("inference_id", flat=True)} == set(ids)
    assert EngineLoad.objects.filter(host__gt="", attempt_id__isnull=False, verdict="verified").count() == 1
    from tests.inference.test_recorder import assert_ledger_matches

    assert_ledger_matches(set(ids))


@pytest.mark.embedded
def test_it_refuses_predictions_stamped_after_the_deployment_was_retired(client, credit_deployment):
    from django.utils import timezone as django_tz

    token = service_token("credit")
    records = batch(credit_deployment, 2)
    Deployment = type(credit_deployment)
    retired = django_tz.now() - timedelta(hours=1)
    Deployment.objects.filter(pk=credit_deployment.pk).update(created_at=retired - timedelta(hours=1), retired_at=retired)
    refused = post(client, RECORDS, {"records": records}, token)
    assert refused.status_code == 400 and "lies outside the lifetime of deployment" in refused.json()["error"]
    records[0]["timestamp"] = records[1]["timestamp"] = (retired - timedelta(minutes=1)).isoformat()
    assert post(client, RECORDS, {"records": records}, token).status_code == 200
    assert Prediction.objects.count() == 2
