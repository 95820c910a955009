"""The database held against the auditor's trust file (compliance.ledger.trustfile).

`verify(path)` passes only when
- the ledger verifies by itself (every entry, node, checkpoint, and the key table
  against the key entries: verify_ledger);
- the ledger has at least the file's size and a consistency proof from that size to
  now links the file's signed root to the database's tree (else: rolled back,
  truncated, or forked);
- the database still holds a checkpoint at or past the file's size (else: checkpoints
  deleted), and every checkpoint since the file's is signed by a ledger key the file
  pins or whose registration chains back to one it pins (else: unknown key).

`export(path)` writes a new file; `update(path)` runs `verify` and only then moves the
file to the newest witnessed checkpoint, proving consistency from the size it held
against both signed roots, and pins the keys that chain back to pinned ones.
"""
from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from django.db.models import Max

from compliance.ledger import checkpoints, keyevents, keylog, ledger, merkle, notes, tree, trustfile, witnesses
from compliance.ledger.verify import verify_ledger
from compliance.models import Alert, Checkpoint, VerificationRun

ROLLED_BACK, TRUNCATED, FORKED, UNKNOWN_KEY, CHECKPOINTS_DELETED, LEDGER = (
    "rolled back", "truncated", "forked", "unknown key", "checkpoints deleted", "ledger")


@dataclass
class TrustResult:
    ok: bool
    failure: str = ""  # one of the names above, or the key-table names of keyevents.describe
    message: str = ""
    trusted_size: int = 0
    size: int = 0
    checkpoints_checked: int = 0

    def summary(self) -> str:
        if self.ok:
            return (f"ledger OK against the trust file: it extends the trusted checkpoint (size {self.trusted_size}) "
                    f"to {self.size} entries; {self.checkpoints_checked} later checkpoint(s) signed by pinned or "
                    "chained keys; the key table agrees with the ledger")
        return f"TRUST CHECK FAILED ({self.failure}): {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class _Fail(Exception):
    def __init__(self, failure: str, message: str):
        super().__init__(message)
        self.failure, self.message = failure, message


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _signer_of(checkpoint: Checkpoint, log: keylog.KeyLog) -> keylog.KeyState | None:
    """The registered ledger key whose signature on the checkpoint note verifies."""
    origin = checkpoints.origin()
    for key in log.of_purpose("ledger"):
        try:
            notes.verify_note(checkpoint.note, [notes.format_vkey(origin, key.raw)])
            return key
        except notes.NoteError:
            continue
    return None


def _fail_if_shorter(trust: trustfile.TrustFile, n: int) -> None:
    if n >= trust.size:
        return
    # a copy restored from backup agrees with itself; a cut tail leaves traces behind
    traces = max(VerificationRun.objects.aggregate(m=Max("checked_upto"))["m"] or 0,
                 (Alert.objects.aggregate(m=Max("ledger_index"))["m"] or -1) + 1)
    if traces > n:
        raise _Fail(TRUNCATED, f"the ledger has {n} entries but the trust file's checkpoint vouches for "
                               f"{trust.size}, and rows of this database point at entry #{traces - 1}: its tail "
                               "was cut off")
    raise _Fail(ROLLED_BACK, f"the ledger has {n} entries but the trust file's checkpoint vouches for {trust.size}: "
                             "the database was rolled back (an older copy was restored)")


def _check(trust: trustfile.TrustFile, result: TrustResult) -> keylog.KeyLog:
    if trust.origin != checkpoints.origin():
        raise _Fail(FORKED, f"the trust file is for log {trust.origin!r}, this ledger is {checkpoints.origin()!r}")
    verified = verify_ledger()
    if not verified.ok:
        failure = LEDGER
        for name in ("revocation erased", "key table differs from the ledger", TRUNCATED, CHECKPOINTS_DELETED):
            if verified.message.startswith(name):
                failure = name
        raise _Fail(failure, f"entry #{verified.first_bad_index}: {verified.message}")
    n = result.size = ledger.size()
    _fail_if_shorter(trust, n)
    log = keyevents.load()
    pinned = trust.pinned_ids("ledger")
    later = list(Checkpoint.objects.filter(size__gte=trust.size).order_by("id"))
    if not later and trust.size > 0:
        newest = checkpoints.latest()
        raise _Fail(CHECKPOINTS_DELETED, f"no checkpoint in the database reaches the trust file's size {trust.size} "
                                         f"(the newest has size {newest.size if newest else 0}): checkpoints were "
                                         "deleted")
    for checkpoint in later:
        key = _signer_of(checkpoint, log)
        if key is None or not log.chains_to(key.key_id, pinned):
            who = f"key {key.key_id[:16]}" if key else f"key {checkpoint.key_id[:16]}"
            raise _Fail(UNKNOWN_KEY, f"checkpoint #{checkpoint.id} (size {checkpoint.size}) is signed by {who}, which "
                                     "the trust file does not pin and whose registration does not chain back to a "
                                     "key it pins")
        result.checkpoints_checked += 1
    if not _consistent(trust.size, trust.root, n, tree.root(n)):
        raise _Fail(FORKED, f"the ledger does not extend the trust file's checkpoint: the consistency proof from size "
                            f"{trust.size} to {n} fails against the signed root (history was rewritten)")
    return log


def _consistent(old_size: int, old_root: bytes, new_size: int, new_root: bytes) -> bool:
    try:
        proof = tree.consistency_proof(old_size, new_size)
    except merkle.MissingNodeError:
        return False
    return merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


