"""The production path as CI can run it without containers: the commands of
deploy/compose.yaml started directly (tests/deploy/production.py) — gunicorn with two
workers and the production settings, the gpu-queue and default workers and beat, on
PostgreSQL and Redis. A person signs in over HTTPS, requests a build that the gpu worker
builds, and opens a trace in Chromium with its CSS and plotly.js served by whitenoise; /healthz, /readyz and /metrics answer as
a load balancer and Prometheus expect; `check --deploy` is clean."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command
from django.db import connections

from compliance.ledger import keys
from compliance.models import Checkpoint
from tests.conftest import PASSWORD, ROOT, make_user, on_postgres, register
from tests.deploy.production import UNVERIFIED, production_env, start_topology

pytestmark = [pytest.mark.browser]
TOKEN = "smoke-scrape-token-0123456789"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--headless"]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(context=UNVERIFIED))


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request, redirects not followed."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def prod(django_db_setup, django_db_blocker, tmp_path_factory, credit_onnx):
    """The topology, with a user and a registered model, for the whole module; the
    database is flushed afterwards for the tests that follow."""
    if not (on_postgres() and settings.REDIS_URL):
        pytest.skip("the production path runs on PostgreSQL and Redis")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    topology = None
    try:
        with django_db_blocker.unblock():
            for purpose in ("ledger", "webhook", "build"):
                keys.init(purpose)
            bob = make_user("bob", "engineer")
            bob.password = PBKDF2PasswordHasher().encode(PASSWORD, "smoketestsalt0123")  # production's hasher
            bob.save()
            model = register(credit_onnx, name="credit-mlp")
        topology = start_topology(tmp_path_factory.mktemp("production"), TOKEN)
        topology.model_id = model.id
        yield topology
    finally:
        if topology is not None:
            topology.stop()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


def test_it_serves_static_files_hashed_and_compressed(prod):
    status, _, page = get(f"{prod.url}/login/")
    assert status == 200
    css = re.search(rb'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page).group(1).decode()
    status, headers, body = get(prod.url + css, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"] and "max-age=315360000" in headers["Cache-Control"]
    status, headers, _ = get(f"{prod.url}/static/plotly/plotly.min.js", {"Accept-Encoding": "br"})
    assert status == 200 and headers["Content-Encoding"] == "br"
    assert get(f"{prod.url}/static/plotly/widgetbundle.js")[0] == 404  # only plotly.min.js is collected


def test_probes_answer_by_ip_and_the_app_is_ready(prod):
    status, headers, body = get(f"{prod.url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = get(f"{prod.url}/readyz")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "checks": {c: "ok" for c in (
        "database", "migrations", "redis", "key:ledger", "key:webhook", "store")}}
    assert get(f"{prod.url}/login/", {"Host": "10.0.3.7"})[0] == 400  # pages check the host; probes do not
    assert get(f"{prod.url}/readyz", {"Host": "10.0.3.7"})[0] == 200


def test_it_signs_in_builds_and_draws_a_trace_in_chromium(prod, django_db_blocker):
    from playwright.sync_api import expect, sync_playwright

    from inference.runtime import AuditedService
    from lineage.actions import do_deploy
    from lineage.models import Build

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    statics: dict[str, int] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(30_000)
        page.on("response", lambda r: statics.__setitem__(r.url.split("/static/")[1], r.status)
                if "/static/" in r.url else None)
        page.goto(f"{prod.url}/login/")
        page.fill("#id_username", "bob")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{prod.url}/")

        page.goto(f"{prod.url}/builds/new/")
        page.select_option("#id_model", str(prod.model_id))
        page.click("#submit-build")
        page.wait_for_url("**/builds/*/")
        # a locator, not wait_for_function: the CSP forbids the eval that the latter needs
        expect(page.locator("#build-status")).to_have_text("succeeded", timeout=90_000)
        with django_db_blocker.unblock():  # committed at once: the web processes read it
            build = Build.objects.get(id=int(page.url.rstrip("/").split("/")[-1]))
            assert build.status == "succeeded" and build.engine.sha256
            assert "inference.tasks.build_engine" in prod.log("worker-gpu")  # the gpu queue's worker built it
            do_deploy(build.engine, service="smoke", acting_user="bob")
            _, meta = AuditedService.open("smoke").predict({"X": np.array([[35, 48.0, 0.3, 4, 0, 6]], dtype=np.float32)})
            connections.close_all()  # opened inside Playwright's greenlet, which has connections of its own
        inference_id = meta["inference_id"]
        page.goto(f"{prod.url}/trace/{inference_id}/")
        page.click("#graph-panel summary")
        page.wait_for_selector("#lineage-graph .main-svg")
        assert page.locator("#lineage-graph .scatterlayer .point").count() >= 5
        assert page.evaluate("getComputedStyle(document.body).fontFamily") != ""
        page.screenshot(path=str(Path(prod.base) / "trace.png"), full_page=True)
        browser.close()
    css = [k for k in statics if re.fullmatch(r"css/app\.[0-9a-f]{12}\.css", k)]
    plotly = [k for k in statics if re.fullmatch(r"plotly/plotly\.min\.[0-9a-f]{12}\.js", k)]
    assert css and plotly and all(statics[k] == 200 for k in css + plotly), statics


def test_metrics_count_requests_across_both_workers(prod):
    def hit(_):
        return get(f"{prod.url}/login/")[0]

    before = scrape(prod)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(40))) == {200}
    counted = [scrape(prod) - before for _ in range(6)]  # whichever worker answers the scrape
    assert counted == [40] * 6
    pids = {f.name.split("_")[-1] for f in (prod.base / "prometheus").glob("counter_*.db")}
    assert len(pids) >= 2, "both gunicorn workers served and counted"
    text = get(f"{prod.url}/metrics", {"Authorization": f"Bearer {TOKEN}"})[2].decode()
    assert "# TYPE traceledger_builds gauge" in text and 'traceledger_builds{status="succeeded"}' in text


def scrape(prod) -> float:
    status, _, body = get(f"{prod.url}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    found = re.search(r'^traceledger_http_requests_total\{method="GET",status="200",view="login"\} (\S+)$',
                      body.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def test_logs_are_json_lines_with_the_request_id_and_user(prod):
    status, headers, _ = get(f"{prod.url}/login/", {"X-Request-ID": "smoke-req-000123"})
    assert status == 200 and headers["X-Request-ID"] == "smoke-req-000123"
    deadline = time.monotonic() + 5
    while "smoke-req-000123" not in prod.log("web") and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [json.loads(line) for line in prod.log("web").splitlines() if line.startswith("{")]
    [access] = [x for x in lines if x.get("request_id") == "smoke-req-000123"]
    assert access["logger"] == "traceledger.request" and access["path"] == "/login/" and access["user"] == "-"
    assert any(x.get("logger") == "traceledger.security" and x.get("user") == "bob" for x in lines)
    assert all(line.startswith("{") for line in prod.log("web").splitlines() if line.strip())


def test_beat_schedules_checkpoints_that_the_worker_signs(prod, django_db_blocker):
    """Last: the build, deployment and prediction above grew the ledger since the
    checkpoint made at start, and beat (every 2 s here) has the worker sign the new tree."""
    from compliance.models import LedgerEntry

    deadline = time.monotonic() + 30
    with django_db_blocker.unblock():
        # a checkpoint's own entry is covered by the next checkpoint, made when more comes
        last_event = LedgerEntry.objects.exclude(kind="checkpoint.created").order_by("-index").first().index
        assert last_event > 5
        while not Checkpoint.objects.filter(size__gt=last_event).exists():
            assert time.monotonic() < deadline, (last_event, list(Checkpoint.objects.values_list("size", flat=True)),
                                                 prod.log("worker-default")[-1500:])
            time.sleep(0.5)
    assert "Sending due task ledger-checkpoint" in prod.log("beat")
    assert "compliance.tasks.make_checkpoint" in prod.log("worker-default")


# Marked only so that pytest-django sets up the test database when this module runs alone:
# it does so for a session only when some test asks for the database.
@pytest.mark.django_db
def test_check_deploy_is_clean_with_the_production_settings():
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=production_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
