"""Worker behaviour: cancel a queued build, the reaper for builds whose worker went
quiet or ran too long, one build at a time (the killed worker: test_killed_worker.py)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.ledger import ledger
from compliance.lib.store import default_store
from compliance.models import Alert, LedgerEntry
from inference.build_requests import do_request_build
from inference.reaper import reap_builds
from lineage.actions import ActionError, do_cancel_build
from lineage.models import Build, Engine
from tests.conftest import register, wait_for_build


@pytest.fixture
def worker(module_worker, transactional_db):
    return module_worker


@pytest.mark.embedded
def test_it_cancels_a_queued_build_and_the_worker_then_skips_it(worker, two_input_onnx, capsys):
    model = register(two_input_onnx)
    with transaction.atomic():  # cancelled before the message leaves
        build = do_request_build(model, submitter="bob")
        cancelled = do_cancel_build(build, acting_user="bob", reason="wrong model")
    assert cancelled.status == Build.CANCELLED and cancelled.finished_at
    entry = LedgerEntry.objects.get(kind="build.cancelled")
    assert ledger.payload_of(entry) == {"build_id": build.id, "reason": "wrong model", "cancelled_by": "bob"}
    if worker:  # the real worker receives the message and leaves the build alone
        build.refresh_from_db()
        deadline = time.monotonic() + 30
        while f"build_engine[{build.task_id}] succeeded" not in worker.log_path.read_text():
            assert time.monotonic() < deadline, worker.log_path.read_text()[-2000:]
            time.sleep(0.1)
    build.refresh_from_db()
    assert build.status == Build.CANCELLED and not Engine.objects.exists()
    assert not LedgerEntry.objects.filter(kind="build.started").exists()
    with pytest.raises(ActionError, match="only a queued build can be cancelled"):
        do_cancel_build(build, acting_user="bob")
    with pytest.raises(CommandError, match="only a queued build can be cancelled"):
        call_command("cancel_build", str(build.id))
    with pytest.raises(CommandError, match="unknown build"):
        call_command("cancel_build", "nope")


@pytest.mark.embedded
def test_it_cancels_through_the_api_with_roles(worker, two_input_onnx, alice, bob):
    model = register(two_input_onnx)
    with transaction.atomic():
        build = do_request_build(model, submitter="bob")
        client = APIClient()
        client.force_authenticate(alice)
        assert client.post(f"/api/v1/builds/{build.id}/cancel/", {}, format="json").status_code == 403
        client.force_authenticate(bob)
        response = client.post(f"/api/v1/builds/{build.id}/cancel/", {"reason": "oops"}, format="json")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/builds/{build.id}/cancel/", {}, format="json")
    assert again.status_code == 409 and "only a queued build" in again.json()["error"]
    assert client.post("/api/v1/builds/999999/cancel/", {}, format="json").status_code == 404
    assert LedgerEntry.objects.filter(kind="build.cancelled").count() == 1


@pytest.mark.embedded
def test_it_runs_one_build_at_a_time(worker, two_input_onnx):
    model = register(two_input_onnx)
    builds = [do_request_build(model, precision=p, submitter="bob") for p in ("fp32", "fp16", "int8")]
    builds = sorted((wait_for_build(b) for b in builds), key=lambda b: b.started_at)
    assert all(b.status == Build.SUCCEEDED for b in builds)
    for earlier, later in zip(builds, builds[1:]):
        assert earlier.finished_at <= later.started_at


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_it_reaps_builds_whose_worker_went_quiet_or_ran_too_long(two_input_onnx, capsys):
    model = register(two_input_onnx)
    now = timezone.now()

    def claimed(**fields):
        return Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                    commit="a" * 40, worker_host="gpu-7", **fields)

    quiet = claimed(status=Build.VERIFYING, started_at=now - timedelta(minutes=5),
                    heartbeat_at=now - timedelta(minutes=4))
    too_long = claimed(status=Build.BUILDING, started_at=now - timedelta(hours=3), heartbeat_at=now)
    healthy = claimed(status=Build.BUILDING, started_at=now - timedelta(minutes=1), heartbeat_at=now)
    queued = claimed(status=Build.QUEUED)
    scratch = default_store().root / "tmp" / f"build-{quiet.id}-abc"
    scratch.mkdir(parents=True)
    (scratch / "engine.onnx").write_bytes(b"half an engine")

    with override_settings(TRACELEDGER_BUILD_STALE_S=120, TRACELEDGER_BUILD_TIMEOUT_S=7200):
        call_command("reap_builds", "--json")
    assert sorted(__import__("json").loads(capsys.readouterr().out)["reaped"]) == sorted([quiet.id, too_long.id])
    for build in (quiet, too_long, healthy, queued):
        build.refresh_from_db()
    assert quiet.status == Build.FAILED and "gpu-7 stopped reporting during verifying" in quiet.error
    assert too_long.status == Build.FAILED and "ran past TRACELEDGER_BUILD_TIMEOUT_S" in too_long.error
    assert healthy.status == Build.BUILDING and queued.status == Build.QUEUED
    stages = {ledger.payload_of(e)["build_id"]: ledger.payload_of(e)["stage"]
              for e in LedgerEntry.objects.filter(kind="build.failed")}
    assert stages == {quiet.id: "verifying", too_long.id: "building"}
    assert Alert.objects.filter(kind="build.failed").count() == 2
    assert not scratch.exists()
    assert reap_builds() == []  # idempotent: nothing more to do


def test_the_build_queue_and_worker_settings():
    from inference.tasks import build_engine

    assert settings.CELERY_TASK_ROUTES["inference.tasks.build_engine"] == {"queue": "gpu"}
    assert build_engine.acks_late and build_engine.reject_on_worker_lost
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.TRACELEDGER_BUILD_TIMEOUT_S
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"inference.tasks.reap_builds", "inference.tasks.reverify_engines"} <= scheduled
