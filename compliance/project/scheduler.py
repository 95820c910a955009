"""The in-process scheduler of the embedded default: the same schedule Celery beat
runs in production (settings.CELERY_BEAT_SCHEDULE), on a daemon thread of the web
process, so `make run` needs no beat and no broker.

It starts from compliance/project/wsgi.py, which both `runserver` (in its serving process, not
the autoreloader's parent) and WSGI servers import; it stays off when REDIS_URL is set
(Celery beat's job then) or TRACELEDGER_INPROCESS_SCHEDULER is False.  Two web
processes running it at once are harmless: a checkpoint of an unchanged tree is the
previous one, and verifications only read.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

log = logging.getLogger("traceledger.scheduler")


@dataclass
class Job:
    name: str
    task: str
    every: float
    kwargs: dict = field(default_factory=dict)
    next_due: float = 0.0


def _seconds(schedule) -> float | None:
    """Seconds between runs of a beat entry: a number, a timedelta or a celery
    `schedule`; None for kinds this simple loop does not run (crontab)."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    every = getattr(schedule, "run_every", schedule)
    return every.total_seconds() if hasattr(every, "total_seconds") else None


def jobs_from_settings() -> list[Job]:
    jobs = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        every = _seconds(entry["schedule"])
        if every is None or every <= 0:
            log.warning("in-process scheduler skips %s: only fixed intervals are supported", name)
            continue
        jobs.append(Job(name, entry["task"], every, dict(entry.get("kwargs") or {})))
    return jobs


class Scheduler(threading.Thread):
    """Runs each job every `every` seconds, the first time one interval after start
    (as beat does); a failing job is logged and tried again at its next turn."""

    def __init__(self, jobs: list[Job], clock=time.monotonic):
        super().__init__(name="traceledger-scheduler", daemon=True)
        self.jobs = jobs
        self.clock = clock
        self._stopping = threading.Event()
        now = clock()
        for job in jobs:
            job.next_due = now + job.every

    def run_pending(self) -> list[str]:
        ran = []
        for job in self.jobs:
            now = self.clock()
            if now < job.next_due:
                continue
            job.next_due = now + job.every
            try:
                # task names are their dotted paths; calling a task runs it right here
                import_string(job.task)(**job.kwargs)
                ran.append(job.name)
            except Exception:
                log.exception("scheduled job %s failed", job.name)
        return ran

    def run(self) -> None:
        while not self._stopping.is_set():
            wait = min((job.next_due for job in self.jobs), default=60.0) - self.clock()
            if wait > 0 and self._stopping.wait(min(wait, 60.0)):
                break
            try:
                self.run_pending()
            finally:
                connections.close_all()  # this thread's own connections; the next turn opens fresh ones

    def stop(self) -> None:
        self._stopping.set()


_lock = threading.Lock()
_running: Scheduler | None = None


def start_in_process() -> Scheduler | None:
    """Start the scheduler thread once per process, where the embedded default wants it."""
    global _running
    if not settings.TRACELEDGER_INPROCESS_SCHEDULER:
        return None
    with _lock:
        if _running is None or not _running.is_alive():
            jobs = jobs_from_settings()
            if not jobs:
                return None
            _running = Scheduler(jobs)
            _running.start()
            log.info("in-process scheduler started: %s", ", ".join(f"{j.name} every {j.every:g}s" for j in jobs))
        return _running
