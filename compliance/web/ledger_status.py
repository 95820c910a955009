"""Ledger status as the dashboard shows it: the latest signed checkpoint, recent
checkpoints with their witness cosignatures, and whether one record's ledger entry is
proven to be in the latest checkpoint (the proof is computed and verified, not assumed).
"""
from __future__ import annotations

import importlib

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from compliance.ledger import checkpoints as ckpt
from compliance.ledger import ledger, merkle, tree
from compliance.models import Checkpoint, LedgerEntry


def optional_function(module: str, name: str):
    """`module.name` for a dotted path given in settings, or None when it is not there."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def url_or_none(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def latest_checkpoint() -> dict | None:
    """{"size", "created_at", "age_s", "object"} of the newest signed checkpoint, or None."""
    checkpoint = ckpt.latest()
    if checkpoint is None:
        return None
    return {"size": checkpoint.size, "created_at": checkpoint.created_at,
            "age_s": (timezone.now() - checkpoint.created_at).total_seconds(), "object": checkpoint}


def checkpoints(limit: int = 20) -> list[dict]:
    """The newest checkpoints with their cosignatures."""
    return [{"id": c.pk, "size": c.size, "root": c.root_hash, "created_at": c.created_at, "note": c.note,
             "cosignatures": [s.to_dict() for s in c.cosignatures.all()]}
            for c in Checkpoint.objects.order_by("-pk").prefetch_related("cosignatures")[:limit]]


def inclusion_status(ledger_index: int | None) -> dict:
    """Whether a record's ledger entry is provably included in the latest checkpoint:
    the entry is re-derived from its body, an inclusion proof is computed from the
    stored nodes and verified against the checkpoint's signed root."""
    if ledger_index is None:
        return {"state": "missing", "detail": "the record has no ledger entry"}
    checkpoint = ckpt.latest()
    if checkpoint is None:
        return {"state": "pending", "detail": f"ledger entry #{ledger_index}; no signed checkpoint yet, so "
                                              "no inclusion proof can be given"}
    if ledger_index >= checkpoint.size:
        return {"state": "pending", "detail": f"ledger entry #{ledger_index} is newer than the latest checkpoint "
                                              f"(size {checkpoint.size}); it is covered by the next one"}
    try:  # the checkpoint counts only under a ledger key named after its origin (compliance.ledger.purposes)
        parsed, _ = ckpt.Keyring("ledger").check_checkpoint(checkpoint.note, checkpoint.created_at)
    except ckpt.CheckpointInvalid as exc:
        return {"state": "failed", "detail": f"checkpoint {checkpoint.id} does not verify: {exc}"}
    if parsed.root_hash.hex() != checkpoint.root_hash or parsed.size != checkpoint.size:
        return {"state": "failed", "detail": f"checkpoint {checkpoint.id}'s row differs from its signed note"}
    entry = LedgerEntry.objects.filter(index=ledger_index).first()
    problem = "the entry is missing" if entry is None else ledger.check_entry(entry)
    if problem:
        return {"state": "failed", "detail": f"ledger entry #{ledger_index}: {problem}"}
    try:
        proof = tree.inclusion_proof(ledger_index, checkpoint.size)
    except merkle.MissingNodeError:
        return {"state": "failed", "detail": f"ledger entry #{ledger_index}: a stored tree node is missing"}
    if not merkle.verify_inclusion(bytes.fromhex(entry.leaf_hash), ledger_index, checkpoint.size, proof,
                                   bytes.fromhex(checkpoint.root_hash)):
        return {"state": "failed", "detail": f"ledger entry #{ledger_index} does not verify against checkpoint "
                                             f"{checkpoint.id} (size {checkpoint.size})"}
    return {"state": "covered", "detail": f"ledger entry #{ledger_index} proven in signed checkpoint {checkpoint.id} "
                                          f"(size {checkpoint.size}) with a {len(proof)}-hash inclusion proof"}