def witness_state(directory: str) -> tuple[str, int, bytes]:
    """(origin, size, root) a witness remembers cosigning: its state.json, read from
    its own directory (or a copy of it) — the in-process and the remote witness keep
    the same three fields."""
    import json
    from pathlib import Path

    path = Path(directory) / "state.json"
    try:
        state = json.loads(path.read_text())
        root = base64.b64decode(state["root_hash"], validate=True)
        size = state["size"]
        if not isinstance(size, int) or size < 0 or len(root) != 32 or not isinstance(state["origin"], str):
            raise ValueError
    except OSError as exc:
        raise trustfile.TrustFileError(f"cannot read the witness state {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise trustfile.TrustFileError(f"{path} is not a witness state (origin, size, root_hash)") from None
    return state["origin"], size, root


def _check_witness(directory: str, origin: str, size: int, root: bytes, result: TrustResult) -> None:
    n = result.size
    where = f"the witness state in {directory}"
    if origin != checkpoints.origin():
        raise _Fail(FORKED, f"{where} follows {origin!r}, this ledger is {checkpoints.origin()!r}")
    if n < size:
        raise _Fail(ROLLED_BACK, f"the ledger has {n} entries but {where} cosigned {size}: the database was "
                                 "rolled back or truncated")
    if not _consistent(size, root, n, tree.root(n)):
        raise _Fail(FORKED, f"the ledger does not extend the checkpoint {where} cosigned at size {size}: the "
                            "consistency proof fails (history was rewritten)")


def verify(path: str, witness_dirs: list[str] | tuple[str, ...] = ()) -> TrustResult:
    """Hold the database against the trust file (and any witness's remembered state);
    never raises for a bad ledger."""
    trust = trustfile.read(path)
    states = [(d, *witness_state(d)) for d in witness_dirs]
    result = TrustResult(ok=False, trusted_size=trust.size)
    try:
        _check(trust, result)
        for directory, origin, size, root in states:
            _check_witness(directory, origin, size, root, result)
    except _Fail as failure:
        result.failure, result.message = failure.failure, failure.message
        return result
    result.ok = True
    return result


def _pins(log: keylog.KeyLog, already: list[trustfile.TrustedKey] | None = None) -> list[trustfile.TrustedKey]:
    """Keys to pin: on export every unrevoked key of the three purposes; on update,
    those plus every key that chains back to one already pinned."""
    found = {(k.purpose, k.key_id): k for k in already or []}
    for purpose in trustfile.PURPOSES:
        anchor = {k.key_id for k in found.values() if k.purpose == purpose}
        for key in log.of_purpose(purpose):
            if (purpose, key.key_id) in found or key.revoked_index is not None:
                continue
            if already is not None and not log.chains_to(key.key_id, anchor):
                continue
            found[(purpose, key.key_id)] = trustfile.TrustedKey(purpose, key.key_id, key.public_key, _vkey(key))
    return list(found.values())


def _vkey(key: keylog.KeyState) -> str | None:
    if key.purpose == "ledger":
        return notes.format_vkey(checkpoints.origin(), key.raw)
    if key.purpose == "witness":
        return witnesses.vkey_of(key)
    return None


def _witnessed_note(checkpoint: Checkpoint) -> str:
    return checkpoint.note + "".join(c.line for c in checkpoint.cosignatures.order_by("id"))


def export(path: str) -> trustfile.TrustFile:
    """Write a new trust file: origin, every unrevoked ledger, build and witness key,
    the witness policy, and the newest witnessed checkpoint (the newest one when no
    checkpoint meets the quorum yet)."""
    verified = verify_ledger()
    if not verified.ok:
        raise trustfile.TrustFileError(f"the ledger does not verify, nothing to trust: {verified.message}")
    checkpoint = witnesses.newest_witnessed() or checkpoints.latest() or checkpoints.make_checkpoint()
    log = keyevents.load()
    trust = trustfile.TrustFile(checkpoints.origin(), _pins(log), _witnessed_note(checkpoint), witnesses.quorum(),
                                _now(), "trust export")
    trustfile.check_signed(trust)
    trustfile.write(path, trust)
    return trust


def update(path: str) -> tuple[trustfile.TrustFile, int]:
    """Move the file forward; returns (new file, the size it held before)."""
    trust = trustfile.read(path)
    result = verify(path)
    if not result.ok:
        raise trustfile.TrustFileError(f"refusing to update: {result.summary()}")
    log = keyevents.load()
    keys = _pins(log, trust.keys)
    pinned_witnesses = [k for k in log.of_purpose("witness") if k.key_id in {t.key_id for t in keys
                                                                           if t.purpose == "witness"}]
    candidates = Checkpoint.objects.filter(size__gt=trust.size).order_by("-id")[:50]
    target = next((c for c in candidates if len(witnesses.cosigners(c, pinned_witnesses)) >= trust.quorum), None)
    if target is None:
        trust.keys = keys
        trustfile.write(path, trust)
        return trust, trust.size
    key = _signer_of(target, log)
    if key is None or not log.chains_to(key.key_id, trust.pinned_ids("ledger")):
        raise trustfile.TrustFileError(f"checkpoint #{target.id} is not signed by a pinned or chained ledger key")
    parsed = notes.parse_checkpoint(notes.parse_note(target.note)[0])
    if not _consistent(trust.size, trust.root, parsed.size, parsed.root_hash):
        raise trustfile.TrustFileError(f"checkpoint #{target.id} (size {parsed.size}) does not extend the trust "
                                       f"file's checkpoint (size {trust.size}): fork")
    before = trust.size
    new = trustfile.TrustFile(trust.origin, keys, _witnessed_note(target), trust.quorum, _now(), "trust update")
    trustfile.check_signed(new)
    trustfile.write(path, new)
    return new, before


def root_b64(trust: trustfile.TrustFile) -> str:
    return base64.b64encode(trust.root).decode()
