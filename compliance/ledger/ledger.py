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

import contextvars
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.db import connection, transaction
from django.db.models import Q

from compliance.ledger import merkle, tree
from compliance.ledger.bulk import copy_lines, insert_rows
from compliance.ledger.canonical import canonical_json
from compliance.models import UNINDEXED_KIND, LedgerEntry, LedgerHead

# One JSON log line per committed entry (production logging); the ledger stays the record.
audit_log = logging.getLogger("traceledger.audit")

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
    "prediction.erasure_refused",
    "alert.raised",
    "alert.acknowledged",
    "key.registered",
    "key.retired",
    "key.revoked",
    "checkpoint.created",
    "checkpoint.cosigned",
    "key.private_destroyed",
    "trace.viewed",
    "report.exported",
    "disclosure.attempted",
    "retention.applied",
    "case.opened",
    "case.noted",
    "case.decided",
    "case.closed",
    "case.hold_placed",
    "case.hold_released",
    "ledger.verified",
    "notification_rule.changed",
    "token.issued",
    "token.revoked",
    "auth.locked_out",
}


@dataclass
class Event:
    kind: str
    payload: dict
    subject: str = ""
    actor: str = "system"
    time: datetime | None = None
    extra: dict = field(default_factory=dict)


ENTRY_FIELDS = ("index", "kind", "subject", "body", "leaf_hash", "created_at")


def leaf_hash(body: bytes) -> str:
    return merkle.leaf_hash(body).hex()


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
        start = _lock_head()
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
        insert_rows(LedgerEntry, ENTRY_FIELDS, [tuple(getattr(e, f) for f in ENTRY_FIELDS) for e in entries])
        tree.store_leaves(start, [bytes.fromhex(e.leaf_hash) for e in entries])
        LedgerHead.objects.filter(pk=1).update(size=start + len(entries))
        if audit_log.isEnabledFor(logging.INFO):
            context = contextvars.copy_context()  # the request id and user of the caller's log lines
            transaction.on_commit(lambda: context.run(_log_entries, events, start))
    return entries


def _log_entries(events: list[Event], start: int) -> None:
    for offset, event in enumerate(events):
        audit_log.info("ledger entry %s", event.kind, extra={
            "event_kind": event.kind, "ledger_index": start + offset, "subject": event.subject[:128],
            "actor": event.actor})


# Rendered appends stream in chunks, so that on PostgreSQL the server stores one
# chunk while this process renders the next.
RENDER_CHUNK = 500
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def append_rendered(kind: str, items: Sequence, render: Callable[[int, object], tuple[str, str, str]]) -> int:
    """Append one `kind` event per item, for hot paths whose bodies are cheaper to
    render from a fixed template than to build as dicts and canonicalise.

    `render(index, item)` returns (subject, time, body): `time` is the body's "time"
    (ISO 8601 UTC, ending in Z) and `body` the entry's RFC 8785 text, which must be
    exactly `entry_body(index, event, time)` of the same event — the caller's tests
    hold the two equal, and verify_ledger re-checks every stored body.  Must run
    inside transaction.atomic(); returns the index of the first item."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger event kind {kind!r}")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_rendered() must run inside transaction.atomic()")
    start = _lock_head()
    if not items:
        return start
    nodes = tree.open_batch(start, len(items))
    if connection.vendor == "postgresql":
        copy_lines(LedgerEntry, ENTRY_FIELDS, _rendered_lines(kind, start, items, render, nodes.add),
                   chunk=RENDER_CHUNK)
    else:
        rows = []
        for offset, item in enumerate(items):
            subject, when, body = render(start + offset, item)
            digest = merkle.leaf_hash(body.encode())
            nodes.add(digest)
            rows.append(LedgerEntry(index=start + offset, kind=kind, subject=subject[:128], body=body,
                                    leaf_hash=digest.hex(), created_at=datetime.fromisoformat(when)))
        LedgerEntry.objects.bulk_create(rows, batch_size=2000)
    tree.store_nodes(nodes.rows)
    LedgerHead.objects.filter(pk=1).update(size=start + len(items))
    if audit_log.isEnabledFor(logging.INFO):
        count, context = len(items), contextvars.copy_context()  # one line per batch: the hot path's predictions
        transaction.on_commit(lambda: context.run(audit_log.info, "ledger entries %s x%d", kind, count, extra={
            "event_kind": kind, "ledger_index": start, "count": count}))
    return start


def _rendered_lines(kind: str, start: int, items: Sequence, render, add_leaf: Callable[[bytes], None]):
    """COPY text lines of the rendered entries; each leaf goes to `add_leaf` (the Merkle
    nodes) as it is made, while the server stores the chunk before."""
    kind_text = kind.translate(_COPY_ESCAPES)
    leaf_hash = merkle.leaf_hash
    for offset, item in enumerate(items, start):
        subject, when, body = render(offset, item)
        digest = leaf_hash(body.encode())
        add_leaf(digest)
        subject = subject[:128]
        if not (_copy_safe(subject) and _copy_safe(body)):
            subject, body = subject.translate(_COPY_ESCAPES), body.translate(_COPY_ESCAPES)
        yield f"{offset}\t{kind_text}\t{subject}\t{body}\t{digest.hex()}\t{when}\n"


def _copy_safe(text: str) -> bool:
    """Whether `text` needs no escaping in COPY's text format: four C-speed scans (a
    character-class regex over subject and body cost ~4 µs per entry, half the
    rendering loop)."""
    return not ("\\" in text or "\t" in text or "\n" in text or "\r" in text)


def _lock_head() -> int:
    head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
    return head.size


def hold_head() -> None:
    """Lock the head row for the rest of the enclosing transaction, as append_many
    does, so that a check-then-append (e.g. skip ids already recorded, then append
    the rest) cannot interleave with another appender."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_head() must run inside transaction.atomic()")
    _lock_head()


