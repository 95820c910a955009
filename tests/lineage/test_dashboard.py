"""Dashboard pages and their API: overview, trace search, build and deploy forms,
keyset pagination, charts, the OpenAPI schema."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance.models import AccessRecord, LedgerEntry
from compliance.web import charts, graph
from lineage.models import Build, Deployment, ModelSource
from lineage.trace import trace
from tests.dashboard_data import seed, tamper_and_load

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def data(credit_onnx):
    return seed(credit_onnx, predictions=5)


def test_it_shows_the_overview_with_counts_and_charts(client, alice, data):
    tamper_and_load(data.engine, data.deployment.service)
    client.force_login(alice)
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    counts = response.context["counts"]
    assert counts["models"] == 1 and counts["engines"] == 1 and counts["live_deployments"] == 1
    assert counts["predictions_today"] == 5 and counts["open_alerts"] == 1 and counts["builds_by_status"] == {"succeeded": 1}
    assert "no checkpoint yet" in page and "never verified" in page
    figures = response.context["figures"]
    assert sum(sum(t["y"]) for t in figures["predictions"]["data"]) == 5
    assert sum(sum(t["y"]) for t in figures["refused"]["data"]) == 1


def test_it_builds_valid_plotly_figures():
    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    day = now.replace(hour=0)
    fig = charts.refused_loads_figure([(day, "digest_mismatch", 2), (day - timedelta(days=1), "unsigned", 1)], now=now)
    spec = fig.to_dict()
    assert {t["name"] for t in spec["data"]} == {"digest mismatch", "unsigned"}
    assert len(spec["data"][0]["x"]) == 30 and spec["layout"]["yaxis"]["dtick"] == 1
    pph = charts.predictions_per_hour_figure([(now, "credit", 40), (now, "fraud", 2)], now=now).to_dict()
    assert [t["name"] for t in pph["data"]] == ["credit", "fraud"] and pph["layout"]["barmode"] == "stack"
    assert len(pph["data"][0]["x"]) == 24 and pph["data"][0]["y"][-1] == 40 and sum(pph["data"][1]["y"]) == 2
    builds = charts.builds_by_status_figure({"succeeded": 3, "failed": 1}).to_dict()
    assert list(builds["data"][0]["x"]) == ["succeeded", "failed"]
    assert charts.alerts_trend_figure([(day, "critical", 1)], now=now).to_dict()["data"][0]["name"] == "critical"


def test_it_colours_trace_graph_nodes_by_verdict(data):
    result = trace(data.predictions[0].inference_id)
    spec = graph.trace_figure(result).to_dict()
    nodes = spec["data"][1]
    assert list(nodes["customdata"]) == [link.kind for link in result.links]
    assert set(nodes["marker"]["color"]) == {graph.OK}
    assert len(spec["layout"]["annotations"]) == 6  # one arrow per edge between present nodes


def test_it_searches_by_inference_id_digest_and_service_window(client, alice, data):
    client.force_login(alice)
    first = data.predictions[0]
    assert client.get("/trace/", {"q": str(first.inference_id)})["Location"] == f"/trace/{first.inference_id}/"
    by_digest = client.get("/trace/", {"q": first.input_digest.upper()}, follow=True)
    assert [p.inference_id for p in by_digest.context["page"].items] == [first.inference_id]
    bad = client.get("/trace/", {"q": "12345"})
    assert bad.status_code == 400 and "malformed inference id" in bad.content.decode()
    assert client.get("/trace/", {"service": "nope"}).status_code == 400
    since = (first.timestamp - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    seen, cursor = [], None
    while True:
        params = {"service": "credit", "since": since, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/trace/", params).context["page"]
        seen += [p.inference_id for p in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    ordered = sorted(data.predictions, key=lambda p: (p.timestamp, p.inference_id), reverse=True)
    assert seen == [p.inference_id for p in ordered]
    assert client.get("/trace/", {"service": "credit", "since": "2026-13-45"}).status_code == 400


def test_it_records_who_viewed_a_trace_and_shows_case_and_proof_areas(client, alice, data):
    client.force_login(alice)
    iid = data.predictions[0].inference_id
    page = client.get(f"/trace/{iid}/").content.decode()
    assert "Every link verified" in page and 'id="inclusion-proof"' in page and "no signed checkpoint yet" in page
    assert 'id="case-form"' in page and f'href="/reports/prediction/{iid}/"' in page
    viewed = AccessRecord.objects.get(action="trace.viewed")  # the access log: a GET writes no evidence
    assert viewed.actor == "alice" and viewed.target == f"prediction:{iid}"
    assert client.get("/trace/not-a-uuid/").status_code == 404
    api = client.get(f"/api/v1/trace/{iid}/").json()
    assert api["ok"] and api["inclusion"]["state"] == "pending"
    assert AccessRecord.objects.filter(action="trace.viewed").count() == 2
    assert not LedgerEntry.objects.filter(kind="trace.viewed").exists()


def test_it_shows_form_errors_next_to_the_fields(client, bob, data):
    client.force_login(bob)
    response = client.post("/builds/new/", {"model": data.model.id, "backend": "onnxruntime", "precision": "fp32",
                                            "shapes": "X=1x6:1x6:8x6\nX=1x6"})
    assert response.status_code == 400
    assert "given twice" in response.context["form"].errors["shapes"][0]
    response = client.post("/builds/new/", {"model": data.model.id, "backend": "onnxruntime", "precision": "fp32",
                                            "shapes": "nope=1x6:1x6:8x6"})
    assert "profile for unknown input 'nope'" in response.context["form"].errors["shapes"][0]
    response = client.post("/builds/new/", {"backend": "onnxruntime", "precision": "fp32",
                                            "onnx_file": SimpleUploadedFile("m.onnx", b"not onnx"), "repo": "r",
                                            "commit": "abc123"})
    assert "not an ONNX model" in response.context["form"].errors["onnx_file"][0]
    response = client.post("/builds/new/", {"backend": "onnxruntime", "precision": "fp32"})
    assert "pick a registered model or upload" in response.context["form"].errors["model"][0]
    assert Build.objects.count() == 1 and ModelSource.objects.count() == 1


def test_it_registers_an_upload_and_queues_its_build_from_the_form(client, bob, two_input_onnx):
    client.force_login(bob)
    response = client.post("/builds/new/", {
        "onnx_file": SimpleUploadedFile("fraud.onnx", two_input_onnx), "name": "fraud", "repo": "https://git.example.com/f",
        "commit": "c" * 40, "backend": "onnxruntime", "precision": "fp32",
        "shapes": "features=1x4:8x4:64x4\ncategory=1:8:64"})
    build = Build.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/builds/{build.id}/"
    assert build.submitter == "bob" and build.model.name == "fraud" and build.commit == "c" * 40
    assert build.profiles["features"]["max"] == [64, 4]
    status = client.get(f"/builds/{build.id}/status.json").json()
    assert status["status"] == build.status and [s["name"] for s in status["stages"]][0] == "queued"
    assert LedgerEntry.objects.filter(kind="build.requested", subject=f"build:{build.id}").exists()


def test_it_deploys_from_the_form_and_draws_the_timeline(client, bob, data):
    client.force_login(bob)
    bad = client.post("/deployments/new/", {"engine": data.engine.id, "service": "bad name!", "environment": "production"})
    assert bad.status_code == 400 and "letters, digits" in bad.context["form"].errors["service"][0]
    ok = client.post("/deployments/new/", {"engine": data.engine.id, "service": "credit", "environment": "staging"})
    assert ok.status_code == 302 and ok["Location"] == "/deployments/credit/"
    assert Deployment.objects.filter(service="credit").count() == 2
    page = client.get("/deployments/credit/")
    lanes = {t["y"][0] for t in page.context["figure"]["data"]}
    assert lanes == {"credit / production", "credit / staging"}


def test_it_pages_builds_and_ledger_entries_with_a_cursor(client, alice, data):
    client.force_login(alice)
    first = client.get("/api/v1/ledger/entries/", {"limit": 3}).json()
    assert [e["index"] for e in first["results"]] == sorted((e["index"] for e in first["results"]), reverse=True)
    second = client.get("/api/v1/ledger/entries/", {"limit": 3, "cursor": first["next_cursor"]}).json()
    assert second["results"][0]["index"] == first["results"][-1]["index"] - 1
    assert client.get("/api/v1/ledger/entries/", {"cursor": "!!"}).status_code == 400
    builds = client.get("/api/v1/builds/", {"status": "succeeded", "precision": "fp32"}).json()
    assert [b["id"] for b in builds["results"]] == [data.build.id] and builds["next_cursor"] is None
    assert client.get("/api/v1/builds/", {"status": "failed"}).json()["results"] == []
    found = client.get("/api/v1/trace/", {"service": "credit", "limit": 2}).json()
    assert len(found["results"]) == 2 and found["next_cursor"]
    assert client.get("/ledger/", {"kind": "build.succeeded"}).context["page"].items[0].kind == "build.succeeded"


def test_it_serves_the_openapi_schema_and_a_docs_page(client, alice):
    client.force_login(alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in ("/api/v1/builds/", "/api/v1/trace/{inference_id}/", "/api/v1/cases/", "/api/v1/alerts/",
                 "/api/v1/ledger/entries/", "/api/v1/notification-rules/"):
        assert path in paths
    assert {p["name"] for p in paths["/api/v1/builds/"]["get"]["parameters"]} >= {"status", "backend", "cursor"}
    docs = client.get("/api/docs/").content.decode()
    assert "/api/v1/cases/{id}/decision/" in docs and "Swagger UI" in docs
    swagger = client.get("/api/docs/swagger/").content.decode()
    assert "drf_spectacular_sidecar" in swagger or "swagger-ui" in swagger


def test_the_pages_find_ledger_entries_through_an_index_on_sqlite(client, alice, data):
    """SQLite uses a partial index only when the query repeats its condition (PostgreSQL
    proves it); a page whose ledger lookups missed the kind or subject index walked the
    whole ledger: 0.3 to 0.9 s a page at 1,000,000 entries before this was found."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite query-planner property; PostgreSQL proves the partial index's condition")
    client.force_login(alice)
    iid = data.predictions[0].inference_id
    scans = []
    for url in (f"/trace/{iid}/", "/", "/ledger/?kind=build.succeeded", "/ledger/?subject=build:1",
                "/api/v1/ledger/entries/?kind=key.registered"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200, url
        with connection.cursor() as cursor:
            for q in queries.captured_queries:
                sql = q["sql"]
                if '"compliance_ledgerentry"' not in sql or not sql.startswith("SELECT") or "%s" in sql:
                    continue
                plan = " | ".join(row[3] for row in cursor.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
                # a walk of the whole table (by rowid or its primary-key index) is what must not happen
                # for a lookup by kind or subject; by index range or LIMITed newest-first pages are fine
                if ('"kind" =' in sql or '"kind" IN' in sql or '"subject" =' in sql or '"subject" IN' in sql) \
                        and "SCAN compliance_ledgerentry" in plan:
                    scans.append((url, sql[:200], plan))
    assert scans == []
