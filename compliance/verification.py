""""Verify now": re-check the ledger and record the result as a `ledger.verified` entry.

When the `verify_ledger` management command is installed (it recomputes the Merkle
tree and checks signed checkpoints) it is what runs, through its command-line
contract (`--json`, exit 1 naming the first bad entry).  Until then every entry is
re-derived from its stored body with `ledger.check_entry` and the indexes are checked
to be gapless up to the recorded size.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass

from django.core.management import call_command, get_commands
from django.core.management.base import CommandError

from . import ledger
from .alerts import raise_alert
from .models import LedgerEntry

CHUNK = 5000


@dataclass
class Verification:
    ok: bool
    checked: int
    method: str
    detail: str
    first_bad_index: int | None = None
    duration_ms: int = 0


def _with_command() -> Verification:
    out = io.StringIO()
    code = 0
    try:
        call_command("verify_ledger", json=True, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except CommandError as exc:
        return Verification(False, 0, "verify_ledger", str(exc))
    text = out.getvalue().strip()
    try:
        data = json.loads(text.splitlines()[-1]) if text else {}
    except ValueError:
        data = {}
    first_bad = data.get("first_bad_index", data.get("first_bad"))
    detail = str(data.get("error") or data.get("detail") or data.get("summary") or text[:300] or
                 ("ledger verified" if code == 0 else "verification failed"))
    checked = data.get("size", data.get("checked", ledger.size()))
    return Verification(code == 0, int(checked) if str(checked).isdigit() else 0, "verify_ledger", detail[:500],
                        first_bad if isinstance(first_bad, int) else None)


def _with_entries() -> Verification:
    expected = 0
    last = -1
    while True:
        batch = list(LedgerEntry.objects.filter(index__gt=last).order_by("index")[:CHUNK])
        if not batch:
            break
        for entry in batch:
            if entry.index != expected:
                return Verification(False, expected, "check_entry", f"entry #{expected} is missing", expected)
            problem = ledger.check_entry(entry)
            if problem:
                return Verification(False, expected, "check_entry", f"entry #{entry.index}: {problem}", entry.index)
            expected += 1
        last = batch[-1].index
    size = ledger.size()
    if expected != size:
        return Verification(False, expected, "check_entry", f"ledger head says {size} entries, found {expected}",
                            expected)
    return Verification(True, expected, "check_entry", f"all {expected} entries re-derived from their bodies")


def run_verification(*, actor: str) -> Verification:
    started = time.perf_counter()
    result = _with_command() if "verify_ledger" in get_commands() else _with_entries()
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    ledger.append("ledger.verified", asdict(result), subject="ledger", actor=actor)
    if not result.ok:
        raise_alert("ledger.verification_failed", f"ledger verification failed: {result.detail}",
                    severity="critical", subject="ledger", details=asdict(result))
    return result


def last_verification() -> dict | None:
    entry = LedgerEntry.objects.filter(kind="ledger.verified").order_by("-index").first()
    if entry is None:
        return None
    body = json.loads(entry.body)
    return body["payload"] | {"index": entry.index, "time": entry.created_at, "actor": body["actor"]}
