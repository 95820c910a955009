"""Celery tasks of the compliance app, on the `default` queue: periodic ledger work run
by Celery beat (or by compliance.project.scheduler on the embedded default) — signed
checkpoints and verification with an alert on failure — and alert notifications."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="compliance.tasks.make_checkpoint", ignore_result=True, acks_late=True)
def make_checkpoint() -> int:
    from compliance.ledger.checkpoints import make_checkpoint as make

    return make().id


@shared_task(name="compliance.tasks.verify_ledger", ignore_result=True, acks_late=True)
def verify_ledger(since_last: bool = True) -> bool:
    from compliance.ledger.verify import verify_ledger as verify

    return verify(since_last=since_last, alert=True).ok


@shared_task(name="compliance.tasks.send_alert_notifications", acks_late=True, ignore_result=True)
def send_alert_notifications(alert_id: int) -> None:
    from compliance.investigation.notify import deliver

    deliver(alert_id)


@shared_task(name="compliance.tasks.verify_ledger_now", acks_late=True, ignore_result=True)
def verify_ledger_now(actor: str, request_id: int | None = None) -> None:
    from compliance.investigation.ledger_checks import run_requested, run_verification

    if request_id is None:  # a message queued before requests were tracked
        run_verification(actor=actor)
    else:
        run_requested(request_id, actor)
