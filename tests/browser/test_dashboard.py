"""The dashboard as people use it, in Debian's Chromium driven by Playwright, against
a live server and a real Celery worker.  Screenshots go to artifacts/screenshots/."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import expect

from compliance.models import AccessRecord, Case, LedgerEntry
from lineage.models import Build
from tests.conftest import PASSWORD, ROOT, register
from tests.dashboard_data import seed, tamper_and_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--headless"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls happen between Playwright calls, never concurrently.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    blocked = []  # the Content-Security-Policy must not block anything our pages do
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert blocked == []


def login(page, live_server, username, password):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_it_lets_an_auditor_trace_the_disputed_decision_and_open_a_case(page, live_server, worker):
    call_command("demo", predictions=40, stdout=open(os.devnull, "w"))
    disputed = json.loads((Path(settings.TRACELEDGER_HOME) / "demo.json").read_text())["disputed_inference_id"]
    login(page, live_server, "auditor", os.environ["TRACELEDGER_DEMO_PASSWORD"])
    page.wait_for_selector("#chart-predictions .main-svg")
    shot(page, "01-overview")

    page.click("nav >> text=Trace")
    page.fill("#q", disputed)
    page.click("#search-id button[type=submit]")
    page.wait_for_url(f"**/trace/{disputed}/")
    assert "Every link verified" in page.inner_text("#verdict")
    links = page.locator("article.link")
    assert links.count() >= 7
    assert page.locator("article.link.bad").count() == 0
    assert all(v.startswith(("✓ verified", "✓ recorded")) for v in page.locator("article.link .badge").all_inner_texts())

    page.click("#graph-panel summary")
    page.wait_for_selector("#lineage-graph .main-svg")
    assert page.locator("#lineage-graph .scatterlayer .point").count() >= 7
    shot(page, "02-trace-with-graph")

    page.select_option("#case-kind", "gdpr_art22")
    page.fill("#case-summary", "Applicant contests the refusal under GDPR Art. 22")
    page.click("#open-case-submit")
    page.wait_for_url("**/cases/*/")
    assert "Open" in page.inner_text("#case-status") or "open" in page.inner_text("#case-status")
    shot(page, "03-case-opened")

    case = Case.objects.get()
    assert case.opened_by == "auditor" and str(case.prediction_id) == disputed
    assert LedgerEntry.objects.filter(kind="case.opened", subject=f"case:{case.id}").exists()
    viewed = AccessRecord.objects.filter(action="trace.viewed", target=f"prediction:{disputed}").first()
    assert viewed is not None and viewed.actor == "auditor"
    assert not LedgerEntry.objects.filter(kind="trace.viewed").exists()


def test_it_lets_an_engineer_request_a_build_and_watch_it_succeed(page, live_server, worker, bob, credit_onnx):
    model = register(credit_onnx, name="credit-mlp")
    login(page, live_server, "bob", PASSWORD)
    page.goto(f"{live_server.url}/builds/new/")
    page.select_option("#id_model", str(model.id))
    page.fill("#id_shapes", "X=1x6:4x6")
    page.click("#submit-build")
    assert "NAME=MIN:OPT:MAX" in page.inner_text("#errors-shapes")
    shot(page, "04-build-form-error")

    page.fill("#id_shapes", "")
    page.select_option("#id_precision", "fp16")
    page.click("#submit-build")
    page.wait_for_url("**/builds/*/")
    # a locator, not wait_for_function: the CSP forbids the eval that the latter needs
    expect(page.locator("#build-status")).to_have_text("succeeded", timeout=90_000)
    page.wait_for_selector("#statement")
    assert page.locator(".stages li.done").count() == 5
    assert "verified" in page.inner_text("#attestation-verdict")
    shot(page, "05-build-succeeded")
    build = Build.objects.get()
    assert build.status == "succeeded" and build.submitter == "bob" and build.precision == "fp16"


def test_it_shows_a_tampered_engine_load_in_alerts_and_on_the_trend(page, live_server, worker, charlie, credit_onnx):
    data = seed(credit_onnx, predictions=1)
    assert tamper_and_load(data.engine, data.deployment.service) == "digest_mismatch"
    login(page, live_server, "charlie", PASSWORD)
    page.click("nav >> text=Alerts")
    row = page.locator("#alerts tr", has_text="engine.load_refused")
    assert row.count() == 1 and "critical" in row.inner_text()
    page.wait_for_selector("#refused-trend .main-svg")
    refused = page.evaluate("document.getElementById('refused-trend').data.reduce("
                            "(n, t) => n + t.y.reduce((a, b) => a + b, 0), 0)")
    assert refused == 1
    shot(page, "06-alerts-trend")

    row.locator("textarea").fill("engine file restored from the store; host quarantined")
    row.locator("button").click()
    page.wait_for_selector(".msg.success")
    assert "acknowledged" in page.locator("#alerts tr", has_text="engine.load_refused").inner_text()
    assert LedgerEntry.objects.filter(kind="alert.acknowledged").count() == 1
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#chart-refused .main-svg")
    shot(page, "07-overview-after-tamper")


def test_it_lets_an_admin_place_and_release_a_legal_hold_that_stops_erasure(page, live_server, worker, charlie,
                                                                             credit_onnx):
    from compliance.investigation.cases import do_open_case
    from lineage.models import PredictionSalt

    prediction = seed(credit_onnx, predictions=1).predictions[0]
    case = do_open_case(prediction, kind="gdpr_art22", summary="applicant contests", acting_user="charlie")
    login(page, live_server, "charlie", PASSWORD)
    page.goto(f"{live_server.url}/cases/{case.id}/")
    page.fill("#legal-hold textarea", "litigation notice L-17")
    page.click("#hold-submit")
    expect(page.locator("#hold-placed-by")).to_have_text("charlie")
    expect(page.locator("#hold-reason")).to_have_text("litigation notice L-17")
    shot(page, "08-case-under-legal-hold")

    page.goto(f"{live_server.url}/trace/{prediction.inference_id}/")
    page.fill("#erase-reference", "GDPR-2211")
    page.click("#erase-submit")
    expect(page.locator(".msg.error")).to_contain_text("under legal hold")
    assert PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()
    shot(page, "09-erasure-refused-under-hold")

    page.goto(f"{live_server.url}/cases/{case.id}/")
    page.fill("#legal-hold textarea", "litigation settled")
    page.click("#hold-submit")
    expect(page.locator("#hold-released-by")).to_have_text("charlie")
    assert [e.kind for e in LedgerEntry.objects.filter(subject=f"case:{case.id}").order_by("index")] == [
        "case.opened", "case.hold_placed", "case.hold_released"]


def test_it_shows_a_running_verification_fill_up_and_then_its_result(page, live_server, alice):
    """The ledger page polls the verification's status (static/js/verify_progress.js,
    no inline script) and reloads once it has finished."""
    from datetime import timedelta

    from django.utils import timezone

    from compliance.models import VerificationRequest

    running = VerificationRequest.objects.create(requested_by="charlie", started_at=timezone.now() - timedelta(seconds=10),
                                                 entries_checked=0, entries_total=1000)
    login(page, live_server, "alice", PASSWORD)
    page.goto(f"{live_server.url}/ledger/")
    expect(page.locator("#verify-figures")).to_contain_text("0 of 1000 entries")
    VerificationRequest.objects.filter(pk=running.pk).update(entries_checked=600)
    expect(page.locator("#verify-figures")).to_contain_text("600 of 1000 entries")
    expect(page.locator("#verify-figures")).to_contain_text("entries/s")
    expect(page.locator("#verify-bar")).to_have_attribute("value", "600")  # the IDL attribute reflects
    expect(page.locator("#verify-bar")).to_have_attribute("max", "1000")
    shot(page, "10-verification-running")
    VerificationRequest.objects.filter(pk=running.pk).update(entries_checked=1000, finished_at=timezone.now(), ok=True,
                                                             slot=None)
    expect(page.locator("#verify-progress")).to_have_count(0)  # reloaded with the result
