"""Who may call the API and what they opened: service tokens, the access log,
queued full verifications and disclosure attempts."""
from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """An API token: only the SHA-256 of its random secret is kept. A service token
    (`service` set) acts for that one inference service; a personal token (CI) acts as
    its user. Each expires; each may be revoked; its uses are counted."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    service = models.CharField(max_length=100, blank=True, db_index=True)
    prefix = models.CharField(max_length=12, help_text="the secret's first characters, to name it in lists")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def to_dict(self) -> dict:
        return {"id": self.id, "user": self.user.get_username(), "service": self.service or None,
                "prefix": self.prefix, "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "use_count": self.use_count}


class AccessRecord(models.Model):
    """Who opened or was refused what: the access log, kept apart from the ledger so that
    reading a page (a GET another site can trigger) never writes evidence."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=16, default="allowed")
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]


class VerificationRequest(models.Model):
    """A full verification someone asked for. `slot` is True while it is queued or
    running and NULL afterwards; being unique, it lets only one run at a time."""

    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(auto_now_add=True)
    slot = models.BooleanField(null=True, unique=True, default=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    detail = models.CharField(max_length=500, blank=True)
    ledger_index = models.BigIntegerField(null=True)
    # progress while it runs, written by the task every half second or so
    entries_checked = models.BigIntegerField(default=0)
    entries_total = models.BigIntegerField(null=True, blank=True)

    def status(self) -> str:
        if self.finished_at:
            return "succeeded" if self.ok else "failed"
        return "running" if self.started_at else "queued"

    def progress(self, now: datetime | None = None) -> dict:
        """Entries checked of the total (None until the task has read the ledger's
        size), the rate since it started and, while it runs, the time left at that rate."""
        done, total = self.entries_checked, self.entries_total
        until = self.finished_at or now or timezone.now()
        elapsed = (until - self.started_at).total_seconds() if self.started_at else 0.0
        rate = done / elapsed if done and elapsed > 0 else None
        left = max(0.0, (total - done) / rate) if rate and total is not None and not self.finished_at else None
        return {"entries_checked": done, "entries_total": total,
                "entries_per_s": round(rate, 1) if rate else None,
                "seconds_left": round(left, 1) if left is not None else None}

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status(), "requested_by": self.requested_by,
                "requested_at": self.requested_at.isoformat(),
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "ok": self.ok, "detail": self.detail or None, "ledger_index": self.ledger_index,
                **self.progress()}


class DisclosureAttempt(models.Model):
    """One attempt to match a disclosed input against a prediction's commitment, right
    or wrong, recorded (with its `disclosure.attempted` ledger entry) before the answer
    is given.  Counted for the rate limits."""

    MATCHED, NO_MATCH, SALT_ERASED, RATE_LIMITED = "matched", "no_match", "salt_erased", "rate_limited"
    OUTCOMES = [(MATCHED, MATCHED), (NO_MATCH, NO_MATCH), (SALT_ERASED, SALT_ERASED), (RATE_LIMITED, RATE_LIMITED)]

    user = models.CharField(max_length=150)
    inference_id = models.UUIDField()
    outcome = models.CharField(max_length=16, choices=OUTCOMES)
    created_at = models.DateTimeField()
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="disclosure_user_time"),
                   models.Index(fields=["inference_id", "created_at"], name="disclosure_prediction_time")]

    def __str__(self) -> str:
        return f"disclosure attempt by {self.user} on {self.inference_id}: {self.outcome}"
