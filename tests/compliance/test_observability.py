"""Production log lines: one JSON object each, with the request id and the user, for
requests, sign-ins and audit events (which stay in the ledger too)."""
from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings

from compliance.models import LedgerEntry
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def json_lines():
    """The production formatter and filter (settings.LOGGING's "json" and "context") on
    the root logger, writing to a buffer."""
    config = django_settings.LOGGING
    formatter_config = dict(config["formatters"]["json"])
    factory = formatter_config.pop("()")
    from django.utils.module_loading import import_string

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(import_string(factory)(**formatter_config))
    handler.addFilter(import_string(config["filters"]["context"]["()"])())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_it_logs_each_request_as_json_with_its_id_and_user(client, alice, json_lines):
    client.force_login(alice)
    response = client.get("/ledger/")
    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    [line] = [x for x in json_lines() if x["logger"] == "traceledger.request"]
    assert line["request_id"] == request_id and line["user"] == "alice"
    assert line["path"] == "/ledger/" and line["status"] == 200 and line["view"] == "ledger-list"
    assert line["level"] == "INFO" and "time" in line


def test_it_keeps_a_sane_request_id_from_the_front_server_and_replaces_a_bad_one(client, json_lines):
    assert client.get("/login/", HTTP_X_REQUEST_ID="lb-7f3a9c21").get("X-Request-ID") == "lb-7f3a9c21"
    replaced = client.get("/login/", HTTP_X_REQUEST_ID="x\" injected=1").get("X-Request-ID")
    assert replaced != "x\" injected=1" and len(replaced) == 32
    assert [x["user"] for x in json_lines() if x["logger"] == "traceledger.request"] == ["-", "-"]


def test_it_logs_sign_ins_and_refusals(client, alice, json_lines):
    client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    security = [x for x in json_lines() if x["logger"] == "traceledger.security"]
    assert [(x["event"], x["user"]) for x in security] == [("login_failed", "-"), ("login", "alice")]
    assert security[0]["username"] == "alice" and "password" not in json.dumps(security)


def test_audit_events_go_to_the_ledger_and_to_the_log_with_the_request(client, alice, json_lines, eager,
                                                                        django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/ledger/verify/")
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(kind="ledger.verified")
    [line] = [x for x in json_lines() if x["logger"] == "traceledger.audit"]
    assert line["event_kind"] == "ledger.verified" and line["ledger_index"] == entry.index
    assert line["actor"] == json.loads(entry.body)["actor"] == "alice"
    assert line["request_id"] == response["X-Request-ID"] and line["user"] == "alice"
