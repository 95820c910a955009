"""Predictions by deployment, time and input digest with keyset pagination; which
engine served a service at a given time (function, API, CLI)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command

from compliance.benchmarks.provenance import fake_records
from compliance.lib.ids import us_from_datetime
from inference.provenance.writer import write_records
from lineage.actions import do_deploy
from lineage.models import Deployment, EngineLoad
from lineage.queries import QueryError, engine_at, predictions_page
from tests.inference.conftest import credit_deployment, deploy_model  # noqa: F401 (fixture)

pytestmark = pytest.mark.embedded

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def history(credit_deployment, two_input_onnx):
    """60 credit predictions one minute apart (two share each timestamp, to test
    ties), 10 on another deployment."""
    other = deploy_model(two_input_onnx, "fraud", name="fraud")
    credit = fake_records(credit_deployment, 60)
    for i, r in enumerate(credit):
        r.ts_us = us_from_datetime(T0 + timedelta(minutes=i // 2))
    credit[7].input_digest = credit[41].input_digest = "d" * 64
    fraud = fake_records(other, 10)
    write_records(credit + fraud)
    return credit_deployment, other, credit


def test_it_pages_through_a_deployment_newest_first_without_gaps_or_repeats(history):
    deployment, _, credit = history
    seen, cursor, pages = [], None, 0
    while True:
        page = predictions_page(deployment=deployment.id, after=cursor, limit=7)
        seen += [str(p.inference_id) for p in page.results]
        pages += 1
        if page.next is None:
            break
        cursor = page.next
    assert pages == 9 and len(seen) == len(set(seen)) == 60
    assert set(seen) == {r.id for r in credit}
    stamps = [(r.ts_us, r.id) for r in credit]
    assert seen == [iid for _, iid in sorted(stamps, reverse=True)]


def test_it_filters_by_time_window_service_and_input_digest(history):
    deployment, other, credit = history
    window = predictions_page(deployment=deployment.id, since=T0 + timedelta(minutes=10),
                              until=T0 + timedelta(minutes=12), limit=50)
    assert len(window.results) == 4 and window.next is None
    assert {p.timestamp for p in window.results} == {T0 + timedelta(minutes=10), T0 + timedelta(minutes=11)}
    assert len(predictions_page(service="fraud", limit=50).results) == 10
    by_digest = predictions_page(input_digest="d" * 64)
    assert {str(p.inference_id) for p in by_digest.results} == {credit[7].id, credit[41].id}
    with pytest.raises(QueryError, match="64 lowercase hex"):
        predictions_page(input_digest="D" * 64)
    with pytest.raises(QueryError, match="not a cursor"):
        predictions_page(after="garbage!")


def test_it_serves_the_predictions_api_to_readers_only(history, client, alice, dave):
    deployment, _, _ = history
    client.force_login(alice)
    response = client.get("/api/v1/predictions/", {"deployment": deployment.id, "limit": 25,
                                                   "since": "2026-03-01T12:00:00Z"})
    body = response.json()
    assert response.status_code == 200 and len(body["results"]) == 25 and body["next"]
    assert set(body["results"][0]) >= {"inference_id", "deployment_id", "engine_sha256", "timestamp",
                                       "input_digest", "output_digest", "ledger_index"}
    second = client.get("/api/v1/predictions/", {"deployment": deployment.id, "limit": 25, "after": body["next"]})
    assert not {r["inference_id"] for r in body["results"]} & {r["inference_id"] for r in second.json()["results"]}
    for params, reason in (({"since": "yesterday"}, "ISO 8601"), ({"until": "2026-03-01T12:00:00"}, "time zone"),
                           ({"limit": "0"}, "between 1 and 500"), ({"deployment": "x"}, "integer")):
        bad = client.get("/api/v1/predictions/", params)
        assert bad.status_code == 400 and reason in bad.json()["error"]
    client.force_login(dave)
    assert client.get("/api/v1/predictions/").status_code == 403


def test_it_tells_which_engine_served_a_service_at_a_time(credit_deployment, two_input_onnx, client, alice):
    first = credit_deployment
    EngineLoad.objects.create(deployment=first, service="credit", verdict="verified", host="node-1",
                              expected_sha256=first.engine_sha256, actual_sha256=first.engine_sha256)
    Deployment.objects.filter(pk=first.pk).update(created_at=T0)
    EngineLoad.objects.filter(deployment=first).update(created_at=T0 + timedelta(minutes=1))
    second_build = deploy_model(two_input_onnx, "elsewhere", name="v2").engine
    second = do_deploy(second_build, service="credit", acting_user="bob")  # retires the first
    Deployment.objects.filter(pk=first.pk).update(retired_at=T0 + timedelta(days=1))
    Deployment.objects.filter(pk=second.pk).update(created_at=T0 + timedelta(days=1))

    (then,) = engine_at("credit", T0 + timedelta(hours=5))
    assert then.deployment.id == first.id and then.deployment.engine_sha256 == first.engine_sha256
    assert then.last_verified_load.host == "node-1"
    (now,) = engine_at("credit", T0 + timedelta(days=2))
    assert now.deployment.id == second.id and now.last_verified_load is None
    assert engine_at("credit", T0 - timedelta(seconds=1)) == []

    client.force_login(alice)
    response = client.get("/api/v1/services/credit/engine-at/", {"t": "2026-03-01T17:00:00Z"})
    assert response.status_code == 200
    served = response.json()["served_by"][0]
    assert served["engine"]["sha256"] == first.engine_sha256 and served["deployment"]["id"] == first.id
    assert served["engine"]["model_sha256"] and served["last_verified_load"]["host"] == "node-1"
    missing = client.get("/api/v1/services/credit/engine-at/", {"t": "2020-01-01T00:00:00Z"})
    assert missing.status_code == 404 and "no deployment of service 'credit'" in missing.json()["error"]
    assert client.get("/api/v1/services/credit/engine-at/").status_code == 400

    out = io.StringIO()
    call_command("engine_at", "credit", "2026-03-03T00:00:00+00:00", "--json", stdout=out)
    assert json.loads(out.getvalue())["served_by"][0]["deployment"]["id"] == second.id
    with pytest.raises(CommandError, match="time zone"):
        call_command("engine_at", "credit", "2026-03-03T00:00:00")
    with pytest.raises(CommandError, match="no deployment"):
        call_command("engine_at", "credit", "2019-01-01T00:00:00Z")
