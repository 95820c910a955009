"""Retention of personal data: input salts only, never ledger rows.

A prediction's input digest is a salted commitment; its salt (PredictionSalt) is the
only thing that links the ledger to a person's input.  After TRACELEDGER_RETENTION_DAYS
(default 190, never less than six months: EU AI Act Art. 19 and 26(6) ask that logs be
kept at least that long) the salt is deleted, unless a case holds the prediction under
legal hold.  The ledger keeps every entry: only the link to the input goes.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.ledger import ledger
from compliance.models import Case
from lineage.models import Prediction, PredictionSalt

MINIMUM_DAYS = 183  # six months
ERASE_BATCH = 5_000  # salts per DELETE


def _now() -> datetime:
    return timezone.now()


def retention_days() -> int:
    return int(settings.TRACELEDGER_RETENTION_DAYS)


def held_inference_ids() -> set[uuid.UUID]:
    """Predictions named by a case under legal hold."""
    return set(Case.objects.filter(legal_hold=True).values_list("prediction_id", flat=True))


def expired_salts(now: datetime | None = None):
    """(salts past retention and not held, how many are held back, the cutoff).  The
    hold test is a subquery, evaluated by the very statement that deletes."""
    cutoff = (now or _now()) - timedelta(days=retention_days())
    old = Prediction.objects.filter(timestamp__lt=cutoff).values("inference_id")
    expired = PredictionSalt.objects.filter(inference_id__in=old)
    held = Case.objects.filter(legal_hold=True).values("prediction_id")
    kept = expired.filter(inference_id__in=held).count()
    return expired.exclude(inference_id__in=held), kept, cutoff


def do_apply_retention(*, dry_run: bool = False, acting_user: str = "system", now: datetime | None = None,
                       batch: int = ERASE_BATCH, progress=None) -> dict:
    """Erase the salts of predictions older than the retention period; record it.

    The salts go `batch` at a time (in primary-key ranges, so no statement carries a
    list of ids), all in one transaction with the ledger entry that records them: a
    failure erases nothing.  `progress(done, total)` is told the salts erased after
    each batch."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    report = progress or (lambda done, total: None)
    with transaction.atomic():
        expired, held_back, cutoff = expired_salts(now)
        count = expired.count()
        result = {"retention_days": retention_days(), "cutoff": cutoff.isoformat(), "salts_erased": 0,
                  "salts_expired": count, "held_by_legal_hold": held_back, "dry_run": dry_run}
        if dry_run:
            return result
        report(0, count)
        erased, last = 0, None
        while True:
            rest = expired if last is None else expired.filter(inference_id__gt=last)
            nth = rest.order_by("inference_id").values_list("inference_id", flat=True)[batch - 1:batch]
            upper = next(iter(nth), None)  # the batch's last id; None: what is left fits in one batch
            # the hold test stays in the deleting statement (expired's subquery)
            deleted, _ = (rest if upper is None else rest.filter(inference_id__lte=upper)).delete()
            erased += deleted
            report(erased, max(count, erased))
            if upper is None:
                break
            last = upper
        result["salts_erased"] = erased
        entry = ledger.append("retention.applied",
                              {k: v for k, v in result.items() if k != "dry_run"},
                              subject="retention:salts", actor=acting_user)
        result["ledger_index"] = entry.index
    return result
