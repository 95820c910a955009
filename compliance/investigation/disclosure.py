"""Matching a disclosed input against a prediction's commitment: a guarded, recorded act.

A data subject (or the business) discloses an input; a person holding the `discloser`
role checks it against the prediction's salted commitment and, when it matches, exports
it with its salt in an evidence bundle.  Because a yes/no answer to "is this the
input?" is an oracle for guessing it (an applicant's age has few values), every attempt
is a `disclosure.attempted` ledger entry and a DisclosureAttempt row, written and
committed before the answer is given, right or wrong; attempts are limited per user
per hour and per prediction per day (settings TRACELEDGER_DISCLOSURES_PER_*), an
alert fires when a limit is hit, and a refused or wrong attempt says only that it did
not match.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.investigation.evidence import ExportError, disclosed_input
from compliance.ledger import events, ledger
from compliance.lib.roles import DISCLOSE_ROLES, actor_name, has_role
from compliance.models import DisclosureAttempt, LedgerHead
from lineage.models import Prediction, PredictionSalt

ANSWERS = {
    DisclosureAttempt.NO_MATCH: "the disclosed input does not match the prediction's input commitment",
    DisclosureAttempt.SALT_ERASED: "the salt of this prediction was erased: the input can no longer be linked to it",
    DisclosureAttempt.RATE_LIMITED: "too many disclosure attempts: try again later (this attempt was recorded)",
}


class DisclosureRefused(ExportError):
    """A disclosure attempt that did not give the input: one line, and an HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def may_disclose(user) -> bool:
    return has_role(user, *DISCLOSE_ROLES)


def _over_limit(actor: str, prediction: Prediction, now) -> str:
    per_user = settings.TRACELEDGER_DISCLOSURES_PER_USER_PER_HOUR
    per_prediction = settings.TRACELEDGER_DISCLOSURES_PER_PREDICTION_PER_DAY
    if DisclosureAttempt.objects.filter(user=actor, created_at__gte=now - timedelta(hours=1)).count() >= per_user:
        return f"{actor} made {per_user} disclosure attempts within an hour"
    if DisclosureAttempt.objects.filter(inference_id=prediction.inference_id,
                                        created_at__gte=now - timedelta(days=1)).count() >= per_prediction:
        return f"prediction {prediction.inference_id} had {per_prediction} disclosure attempts within a day"
    return ""


def do_attempt_disclosure(prediction: Prediction, arrays: dict, *, user) -> dict:
    """Record an attempt by `user` to open `prediction`'s input commitment with `arrays`;
    return the bundle's disclosed_input (input and salt) when it matches, else raise
    DisclosureRefused.  The attempt is committed before this returns or raises."""
    from inference import digests

    if not may_disclose(user):
        raise DisclosureRefused("only a person holding the discloser role may match or export a disclosed input", 403)
    actor = actor_name(user)
    now = timezone.now()
    salt_hex = ""
    with transaction.atomic():
        # one attempt at a time (the ledger head lock, which the entry takes anyway), so
        # that concurrent attempts cannot all slip under the limit
        LedgerHead.objects.select_for_update().get_or_create(pk=1)
        limit = _over_limit(actor, prediction, now)
        if limit:
            outcome = DisclosureAttempt.RATE_LIMITED
        else:
            salt_row = PredictionSalt.objects.filter(inference_id=prediction.inference_id).first()
            if salt_row is None:
                outcome = DisclosureAttempt.SALT_ERASED
            elif arrays and digests.verify_commitment(prediction.input_digest, bytes.fromhex(salt_row.salt), arrays):
                outcome, salt_hex = DisclosureAttempt.MATCHED, salt_row.salt
            else:
                outcome = DisclosureAttempt.NO_MATCH
        entry = ledger.append("disclosure.attempted",
                              {"inference_id": str(prediction.inference_id), "user": actor, "outcome": outcome},
                              subject=f"prediction:{prediction.inference_id}", actor=actor)
        DisclosureAttempt.objects.create(user=actor, inference_id=prediction.inference_id, outcome=outcome,
                                         created_at=now, ledger_index=entry.index)
        if limit:
            events.report("disclosure.rate_limited", f"disclosure attempts refused: {limit}", severity="warning",
                          subject=f"prediction:{prediction.inference_id}",
                          details={"user": actor, "inference_id": str(prediction.inference_id),
                                   "ledger_index": entry.index})
    if outcome != DisclosureAttempt.MATCHED:
        raise DisclosureRefused(ANSWERS[outcome], 429 if outcome == DisclosureAttempt.RATE_LIMITED else 400)
    return disclosed_input(prediction, arrays, salt_hex)
