"""Raising alerts: an Alert row and an `alert.raised` ledger entry, together."""
from __future__ import annotations

import logging

from django.db import transaction

from . import ledger
from .models import Alert

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
    log.warning("alert %s [%s] %s", kind, severity, message)
    return alert
