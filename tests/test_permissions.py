"""The access matrix: every page and every API endpoint, for every kind of user:
anonymous (login redirect or 401/403), dave with no role (403), alice the auditor
(reads, opens and notes cases, verifies the ledger), bob the engineer (builds, deploys,
acknowledges), charlie the admin (everything, notification rules, deciding cases),
erin who holds only the reviewer capability (nothing: a reviewer decides only cases
they may read), frank an auditor and reviewer (reads and decides), and a service
token (predicts for its own service and reports provenance, nothing else). Each
route is also tried with the method it does not take (GET of a POST-only route)."""
from __future__ import annotations

import io

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from compliance.investigation.alerts import raise_alert
from compliance.investigation.cases import do_open_case
from compliance.models import NotificationRule
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

R = {"alice", "bob", "charlie"}          # read roles
W = {"bob", "charlie"}                   # engineer and admin
A = {"charlie"}                          # admin
C = R                                    # may open and note cases
D = A | {"frank"}                        # may decide and close cases (reviewer who may read, or admin)
V = {"alice", "charlie", "frank"}        # may start a full ledger verification (auditor or admin)
R = R | {"frank"}
C = C | {"frank"}
H = A | {"frank"}                        # may place and release legal holds (reviewer who may read, or admin)
SVC = "svc"                              # the service token of the world's service

ENDPOINTS = [
    # pages
    ("GET", "/", R), ("GET", "/trace/", R), ("GET", "/trace/?service={service}", R), ("GET", "/trace/{iid}/", R),
    ("GET", "/lineage/", R), ("GET", "/lineage/models/{model}/", R),
    ("GET", "/builds/", R), ("GET", "/builds/new/", W), ("POST", "/builds/new/", W), ("GET", "/builds/{build}/", R),
    ("GET", "/builds/{build}/status.json", R),
    ("GET", "/engines/", R), ("GET", "/engines/{engine}/", R),
    ("GET", "/deployments/", R), ("GET", "/deployments/new/", W), ("POST", "/deployments/new/", W),
    ("GET", "/deployments/{service}/", R),
    ("GET", "/alerts/", R), ("POST", "/alerts/{alert}/acknowledge/", W),
    ("GET", "/ledger/", R), ("GET", "/ledger/{index}/", R), ("POST", "/ledger/verify/", V),
    ("GET", "/cases/", R), ("POST", "/cases/open/", C), ("GET", "/cases/{case}/", R), ("POST", "/cases/{case}/note/", C),
    ("POST", "/cases/{case}/decide/", D), ("POST", "/cases/{case}/close/", D),
    ("POST", "/cases/{case}/hold/", H), ("POST", "/cases/{case}/hold/release/", H),
    ("GET", "/settings/notifications/", A), ("GET", "/settings/notifications/new/", A),
    ("POST", "/settings/notifications/new/", A), ("GET", "/settings/notifications/{rule}/", A),
    ("POST", "/settings/notifications/{rule}/", A),
    ("GET", "/metrics", R), ("GET", "/api/docs/", R), ("GET", "/api/schema/", R), ("GET", "/api/docs/swagger/", R),
    ("GET", "/api/docs/redoc/", R),
    # API
    ("GET", "/api/v1/overview/", R), ("GET", "/api/v1/models/", R), ("POST", "/api/v1/models/", W),
    ("GET", "/api/v1/models/{model}/", R), ("GET", "/api/v1/lineage/{model}/", R),
    ("GET", "/api/v1/builds/", R), ("POST", "/api/v1/builds/", W), ("GET", "/api/v1/builds/{build}/", R),
    ("GET", "/api/v1/models/{model}/calibrations/", R), ("POST", "/api/v1/models/{model}/calibrations/", W),
    ("GET", "/api/v1/engines/", R), ("GET", "/api/v1/engines/{engine}/", R), ("GET", "/api/v1/loads/", R),
    ("GET", "/api/v1/deployments/", R), ("POST", "/api/v1/deployments/", W),
    ("POST", "/api/v1/services/{service}/predict/", W | {SVC}), ("POST", "/api/v1/services/other/predict/", W),
    ("GET", "/api/v1/trace/?service={service}", R), ("GET", "/api/v1/trace/{iid}/", R),
    ("GET", "/api/v1/alerts/", R), ("POST", "/api/v1/alerts/{alert}/acknowledge/", W),
    ("GET", "/api/v1/ledger/entries/", R), ("GET", "/api/v1/ledger/entries/{index}/", R),
    ("GET", "/api/v1/ledger/verify/", R), ("POST", "/api/v1/ledger/verify/", V),
    ("GET", "/api/v1/ledger/verify/{vreq}/", R),
    ("GET", "/api/v1/ledger/verification/", R), ("GET", "/api/v1/ledger/checkpoint/", R),
    ("GET", "/api/v1/ledger/proof/inclusion/?index={index}", R), ("GET", "/api/v1/ledger/proof/consistency/?old=1&new=2", R),
    ("GET", "/api/v1/ledger/keys/", R), ("GET", "/api/v1/ledger/witnesses/", R),
    # witnesses elsewhere post what they signed; the signature authenticates it, any reader's token carries it
    ("POST", "/api/v1/ledger/witness/cosignatures/", R), ("POST", "/api/v1/ledger/witness/alarms/", R),
    # reports (GET shows the export form; the exports themselves are tested in tests/compliance/test_reports.py)
    ("GET", "/reports/prediction/{iid}/", R), ("GET", "/reports/case/{case}/", R), ("GET", "/reports/service/", R),
    ("GET", "/api/v1/cases/", R), ("POST", "/api/v1/cases/", C), ("GET", "/api/v1/cases/{case}/", R),
    ("POST", "/api/v1/cases/{case}/notes/", C), ("POST", "/api/v1/cases/{case}/decision/", D),
    ("POST", "/api/v1/cases/{case}/close/", D),
    ("POST", "/api/v1/cases/{case}/hold/", H), ("POST", "/api/v1/cases/{case}/hold/release/", H),
    ("GET", "/api/v1/notification-rules/", A), ("POST", "/api/v1/notification-rules/", A),
    ("GET", "/api/v1/notification-rules/{rule}/", A), ("PUT", "/api/v1/notification-rules/{rule}/", A),
    ("GET", "/api/v1/keys/", R),
    ("GET", "/api/v1/predictions/", R), ("GET", "/api/v1/services/{service}/engine-at/?t=2026-01-01T00:00:00Z", R),
    # machine ingestion: only `service` identities (tokens), none of the people
    ("POST", "/api/v1/ingest/predictions/", {SVC}), ("POST", "/api/v1/ingest/engine-loads/", {SVC}),
    # last: they remove what the routes above use
    ("POST", "/api/v1/builds/{build}/cancel/", W), ("POST", "/api/v1/predictions/{iid}/erase-salt/", A),
    ("POST", "/trace/{iid}/erase-salt/", A),
    ("POST", "/settings/notifications/{rule}/delete/", A), ("DELETE", "/api/v1/notification-rules/{rule2}/", A),
]

