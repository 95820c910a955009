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


# One entry per prediction: left out of the kind and subject indexes below.
UNINDEXED_KIND = "prediction.recorded"


class LedgerEntryQuerySet(AppendOnlyQuerySet):
    """SQLite's planner uses a partial index only when the query repeats the index's
    condition word for word (PostgreSQL proves it from `kind = 'build.succeeded'`); at
    1,000,000 entries a lookup by kind that does not walked the whole primary key (0.3 s
    a query on the dashboard's pages).  These methods repeat it."""

    def of_kind(self, *kinds: str):
        query = self.filter(kind=kinds[0]) if len(kinds) == 1 else self.filter(kind__in=kinds)
        return query if UNINDEXED_KIND in kinds else query.exclude(kind=UNINDEXED_KIND)

    def indexed(self):
        """Only the entries the kind and subject indexes hold (every kind but predictions')."""
        return self.exclude(kind=UNINDEXED_KIND)


class LedgerHead(models.Model):
    """One row holding the ledger size. Appenders lock it, which gives every entry a
    gapless, totally ordered index on PostgreSQL and SQLite alike."""

    size = models.BigIntegerField(default=0)


class LedgerEntry(AppendOnlyModel):
    """One leaf of the Merkle log. `body` is the exact canonical JSON (RFC 8785) that
    was hashed: leaf_hash = SHA-256(0x00 || body)."""

    objects = LedgerEntryQuerySet.as_manager()

    index = models.BigIntegerField(primary_key=True)
    # no single-column indexes: the (kind, index) and (subject, index) indexes below
    # serve equality lookups on either column, and on PostgreSQL a CharField's
    # db_index costs two indexes (the second for LIKE) on every one of millions of appends
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=128, blank=True)
    body = models.TextField()
    leaf_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["index"]
        verbose_name_plural = "ledger entries"
        # The dashboard's entries browser pages by index within a kind or a subject.
        # Both indexes leave out prediction.recorded, one entry per prediction, which
        # would double their cost on the busiest append path for lookups that go
        # through Prediction.ledger_index instead (see ledger.about); listing that
        # kind walks the primary key, where nearly every entry is one.
        indexes = [models.Index(fields=["kind", "index"], name="ledger_kind_index",
                                condition=~models.Q(kind=UNINDEXED_KIND)),
                   models.Index(fields=["subject", "index"], name="ledger_subject_index",
                                condition=~models.Q(kind=UNINDEXED_KIND))]

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
    revocation_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["purpose", "created_at"]

    def __str__(self) -> str:
        return f"{self.purpose}:{self.key_id[:16]}"

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "retired" if self.retired_at else "current"

    def valid_at(self, when) -> bool:
        """Whether a signature this key made at `when` counts: a revoked key
        invalidates what it signed at or after its revocation; retirement only
        stops new signing, so past signatures stay valid."""
        return self.revoked_at is None or (when is not None and when < self.revoked_at)

    def to_dict(self) -> dict:
        return {
            "key_id": self.key_id,
            "purpose": self.purpose,
            "algorithm": self.algorithm,
            "public_key": self.public_key,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revocation_reason": self.revocation_reason,
            "state": self.state,
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


class MerkleNode(AppendOnlyModel):
    """The hash of one complete subtree of the ledger's Merkle tree: level 0 holds leaf
    hashes, node (level, index) covers leaves [index·2^level, (index+1)·2^level).
    `id` packs both as level << 56 | index so a proof's nodes come in one IN query."""

    id = models.BigIntegerField(primary_key=True)
    hash = models.BinaryField(max_length=32)

    LEVEL_SHIFT = 56

    @classmethod
    def key(cls, level: int, index: int) -> int:
        return (level << cls.LEVEL_SHIFT) | index

    @property
    def level(self) -> int:
        return self.id >> self.LEVEL_SHIFT

    @property
    def index(self) -> int:
        return self.id & ((1 << self.LEVEL_SHIFT) - 1)


class Checkpoint(AppendOnlyModel):
    """A signed checkpoint of the ledger (C2SP tlog-checkpoint in a signed note)."""

    size = models.BigIntegerField(db_index=True)
    root_hash = models.CharField(max_length=64)
    note = models.TextField(help_text="the signed note, verbatim")
    key_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint {self.size} {self.root_hash[:16]}"

    def to_dict(self) -> dict:
        return {"id": self.id, "size": self.size, "root_hash": self.root_hash, "note": self.note,
                "key_id": self.key_id, "created_at": self.created_at.isoformat()}


class WitnessCosignature(AppendOnlyModel):
    """A witness's C2SP cosignature/v1 on a checkpoint: the witness checked that the
    checkpoint extends the last one it cosigned. `line` is the signature line verbatim;
    appended to the checkpoint note it gives the witnessed note."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="cosignatures")
    witness = models.CharField(max_length=200, help_text="the witness's key name")
    key_id = models.CharField(max_length=64, help_text="registered key id (sha256 of the public key)")
    timestamp = models.BigIntegerField(help_text="Unix seconds signed into the cosignature")
    line = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["checkpoint", "key_id"], name="one_cosignature_per_witness_key")]

    def __str__(self) -> str:
        return f"cosignature by {self.witness} on checkpoint {self.checkpoint_id}"

    def witnessed_note(self) -> str:
        return self.checkpoint.note + self.line

    def to_dict(self) -> dict:
        return {"id": self.id, "checkpoint_id": self.checkpoint_id, "witness": self.witness, "key_id": self.key_id,
                "timestamp": self.timestamp, "line": self.line, "created_at": self.created_at.isoformat()}


class VerificationRun(models.Model):
    """One run of verify_ledger. Not append-only: it is our own bookkeeping (where the
    next `--since-last` run starts), not evidence."""

    FULL, SINCE_LAST = "full", "since_last"

    mode = models.CharField(max_length=16, choices=[(FULL, FULL), (SINCE_LAST, SINCE_LAST)], default=FULL)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True, help_text="null while running")
    first_bad_index = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    checked_from = models.BigIntegerField(default=0)
    checked_upto = models.BigIntegerField(default=0, help_text="entries [checked_from, checked_upto) were checked")
    entries_checked = models.BigIntegerField(default=0)
    # The newest checkpoint this run verified, copied rather than referenced: the
    # checkpoint table is evidence, and this row must not hold it hostage.
    checkpoint_id = models.BigIntegerField(null=True, blank=True)
    checkpoint_size = models.BigIntegerField(null=True, blank=True)
    checkpoint_root = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"verification {self.id} {self.mode} ok={self.ok}"

    def to_dict(self) -> dict:
        return {"id": self.id, "mode": self.mode, "ok": self.ok, "first_bad_index": self.first_bad_index,
                "message": self.message, "checked_from": self.checked_from, "checked_upto": self.checked_upto,
                "entries_checked": self.entries_checked, "checkpoint_id": self.checkpoint_id,
                "checkpoint_size": self.checkpoint_size,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


class Case(models.Model):
    """An investigation opened from one prediction: a data subject's GDPR Art. 22
    contest or an internal review.  Every step (open, note, decide, close) goes
    through compliance.investigation.cases and is a ledger entry; the row holds the current state."""

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
    # Placing and releasing a hold are steps of their own (HOLD_ROLES), each with a reason
    # and a ledger entry; the row keeps who, when and why for the case page.
    legal_hold = models.BooleanField(default=False)
    hold_placed_by = models.CharField(max_length=150, blank=True)
    hold_placed_at = models.DateTimeField(null=True, blank=True)
    hold_reason = models.TextField(blank=True)
    hold_released_by = models.CharField(max_length=150, blank=True)
    hold_released_at = models.DateTimeField(null=True, blank=True)
    hold_release_reason = models.TextField(blank=True)
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
            "hold": self.hold_dict(),
            "ledger_index": self.ledger_index,
        }

    def hold_dict(self) -> dict | None:
        """Who placed the hold, when and why (and who released it), or None if never held."""
        if not self.hold_placed_at:
            return None
        return {
            "active": self.legal_hold,
            "placed_by": self.hold_placed_by,
            "placed_at": self.hold_placed_at.isoformat(),
            "reason": self.hold_reason,
            "released_by": self.hold_released_by or None,
            "released_at": self.hold_released_at.isoformat() if self.hold_released_at else None,
            "release_reason": self.hold_release_reason or None,
        }

    @classmethod
    def holding(cls, inference_id):
        """The cases whose legal hold covers this prediction now."""
        return cls.objects.filter(prediction_id=inference_id, legal_hold=True)


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


# Access control and disclosure records, in a module of their own (re-exported here).
from compliance.models.access import AccessRecord, ApiToken, DisclosureAttempt, VerificationRequest  # noqa: E402

__all__ = ["AccessRecord", "ApiToken", "DisclosureAttempt", "VerificationRequest"]
