"""When a key stopped counting, read from the ledger's own key events (`key.retired`,
`key.revoked`), never from the key table: the table is a cache that whoever owns the
database can edit, the entries are covered by signed checkpoints.

A signature counts when it was made before the key's retirement and before its
revocation, both as the ledger recorded them; a signature whose time is unknown
counts only for a key that is neither.  The key's purpose is checked apart, by
compliance.ledger.purposes.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from compliance.models import LedgerEntry


@dataclass(frozen=True)
class KeyTimes:
    retired_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str = ""

    def problem(self, key_id: str, signed_at: datetime | None) -> str:
        """Why a signature by this key made at `signed_at` does not count; "" when it does."""
        if self.revoked_at is not None and (signed_at is None or signed_at >= self.revoked_at):
            return (f"key {key_id[:16]} was revoked at {self.revoked_at.isoformat()}"
                    + (f" ({self.reason})" if self.reason else ""))
        if self.retired_at is not None and (signed_at is None or signed_at >= self.retired_at):
            return f"key {key_id[:16]} was retired at {self.retired_at.isoformat()}, before it signed this"
        return ""


def times_of(key_ids: Iterable[str]) -> dict[str, KeyTimes]:
    """Retirement and revocation times of `key_ids` as recorded in the ledger (keys with
    neither are left out)."""
    wanted = set(key_ids)
    if not wanted:
        return {}
    found: dict[str, dict] = {}
    rows = LedgerEntry.objects.of_kind("key.retired", "key.revoked").filter(
        subject__in={f"key:{k[:16]}" for k in wanted}).order_by("index")
    for kind, body in rows.values_list("kind", "body"):
        entry = json.loads(body)
        payload = entry.get("payload") or {}
        key_id = payload.get("key_id")
        if key_id not in wanted:
            continue
        when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        times = found.setdefault(key_id, {})
        if kind == "key.retired":
            times.setdefault("retired_at", when)
        else:
            revoked = payload.get("revoked_at")
            times.setdefault("revoked_at", min(when, datetime.fromisoformat(revoked)) if revoked else when)
            times.setdefault("reason", str(payload.get("reason") or ""))
    return {k: KeyTimes(**v) for k, v in found.items()}


def signature_problem(key_id: str, signed_at: datetime | None) -> str:
    """Why a signature by `key_id` made at `signed_at` does not count; "" when it does."""
    return times_of([key_id]).get(key_id, KeyTimes()).problem(key_id, signed_at)


def entry_time(kind: str, subject: str) -> datetime | None:
    """The time of the first ledger entry of `kind` about `subject` (e.g. when a build's
    manifest was signed: its `build.succeeded` entry)."""
    body = LedgerEntry.objects.of_kind(kind).filter(subject=subject).order_by("index").values_list("body", flat=True).first()
    if body is None:
        return None
    return datetime.fromisoformat(json.loads(body)["time"].replace("Z", "+00:00"))
