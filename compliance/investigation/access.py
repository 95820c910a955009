"""The access log (AccessRecord): who opened which record, and which requests were
refused. Kept apart from the ledger, so that opening a page — a GET that a link in an
e-mail or another site can trigger — never writes evidence, and a flood of refused
requests costs one row each, not one ledger entry and one alert each.

Refusals that someone should look at also raise an alert, aggregated: while an alert
of that kind and subject is unacknowledged and younger than
TRACELEDGER_ALERT_AGGREGATE_S, further refusals only raise its `count`.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.investigation.alerts import raise_alert
from compliance.models import AccessRecord, Alert


def record_access(actor: str, action: str, target: str = "", *, outcome: str = "allowed",
                  detail: str = "") -> AccessRecord:
    return AccessRecord.objects.create(actor=actor[:150], action=action[:64], target=target[:200],
                                       outcome=outcome[:16], detail=detail[:500])


def raise_or_count(kind: str, message: str, *, severity: str = "warning", subject: str = "",
                   details: dict | None = None) -> Alert:
    """One alert per burst: a new alert, or the open one of this kind and subject with its
    `count` raised and `last_seen` moved (and the latest details under `last`)."""
    now = timezone.now()
    window = timedelta(seconds=settings.TRACELEDGER_ALERT_AGGREGATE_S)
    details = details or {}
    with transaction.atomic():
        open_alert = (Alert.objects.select_for_update()
                      .filter(kind=kind, subject=subject[:128], acknowledged_at=None, created_at__gte=now - window)
                      .order_by("-id").first())
        if open_alert is not None:
            merged = open_alert.details | {"count": int(open_alert.details.get("count", 1)) + 1,
                                           "last_seen": now.isoformat(), "last": details}
            Alert.objects.filter(pk=open_alert.pk).update(details=merged)
            open_alert.details = merged
            return open_alert
    return raise_alert(kind, message, severity=severity, subject=subject,
                       details=details | {"count": 1, "first_seen": now.isoformat()})


def refuse(actor: str, action: str, target: str, reason: str, *, alert_kind: str = "", alert_subject: str = "",
           severity: str = "warning") -> None:
    """Record a refused request in the access log and, when `alert_kind` is given, in an
    aggregated alert."""
    record_access(actor, action, target, outcome="refused", detail=reason)
    if alert_kind:
        raise_or_count(alert_kind, reason, severity=severity, subject=alert_subject or target,
                       details={"actor": actor, "action": action, "target": target})
