""""Verify now": run the full ledger verification (compliance.ledger.verify: every entry, node,
checkpoint root, signature and cosignature) on behalf of a person, and record who asked
and what it found as a `ledger.verified` entry."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from compliance.ledger import ledger
from compliance.ledger.verify import verify_ledger
from compliance.models import LedgerEntry


@dataclass
class Verification:
    ok: bool
    checked: int
    method: str
    detail: str
    first_bad_index: int | None = None
    duration_ms: int = 0


def run_verification(*, actor: str) -> Verification:
    result = verify_ledger(alert=True)
    outcome = Verification(
        ok=result.ok, checked=result.entries_checked, method="verify_ledger",
        detail=(result.message or f"{result.entries_checked} entries, {result.nodes_checked} nodes and "
                f"{result.checkpoints_checked} checkpoints verified")[:500],
        first_bad_index=result.first_bad_index, duration_ms=int(result.seconds * 1000),
    )
    ledger.append("ledger.verified", asdict(outcome), subject="ledger", actor=actor)
    return outcome


def last_verification() -> dict | None:
    entry = LedgerEntry.objects.filter(kind="ledger.verified").order_by("-index").first()
    if entry is None:
        return None
    body = json.loads(entry.body)
    return body["payload"] | {"index": entry.index, "time": entry.created_at, "actor": body["actor"]}
