"""Witness policy and status, and the door through which witnesses on other hosts hand
their cosignatures and alarms back.

- Pinned witnesses are the witness keys the ledger registered and never revoked
  (M); a checkpoint counts as witnessed when at least TRACELEDGER_WITNESS_QUORUM (N)
  of them cosigned it, each cosignature verified here, never taken on trust.
- `status()` gives each witness's newest cosigned size and how far the log has grown
  past it (the ledger page shows it).
- A remote witness (compliance.ledger.remotewitness) talks to the public checkpoint
  and proof endpoints only; `accept_cosignature` stores the line it sends back after
  verifying it, and `accept_alarm` turns its signed report of a fork or rollback into
  a critical alert.
"""
from __future__ import annotations

import base64
import json

from django.conf import settings
from django.db import transaction

from compliance.ledger import checkpoints, events, keyevents, keylog, ledger, notes
from compliance.models import Checkpoint, WitnessCosignature

ALARM_KINDS = {"fork": "ledger.fork_detected", "rollback": "ledger.rollback_detected"}


class WitnessError(ValueError):
    """A cosignature or alarm that cannot be accepted: one line, shown as is."""


def quorum() -> int:
    return max(0, int(settings.TRACELEDGER_WITNESS_QUORUM))


def name_of(key: keylog.KeyState) -> str:
    return key.name or settings.TRACELEDGER_WITNESS_NAME


def vkey_of(key: keylog.KeyState) -> str:
    return notes.format_vkey(name_of(key), key.raw, notes.SIG_COSIGNATURE_V1)


def pinned(log: keylog.KeyLog | None = None) -> list[keylog.KeyState]:
    log = keyevents.load() if log is None else log
    return [k for k in log.of_purpose("witness") if k.revoked_index is None]


def cosigners(checkpoint: Checkpoint, keys: list[keylog.KeyState]) -> list[keylog.KeyState]:
    """The given witnesses whose cosignature on `checkpoint` verifies."""
    found = []
    by_id = {k.key_id: k for k in keys}
    for cosig in checkpoint.cosignatures.all():
        key = by_id.get(cosig.key_id)
        if key is None or key in found:
            continue
        try:
            notes.verify_cosignature(checkpoint.note + cosig.line, name_of(key), key.raw)
        except (notes.NoteError, ValueError):
            continue
        found.append(key)
    return found


def is_witnessed(checkpoint: Checkpoint, keys: list[keylog.KeyState] | None = None) -> bool:
    return len(cosigners(checkpoint, pinned() if keys is None else keys)) >= quorum()


def newest_witnessed(keys: list[keylog.KeyState] | None = None, *, scan: int = 50) -> Checkpoint | None:
    """The newest checkpoint that meets the quorum (among the newest `scan`)."""
    keys = pinned() if keys is None else keys
    for checkpoint in Checkpoint.objects.order_by("-id")[:scan]:
        if len(cosigners(checkpoint, keys)) >= quorum():
            return checkpoint
    return None


def status() -> dict:
    latest = checkpoints.latest()
    keys = pinned()
    rows = []
    for key in keys:
        newest = WitnessCosignature.objects.filter(key_id=key.key_id).select_related("checkpoint").order_by(
            "-checkpoint__size", "-id").first()
        size = newest.checkpoint.size if newest else None
        rows.append({"name": name_of(key), "key_id": key.key_id, "cosigned_size": size,
                     "cosigned_at": newest.timestamp if newest else None,
                     "behind": (latest.size - size) if latest and size is not None else None})
    have = len(cosigners(latest, keys)) if latest else 0
    return {"quorum": quorum(), "pinned": len(keys), "witnesses": rows,
            "latest_size": latest.size if latest else None, "latest_cosigners": have,
            "latest_witnessed": latest is not None and have >= quorum()}


