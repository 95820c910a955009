"""Checkpoints and verifications happen on their own: Celery beat and a real worker with
Redis, the web process's scheduler thread on the embedded default."""
from __future__ import annotations

import importlib
import subprocess
import sys
import time

import pytest
from django.db import OperationalError

from compliance.ledger import checkpoints, ledger, notes
from compliance.models import Checkpoint, LedgerEntry, VerificationRun
from compliance.project.scheduler import Job, Scheduler, jobs_from_settings
from tests.conftest import ROOT, worker_env

pytestmark = [pytest.mark.embedded]


def test_the_beat_schedule_runs_registered_tasks_at_the_configured_intervals(settings):
    from django.utils.module_loading import import_string

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["ledger-checkpoint"]["schedule"] == settings.TRACELEDGER_CHECKPOINT_INTERVAL_S
    assert schedule["ledger-verify-since-last"]["kwargs"] == {"since_last": True}
    for entry in schedule.values():
        assert import_string(entry["task"]).name == entry["task"]
    assert {j.name for j in jobs_from_settings()} == set(schedule)


@pytest.mark.django_db
def test_the_scheduler_runs_each_job_when_it_is_due(settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path
    now = [1000.0]
    scheduler = Scheduler([Job("cp", "compliance.tasks.make_checkpoint", 60),
                           Job("verify", "compliance.tasks.verify_ledger", 300, {"since_last": True})],
                          clock=lambda: now[0])
    ledger.append("trace.viewed", {"n": 1})
    assert scheduler.run_pending() == []
    now[0] += 61
    assert scheduler.run_pending() == ["cp"] and Checkpoint.objects.count() == 1
    now[0] += 61
    ledger.append("trace.viewed", {"n": 2})
    assert scheduler.run_pending() == ["cp"] and Checkpoint.objects.count() == 2
    now[0] += 300
    assert scheduler.run_pending() == ["cp", "verify"]
    assert VerificationRun.objects.get().ok


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OperationalError:  # SQLite's in-memory test database is briefly locked by the writer
            pass
        time.sleep(0.2)
    raise AssertionError("the scheduled work did not happen in time")


def test_checkpoints_and_verifications_happen_on_schedule(worker, settings, tmp_path):
    ledger.append("trace.viewed", {"n": 1})
    if settings.REDIS_URL:
        env = worker_env() | {"TRACELEDGER_CHECKPOINT_INTERVAL_S": "1", "TRACELEDGER_VERIFY_INTERVAL_S": "1",
                              "TRACELEDGER_VERIFY_FULL_INTERVAL_S": "0"}
        log = open(tmp_path / "beat.log", "wb")
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "compliance.project", "beat", "-l", "info",
             "-s", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stop = beat.terminate
    else:
        settings.TRACELEDGER_INPROCESS_SCHEDULER = True
        settings.CELERY_BEAT_SCHEDULE = {name: entry | {"schedule": 0.3}
                                         for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
        import compliance.project.wsgi

        importlib.reload(compliance.project.wsgi)  # what runserver and WSGI servers import
        from compliance.project import scheduler

        thread = scheduler._running
        assert thread is not None and thread.is_alive()
        stop = thread.stop
    try:
        _wait_for(lambda: Checkpoint.objects.exists() and VerificationRun.objects.filter(ok=True).exists())
    finally:
        stop()
    if settings.REDIS_URL:
        beat.wait(20)
        log.close()
        assert "Scheduler: Sending due task ledger-checkpoint" in (tmp_path / "beat.log").read_text()
    else:
        thread.join(20)
    checkpoint = Checkpoint.objects.order_by("id").first()
    assert notes.verify_note(checkpoint.note, [checkpoints.ledger_vkey()])
    assert LedgerEntry.objects.filter(kind="checkpoint.created").exists()
    exported = settings.TRACELEDGER_CHECKPOINT_DIR / f"{checkpoint.size:012d}.checkpoint"  # the worker's too
    assert exported.read_text() == checkpoint.note


def test_the_scheduler_takes_timedeltas_and_skips_crontabs(settings):
    from datetime import timedelta

    from celery.schedules import crontab, schedule

    settings.CELERY_BEAT_SCHEDULE = {
        "a": {"task": "compliance.tasks.make_checkpoint", "schedule": timedelta(minutes=2)},
        "b": {"task": "compliance.tasks.make_checkpoint", "schedule": schedule(timedelta(seconds=30))},
        "c": {"task": "compliance.tasks.make_checkpoint", "schedule": crontab(minute=0)},
    }
    assert [(j.name, j.every) for j in jobs_from_settings()] == [("a", 120.0), ("b", 30.0)]
