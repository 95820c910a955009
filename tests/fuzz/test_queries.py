"""No crafted query yields a 5xx (issue 22): every list and detail endpoint and page,
with cursors of any shape, integers past 64 bits, lone surrogates and NUL bytes in query
values, path segments and JSON bodies.  Property-based (hypothesis); about a minute."""
from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.investigation.alerts import raise_alert
from compliance.investigation.cases import do_open_case
from compliance.lib.ids import DB_INT_MAX, DB_INT_MIN
from tests.dashboard_data import seed
from tests.fuzz.query_strategies import (
    QUERIES,
    any_text,
    cursors,
    ids,
    int_like,
    json_values,
    overflowing_ints,
    path_segment,
    poisoned_text,
    query_value,
)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

API_LISTS = ["/api/v1/models/", "/api/v1/builds/", "/api/v1/engines/", "/api/v1/loads/", "/api/v1/deployments/",
             "/api/v1/trace/?service={service}", "/api/v1/alerts/", "/api/v1/ledger/entries/", "/api/v1/cases/",
             "/api/v1/models/{model}/calibrations/"]
PAGE_LISTS = ["/alerts/", "/ledger/", "/cases/", "/builds/", "/engines/{engine}/", "/deployments/{service}/",
              "/trace/?service={service}"]
OTHERS = ["/", "/api/v1/notification-rules/", "/trace/", "/lineage/", "/engines/", "/deployments/", "/reports/service/", "/metrics", "/api/v1/keys/",
          "/api/v1/overview/", "/api/v1/predictions/", "/api/v1/ledger/proof/inclusion/",
          "/api/v1/ledger/proof/consistency/", "/api/v1/ledger/checkpoint/", "/api/v1/ledger/keys/",
          "/api/v1/ledger/verification/", "/api/v1/services/{service}/engine-at/", "/api/v1/ledger/verify/"]
PARAMS = ["cursor", "limit", "after", "deployment", "engine", "model", "service", "kind", "subject", "since", "until",
          "input_digest", "digest", "index", "old", "new", "t", "status", "severity", "acknowledged", "q", "environment",
          "purpose", "verdict", "refused", "live", "submitter", "backend", "precision", "size"]
INT_FILTERS = [("/api/v1/predictions/", "deployment"), ("/api/v1/predictions/", "limit"), ("/api/v1/loads/", "engine"),
               ("/api/v1/builds/", "model"), ("/api/v1/alerts/", "limit"), ("/api/v1/ledger/proof/inclusion/", "index"),
               ("/api/v1/ledger/proof/consistency/", "old"), ("/builds/", "model"), ("/ledger/", "limit")]
DETAILS = ["/api/v1/models/{x}/", "/api/v1/engines/{x}/", "/api/v1/trace/{x}/", "/trace/{x}/", "/deployments/{x}/",
           "/api/v1/services/{x}/engine-at/?t=2026-01-01T00:00:00Z", "/reports/prediction/{x}/", "/builds/{x}/",
           "/engines/{x}/", "/cases/{x}/", "/ledger/{x}/", "/api/v1/builds/{x}/", "/api/v1/cases/{x}/",
           "/api/v1/ledger/entries/{x}/", "/api/v1/lineage/{x}/", "/lineage/models/{x}/", "/builds/{x}/status.json",
           "/reports/case/{x}/", "/api/v1/models/{x}/calibrations/"]
WRITES = [("/api/v1/cases/", ["summary", "kind", "inference_id"]), ("/api/v1/cases/{case}/notes/", ["text"]),
          ("/api/v1/cases/{case}/hold/", ["reason"]), ("/api/v1/alerts/{alert}/acknowledge/", ["note"]),
          ("/api/v1/deployments/", ["service", "environment", "engine"]), ("/api/v1/builds/", ["model", "commit"]),
          ("/api/v1/notification-rules/", ["name", "kind_pattern", "webhook_url"]),
          ("/api/v1/predictions/{iid}/erase-salt/", ["reference"])]


