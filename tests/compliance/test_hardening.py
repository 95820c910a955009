"""Hardening (issue 22, finding 6): a strict Content-Security-Policy on every page,
plotly's included; a session lifetime that is a setting (8 hours by default);
X-Forwarded-Proto trusted only when the deployment says so; exports rate-limited per user."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from compliance.models import LedgerEntry
from tests.conftest import PASSWORD, ROOT
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

INLINE_SCRIPT = re.compile(r"<script(?![^>]*(?:\bsrc=|type=\"application/json\"))[^>]*>", re.I)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.fixture
def data(credit_onnx):
    return seed(credit_onnx, predictions=2)


def test_it_sends_a_strict_csp_that_the_chart_pages_keep(client, charlie, data):
    client.force_login(charlie)
    iid = data.predictions[0].inference_id
    for url in ["/", f"/trace/{iid}/", "/alerts/", f"/lineage/models/{data.model.id}/",
                f"/deployments/{data.deployment.service}/", f"/builds/{data.build.id}/", "/api/docs/swagger/",
                "/api/docs/redoc/", "/cases/", "/login/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        directives = policy(response)
        assert directives["script-src"] == ["'self'"], url
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
        assert "'unsafe-eval'" not in response["Content-Security-Policy"]
        assert not INLINE_SCRIPT.search(response.content.decode()), f"inline script on {url}"


def test_it_keeps_the_build_page_polling_without_inline_script(client, bob, credit_onnx):
    from inference.build_requests import do_request_build
    from tests.conftest import register

    build = do_request_build(register(credit_onnx), submitter="bob", commit="c" * 40)
    client.force_login(bob)
    page = client.get(f"/builds/{build.id}/").content.decode()
    assert "js/build_status.js" in page and f'data-status-url="/builds/{build.id}/status.json"' in page
    assert not INLINE_SCRIPT.search(page)


def _settings_value(name: str, module: str = "compliance.project.settings", **env) -> str:
    code = (f"import os; os.environ['DJANGO_SETTINGS_MODULE'] = '{module}'; "
            f"from django.conf import settings; print(repr(getattr(settings, '{name}', None)))")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACELEDGER_SESSION", "TRACELEDGER_TRUSTED"))}
    result = subprocess.run([sys.executable, "-c", code], env=base | env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]
    return result.stdout.strip()


def test_it_ends_sessions_after_eight_hours_unless_configured(client, alice):
    assert _settings_value("SESSION_COOKIE_AGE") == str(8 * 3600)
    assert _settings_value("SESSION_COOKIE_AGE", TRACELEDGER_SESSION_AGE_S="900") == "900"
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response.cookies["sessionid"]["max-age"] == 8 * 3600


def test_it_trusts_x_forwarded_proto_only_behind_a_declared_proxy():
    production = {"SECRET_KEY": "x" * 60, "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
                  "ALLOWED_HOSTS": "traceledger.example.com"}
    module = "compliance.project.settings_production"
    assert _settings_value("SECURE_PROXY_SSL_HEADER", module, **production) == "None"
    trusted = _settings_value("SECURE_PROXY_SSL_HEADER", module, TRACELEDGER_TRUSTED_PROXY="1", **production)
    assert trusted == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_it_rate_limits_exports_per_user(client, alice, bob, data, settings):
    settings.TRACELEDGER_EXPORTS_PER_WINDOW = 2
    settings.TRACELEDGER_EXPORT_WINDOW_S = 3600
    body = {"format": "bundle", "service": data.deployment.service, "since": "2020-01-01T00:00",
            "until": "2100-01-01T00:00"}
    client.force_login(alice)
    codes = [client.post("/reports/service/", body).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = client.post(f"/reports/prediction/{data.predictions[0].inference_id}/", {"format": "bundle"})
    assert limited.status_code == 429 and 0 < int(limited["Retry-After"]) <= 3600
    assert "try again in" in limited.content.decode()
    assert LedgerEntry.objects.filter(kind="report.exported").count() == 2
    client.force_login(bob)  # another user has a budget of their own
    assert client.post("/reports/service/", body).status_code == 200
