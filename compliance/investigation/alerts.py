"""Raising alerts: an Alert row and an `alert.raised` ledger entry, together; the
notifications (e-mail, signed webhook) go out after commit from a Celery task on the
default queue, so delivery never slows or blocks the code that raised the alert."""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from compliance.ledger import ledger
from compliance.models import Alert

log = logging.getLogger("traceledger.alerts")


def raise_alert(kind: str, message: str, *, severity: str = "warning", subject: str = "",
                details: dict | None = None) -> Alert:
    details = details or {}
    with transaction.atomic():
        alert = Alert.objects.create(kind=kind, severity=severity, message=message[:500],
                                     subject=subject[:128], details=details)
        entry = ledger.append(
            "alert.raised",
            {"alert_id": alert.id, "kind": kind, "severity": severity, "message": alert.message,
             "details": details},
            subject=subject,
        )
        Alert.objects.filter(pk=alert.pk).update(ledger_index=entry.index)
        alert.ledger_index = entry.index
        from compliance.investigation.notify import queue_notifications

        queue_notifications(alert)
    log.warning("alert %s [%s] %s", kind, severity, message)
    return alert


def on_security_event(sender, *, kind: str, message: str, severity: str, subject: str, details: dict,
                      store_alone_on_failure: bool = False, **_) -> None:
    """The receiver of compliance.ledger.events.security_event (connected in
    ComplianceConfig.ready): the layers below report, this one raises the alert."""
    if not store_alone_on_failure:
        raise_alert(kind, message, severity=severity, subject=subject, details=details)
        return
    try:
        raise_alert(kind, message, severity=severity, subject=subject, details=details)
    except Exception:  # the ledger may be too damaged to append to: the alert must still exist
        log.exception("could not append the alert to the ledger; storing the alert alone")
        Alert.objects.create(kind=kind, severity=severity, message=message[:500], subject=subject[:128],
                             details=details | {"ledger_append_failed": True})


class AlertError(ValueError):
    pass


def do_acknowledge_alert(alert: Alert, *, note: str, acting_user: str) -> Alert:
    """Acknowledge once, with a note saying what was done about it."""
    note = (note or "").strip()
    if not note:
        raise AlertError("a note is required: say what was checked or done")
    if len(note) > 2000:
        raise AlertError("the note is longer than 2000 characters")
    with transaction.atomic():
        now = timezone.now()
        updated = Alert.objects.filter(pk=alert.pk, acknowledged_at=None).update(
            acknowledged_at=now, acknowledged_by=acting_user, acknowledgement_note=note)
        if not updated:
            raise AlertError(f"alert {alert.pk} is already acknowledged")
        ledger.append("alert.acknowledged", {"alert_id": alert.pk, "kind": alert.kind, "note": note},
                      subject=alert.subject or f"alert:{alert.pk}", actor=acting_user)
    alert.refresh_from_db()
    return alert
