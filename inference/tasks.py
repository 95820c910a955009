"""Celery tasks. Builds go to the `gpu` queue, acknowledged late so that a worker
killed mid-build leaves the message to be redelivered (and the build then failed);
the reaper and the engine re-verification are periodic (Celery beat) on `default`."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="inference.tasks.build_engine", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def build_engine(build_id: int) -> None:
    from inference.builder import run_build

    run_build(build_id)


@shared_task(name="inference.tasks.reap_builds", ignore_result=True)
def reap_builds() -> list[int]:
    from inference.reaper import reap_builds as reap

    return reap()


@shared_task(name="inference.tasks.reverify_engines", ignore_result=True)
def reverify_engines() -> dict:
    from inference.reverify import reverify_engines as reverify

    return reverify().to_dict()
