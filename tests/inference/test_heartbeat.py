"""The build heartbeat on the embedded SQLite default: a beat never queues for the
write lock the build holds (it is skipped, quietly), so an audited build never waits
behind its own heartbeat."""
from __future__ import annotations

import logging
import time

import pytest
from django.db import connection, transaction

from inference import samples
from inference.reaper import Heartbeat
from lineage.models import Build
from tests.conftest import register

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def test_it_skips_beats_while_the_build_holds_the_sqlite_write_lock(settings, caplog):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single write lock; PostgreSQL locks rows")
    settings.TRACELEDGER_BUILD_HEARTBEAT_S = 1
    model = register(samples.small_cnn_bytes(channels=2, size=8), name="beat")
    build = Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                 commit="c" * 40, status=Build.BUILDING)
    caplog.set_level(logging.DEBUG, logger="traceledger.build")
    with transaction.atomic():  # what a build's own write transaction does to the lock
        Build.objects.filter(pk=build.pk).update(log="building")
        heartbeat = Heartbeat(build.id)
        with heartbeat:
            time.sleep(2.6)
            stopping = time.monotonic()
        stopped_in = time.monotonic() - stopping
    assert heartbeat.skipped >= 2 and heartbeat.beats == 0
    assert stopped_in < 1.0, stopped_in  # not the 30 s busy timeout
    assert "heartbeat failed" not in caplog.text and "heartbeat skipped" in caplog.text
    with Heartbeat(build.id) as free:  # and with the lock free, it beats
        time.sleep(1.5)
    assert free.beats >= 1
    build.refresh_from_db()
    assert build.heartbeat_at is not None



def test_the_embedded_database_runs_in_wal_mode(tmp_path):
    """The embedded default's settings (not the test database, which lives in memory)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import django; django.setup(); from django.db import connection; c = connection.cursor(); "
            "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]); c.execute('PRAGMA busy_timeout'); "
            "print(c.fetchone()[0])")
    env = {"PATH": "/usr/bin:/bin", "TRACELEDGER_HOME": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "compliance.project.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["wal", "30000"]