BODIES = {
    "/cases/open/": {"inference_id": "{iid}", "kind": "internal_review", "summary": "checking"},
    "/cases/{case}/note/": {"text": "looked at the engine"},
    "/cases/{case}/decide/": {"outcome": "upheld", "reason": "the model applied the policy"},
    "/alerts/{alert}/acknowledge/": {"note": "checked"},
    "/api/v1/alerts/{alert}/acknowledge/": {"note": "checked"},
    "/api/v1/cases/": {"inference_id": "{iid}", "kind": "gdpr_art22", "summary": "contested"},
    "/api/v1/cases/{case}/notes/": {"text": "a note"},
    "/api/v1/cases/{case}/decision/": {"outcome": "overturned", "reason": "income was misread"},
    "/cases/{case}/hold/": {"reason": "litigation"}, "/cases/{case}/hold/release/": {"reason": "settled"},
    "/api/v1/cases/{case}/hold/": {"reason": "litigation"}, "/api/v1/cases/{case}/hold/release/": {"reason": "settled"},
}


@pytest.fixture
def world(credit_onnx):
    data = seed(credit_onnx, predictions=2)
    alert = raise_alert("build.failed", "build 99 failed: test", subject="build:99")
    case = do_open_case(data.predictions[0], kind="internal_review", summary="review", acting_user="alice")
    rule = NotificationRule.objects.create(name="oncall", kind_pattern="*", emails="oncall@example.com", created_by="t")
    from compliance.models import VerificationRequest

    vreq = VerificationRequest.objects.create(requested_by="charlie", slot=None)
    rule2 = NotificationRule.objects.create(name="hook", kind_pattern="engine.*", webhook_url="http://127.0.0.1:9/x",
                                            created_by="t")
    return {"iid": str(data.predictions[0].inference_id), "service": data.deployment.service, "model": data.model.id,
            "build": data.build.id, "engine": data.engine.id, "alert": alert.id, "case": case.id, "rule": rule.id,
            "rule2": rule2.id, "index": 1, "vreq": vreq.id}


