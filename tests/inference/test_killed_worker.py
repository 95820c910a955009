"""A worker killed with SIGKILL mid-build: the build is failed with a ledger entry
within a bounded time when its unacknowledged message comes back (acks_late), and
nothing it made stays in the store.  Its own module, so no other worker is running."""
from __future__ import annotations

import time

import pytest
from django.conf import settings

from compliance.ledger import ledger
from compliance.lib.store import default_store
from compliance.models import Alert, LedgerEntry
from inference import samples
from inference.build_requests import do_request_build
from lineage.models import Build, Engine
from tests.conftest import Worker, register, wait_for_build


def store_files() -> set:
    return {p for p in (default_store().root / "sha256").rglob("*") if p.is_file()}


def scratch_dirs(build_id: int) -> list:
    return list((default_store().root / "tmp").glob(f"build-{build_id}-*"))


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_build_whose_worker_was_killed_and_leaves_nothing_in_the_store():
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    # Quantizing 400 layers takes several seconds: long enough to kill the worker mid-build.
    model = register(samples.deep_mlp_bytes(width=64, layers=400), name="deep")
    before = store_files()
    first = Worker().start()
    try:
        build = do_request_build(model, precision="int8", submitter="bob")
        deadline = time.monotonic() + 60
        while build.status != Build.BUILDING:
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.05)
            build.refresh_from_db()
        time.sleep(0.5)
        assert scratch_dirs(build.id), "the backend should be working in its scratch directory"
        first.kill(9)  # SIGKILL to the worker's whole process group, mid-build
        killed_at = time.monotonic()
    finally:
        first.stop()
    build.refresh_from_db()
    assert build.status == Build.BUILDING  # nobody has noticed yet
    # The unacknowledged message comes back (acks_late) to the next worker, which fails
    # the build instead of running it twice.
    second = Worker(env={"TRACELEDGER_BROKER_VISIBILITY_TIMEOUT_S": "1"}).start()
    try:
        build = wait_for_build(build, timeout=60)
    finally:
        second.stop()
    assert time.monotonic() - killed_at < 60
    assert build.status == Build.FAILED and "worker running this build died" in build.error
    failed = LedgerEntry.objects.get(kind="build.failed", subject=f"build:{build.id}")
    assert ledger.payload_of(failed)["stage"] == "building"
    assert Alert.objects.filter(kind="build.failed", subject=f"build:{build.id}").exists()
    assert not Engine.objects.exists()
    assert store_files() == before  # no engine, complete or partial
    assert not scratch_dirs(build.id)
    assert not list((default_store().root / "tmp").glob("incoming-*"))
