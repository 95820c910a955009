"""No input yields a 5xx (issue 22, finding 3): cursors that decode to the wrong type,
integers past 64 bits, forged `after=` cursors, lone UTF-16 surrogates and NUL bytes
in JSON bodies, forms, query strings and paths.  Each answers 4xx with one sentence."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
from django.test import Client

from compliance.investigation.cases import do_open_case
from compliance.models import Case, CaseNote
from lineage.models import EngineLoad
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

HUGE = "99999999999999999999999"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def world(credit_onnx):
    data = seed(credit_onnx, predictions=3, service="credit-scoring")
    case = do_open_case(data.predictions[0], kind=Case.INTERNAL_REVIEW, summary="review", acting_user="alice")
    return data, case


@pytest.fixture
def reader(world, charlie):
    client = Client(raise_request_exception=False)
    client.force_login(charlie)
    return client


@pytest.mark.parametrize("url", [
    "/api/v1/alerts/?cursor=WyJhYmMiXQ", "/alerts/?cursor=WyJhYmMiXQ", "/api/v1/ledger/entries/?cursor=WyJhYmMiXQ",
    "/ledger/?cursor=WyJhYmMiXQ", "/trace/?service=credit-scoring&cursor=W3sieCI6IDF9LCAieSJd",
    "/api/v1/trace/?service=credit-scoring&cursor=W3sieCI6IDF9LCAieSJd",
    f"/api/v1/alerts/?cursor={b64(json.dumps([int(HUGE)]))}", f"/api/v1/cases/?cursor={b64(json.dumps([None]))}",
])
def test_it_refuses_a_cursor_of_the_wrong_type_with_a_4xx(reader, url):
    response = reader.get(url)
    assert response.status_code in (200, 400), response.content[:300]
    if url.startswith("/api/"):
        assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_it_signs_cursors_so_a_forged_but_well_typed_one_is_refused(reader, world):
    first = reader.get("/api/v1/ledger/entries/?limit=2").json()
    assert first["next_cursor"]
    assert reader.get(f"/api/v1/ledger/entries/?limit=2&cursor={first['next_cursor']}").status_code == 200
    forged = reader.get(f"/api/v1/ledger/entries/?limit=2&cursor={b64(json.dumps([1]))}")
    assert forged.status_code == 400 and "cursor" in forged.json()["error"]


@pytest.mark.parametrize("url", [
    f"/api/v1/predictions/?deployment={HUGE}", f"/api/v1/loads/?engine={HUGE}", f"/api/v1/builds/?model={HUGE}",
    f"/api/v1/predictions/?deployment=-{HUGE}", f"/api/v1/predictions/?limit={HUGE}",
    f"/api/v1/ledger/proof/inclusion/?index={HUGE[:20]}",
])
def test_it_bounds_integer_filters_to_the_database_range(reader, url):
    response = reader.get(url)
    assert response.status_code == 400, response.content[:300]
    assert "64-bit" in response.json()["error"] or "between" in response.json()["error"]


@pytest.mark.parametrize("url", [f"/builds/?model={HUGE}", f"/builds/{HUGE}/", f"/engines/{HUGE}/",
                                 f"/cases/{HUGE}/", f"/ledger/{HUGE}/", f"/api/v1/cases/{HUGE}/",
                                 f"/api/v1/builds/{HUGE}/", f"/api/v1/lineage/{HUGE}/"])
def test_it_answers_an_id_past_64_bits_with_a_4xx(reader, url):
    assert reader.get(url).status_code in (400, 404)


@pytest.mark.parametrize("after", [b64(f"{'9' * 30}:{uuid.uuid4()}"), b64(f"-{'9' * 30}:{uuid.uuid4()}"),
                                   b64("1:not-a-uuid"), "%%%"])
def test_it_refuses_a_forged_after_cursor(reader, after):
    response = reader.get("/api/v1/predictions/", {"after": after})
    assert response.status_code == 400 and "after" in response.json()["error"]


def test_it_follows_the_signed_after_cursor(reader, world):
    first = reader.get("/api/v1/predictions/", {"limit": 2}).json()
    second = reader.get("/api/v1/predictions/", {"limit": 2, "after": first["next"]})
    assert second.status_code == 200 and len(second.json()["results"]) == 1


@pytest.mark.parametrize("text", ["\ud800", "ok \udfff then", "nul \x00 byte"])
def test_it_refuses_lone_surrogates_and_nul_in_json_bodies(reader, world, text):
    data, case = world
    body = json.dumps({"inference_id": str(data.predictions[1].inference_id), "kind": "gdpr_art22", "summary": text})
    opened = reader.post("/api/v1/cases/", body, content_type="application/json")
    assert opened.status_code == 400 and "surrogate" in opened.json()["error"] or "NUL" in opened.json()["error"]
    note = reader.post(f"/api/v1/cases/{case.id}/notes/", json.dumps({"text": text}), content_type="application/json")
    assert note.status_code == 400
    assert Case.objects.count() == 1 and not CaseNote.objects.exists()


def test_it_refuses_a_lone_surrogate_in_an_engine_load_report(client, world):
    from tests.inference.test_ingest_api import service_token

    data, _ = world
    token = service_token("credit-scoring")
    body = json.dumps({"attempt_id": str(uuid.uuid4()), "service": "credit-scoring", "verdict": "unsigned",
                       "detail": "bad \ud83d engine"})
    response = client.post("/api/v1/ingest/engine-loads/", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 400 and "surrogate" in response.json()["error"]
    assert not EngineLoad.objects.filter(service="credit-scoring").exclude(verdict="verified").exists()


def test_it_keeps_a_legitimate_surrogate_pair_and_escaped_backslash_u(reader, world):
    _, case = world
    text = "emoji \U0001f600 and a literal \\ud800"
    response = reader.post(f"/api/v1/cases/{case.id}/notes/", json.dumps({"text": text}),
                           content_type="application/json")
    assert response.status_code == 201 and CaseNote.objects.get().text == text


@pytest.mark.parametrize("url", ["/trace/?service=%00", "/api/v1/deployments/?service=a%00b", "/deployments/x%00y/",
                                 "/api/v1/alerts/?kind=%ED%A0%80%00", "/ledger/?subject=%00"])
def test_it_refuses_nul_bytes_in_query_values_and_paths(reader, url):
    response = reader.get(url)
    assert response.status_code == 400 and b"NUL" in response.content


def test_it_refuses_nul_bytes_in_form_posts(reader, world):
    _, case = world
    response = reader.post(f"/cases/{case.id}/note/", {"text": "a\x00b"})
    assert response.status_code == 400 and not CaseNote.objects.exists()


def test_it_turns_debug_off_unless_asked(monkeypatch):
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'compliance.project.settings'); " \
           "from django.conf import settings; print(settings.DEBUG)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "DEBUG"}
    off = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    on = subprocess.run([sys.executable, "-c", code], env=env | {"DEBUG": "1"}, cwd=ROOT, capture_output=True, text=True)
    assert off.stdout.strip() == "False", off.stderr[-500:]
    assert on.stdout.strip() == "True", on.stderr[-500:]
