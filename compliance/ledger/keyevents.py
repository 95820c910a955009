"""The key registry as the ledger says it is, and the key table held against it.

The SigningKey table is a cache for listing and lookups; the truth is the key
entries (compliance.ledger.keylog derives a key's state from them).  `differences()`
names every row that disagrees with the entries: a row the ledger never registered
(inserted), a public key, purpose or algorithm that differs (edited), a revocation or
retirement the row no longer shows (erased), a registered key whose row is gone.
The loader (`state_of`), the API and verify_ledger all go through here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from compliance.ledger import events, keylog
from compliance.models import LedgerEntry, SigningKey

INSERTED, EDITED, REVOCATION_ERASED, RETIREMENT_ERASED, MISSING = (
    "inserted", "edited", "revocation_erased", "retirement_erased", "missing")


@dataclass(frozen=True)
class Difference:
    key_id: str
    kind: str
    message: str
    index: int | None = None  # the ledger entry that contradicts the row, if any

    def to_dict(self) -> dict:
        return {"key_id": self.key_id, "kind": self.kind, "message": self.message, "ledger_index": self.index}


def _rows(query):
    for index, kind, body in query.order_by("index").values_list("index", "kind", "body"):
        parsed = json.loads(body)
        yield index, kind, parsed.get("payload"), parsed.get("time")


def load(upto: int | None = None) -> keylog.KeyLog:
    """The key log from every key entry (below `upto` when given)."""
    query = LedgerEntry.objects.of_kind(*keylog.KEY_KINDS)
    if upto is not None:
        query = query.filter(index__lt=upto)
    return keylog.derive(_rows(query))


def state_of(key_id: str) -> keylog.KeyState | None:
    """One key's state from its own entries (found through the subject index)."""
    query = LedgerEntry.objects.of_kind(*keylog.KEY_KINDS).filter(subject=f"key:{key_id[:16]}")
    return keylog.derive(_rows(query)).get(key_id)


def registry_leaves(upto: int) -> list[bytes]:
    """Leaf hashes of the key entries below `upto`, in index order (what a checkpoint
    commits to)."""
    return [bytes.fromhex(h) for h in LedgerEntry.objects.of_kind(*keylog.KEY_KINDS).filter(index__lt=upto)
            .order_by("index").values_list("leaf_hash", flat=True)]


def compare_row(row: SigningKey, key: keylog.KeyState | None) -> Difference | None:
    if key is None:
        return Difference(row.key_id, INSERTED, f"key table row {row.purpose}:{row.key_id[:16]} was never "
                                                "registered in the ledger (inserted)")
    if (row.public_key, row.purpose, row.algorithm) != (key.public_key, key.purpose, key.algorithm):
        return Difference(row.key_id, EDITED, f"key table row {row.key_id[:16]} differs from its registration "
                                              f"in entry #{key.registered_index} (edited)", key.registered_index)
    if key.revoked_index is not None and row.revoked_at is None:
        return Difference(row.key_id, REVOCATION_ERASED,
                          f"revocation erased: key {row.key_id[:16]} was revoked in entry #{key.revoked_index} "
                          f"({key.revocation_reason}) but the key table shows it valid", key.revoked_index)
    if key.revoked_index is None and row.revoked_at is not None:
        return Difference(row.key_id, EDITED, f"key table row {row.key_id[:16]} shows a revocation the ledger "
                                              "never recorded (edited)")
    if key.retired_index is not None and row.retired_at is None:
        return Difference(row.key_id, RETIREMENT_ERASED,
                          f"key {row.key_id[:16]} was retired in entry #{key.retired_index} but the key table "
                          "shows it current", key.retired_index)
    return None


def differences(log: keylog.KeyLog | None = None) -> list[Difference]:
    log = load() if log is None else log
    found, seen = [], set()
    for row in SigningKey.objects.order_by("id"):
        seen.add(row.key_id)
        difference = compare_row(row, log.get(row.key_id))
        if difference:
            found.append(difference)
    for key in log.keys.values():
        if key.key_id not in seen:
            found.append(Difference(key.key_id, MISSING, f"key {key.key_id[:16]} registered in entry "
                                                         f"#{key.registered_index} has no key table row (deleted)",
                                    key.registered_index))
    return found


def describe(found: list[Difference]) -> str:
    """One clear line: the failure's name first."""
    if not found:
        return ""
    first = found[0]
    head = "revocation erased" if first.kind == REVOCATION_ERASED else "key table differs from the ledger"
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{head}: {first.message}{more}"


def report(found: list[Difference], where: str) -> None:
    """Raise one critical alert naming the rows that differ."""
    if found:
        events.report("keys.table_differs", f"{where}: {describe(found)}", severity="critical", subject="keys",
                      details={"differences": [d.to_dict() for d in found[:50]]})
