"""Alert notifications: e-mail through Django's mail backend and a webhook whose body
is signed with Ed25519, received here by a real HTTP server on a local port."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail

from compliance.investigation.alerts import raise_alert
from compliance.investigation.notify import deliver, verify_webhook
from compliance.ledger import keys
from compliance.models import LedgerEntry, NotificationDelivery, NotificationRule

pytestmark = [pytest.mark.embedded]


class Receiver:
    """A local HTTP server that keeps every POST it gets."""

    def __init__(self, status: int = 204):
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def loopback_receivers(monkeypatch, settings):
    """The receivers here listen on 127.0.0.1, which webhooks refuse unless allowed
    (tests/compliance/test_webhooks.py checks the refusal); the worker process reads
    the same allowance from its environment."""
    monkeypatch.setenv("TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    settings.TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def webhook_key():
    signer = keys.get_signer("webhook")
    return signer.public_key, signer.key_id


@pytest.mark.django_db
def test_it_posts_a_signed_webhook_that_verifies_with_the_public_key():
    with Receiver() as receiver:
        NotificationRule.objects.create(name="sec", kind_pattern="engine.*", min_severity="critical",
                                        webhook_url=receiver.url, created_by="charlie")
        alert = raise_alert("engine.load_refused", "refused to load credit: digest_mismatch", severity="critical",
                            subject="service:credit", details={"verdict": "digest_mismatch"})
        made = deliver(alert.id)
    assert [(d.channel, d.ok) for d in made] == [("webhook", True)]
    (headers, body), = receiver.requests
    public_key, key_id = webhook_key()
    assert verify_webhook(body, headers, public_key, key_id)
    payload = json.loads(body)
    assert payload["alert"]["kind"] == "engine.load_refused" and payload["alert"]["details"]["verdict"] == "digest_mismatch"
    # a body changed in transit, or signed by another key, does not verify
    assert not verify_webhook(body.replace(b"credit", b"fraud"), headers, public_key, key_id)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert not verify_webhook(body, headers, Ed25519PrivateKey.generate().public_key(), key_id)
    assert deliver(alert.id) == []  # a redelivered task sends nothing twice


@pytest.mark.django_db
def test_it_e_mails_matching_rules_only_and_records_failures():
    NotificationRule.objects.create(name="builds", kind_pattern="build.*", emails="ml-oncall@example.com\nlead@example.com",
                                    created_by="charlie")
    NotificationRule.objects.create(name="critical only", kind_pattern="*", min_severity="critical",
                                    emails="ciso@example.com", webhook_url="http://127.0.0.1:9/closed", created_by="charlie")
    alert = raise_alert("build.failed", "build 7 failed: bad shapes", severity="warning", subject="build:7")
    deliver(alert.id)
    assert sorted(m.to[0] for m in mail.outbox) == ["lead@example.com", "ml-oncall@example.com"]
    assert "[TraceLedger warning] build.failed" in mail.outbox[0].subject
    critical = raise_alert("engine.load_refused", "refused", severity="critical")
    made = deliver(critical.id)
    assert {(d.channel, d.ok) for d in made} == {("email", True), ("webhook", False)}
    assert NotificationDelivery.objects.filter(ok=False, channel="webhook").get().detail


@pytest.mark.django_db(transaction=True)
def test_it_delivers_after_commit_from_the_worker_without_blocking_the_alert(worker):
    with Receiver() as receiver:
        NotificationRule.objects.create(name="all", kind_pattern="*", webhook_url=receiver.url, created_by="charlie")
        started = time.monotonic()
        alert = raise_alert("ledger.verification_failed", "entry #3 altered", severity="critical", subject="ledger")
        raised_in = time.monotonic() - started
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
    assert receiver.requests, "the webhook was never called"
    headers, body = receiver.requests[0]
    public_key, key_id = webhook_key()
    assert verify_webhook(body, headers, public_key, key_id)
    assert json.loads(body)["alert"]["id"] == alert.id
    if worker:  # with a real worker the raise returns before delivery
        assert raised_in < 2
    assert LedgerEntry.objects.filter(kind="alert.raised").count() == 1


def test_it_lets_only_admins_manage_rules_and_records_changes(client, bob, charlie):
    client.force_login(bob)
    assert client.get("/settings/notifications/").status_code == 403
    client.force_login(charlie)
    bad = client.post("/settings/notifications/new/", {"name": "x", "kind_pattern": "engine.*", "min_severity": "info",
                                                       "emails": "not an address", "enabled": "on"})
    assert bad.status_code == 400 and "is not an e-mail address" in bad.content.decode()
    nothing = client.post("/settings/notifications/new/", {"name": "x", "kind_pattern": "*", "min_severity": "info"})
    assert "at least one e-mail address or a webhook" in nothing.content.decode()
    ok = client.post("/settings/notifications/new/", {"name": "security", "kind_pattern": "engine.*",
                                                      "min_severity": "critical", "emails": "sec@example.com",
                                                      "enabled": "on"})
    assert ok.status_code == 302
    rule = NotificationRule.objects.get()
    assert rule.created_by == "charlie" and rule.email_list == ["sec@example.com"]
    entry = LedgerEntry.objects.get(kind="notification_rule.changed")
    assert json.loads(entry.body)["actor"] == "charlie"
    page = client.get("/settings/notifications/").content.decode()
    assert keys.get_signer("webhook").key_id in page


test_it_lets_only_admins_manage_rules_and_records_changes = pytest.mark.django_db(
    test_it_lets_only_admins_manage_rules_and_records_changes)