def accept_cosignature(witnessed_note: str) -> WitnessCosignature:
    """Store a witness's cosignature line for one of our checkpoints, after checking it."""
    try:
        body, sigs = notes.parse_note(witnessed_note)
        parsed = notes.parse_checkpoint(body)
    except notes.NoteError as exc:
        raise WitnessError(f"not a cosigned checkpoint ({exc})") from None
    checkpoint = Checkpoint.objects.filter(size=parsed.size, root_hash=parsed.root_hash.hex()).order_by("id").first()
    if checkpoint is None or notes.parse_note(checkpoint.note)[0] != body:
        raise WitnessError(f"no checkpoint of this log has size {parsed.size} and that root")
    keys = pinned()
    lines = witnessed_note[len(body) + 1:].splitlines(keepends=True)
    for line, sig in zip(lines, sigs):
        for key in keys:
            name = name_of(key)
            if sig.name != name or sig.key_id != notes.key_id(name, key.raw, notes.SIG_COSIGNATURE_V1):
                continue
            try:
                timestamp = notes.verify_cosignature(checkpoint.note + line, name, key.raw)
            except (notes.NoteError, ValueError):
                raise WitnessError(f"the cosignature of {name} does not verify") from None
            return _store(checkpoint, key, name, timestamp, line)
    raise WitnessError("no cosignature by a registered witness key")


def _store(checkpoint: Checkpoint, key: keylog.KeyState, name: str, timestamp: int, line: str) -> WitnessCosignature:
    with transaction.atomic():
        cosig, created = WitnessCosignature.objects.get_or_create(
            checkpoint=checkpoint, key_id=key.key_id, defaults={"witness": name, "timestamp": timestamp, "line": line})
        if created:
            ledger.append("checkpoint.cosigned",
                          {"checkpoint_id": checkpoint.id, "size": checkpoint.size, "root_hash": checkpoint.root_hash,
                           "witness": name, "key_id": key.key_id, "timestamp": timestamp},
                          subject=f"checkpoint:{checkpoint.id}", actor=f"witness:{name}")
    checkpoints.export_witnessed(checkpoint)
    return cosig


def alarm_message(report: dict) -> bytes:
    """What a witness signs when it reports a fork or rollback."""
    return b"traceledger/witness-alarm/v1\n" + json.dumps(report, sort_keys=True, separators=(",", ":")).encode()


def accept_alarm(report: dict, signature: str) -> str:
    """A remote witness saw a fork or a rollback: verify its signed report under a
    registered witness key and raise the critical alert.  Returns the alert kind."""
    kind = ALARM_KINDS.get(report.get("kind")) if isinstance(report, dict) else None
    if kind is None:
        raise WitnessError("an alarm is a fork or a rollback")
    key = next((k for k in pinned() if k.key_id == report.get("key_id")), None)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if key is not None:
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(base64.b64decode(signature, validate=True),
                                                              alarm_message(report))
        except (InvalidSignature, ValueError):
            raise WitnessError("the alarm's signature does not verify") from None
    # A rollback can take the witness's own registration with it: an alarm from a key
    # this ledger no longer knows is still raised, marked unverified (a false alarm
    # costs a look; a silenced one costs the history).
    who = name_of(key) if key is not None else f"{str(report.get('witness'))[:100]} (key not registered in this ledger)"
    message = f"witness {who}: {str(report.get('message', ''))[:400]}"
    events.report(kind, message, severity="critical", subject="ledger",
                  details={k: report.get(k) for k in ("kind", "message", "size", "cosigned_size", "key_id")}
                  | {"witness": who, "remote": True, "verified": key is not None})
    return kind


def register_remote(vkey: str, *, actor: str = "system") -> keylog.KeyState:
    """Register the key of a witness that runs elsewhere (a key.registered entry with
    its name); the auditor pins it in the trust file like any other witness key."""
    from compliance.ledger import keys as keymod
    from compliance.models import SigningKey

    try:
        parsed = notes.parse_vkey(vkey.strip())
    except notes.NoteError as exc:
        raise WitnessError(f"not a valid witness vkey ({exc})") from None
    if parsed.sig_type != notes.SIG_COSIGNATURE_V1:
        raise WitnessError("a witness vkey is a cosignature/v1 (type 0x04) key")
    public = base64.b64encode(parsed.public_key).decode()
    key_id = keymod.key_id_for(parsed.public_key)
    with transaction.atomic():
        ledger.hold_head()
        if keyevents.state_of(key_id) is None:
            ledger.append("key.registered", {"key_id": key_id, "purpose": "witness", "algorithm": "ed25519",
                                             "public_key": public, "name": parsed.name},
                          subject=f"key:{key_id[:16]}", actor=actor)
        SigningKey.objects.get_or_create(key_id=key_id, defaults={"purpose": "witness", "public_key": public})
    return keyevents.state_of(key_id)
