"""Liveness of builds: the heartbeat a worker keeps while it builds, its scratch space,
and the reaper (Celery beat every minute, or `manage.py reap_builds`) that fails builds
whose worker went quiet or that ran too long, so that none stays active forever.
"""
from __future__ import annotations

import logging
import shutil
import threading
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.db.models import Q
from django.utils import timezone as djtz

from compliance.lib.store import default_store
from lineage.models import Build

log = logging.getLogger("traceledger.build")
ACTIVE = Build.ACTIVE


def scratch_root() -> str:
    root = default_store().root / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def remove_scratch(build_id: int) -> int:
    """Remove the scratch directories a build left (its worker died); how many."""
    removed = 0
    for path in Path(scratch_root()).glob(f"build-{build_id}-*"):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


class Heartbeat:
    """Refresh Build.heartbeat_at every TRACELEDGER_BUILD_HEARTBEAT_S while the build runs.

    On SQLite (one writer at a time) a beat never queues for the write lock: it waits
    at most BUSY_MS for it and is skipped when the build (or anyone) holds it, so the
    build never waits behind its own heartbeat and the heartbeat never reports the
    lock as a failure.  A skipped beat is harmless: the next one comes in seconds and
    the reaper allows TRACELEDGER_BUILD_STALE_S."""

    BUSY_MS = 200

    def __init__(self, build_id: int):
        self.build_id = build_id
        self.every = max(1, settings.TRACELEDGER_BUILD_HEARTBEAT_S)
        self.beats = self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"build-{build_id}-heartbeat", daemon=True)

    def _beat(self) -> None:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {self.BUSY_MS}")
        Build.objects.filter(pk=self.build_id, status__in=ACTIVE).update(heartbeat_at=djtz.now())
        self.beats += 1

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    self._beat()
                except OperationalError as exc:
                    if connection.vendor == "sqlite" and "locked" in str(exc):
                        self.skipped += 1
                        log.debug("build %s heartbeat skipped: the database is busy", self.build_id)
                        continue
                    log.warning("build %s heartbeat failed: %s", self.build_id, exc)
                    close_old_connections()
                except Exception as exc:  # a missed beat is not a failed build
                    log.warning("build %s heartbeat failed: %s", self.build_id, exc)
                    close_old_connections()
        finally:
            connection.close()

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def reap_builds(now: datetime | None = None) -> list[int]:
    """Fail builds whose worker went quiet (heartbeat older than TRACELEDGER_BUILD_STALE_S)
    or that ran past TRACELEDGER_BUILD_TIMEOUT_S, remove their scratch space, and sweep
    temp files that killed writers left in the store.  Returns the failed build ids."""
    now = now or djtz.now()
    stale = now - timedelta(seconds=settings.TRACELEDGER_BUILD_STALE_S)
    timeout = now - timedelta(seconds=settings.TRACELEDGER_BUILD_TIMEOUT_S)
    candidates = Build.objects.filter(status__in=ACTIVE).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale) | Q(started_at__lt=timeout))
    from compliance.lib.ids import iso_utc
    from lineage.actions import do_fail_build

    reaped = []
    for build in candidates:
        if build.started_at and build.started_at < timeout:
            reason = (f"build ran past TRACELEDGER_BUILD_TIMEOUT_S ({settings.TRACELEDGER_BUILD_TIMEOUT_S} s) "
                      f"in stage {build.status}")
        else:
            beat = build.heartbeat_at or build.started_at
            reason = (f"the worker on {build.worker_host or 'an unknown host'} stopped reporting during "
                      f"{build.status} (last heartbeat {iso_utc(beat)}); presumed dead")
        if do_fail_build(build, reason):
            reaped.append(build.id)
            remove_scratch(build.id)
    default_store().sweep_temp(older_than_s=settings.TRACELEDGER_BUILD_TIMEOUT_S)
    return reaped