@pytest.fixture
def world(credit_onnx):
    data = seed(credit_onnx, predictions=3)
    alert = raise_alert("build.failed", "build 99 failed: fuzz", subject="build:99")
    case = do_open_case(data.predictions[0], kind="internal_review", summary="fuzz", acting_user="charlie")
    return {"service": data.deployment.service, "model": data.model.id, "engine": data.engine.id,
            "iid": str(data.predictions[0].inference_id), "case": case.id, "alert": alert.id}


@pytest.fixture
def admin(world, charlie):
    client = Client(raise_request_exception=False)
    client.force_login(charlie)
    return client


def _get(client, url: str, params: dict):
    query = "&".join(f"{k}={query_value(v)}" for k, v in params.items())
    return client.get(f"{url}{'&' if '?' in url else '?'}{query}" if query else url)


@settings(QUERIES)
@given(url=st.sampled_from(API_LISTS + PAGE_LISTS + OTHERS),
       params=st.dictionaries(st.sampled_from(PARAMS), st.one_of(cursors, int_like, any_text), max_size=4))
def test_it_answers_every_list_and_page_with_crafted_queries_without_a_server_error(admin, world, url, params):
    response = _get(admin, url.format(**world), params)
    assert response.status_code < 500, (url, params, response.content[:300])


@settings(QUERIES)
@given(url=st.sampled_from(API_LISTS + PAGE_LISTS), cursor=cursors.filter(bool))
def test_it_refuses_every_forged_cursor(admin, world, url, cursor):
    response = _get(admin, url.format(**world), {"cursor": cursor})
    if url.startswith("/api/"):
        assert response.status_code == 400 and "cursor" in response.json()["error"], (url, cursor)
    else:
        assert response.status_code in (200, 400), (url, cursor)


@settings(QUERIES)
@given(after=cursors.filter(bool))
def test_it_refuses_every_forged_after_cursor(admin, world, after):
    response = _get(admin, "/api/v1/predictions/", {"after": after})
    assert response.status_code == 400 and "after" in response.json()["error"]


@settings(QUERIES)
@given(target=st.sampled_from(INT_FILTERS), value=overflowing_ints)
def test_it_bounds_every_integer_filter_to_64_bits(admin, world, target, value):
    url, name = target
    response = _get(admin, url, {name: value})
    assert response.status_code < 500, (url, name, value)  # a page shows the message with the first page
    if url.startswith("/api/") and not DB_INT_MIN <= int(value) <= DB_INT_MAX:
        assert response.status_code == 400, (url, name, value, response.status_code)


@settings(QUERIES)
@given(url=st.sampled_from(DETAILS), segment=st.one_of(ids, any_text.filter(lambda t: "/" not in t and t not in ("", ".", ".."))))
def test_it_answers_every_detail_with_a_crafted_id_without_a_server_error(admin, world, url, segment):
    response = admin.get(url.format(x=path_segment(segment)))
    assert response.status_code < 500, (url, segment, response.content[:300])


@settings(QUERIES)
@given(write=st.sampled_from(WRITES), poisoned=poisoned_text, extra=json_values)
def test_it_refuses_lone_surrogates_and_nul_in_every_json_write(admin, world, write, poisoned, extra):
    url, fields = write
    body = {field: poisoned if i == 0 else extra for i, field in enumerate(fields)}
    response = admin.post(url.format(**world), json.dumps(body), content_type="application/json")
    assert response.status_code == 400, (url, body, response.status_code)


@settings(QUERIES)
@given(body=json_values, url=st.sampled_from([w[0] for w in WRITES]))
def test_it_answers_every_json_write_of_any_shape_without_a_server_error(admin, world, body, url):
    response = admin.post(url.format(**world).replace("{iid}", str(uuid.uuid4())), json.dumps(body),
                          content_type="application/json")
    assert response.status_code < 500, (url, body, response.content[:300])
