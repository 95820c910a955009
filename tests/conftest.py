"""Shared fixtures: users per role, real ONNX models, and a real Celery worker process
consuming the `gpu` queue on Redis when REDIS_URL is set (otherwise tasks run
in-process, the embedded default)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.commands import flush

from compliance.ledger import dbguards, keys

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"

# Django's flush between transactional tests would be refused by the append-only
# triggers; lift them around the flush only.
_original_flush = flush.Command.handle


def _flush_with_guards_lifted(self, **options):
    from django.db import connections

    with dbguards.suspended(connections[options.get("database", "default")]):
        return _original_flush(self, **options)


flush.Command.handle = _flush_with_guards_lifted


def on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    keys.clear_cache()
    yield


@pytest.fixture(autouse=True)
def _fresh_django_cache():
    """Cached aggregates (the overview's closed hours) belong to one test's data."""
    from django.core.cache import cache

    cache.clear()
    yield


def make_user(username: str, role: str | None):
    from django.contrib.auth.models import Group, User

    from compliance.lib.roles import ensure_groups

    ensure_groups()
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def alice(db):
    """auditor"""
    return make_user("alice", "auditor")


@pytest.fixture
def bob(db):
    """engineer"""
    return make_user("bob", "engineer")


@pytest.fixture
def charlie(db):
    """admin"""
    return make_user("charlie", "admin")


@pytest.fixture
def dave(db):
    """no role"""
    return make_user("dave", None)


@pytest.fixture(scope="session")
def credit_onnx() -> bytes:
    from inference import samples

    return samples.credit_model_bytes()[0]


@pytest.fixture(scope="session")
def two_input_onnx() -> bytes:
    from inference import samples

    return samples.two_input_model_bytes()


def worker_env() -> dict:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["TRACELEDGER_HOME"] = str(settings.TRACELEDGER_HOME)
    env["DJANGO_SETTINGS_MODULE"] = "compliance.project.settings"
    env["PYTHONPATH"] = str(ROOT)
    return env


class Worker:
    def __init__(self, queues: str = "gpu,default", env: dict | None = None):
        self.queues = queues
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(settings.TRACELEDGER_HOME) / f"worker-{time.time_ns()}.log"

    def start(self) -> "Worker":
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "compliance.project", "worker", "-Q", self.queues, "-c", "1",
             "--prefetch-multiplier", "1", "-l", "info", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"test-{os.getpid()}-{time.time_ns()}@%h"],
            cwd=ROOT, env=worker_env() | self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def _real_worker():
    """A started Worker (stopped after the yield), or None on the embedded default."""
    if not settings.REDIS_URL:
        yield None
        return
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    w = Worker().start()
    yield w
    w.stop()


@pytest.fixture
def worker(transactional_db):
    """A real Celery worker process on Redis when REDIS_URL is set; on the embedded
    default, tasks run in-process and no worker is needed."""
    yield from _real_worker()


@pytest.fixture(scope="module")
def module_worker(django_db_setup):
    """One real Celery worker for a whole test module (starting one costs seconds); a
    module opts in by defining `worker` as `module_worker` + transactional_db."""
    yield from _real_worker()


def wait_for_build(build, timeout: float = 120):
    from lineage.models import Build

    deadline = time.monotonic() + timeout
    while True:
        build.refresh_from_db()
        if build.status in Build.FINAL:
            return build
        if time.monotonic() > deadline:
            raise AssertionError(f"build {build.id} stuck in {build.status}")
        time.sleep(0.1)


def register(onnx_bytes: bytes, name: str = "m", commit: str = "a" * 40, user: str = "bob"):
    from lineage.actions import do_register_model

    return do_register_model(io.BytesIO(onnx_bytes), name=name, repo="https://git.example.com/r",
                             commit=commit, registered_by=user)[0]


@pytest.fixture
def eager():
    """Run Celery tasks in this process, for tests that have no worker."""
    from compliance.project.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
