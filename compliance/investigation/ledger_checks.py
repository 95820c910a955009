""""Verify now": run the full ledger verification (compliance.ledger.verify: every entry, node,
checkpoint root, signature and cosignature) on behalf of a person, and record who asked
and what it found as a `ledger.verified` entry.

A person's request (`request_verification`) is a VerificationRequest run by a Celery
task on the default queue, never inside the web request; only one is queued or
running at a time (a second is refused with the first one's id, to poll), and one that
has shown no result for TRACELEDGER_VERIFY_STALE_S is given up.  While it runs, its row
carries the entries checked of the total (ProgressWriter), which the ledger page shows."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.ledger import ledger
from compliance.ledger.verify import verify_ledger
from compliance.models import LedgerEntry, VerificationRequest

PROGRESS_EVERY_S = 0.5  # the most often a running request's progress is written


@dataclass
class Verification:
    ok: bool
    checked: int
    method: str
    detail: str
    first_bad_index: int | None = None
    duration_ms: int = 0
    ledger_index: int | None = None


def run_verification(*, actor: str, progress=None) -> Verification:
    """Verify the whole ledger and record the outcome; `progress(done, total)` is told
    the entries checked as they pass (verify_ledger)."""
    result = verify_ledger(alert=True, progress=progress)
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


class ProgressWriter:
    """verify_ledger's progress callback for a request: entries checked and the total,
    written to its row at most once every `every` seconds (and at the end), so that
    the dashboard can show them while a long verification runs."""

    def __init__(self, request_id: int, every: float | None = None):
        self.request_id, self.every = request_id, PROGRESS_EVERY_S if every is None else every
        self.written_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and self.written_at is not None and now - self.written_at < self.every:
            return
        self.written_at = now
        VerificationRequest.objects.filter(pk=self.request_id).update(entries_checked=done, entries_total=total)


def run_requested(request_id: int, actor: str) -> None:
    """The task's body: claim the request (once), verify (writing its progress),
    record the outcome, free the slot."""
    if not VerificationRequest.objects.filter(pk=request_id, slot=True, started_at=None).update(
            started_at=timezone.now(), entries_checked=0, entries_total=ledger.size()):
        return
    try:
        outcome = run_verification(actor=actor, progress=ProgressWriter(request_id))
    except Exception as exc:
        VerificationRequest.objects.filter(pk=request_id).update(
            slot=None, finished_at=timezone.now(), ok=False, detail=f"verification crashed: {type(exc).__name__}")
        raise
    VerificationRequest.objects.filter(pk=request_id).update(
        slot=None, finished_at=timezone.now(), ok=outcome.ok, detail=outcome.detail[:500],
        ledger_index=outcome.ledger_index, entries_checked=outcome.checked)


def last_verification() -> dict | None:
    entry = LedgerEntry.objects.of_kind("ledger.verified").order_by("-index").first()
    if entry is None:
        return None
    body = json.loads(entry.body)
    return body["payload"] | {"index": entry.index, "time": entry.created_at, "actor": body["actor"]}
