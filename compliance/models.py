"""Compliance records: the ledger, registered public keys and alerts.

Ledger rows are append-only: the model layer refuses updates and deletes, database
triggers (installed by migrations) refuse them too, and signed checkpoints make any
change that bypassed both detectable by `manage.py verify_ledger`.
"""
from __future__ import annotations

from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError(f"{self.model.__name__} is append-only")

    def delete(self):
        raise PermissionError(f"{self.model.__name__} is append-only")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{type(self).__name__} is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} is append-only")


class LedgerHead(models.Model):
    """One row holding the ledger size. Appenders lock it, which gives every entry a
    gapless, totally ordered index on PostgreSQL and SQLite alike."""

    size = models.BigIntegerField(default=0)


class LedgerEntry(AppendOnlyModel):
    """One leaf of the Merkle log. `body` is the exact canonical JSON (RFC 8785) that
    was hashed: leaf_hash = SHA-256(0x00 || body)."""

    index = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=128, db_index=True, blank=True)
    body = models.TextField()
    leaf_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["index"]
        verbose_name_plural = "ledger entries"
        # the dashboard's entries browser pages by index within a kind or a subject
        indexes = [models.Index(fields=["kind", "index"], name="ledger_kind_index"),
                   models.Index(fields=["subject", "index"], name="ledger_subject_index")]

    def __str__(self) -> str:
        return f"#{self.index} {self.kind} {self.subject}"


class SigningKey(models.Model):
    """A registered public key. The private half lives only in a 0600 file under
    TRACELEDGER_KEYS_DIR; it is never stored here."""

    PURPOSES = [("build", "build"), ("ledger", "ledger"), ("witness", "witness"), ("webhook", "webhook")]

    key_id = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=16, choices=PURPOSES)
    algorithm = models.CharField(max_length=16, default="ed25519")
    public_key = models.CharField(max_length=64, help_text="base64 of the raw 32-byte key")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["purpose", "created_at"]

    def __str__(self) -> str:
        return f"{self.purpose}:{self.key_id[:16]}"

    def to_dict(self) -> dict:
        return {
            "key_id": self.key_id,
            "purpose": self.purpose,
            "algorithm": self.algorithm,
            "public_key": self.public_key,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class Alert(models.Model):
    SEVERITIES = [("info", "info"), ("warning", "warning"), ("critical", "critical")]

    kind = models.CharField(max_length=64, db_index=True)
    severity = models.CharField(max_length=16, choices=SEVERITIES, default="warning")
    message = models.CharField(max_length=500)
    subject = models.CharField(max_length=128, blank=True)
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ledger_index = models.BigIntegerField(null=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "subject": self.subject,
            "details": self.details,
            "created_at": self.created_at.isoformat(),
            "ledger_index": self.ledger_index,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by or None,
            "acknowledgement_note": self.acknowledgement_note or None,
        }


class Case(models.Model):
    """An investigation opened from one prediction: a data subject's GDPR Art. 22
    contest or an internal review.  Every step (open, note, decide, close) goes
    through compliance.cases and is a ledger entry; the row holds the current state."""

    GDPR_ART22, INTERNAL_REVIEW = "gdpr_art22", "internal_review"
    KINDS = [(GDPR_ART22, "GDPR Art. 22 contest"), (INTERNAL_REVIEW, "Internal review")]
    OPEN, UNDER_REVIEW, DECIDED, CLOSED = "open", "under_review", "decided", "closed"
    STATUSES = [(OPEN, "open"), (UNDER_REVIEW, "under review"), (DECIDED, "decided"), (CLOSED, "closed")]
    UPHELD, OVERTURNED = "upheld", "overturned"
    OUTCOMES = [(UPHELD, "automated decision upheld"), (OVERTURNED, "automated decision overturned")]

    prediction = models.ForeignKey("lineage.Prediction", on_delete=models.PROTECT, related_name="cases")
    kind = models.CharField(max_length=32, choices=KINDS)
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN, db_index=True)
    summary = models.CharField(max_length=500)
    opened_by = models.CharField(max_length=150)
    opened_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=16, choices=OUTCOMES, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Evidence under legal hold must not be erased (salts kept, exports retained).
    legal_hold = models.BooleanField(default=False)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"case {self.id} ({self.get_kind_display()}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (self.OPEN, self.UNDER_REVIEW)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "inference_id": str(self.prediction_id),
            "kind": self.kind,
            "status": self.status,
            "summary": self.summary,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at.isoformat(),
            "outcome": self.outcome or None,
            "decision_reason": self.decision_reason or None,
            "decided_by": self.decided_by or None,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "closed_by": self.closed_by or None,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "legal_hold": self.legal_hold,
            "ledger_index": self.ledger_index,
        }


class CaseNote(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    author = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["created_at", "id"]

    def to_dict(self) -> dict:
        return {"id": self.id, "author": self.author, "text": self.text,
                "created_at": self.created_at.isoformat(), "ledger_index": self.ledger_index}


class NotificationRule(models.Model):
    """Who hears about which alerts: alert kinds matching `kind_pattern` (shell-style,
    e.g. `engine.*`) at or above `min_severity` go to the e-mail addresses and to the
    webhook (a POST of canonical JSON signed with the `webhook` Ed25519 key)."""

    SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}

    name = models.CharField(max_length=100)
    kind_pattern = models.CharField(max_length=64, default="*")
    min_severity = models.CharField(max_length=16, choices=Alert.SEVERITIES, default="info")
    emails = models.TextField(blank=True, help_text="one address per line")
    webhook_url = models.URLField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind_pattern})"

    @property
    def email_list(self) -> list[str]:
        return [line.strip() for line in self.emails.splitlines() if line.strip()]

    def matches(self, alert: "Alert") -> bool:
        from fnmatch import fnmatchcase

        return (self.enabled and fnmatchcase(alert.kind, self.kind_pattern)
                and self.SEVERITY_ORDER.get(alert.severity, 0) >= self.SEVERITY_ORDER.get(self.min_severity, 0))

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "kind_pattern": self.kind_pattern,
                "min_severity": self.min_severity, "emails": self.email_list, "webhook_url": self.webhook_url,
                "enabled": self.enabled, "created_by": self.created_by, "created_at": self.created_at.isoformat()}


class NotificationDelivery(models.Model):
    """One attempt to deliver one alert through one channel of one rule."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(NotificationRule, on_delete=models.SET_NULL, null=True, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=[("email", "email"), ("webhook", "webhook")])
    target = models.CharField(max_length=500)
    ok = models.BooleanField()
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["alert", "rule", "channel", "target"],
                                               name="one_delivery_per_alert_rule_target")]
