"""Proofs against the latest signed checkpoint, as plain dicts: what the API returns and
what reports and bundles embed.  Each one is checkable with the public keys alone:
verify the checkpoint note with the ledger vkey, then the proof against the note's
size and root with compliance.ledger.merkle (or any RFC 9162 verifier).  Hashes are base64.
"""
from __future__ import annotations

import base64
import uuid

from django.conf import settings

from compliance.ledger import checkpoints, keyevents, keylog, ledger, notes, tree
from compliance.models import Checkpoint, LedgerEntry, SigningKey


class ProofError(LookupError):
    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.status = status


def b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode()


def vkey_for(key: SigningKey | keylog.KeyState) -> str:
    """The C2SP verifier key of a registered key: ledger keys sign checkpoints under
    the log origin (type 0x01), witness keys cosign under the witness name (0x04)."""
    raw = base64.b64decode(key.public_key)
    if key.purpose == "witness":
        name = getattr(key, "name", None) or settings.TRACELEDGER_WITNESS_NAME
        return notes.format_vkey(name, raw, notes.SIG_COSIGNATURE_V1)
    return notes.format_vkey(checkpoints.origin(), raw, notes.SIG_ED25519)


def public_keys() -> list[dict]:
    """The keys as the ledger's key entries register them (the key table is only a
    cache); each says whether its key-table row agrees."""
    log = keyevents.load()
    rows = {k.key_id: k for k in SigningKey.objects.all()}
    listed = []
    for key in sorted(log.keys.values(), key=lambda k: (k.purpose, k.registered_index)):
        row = rows.get(key.key_id)
        difference = keyevents.compare_row(row, key) if row is not None else None
        table = "agrees" if row is not None and difference is None else (
            difference.message if difference else "no key table row")
        listed.append(key.to_dict() | {"created_at": row.created_at.isoformat() if row else None, "key_table": table}
                      | ({"vkey": vkey_for(key)} if key.purpose in ("ledger", "witness") else {}))
    return listed


def key_table_differences() -> list[dict]:
    return [d.to_dict() for d in keyevents.differences()]


def _latest() -> Checkpoint:
    checkpoint = checkpoints.latest()
    if checkpoint is None:
        raise ProofError("the ledger has no signed checkpoint yet")
    return checkpoint


def checkpoint_dict(checkpoint: Checkpoint) -> dict:
    body, _ = notes.parse_note(checkpoint.note)
    parsed = notes.parse_checkpoint(body)
    signer = SigningKey.objects.filter(key_id=checkpoint.key_id).first()
    cosigs = list(checkpoint.cosignatures.order_by("id"))
    return {
        "checkpoint_id": checkpoint.id,
        "checkpoint": checkpoint.note,
        "origin": parsed.origin,
        "size": parsed.size,
        "root_hash": b64(parsed.root_hash),
        "created_at": checkpoint.created_at.isoformat(),
        "key_id": checkpoint.key_id,
        "ledger_vkey": vkey_for(signer) if signer else None,
        "cosignatures": [c.to_dict() for c in cosigs],
        "witnessed_checkpoint": checkpoint.note + "".join(c.line for c in cosigs) if cosigs else None,
    }


def latest_checkpoint() -> dict:
    return checkpoint_dict(_latest())


def _entry_proof(entry: LedgerEntry, checkpoint: Checkpoint) -> dict:
    size = checkpoint.size
    return {
        "index": entry.index,
        "kind": entry.kind,
        "entry": entry.body,
        "leaf_hash": b64(bytes.fromhex(entry.leaf_hash)),
        "tree_size": size,
        "proof": [b64(h) for h in tree.inclusion_proof(entry.index, size)],
        "checkpoint_id": checkpoint.id,
        "checkpoint": checkpoint.note,
    }


def inclusion_for_index(index: int) -> dict:
    if index < 0:
        raise ProofError("index must be a non-negative integer", 400)
    checkpoint = _latest()
    if index >= checkpoint.size:
        raise ProofError(f"entry #{index} is not covered by the latest checkpoint (size {checkpoint.size}) yet; "
                         f"it will be after the next checkpoint")
    entry = LedgerEntry.objects.filter(index=index).first()
    if entry is None:
        raise ProofError(f"entry #{index} is missing from the ledger", 404)
    return _entry_proof(entry, checkpoint)


def inclusion_for_prediction(inference_id: uuid.UUID) -> dict:
    entry = ledger.about(f"prediction:{inference_id}").filter(kind="prediction.recorded").order_by("index").first()
    if entry is None:
        raise ProofError(f"no ledger entry records prediction {inference_id}")
    return inclusion_for_index(entry.index)


def consistency(old_size: int, new_size: int | None = None) -> dict:
    checkpoint = _latest()
    new_size = checkpoint.size if new_size is None else new_size
    if not 0 <= old_size <= new_size:
        raise ProofError("sizes must satisfy 0 <= old <= new", 400)
    if new_size > checkpoint.size:
        raise ProofError(f"new size {new_size} is beyond the latest checkpoint (size {checkpoint.size})", 400)
    by_size = {c.size: c for c in Checkpoint.objects.filter(size__in=[old_size, new_size]).order_by("id")}
    return {
        "old_size": old_size,
        "new_size": new_size,
        "proof": [b64(h) for h in tree.consistency_proof(old_size, new_size)],
        # Unsigned conveniences: take the roots you trust from signed checkpoints.
        "old_root": b64(tree.root(old_size)),
        "new_root": b64(tree.root(new_size)),
        "old_checkpoint": by_size[old_size].note if old_size in by_size else None,
        "new_checkpoint": by_size[new_size].note if new_size in by_size else None,
        "latest_checkpoint": checkpoint.note,
    }
