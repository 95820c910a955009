"""Celery tasks of the compliance app, on the `default` queue."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="compliance.tasks.send_alert_notifications", acks_late=True, ignore_result=True)
def send_alert_notifications(alert_id: int) -> None:
    from .notify import deliver

    deliver(alert_id)


@shared_task(name="compliance.tasks.verify_ledger_now", acks_late=True, ignore_result=True)
def verify_ledger_now(actor: str) -> None:
    from .verification import run_verification

    run_verification(actor=actor)
