"""The one door every audit event goes through.

`append(kind, payload, ...)` writes one leaf; `append_many` writes a batch under one
lock. Call them inside the same transaction as the rows they describe, so an event
and its record commit or roll back together.

An entry body is the RFC 8785 canonical JSON of
    {"index", "kind", "subject", "actor", "time", "payload"}
and its leaf hash is SHA-256(0x00 || body) (RFC 9162).  The index inside the body
makes a swapped or re-ordered row detectable from the row alone.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.db import transaction

from .canonical import canonical_json
from .models import LedgerEntry, LedgerHead

KINDS = {
    "model.registered",
    "calibration.registered",
    "build.requested",
    "build.started",
    "build.succeeded",
    "build.failed",
    "build.cancelled",
    "deployment.created",
    "engine.loaded",
    "engine.load_refused",
    "engine.reverified",
    "prediction.recorded",
    "prediction.salt_erased",
    "alert.raised",
    "alert.acknowledged",
    "key.registered",
    "key.retired",
    "key.revoked",
    "checkpoint.created",
    "trace.viewed",
    "report.exported",
    "case.opened",
    "case.noted",
    "case.decided",
    "case.closed",
}


@dataclass
class Event:
    kind: str
    payload: dict
    subject: str = ""
    actor: str = "system"
    time: datetime | None = None
    extra: dict = field(default_factory=dict)


def leaf_hash(body: bytes) -> str:
    return hashlib.sha256(b"\x00" + body).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def entry_body(index: int, event: Event, when: datetime) -> bytes:
    return canonical_json(
        {
            "index": index,
            "kind": event.kind,
            "subject": event.subject,
            "actor": event.actor,
            "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "payload": event.payload,
        }
    )


def append(kind: str, payload: dict, *, subject: str = "", actor: str = "system") -> LedgerEntry:
    return append_many([Event(kind, payload, subject, actor)])[0]


def append_many(events: list[Event]) -> list[LedgerEntry]:
    """Append events as consecutive leaves. The head row is locked for the rest of the
    enclosing transaction, so concurrent writers queue instead of colliding."""
    for event in events:
        if event.kind not in KINDS:
            raise ValueError(f"unknown ledger event kind {event.kind!r}")
    if not events:
        return []
    with transaction.atomic():
        head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
        start = head.size
        entries = []
        for offset, event in enumerate(events):
            when = event.time or _now()
            body = entry_body(start + offset, event, when)
            entries.append(
                LedgerEntry(
                    index=start + offset,
                    kind=event.kind,
                    subject=event.subject[:128],
                    body=body.decode(),
                    leaf_hash=leaf_hash(body),
                    created_at=when,
                )
            )
        _insert(entries)
        LedgerHead.objects.filter(pk=1).update(size=start + len(entries))
    return entries


COPY_FROM = 64  # entries per append from which PostgreSQL gets them by COPY


def _insert(entries: list[LedgerEntry]) -> None:
    """Insert the rows of one append. Large appends on PostgreSQL go by binary COPY:
    bulk_create there sends each column as an array parameter, and quoting JSON
    bodies into a text array costs more than the insert itself (predictions are
    appended tens of thousands at a time)."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or len(entries) < COPY_FROM:
        LedgerEntry.objects.bulk_create(entries, batch_size=2000)
        return
    quote = connection.ops.quote_name
    names = ("index", "kind", "subject", "body", "leaf_hash", "created_at")
    columns = ", ".join(quote(LedgerEntry._meta.get_field(n).column) for n in names)
    sql = f"COPY {quote(LedgerEntry._meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(["int8", "varchar", "varchar", "text", "varchar", "timestamptz"])
        write = copy.write_row
        for e in entries:
            write((e.index, e.kind, e.subject, e.body, e.leaf_hash, e.created_at))


def hold_head() -> None:
    """Lock the head row for the rest of the enclosing transaction, as append_many
    does, so that a check-then-append (e.g. skip ids already recorded, then append
    the rest) cannot interleave with another appender."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_head() must run inside transaction.atomic()")
    LedgerHead.objects.select_for_update().get_or_create(pk=1)


def size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def check_entry(entry: LedgerEntry) -> str | None:
    """Re-derive an entry from its stored body; a reason string if anything disagrees."""
    body = entry.body.encode()
    if leaf_hash(body) != entry.leaf_hash:
        return "leaf hash does not match the stored body"
    try:
        parsed = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if canonical_json(parsed) != body:
        return "body is not canonical JSON"
    if parsed.get("index") != entry.index:
        return f"body says index {parsed.get('index')}, row is {entry.index}"
    if parsed.get("kind") != entry.kind or parsed.get("subject") != entry.subject:
        return "kind or subject column differs from the body"
    return None


def payload_of(entry: LedgerEntry) -> dict:
    return json.loads(entry.body)["payload"]
