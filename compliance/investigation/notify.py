"""Alert notifications: e-mail through Django's mail backend and webhooks whose body is
signed with Ed25519, per alert kind, as configured by an admin (NotificationRule).

A webhook is a POST of the RFC 8785 canonical JSON body with
    X-TraceLedger-Key-Id:    hex SHA-256 of the raw public key (the `webhook` key)
    X-TraceLedger-Signature: base64 Ed25519 signature over the exact body bytes
The public key is published at /api/v1/keys/ (purpose `webhook`), so a receiver
verifies with the public key alone (`verify_webhook`): no shared secret, no HMAC.
The body carries a delivery id and the send time, so a receiver can refuse replays.
"""
from __future__ import annotations

import base64
import hmac
import logging
import uuid
from datetime import datetime, timezone

from celery import current_app
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from compliance.investigation import webhooks
from compliance.ledger import keys
from compliance.ledger.canonical import canonical_json
from compliance.models import Alert, NotificationDelivery, NotificationRule

log = logging.getLogger("traceledger.notify")
KEY_PURPOSE = "webhook"
KEY_ID_HEADER = "X-TraceLedger-Key-Id"
SIGNATURE_HEADER = "X-TraceLedger-Signature"


def queue_notifications(alert: Alert) -> None:
    """Called inside the transaction that raised the alert: send after it commits."""
    if not NotificationRule.objects.filter(enabled=True).exists():
        return
    alert_id = alert.pk

    def send():  # by task name: compliance.tasks imports this module, not the reverse
        current_app.signature("compliance.tasks.send_alert_notifications", args=[alert_id]).apply_async(
            queue="default")

    transaction.on_commit(send)


def webhook_body(alert: Alert, rule: NotificationRule) -> bytes:
    return canonical_json({
        "type": "traceledger.alert/v1",
        "delivery_id": str(uuid.uuid4()),
        "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "rule": {"id": rule.pk, "name": rule.name},
        "alert": alert.to_dict(),
    })


def sign_webhook(body: bytes) -> dict[str, str]:
    signer = keys.get_signer(KEY_PURPOSE)
    return {KEY_ID_HEADER: signer.key_id, SIGNATURE_HEADER: base64.b64encode(signer.sign(body)).decode()}


def verify_webhook(body: bytes, headers, public_key: Ed25519PublicKey, key_id: str) -> bool:
    """For receivers: True when the body was signed by `public_key` (whose id is `key_id`)."""
    lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}  # header names are case-insensitive
    if not hmac.compare_digest(lower.get(KEY_ID_HEADER.lower(), ""), key_id):
        return False
    try:
        public_key.verify(base64.b64decode(lower.get(SIGNATURE_HEADER.lower(), ""), validate=True), body)
    except (InvalidSignature, ValueError):
        return False
    return True


def _post(url: str, body: bytes) -> tuple[bool, str]:
    return webhooks.post(url, body, {"Content-Type": "application/json", "User-Agent": "TraceLedger-notify/1"}
                         | sign_webhook(body))


def _email(alert: Alert, to: str) -> tuple[bool, str]:
    subject = f"[TraceLedger {alert.severity}] {alert.kind}"
    text = (f"{alert.message}\n\nkind: {alert.kind}\nseverity: {alert.severity}\nsubject: {alert.subject}\n"
            f"raised: {alert.created_at.isoformat()}\nledger entry: #{alert.ledger_index}\n")
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
    except (OSError, ValueError) as exc:
        return False, str(exc)[:400]
    return True, "sent"


def deliver(alert_id: int) -> list[NotificationDelivery]:
    """Send one alert to every matching rule's targets once; a target already
    delivered to (a redelivered task) is skipped."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return []
    done = set(NotificationDelivery.objects.filter(alert=alert).values_list("rule_id", "channel", "target"))
    made = []
    for rule in NotificationRule.objects.filter(enabled=True):
        if not rule.matches(alert):
            continue
        targets = [("email", to) for to in rule.email_list]
        if rule.webhook_url:
            targets.append(("webhook", rule.webhook_url))
        for channel, target in targets:
            if (rule.pk, channel, target) in done:
                continue
            ok, detail = _email(alert, target) if channel == "email" else _post(target, webhook_body(alert, rule))
            if not ok:
                log.warning("notification of alert %s to %s %s failed: %s", alert.pk, channel, target, detail)
            try:
                made.append(NotificationDelivery.objects.create(alert=alert, rule=rule, channel=channel,
                                                                target=target[:500], ok=ok, detail=detail[:500]))
            except IntegrityError:
                pass  # another worker recorded the same delivery
    return made


def do_save_rule(rule: NotificationRule, *, acting_user: str) -> NotificationRule:
    """Create or change a rule; the change is a ledger entry (who routes alerts where
    is part of the control environment an auditor checks)."""
    from compliance.ledger import ledger

    created = rule.pk is None
    with transaction.atomic():
        if created:
            rule.created_by = acting_user
        rule.save()
        ledger.append("notification_rule.changed", {"action": "created" if created else "changed"} | {
            k: v for k, v in rule.to_dict().items() if k not in ("created_at",)},
            subject=f"notification_rule:{rule.pk}", actor=acting_user)
    return rule


def do_delete_rule(rule: NotificationRule, *, acting_user: str) -> None:
    from compliance.ledger import ledger

    with transaction.atomic():
        ledger.append("notification_rule.changed", {"action": "deleted", "id": rule.pk, "name": rule.name},
                      subject=f"notification_rule:{rule.pk}", actor=acting_user)
        rule.delete()
