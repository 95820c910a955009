"""Webhooks cannot be aimed at our own network: loopback, private, link-local
(metadata), multicast and reserved targets are refused when a rule is saved and again
at delivery (against DNS rebinding); redirects are not followed; a slow receiver
times out."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compliance.investigation import webhooks
from compliance.investigation.alerts import raise_alert
from compliance.investigation.notify import deliver
from compliance.models import LedgerEntry, NotificationDelivery, NotificationRule

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

HOSTILE = ["http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://localhost/",
           "http://app.localhost/", "http://10.0.0.7/hook", "http://192.168.1.1/", "http://172.16.0.1/",
           "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://224.0.0.1/", "http://100.64.0.1/",
           "http://[fe80::1]/", "http://[fd00:ec2::254]/", "http://2130706433/", "http://0x7f.1/",
           "http://user:pw@127.0.0.1/", "ftp://files.example/", "gopher://127.0.0.1:6379/_INFO",
           "http://nonexistent.invalid/", "http://127.0.0.1:99999/", "http://[::1/"]


class Receiver:
    def __init__(self, status=204, location="", delay=0.0):
        self.hits = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits.append(self.path)
                time.sleep(delay)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("url", HOSTILE)
def test_it_refuses_to_store_a_rule_aimed_at_our_own_network(client, charlie, url):
    client.force_login(charlie)
    entries = LedgerEntry.objects.count()
    page = client.post("/settings/notifications/new/", {"name": "x", "kind_pattern": "*", "min_severity": "info",
                                                        "webhook_url": url, "enabled": "on"})
    assert page.status_code == 400
    api = client.post("/api/v1/notification-rules/", {"name": "x", "kind_pattern": "*", "min_severity": "info",
                                                      "webhook_url": url},
                      content_type="application/json")
    assert api.status_code == 400 and "webhook_url" in api.json()["error"]
    assert "\n" not in api.json()["error"]
    assert NotificationRule.objects.count() == 0 and LedgerEntry.objects.count() == entries


def test_it_refuses_at_delivery_a_rule_that_points_inside_anyway(settings):
    receiver = Receiver()
    try:
        NotificationRule.objects.create(name="old", kind_pattern="*", webhook_url=receiver.url, created_by="t")
        made = deliver(raise_alert("build.failed", "x").id)
    finally:
        receiver.close()
    assert receiver.hits == []
    (delivery,) = made
    assert not delivery.ok and delivery.detail.startswith("refused: the webhook host 127.0.0.1 resolves to 127.0.0.1")


def test_a_name_that_rebinds_to_loopback_after_the_check_gets_nothing(monkeypatch, settings):
    receiver = Receiver()
    answers = iter(["93.184.216.34", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "hooks.example.com":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://hooks.example.com:{receiver.server.server_port}/hook"
    try:
        assert webhooks.check_url(url) == ["93.184.216.34"]  # saved: looked public then
        ok, detail = webhooks.post(url, b"{}", {})
    finally:
        receiver.close()
    assert not ok and "resolves to 127.0.0.1" in detail and receiver.hits == []


def test_it_does_not_follow_redirects(settings):
    settings.TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    inner = Receiver()
    outer = Receiver(status=307, location=inner.url)
    try:
        ok, detail = webhooks.post(outer.url, json.dumps({"a": 1}).encode(), {})
    finally:
        outer.close()
        inner.close()
    assert (ok, detail) == (False, "HTTP 307: redirects are not followed")
    assert outer.hits == ["/hook"] and inner.hits == []


def test_a_slow_receiver_times_out(settings):
    settings.TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.TRACELEDGER_WEBHOOK_TIMEOUT_S = 1
    slow = Receiver(delay=3)
    started = time.monotonic()
    try:
        ok, detail = webhooks.post(slow.url, b"{}", {})
    finally:
        elapsed = time.monotonic() - started
        slow.close()
    assert not ok and "timed out" in detail and elapsed < 2.5


def test_an_allowed_network_is_the_only_exception(settings):
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_url("http://10.1.2.3/hook")
    settings.TRACELEDGER_WEBHOOK_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    assert webhooks.check_url("http://10.1.2.3/hook") == ["10.1.2.3"]
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_url("http://10.2.0.1/hook")
    assert NotificationDelivery.objects.count() == 0
