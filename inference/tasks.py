"""Celery tasks. Builds go to the `gpu` queue, acknowledged late so that a worker
killed mid-build leaves the message to be redelivered (and the build then failed)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="inference.tasks.build_engine", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def build_engine(build_id: int) -> None:
    from .builder import run_build

    run_build(build_id)