# Subjects whose entries the subject index leaves out (prediction.recorded, one per
# prediction: indexing them would double the append cost). The layer that owns such
# a subject registers how to find its entry's own index (lineage, for "prediction:").
_OWN_INDEX: dict[str, Callable[[str], int | None]] = {}


def register_own_index(prefix: str, find: Callable[[str], int | None]) -> None:
    """`find(subject)` returns the ledger index of the unindexed entry about `subject`
    (a subject starting with `prefix`), or None."""
    _OWN_INDEX[prefix] = find


def about(subject: str, query=None):
    """Entries whose subject is `subject` (of `query`, by default all). The subject
    index leaves out prediction.recorded entries; such an entry is found through the
    index its owner registered (a prediction's: its batch's first index + its
    position), the rest through the subject index."""
    query = LedgerEntry.objects.all() if query is None else query
    others = Q(subject=subject) & ~Q(kind=UNINDEXED_KIND)
    for prefix, find in _OWN_INDEX.items():
        if subject.startswith(prefix):
            own = find(subject)
            if own is not None:
                return query.filter(others | Q(index=own, subject=subject))
    return query.filter(others)


def size() -> int:
    head = LedgerHead.objects.filter(pk=1).first()
    return head.size if head else 0


def check_entry(entry: LedgerEntry) -> str | None:
    """Re-derive an entry from its stored body; a reason string if anything disagrees."""
    return check_row(entry.index, entry.kind, entry.subject, entry.body, entry.leaf_hash)[1]


_MAX_SAFE_INT = 2**53 - 1


class _NotCanonical(ValueError):
    pass


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_SAFE_INT:
        raise _NotCanonical("integer outside the RFC 8785 safe range")
    return value


def _no_float(text: str):
    raise _NotCanonical("float in the body")


# Decoders and encoder made once: verify_ledger checks a million bodies.  Only a run of
# 16+ digits can be an integer beyond 2**53 - 1, so most bodies skip the int hook.
_PLAIN_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
_STRICT_DECODER = json.JSONDecoder(parse_int=_safe_int, parse_float=_no_float, parse_constant=_no_float)
_LONG_DIGITS = re.compile(r"[:,[]-?[0-9]{16}")
_COMPACT_SORTED = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _is_canonical(parsed, body_text: str) -> bool:
    """Whether `body_text` is the RFC 8785 form of `parsed` (see compliance.ledger.canonical:
    for ASCII text that is Python's compact, key-sorted JSON)."""
    if body_text.isascii():
        return _COMPACT_SORTED.encode(parsed) == body_text
    try:
        return canonical_json(parsed) == body_text.encode()
    except (TypeError, ValueError):
        return False


def check_row(index: int, kind: str, subject: str, body_text: str, leaf_hash_hex: str) -> tuple[bytes, str | None]:
    """(leaf hash recomputed from the body, reason string if the row disagrees with itself).

    Used by verify_ledger on raw column values, so that a million rows can be checked
    without building model instances."""
    leaf = merkle.leaf_hash(body_text.encode())
    if leaf.hex() != leaf_hash_hex:
        return leaf, "leaf hash does not match the stored body"
    decoder = _STRICT_DECODER if _LONG_DIGITS.search(body_text) else _PLAIN_DECODER
    try:
        parsed = decoder.decode(body_text)
    except _NotCanonical as exc:
        return leaf, f"body is not canonical JSON ({exc})"
    except ValueError:
        return leaf, "body is not JSON"
    if not isinstance(parsed, dict):
        return leaf, "body is not a JSON object"
    if not _is_canonical(parsed, body_text):
        return leaf, "body is not canonical JSON"
    said = parsed.get("index")
    if type(said) is not int or said != index:
        return leaf, f"body says index {said}, row is {index}"
    said_subject = parsed.get("subject")
    if parsed.get("kind") != kind or not isinstance(said_subject, str) or said_subject[:128] != subject:
        return leaf, "kind or subject column differs from the body"
    return leaf, None


def payload_of(entry: LedgerEntry) -> dict:
    return json.loads(entry.body)["payload"]
