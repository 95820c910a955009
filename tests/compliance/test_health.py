"""/healthz and /readyz: unauthenticated, answered before host checks and the HTTPS
redirect, and saying only which check failed, never why."""
from __future__ import annotations

import json

import pytest
from django.db import connection

from compliance.ledger import keys
from compliance.web import health

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def production_like(settings, tmp_path):
    """As behind a load balancer: HTTPS enforced, one public host name, keys mounted."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["traceledger.example.com"]
    settings.TRACELEDGER_KEYS_DIR = tmp_path / "keys"
    settings.TRACELEDGER_STORE_DIR = tmp_path / "store"
    (tmp_path / "store").mkdir()
    settings.TRACELEDGER_READY_KEYS = ["ledger"]
    keys.init("ledger")
    health._migrations_applied = False
    yield tmp_path
    health._migrations_applied = False


def probe(client, path, **headers):
    response = client.get(path, HTTP_HOST="10.0.3.7:8000", **headers)  # a probe comes by IP, over HTTP
    return response, json.loads(response.content)


def test_it_answers_liveness_to_anyone_by_ip_over_http(client, production_like):
    response, body = probe(client, "/healthz")
    assert response.status_code == 200 and body == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert client.post("/healthz", HTTP_HOST="10.0.3.7").status_code == 405


def test_it_is_ready_when_every_check_passes(client, production_like, settings):
    response, body = probe(client, "/readyz")
    expected = {"database", "migrations", "key:ledger", "store"} | ({"redis"} if settings.REDIS_URL else set())
    assert response.status_code == 200, body
    assert body == {"status": "ok", "checks": {name: "ok" for name in expected}}


def test_it_is_not_ready_without_a_key_and_does_not_say_where_it_looked(client, production_like, settings):
    settings.TRACELEDGER_READY_KEYS = ["ledger", "witness"]
    response, body = probe(client, "/readyz")
    assert response.status_code == 503
    assert body["status"] == "fail" and body["checks"]["key:witness"] == "fail" and body["checks"]["key:ledger"] == "ok"
    assert str(production_like) not in response.content.decode() and "pem" not in response.content.decode()


def test_it_is_not_ready_when_a_key_file_is_readable_by_others(client, production_like):
    (production_like / "keys" / "ledger.pem").chmod(0o644)
    response, body = probe(client, "/readyz")
    assert response.status_code == 503 and body["checks"]["key:ledger"] == "fail"


def test_it_is_not_ready_when_the_store_cannot_take_a_write(client, production_like, settings):
    settings.TRACELEDGER_STORE_DIR = production_like / "not-mounted"
    response, body = probe(client, "/readyz")
    assert response.status_code == 503 and body["checks"]["store"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert list((production_like / "store").iterdir()) == []  # the probe file of the good store went away


def test_it_is_not_ready_when_redis_does_not_answer(client, production_like, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response, body = probe(client, "/readyz")
    assert response.status_code == 503 and body["checks"]["redis"] == "fail"
    assert "127.0.0.1:1" not in response.content.decode()


def test_it_is_not_ready_while_a_migration_is_unapplied(client, production_like):
    with connection.cursor() as cursor:  # rolled back with the test
        # the newest one: a plan only looks behind a leaf that is not applied
        cursor.execute("DELETE FROM django_migrations WHERE app = 'lineage' AND name = "
                       "(SELECT MAX(name) FROM django_migrations WHERE app = 'lineage')")
    response, body = probe(client, "/readyz")
    assert response.status_code == 503 and body["checks"]["migrations"] == "fail"


def test_the_other_pages_still_check_the_host_and_redirect_to_https(client, production_like):
    assert client.get("/login/", HTTP_HOST="10.0.3.7").status_code == 400
    response = client.get("/login/", HTTP_HOST="traceledger.example.com")
    assert response.status_code == 301 and response["Location"].startswith("https://")
