"""A full ledger verification asked through the API or the dashboard runs in the
background, one at a time, for auditors and admins only, and its status is polled;
opening a trace writes to the access log, never to the ledger."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import AccessRecord, LedgerEntry, VerificationRequest
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_an_auditor_queues_a_verification_and_polls_its_result(client, alice, credit_onnx, eager):
    seed(credit_onnx, predictions=2)
    client.force_login(alice)
    r = client.post("/api/v1/ledger/verify/")
    assert r.status_code == 202
    status_url = r.json()["status_url"]
    polled = client.get(status_url).json()
    assert polled["status"] == "succeeded" and polled["ok"] is True and polled["requested_by"] == "alice"
    entry = LedgerEntry.objects.get(index=polled["ledger_index"])
    assert entry.kind == "ledger.verified"
    assert client.get("/api/v1/ledger/verify/").json()["request"]["id"] == polled["id"]
    assert VerificationRequest.objects.get().slot is None  # the slot is free again


def test_only_one_verification_runs_at_a_time(client, charlie, alice):
    running = VerificationRequest.objects.create(requested_by="alice", started_at=timezone.now())
    client.force_login(charlie)
    r = client.post("/api/v1/ledger/verify/")
    assert r.status_code == 409
    assert r.json()["error"] == f"verification {running.id} is already running; poll it instead of starting another"
    assert r.json()["detail"]["request"]["id"] == running.id
    page = client.post("/ledger/verify/", follow=True)
    assert f"verification {running.id} is already running" in page.content.decode()
    assert VerificationRequest.objects.count() == 1 and not LedgerEntry.objects.filter(kind="ledger.verified").exists()


def test_a_request_lost_with_its_worker_is_given_up(client, charlie, eager, settings):
    lost = VerificationRequest.objects.create(requested_by="alice")
    VerificationRequest.objects.filter(pk=lost.pk).update(requested_at=timezone.now() - timedelta(hours=2))
    client.force_login(charlie)
    assert client.post("/api/v1/ledger/verify/").status_code == 202
    lost.refresh_from_db()
    assert lost.status() == "failed" and "given up" in lost.detail and lost.slot is None


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_engineers_and_people_without_a_role_cannot_start_one(client, who, request):
    client.force_login(request.getfixturevalue(who))
    assert client.post("/api/v1/ledger/verify/").status_code == 403
    assert client.post("/ledger/verify/").status_code == 403
    assert VerificationRequest.objects.count() == 0


def test_opening_a_trace_goes_to_the_access_log_not_the_ledger(client, alice, credit_onnx):
    data = seed(credit_onnx, predictions=1)
    iid = data.predictions[0].inference_id
    client.force_login(alice)
    size = LedgerEntry.objects.count()
    assert client.get(f"/trace/{iid}/", HTTP_REFERER="https://mail.example/").status_code == 200
    assert client.get(f"/api/v1/trace/{iid}/").status_code == 200
    assert LedgerEntry.objects.count() == size
    assert not LedgerEntry.objects.filter(kind="trace.viewed").exists()
    views = AccessRecord.objects.filter(action="trace.viewed", target=f"prediction:{iid}")
    assert [v.actor for v in views] == ["alice", "alice"]


def test_a_running_verification_writes_its_progress_and_the_api_returns_it(client, alice, credit_onnx, eager,
                                                                          monkeypatch):
    from compliance.investigation import ledger_checks
    from compliance.ledger import ledger

    seed(credit_onnx, predictions=2)
    size = ledger.size()
    seen, real = [], ledger_checks.verify_ledger

    def small_chunks(*, alert, progress):  # many chunks, each written: the row as the page would poll it
        def told(done, total):
            progress(done, total)
            seen.append(VerificationRequest.objects.values_list("entries_checked", "entries_total").get())
        return real(alert=alert, chunk=4, progress=told)

    monkeypatch.setattr(ledger_checks, "verify_ledger", small_chunks)
    monkeypatch.setattr(ledger_checks, "PROGRESS_EVERY_S", 0)
    client.force_login(alice)
    polled = client.get(client.post("/api/v1/ledger/verify/").json()["status_url"]).json()
    assert polled["status"] == "succeeded"
    assert polled["entries_checked"] == polled["entries_total"] == size and polled["seconds_left"] is None
    assert len(seen) == -(-size // 4) and seen[0] == (4, size) and seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_progress_is_written_at_most_every_half_second_and_at_the_end(client):
    from compliance.investigation.ledger_checks import ProgressWriter

    running = VerificationRequest.objects.create(requested_by="alice", started_at=timezone.now())
    write = ProgressWriter(running.id, every=60)
    row = VerificationRequest.objects.values_list("entries_checked", "entries_total")
    write(10, 100)
    assert row.get() == (10, 100)
    write(20, 100)  # within the interval: not written
    assert row.get() == (10, 100)
    write(100, 100)  # the end always is
    assert row.get() == (100, 100)


def test_the_ledger_page_shows_a_running_verification_and_polls_it(client, alice):
    client.force_login(alice)
    page = client.get("/ledger/").content.decode()  # nothing running: no bar, no script
    assert 'id="verify-progress"' not in page and "verify_progress.js" not in page
    running = VerificationRequest.objects.create(requested_by="charlie", started_at=timezone.now() - timedelta(seconds=10),
                                                 entries_checked=300, entries_total=1000)
    page = client.get("/ledger/").content.decode()
    assert f'data-status-url="/api/v1/ledger/verify/{running.id}/"' in page
    assert '<progress id="verify-bar" value="300" max="1000">' in page
    assert "300 of 1000 entries · 30 entries/s · 23 s left" in page
    assert '<span class="pill running" id="verify-state">running</span>' in page
    assert '<script src="/static/js/verify_progress.js"></script>' in page
    assert "<script>" not in page and " style=" not in page.split('id="verification"')[1].split("</section>")[0]

    polled = client.get(f"/api/v1/ledger/verify/{running.id}/").json()
    assert polled["status"] == "running" and polled["entries_checked"] == 300 and polled["entries_total"] == 1000
    assert 29 <= polled["entries_per_s"] <= 30 and 23 <= polled["seconds_left"] <= 24

    VerificationRequest.objects.filter(pk=running.pk).update(started_at=None, entries_checked=0, entries_total=None)
    page = client.get("/ledger/").content.decode()  # queued: an indeterminate bar
    assert '<progress id="verify-bar">' in page and "waiting for a worker" in page
