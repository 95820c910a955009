""""Verify now": run the full ledger verification (compliance.ledger.verify: every entry, node,
checkpoint root, signature and cosignature) on behalf of a person, and record who asked
and what it found as a `ledger.verified` entry.

A person's request (`request_verification`) is a VerificationRequest run by a Celery
task on the default queue, never inside the web request; only one is queued or
running at a time (a second is refused with the first one's id, to poll), and one that
has shown no result for TRACELEDGER_VERIFY_STALE_S is given up."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.ledger import ledger
from compliance.ledger.verify import verify_ledger
from compliance.models import LedgerEntry, VerificationRequest


@dataclass
class Verification:
    ok: bool
    checked: int
    method: str
    detail: str
    first_bad_index: int | None = None
    duration_ms: int = 0
    ledger_index: int | None = None


def run_verification(*, actor: str) -> Verification:
    result = verify_ledger(alert=True)
    outcome = Verification(
        ok=result.ok, checked=result.entries_checked, method="verify_ledger",
        detail=(result.message or f"{result.entries_checked} entries, {result.nodes_checked} nodes and "
                f"{result.checkpoints_checked} checkpoints verified")[:500],
        first_bad_index=result.first_bad_index, duration_ms=int(result.seconds * 1000),
    )
    payload = {k: v for k, v in asdict(outcome).items() if k != "ledger_index"}
    entry = ledger.append("ledger.verified", payload, subject="ledger", actor=actor)
    outcome.ledger_index = entry.index
    return outcome


class VerificationBusy(Exception):
    def __init__(self, running: VerificationRequest | None):
        state = f"{running.id} is already {running.status()}" if running else "is already running"
        super().__init__(f"verification {state}; poll it instead of starting another")
        self.running = running


def request_verification(*, actor: str) -> VerificationRequest:
    """Queue a full verification for `actor`; VerificationBusy if one is queued or running."""
    now = timezone.now()
    VerificationRequest.objects.filter(
        slot=True, requested_at__lt=now - timedelta(seconds=settings.TRACELEDGER_VERIFY_STALE_S)
    ).update(slot=None, finished_at=now, ok=False, detail="given up: no result in time (the worker was lost)")
    try:
        with transaction.atomic():
            request = VerificationRequest.objects.create(requested_by=actor[:150])
    except IntegrityError:
        raise VerificationBusy(VerificationRequest.objects.filter(slot=True).first()) from None
    current_app.signature("compliance.tasks.verify_ledger_now", args=[actor], kwargs={"request_id": request.id}
                          ).apply_async(queue="default")
    request.refresh_from_db()
    return request


def run_requested(request_id: int, actor: str) -> None:
    """The task's body: claim the request (once), verify, record the outcome, free the slot."""
    if not VerificationRequest.objects.filter(pk=request_id, slot=True, started_at=None).update(
            started_at=timezone.now()):
        return
    try:
        outcome = run_verification(actor=actor)
    except Exception as exc:
        VerificationRequest.objects.filter(pk=request_id).update(
            slot=None, finished_at=timezone.now(), ok=False, detail=f"verification crashed: {type(exc).__name__}")
        raise
    VerificationRequest.objects.filter(pk=request_id).update(
        slot=None, finished_at=timezone.now(), ok=outcome.ok, detail=outcome.detail[:500],
        ledger_index=outcome.ledger_index)


def last_verification() -> dict | None:
    entry = LedgerEntry.objects.filter(kind="ledger.verified").order_by("-index").first()
    if entry is None:
        return None
    body = json.loads(entry.body)
    return body["payload"] | {"index": entry.index, "time": entry.created_at, "actor": body["actor"]}
