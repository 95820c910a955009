"""/metrics in the Prometheus text format, and "verify now" on the ledger."""
from __future__ import annotations

import json

import pytest
from django.db import connection

from compliance.investigation.ledger_checks import last_verification, run_verification
from compliance.ledger import dbguards
from compliance.models import Alert, LedgerEntry
from compliance.web import metrics
from tests.dashboard_data import seed, tamper_and_load

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_serves_prometheus_metrics_to_a_bearer_token_or_a_read_role(client, settings, alice, dave, credit_onnx):
    data = seed(credit_onnx, predictions=1)
    tamper_and_load(data.engine, data.deployment.service)
    settings.TRACELEDGER_METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE traceledger_engine_load_refusals_total counter" in text
    assert 'traceledger_engine_load_refusals_total{verdict="digest_mismatch"} 1.0' in text
    assert 'traceledger_builds{status="succeeded"} 1.0' in text
    assert "traceledger_spool_depth 0.0" in text and "traceledger_ingest_lag_seconds 0.0" in text
    assert 'traceledger_alerts_open{severity="critical"} 1.0' in text
    client.force_login(dave)
    assert client.get("/metrics").status_code == 403
    client.force_login(alice)
    assert client.get("/metrics").status_code == 200


def test_it_takes_metrics_from_registered_collectors(client, alice):
    def custom():
        return [metrics.Metric("traceledger_spool_depth", "gauge", "from the recorder", [({}, 7)])]

    metrics.register(custom)
    try:
        client.force_login(alice)
        text = client.get("/metrics").content.decode()
    finally:
        metrics._collectors.remove(custom)
    assert "traceledger_spool_depth 7.0" in text and "from the recorder" in text


def test_it_verifies_the_ledger_and_records_the_result(client, alice, credit_onnx, eager):
    seed(credit_onnx, predictions=2)
    client.force_login(alice)
    assert client.get("/").content.decode().count("never verified") == 1
    response = client.post("/ledger/verify/")
    assert response.status_code == 302
    result = last_verification()
    assert result["ok"] and result["actor"] == "alice" and result["checked"] == result["index"]
    assert "passed" in client.get("/").content.decode()
    assert "no checkpoint yet" in client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)  # lifting the triggers needs a schema editor outside a transaction
def test_it_fails_verification_on_an_altered_entry_and_raises_an_alert(credit_onnx, eager):
    seed(credit_onnx, predictions=1)
    victim = LedgerEntry.objects.filter(kind="build.requested").get()
    altered = victim.body.replace('"precision":"fp32"', '"precision":"int8"')
    with dbguards.suspended(connection):  # an attacker with table-owner rights
        with connection.cursor() as cursor:
            cursor.execute("UPDATE compliance_ledgerentry SET body = %s WHERE \"index\" = %s", [altered, victim.index])
    result = run_verification(actor="alice")
    assert not result.ok and result.first_bad_index == victim.index
    assert "leaf hash does not match" in result.detail
    assert Alert.objects.filter(kind="ledger.verification_failed", severity="critical").exists()
    recorded = json.loads(LedgerEntry.objects.filter(kind="ledger.verified").get().body)["payload"]
    assert recorded["ok"] is False and recorded["first_bad_index"] == victim.index