def _request(client, method, url, values):
    path = url.format(**values)
    template = BODIES.get(url, {})
    body = {k: v.format(**values) for k, v in template.items()}
    if path.startswith("/api/"):
        return getattr(client, method.lower())(path, body, content_type="application/json")
    return getattr(client, method.lower())(path, body) if method == "POST" else client.get(path)


def _routes(resolver=None, prefix=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if not route.startswith("admin/"):
                yield from _routes(pattern, route)
        elif isinstance(pattern, URLPattern) and route not in ("login/", "logout/"):
            yield route


def test_it_covers_every_route():
    import re

    covered = {re.sub(r"\{[a-z0-9]+\}", "X", url.split("?")[0].lstrip("/")) for _, url, _ in ENDPOINTS}
    routes = {re.sub(r"<[^>]+>", "X", route) for route in _routes()}
    assert routes - covered == set()


def _client(who, request, world):
    from django.contrib.auth.models import Group
    from django.test import Client

    from compliance.api import tokens
    from tests.conftest import make_user

    client = Client()
    if who == SVC:
        from django.core.management import call_command

        call_command("create_service_token", world["service"], "--json", stdout=io.StringIO())
        from compliance.models import ApiToken

        user = ApiToken.objects.get(service=world["service"]).user
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {tokens.issue(user, service=world['service'])[1]}"
    elif who == "erin":
        client.force_login(make_user("erin", "reviewer"))
    elif who == "frank":
        frank = make_user("frank", "auditor")
        frank.groups.add(Group.objects.get(name="reviewer"))
        client.force_login(frank)
    elif who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    return client


API_LIKE = ("/api/v1/", "/api/schema/", "/api/docs/swagger/", "/api/docs/redoc/", "/metrics")


@pytest.mark.parametrize("who", ["anonymous", "dave", "alice", "bob", "charlie", "erin", "frank", SVC])
def test_it_enforces_roles_on_every_view_and_endpoint(world, who, request):
    client = _client(who, request, world)
    failures = []
    for method, url, allowed in ENDPOINTS:
        response = _request(client, method, url, world)
        code = response.status_code
        if who in allowed:
            ok = code not in (401, 403, 405) and not (code == 302 and "/login/" in response.get("Location", ""))
        elif who == "anonymous" or (who == SVC and not url.startswith(API_LIKE[:4])):
            ok = (code in (401, 403) if url.startswith(API_LIKE) else
                  code == 302 and response["Location"].startswith("/login/"))
        elif url.startswith("/api/v1/ingest/") and who != SVC:
            ok = code == 401  # token-only endpoints: a browser session is no credential there
        else:
            ok = code == 403
        if not ok:
            failures.append(f"{method} {url}: {code}")
    assert failures == []


def test_a_get_of_a_write_route_writes_nothing(world, charlie, client):
    """Writes come from POST (with CSRF): a GET of each route that takes POST, even from
    the admin, changes no ledger entry and no row."""
    from compliance.models import AccessRecord, Alert, LedgerEntry

    client.force_login(charlie)
    readable = {url for method, url, _ in ENDPOINTS if method == "GET"}
    entries, alerts, accesses = LedgerEntry.objects.count(), Alert.objects.count(), AccessRecord.objects.count()
    failures = []
    for method, url, _ in ENDPOINTS:
        if method != "POST" or url in readable:
            continue
        code = client.get(url.format(**world)).status_code
        if code not in (401, 403, 404, 405):
            failures.append(f"GET {url}: {code}")
    assert failures == []
    assert (LedgerEntry.objects.count(), Alert.objects.count(), AccessRecord.objects.count()) == (entries, alerts,
                                                                                                   accesses)
