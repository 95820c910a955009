"""Cases: the only writers of Case and CaseNote rows.  Each step saves its row and its
ledger entry (`case.opened`, `case.noted`, `case.decided`, `case.closed`) in one
transaction, under a row lock so that two reviewers cannot decide the same case.

Who may do what (enforced by the views and the API, documented here once):
- open a case and add notes: auditor, engineer, admin.  Recording an investigation
  does not change the audited records, so the read-only auditor may do it;
- decide: a `reviewer` (a capability given to a person who also has a read role) or an
  admin: the human review GDPR Art. 22 asks for;
- close: whoever may decide, once the case is decided;
- place or release a legal hold: HOLD_ROLES (reviewer or admin), with a reason; each is
  a ledger entry (`case.hold_placed`, `case.hold_released`).  While any case holds a
  prediction, no erasure path removes its input salt (lineage.actions.do_erase_input_salt
  refuses, retention skips it).  A hold outlives the case's closing: only an explicit
  release lifts it.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from compliance.ledger import ledger
from compliance.models import Case, CaseNote
from lineage.models import Prediction

MAX_TEXT = 5000


class CaseError(ValueError):
    """A step that is not allowed in the case's state, or bad input: one line."""


class CaseConflict(CaseError):
    """A step that the case's current state does not allow (HTTP 409)."""


def _text(value: str, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    if required and not value:
        raise CaseError(f"{what} is required")
    if len(value) > limit:
        raise CaseError(f"{what} is longer than {limit} characters")
    return value


def _locked(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def do_open_case(prediction, *, kind: str, summary: str, acting_user: str, legal_hold: bool = False,
                 hold_reason: str = "") -> Case:
    """Open a case; with `legal_hold` the hold is placed at once (its own ledger entry,
    the reason defaulting to the summary).  The caller checks HOLD_ROLES."""
    if kind not in dict(Case.KINDS):
        raise CaseError(f"unknown case kind {kind!r}; choose one of {', '.join(dict(Case.KINDS))}")
    summary = _text(summary, "summary", limit=500)
    hold_reason = _text(hold_reason, "hold reason", required=False, limit=HOLD_REASON_LIMIT) or summary
    with transaction.atomic():
        case = Case.objects.create(prediction=prediction, kind=kind, summary=summary, opened_by=acting_user)
        entry = ledger.append(
            "case.opened",
            {"case_id": case.id, "inference_id": str(prediction.inference_id), "kind": kind, "summary": summary,
             "legal_hold": bool(legal_hold), "prediction_ledger_index": prediction.ledger_index},
            subject=f"case:{case.id}", actor=acting_user,
        )
        Case.objects.filter(pk=case.pk).update(ledger_index=entry.index)
        if legal_hold:
            _place_hold(case, hold_reason, acting_user)
        case.refresh_from_db()
    return case


HOLD_REASON_LIMIT = 1000


def _place_hold(case: Case, reason: str, acting_user: str) -> None:
    # Lock the prediction first, as erasure does, so that a hold and an erasure of the
    # same prediction are serialized: one of them sees the other.
    Prediction.objects.select_for_update().filter(inference_id=case.prediction_id).first()
    Case.objects.filter(pk=case.pk).update(legal_hold=True, hold_placed_by=acting_user, hold_placed_at=timezone.now(),
                                           hold_reason=reason, hold_released_by="", hold_released_at=None,
                                           hold_release_reason="")
    ledger.append("case.hold_placed", {"case_id": case.id, "inference_id": str(case.prediction_id), "reason": reason},
                  subject=f"case:{case.id}", actor=acting_user)


def do_place_hold(case: Case, *, reason: str, acting_user: str) -> Case:
    """Put a case's prediction under legal hold (HOLD_ROLES; checked by the caller)."""
    reason = _text(reason, "reason", limit=HOLD_REASON_LIMIT)
    with transaction.atomic():
        case = _locked(case)
        if case.legal_hold:
            raise CaseConflict(f"case {case.id} is already under legal hold (placed by {case.hold_placed_by})")
        _place_hold(case, reason, acting_user)
        case.refresh_from_db()
    return case


def do_release_hold(case: Case, *, reason: str, acting_user: str) -> Case:
    """Lift a case's legal hold (HOLD_ROLES; checked by the caller).  Other cases may
    still hold the same prediction."""
    reason = _text(reason, "reason", limit=HOLD_REASON_LIMIT)
    with transaction.atomic():
        case = _locked(case)
        if not case.legal_hold:
            raise CaseConflict(f"case {case.id} is not under legal hold: there is nothing to release")
        Case.objects.filter(pk=case.pk).update(legal_hold=False, hold_released_by=acting_user,
                                               hold_released_at=timezone.now(), hold_release_reason=reason)
        ledger.append("case.hold_released",
                      {"case_id": case.id, "inference_id": str(case.prediction_id), "reason": reason,
                       "placed_by": case.hold_placed_by},
                      subject=f"case:{case.id}", actor=acting_user)
        case.refresh_from_db()
    return case


def do_add_case_note(case: Case, *, text: str, acting_user: str) -> CaseNote:
    text = _text(text, "note")
    with transaction.atomic():
        case = _locked(case)
        if case.status == Case.CLOSED:
            raise CaseConflict(f"case {case.id} is closed: notes can no longer be added")
        note = CaseNote.objects.create(case=case, author=acting_user, text=text)
        entry = ledger.append("case.noted", {"case_id": case.id, "note_id": note.id, "text": text},
                              subject=f"case:{case.id}", actor=acting_user)
        CaseNote.objects.filter(pk=note.pk).update(ledger_index=entry.index)
        note.ledger_index = entry.index
        if case.status == Case.OPEN:
            Case.objects.filter(pk=case.pk).update(status=Case.UNDER_REVIEW)
    return note


def do_decide_case(case: Case, *, outcome: str, reason: str, acting_user: str) -> Case:
    if outcome not in dict(Case.OUTCOMES):
        raise CaseError(f"unknown outcome {outcome!r}; choose one of {', '.join(dict(Case.OUTCOMES))}")
    reason = _text(reason, "reason")
    with transaction.atomic():
        case = _locked(case)
        if not case.is_open:
            raise CaseConflict(f"case {case.id} is {case.status}: it can be decided only once")
        now = timezone.now()
        Case.objects.filter(pk=case.pk).update(status=Case.DECIDED, outcome=outcome, decision_reason=reason,
                                               decided_by=acting_user, decided_at=now)
        ledger.append("case.decided", {"case_id": case.id, "outcome": outcome, "reason": reason},
                      subject=f"case:{case.id}", actor=acting_user)
        case.refresh_from_db()
    return case


def do_close_case(case: Case, *, acting_user: str, note: str = "") -> Case:
    note = _text(note, "note", required=False)
    with transaction.atomic():
        case = _locked(case)
        if case.status != Case.DECIDED:
            raise CaseConflict(f"case {case.id} is {case.status}: record a decision before closing it")
        Case.objects.filter(pk=case.pk).update(status=Case.CLOSED, closed_by=acting_user, closed_at=timezone.now())
        ledger.append("case.closed", {"case_id": case.id, "note": note}, subject=f"case:{case.id}",
                      actor=acting_user)
        case.refresh_from_db()
    return case
