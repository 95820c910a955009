"""Pieces the dashboard shows when they exist: signed checkpoints and witness
cosignatures (the Merkle-ledger work), calibration sets, the report export.  Looked up
in this one place so that every page degrades to a clear "not yet" instead of failing.
"""
from __future__ import annotations

import importlib
import importlib.util

from django.apps import apps
from django.urls import NoReverseMatch, reverse
from django.utils import timezone


def optional_model(app_label: str, model_name: str):
    """The model class, or None when the app or the model is not installed."""
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def optional_function(module: str, name: str):
    """`module.name` when that module exists and defines it, else None."""
    parent = module.rpartition(".")[0]
    if parent and importlib.util.find_spec(parent) is None:
        return None
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(importlib.import_module(module), name, None)


def url_or_none(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def checkpoint_model():
    return optional_model("compliance", "Checkpoint")


def _field(obj, *names, default=None):
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def latest_checkpoint() -> dict | None:
    """{"size", "created_at", "age_s", "object"} of the newest signed checkpoint, or
    None while there is no Checkpoint model or no checkpoint yet."""
    model = checkpoint_model()
    if model is None:
        return None
    checkpoint = model.objects.order_by("-pk").first()
    if checkpoint is None:
        return None
    created = _field(checkpoint, "created_at", "signed_at", "timestamp")
    age = (timezone.now() - created).total_seconds() if created else None
    return {"size": _field(checkpoint, "size", "tree_size"), "created_at": created, "age_s": age,
            "object": checkpoint}


def checkpoints(limit: int = 20) -> list[dict] | None:
    """The newest checkpoints with their cosignatures, or None without the model."""
    model = checkpoint_model()
    if model is None:
        return None
    rows = []
    for checkpoint in model.objects.order_by("-pk")[:limit]:
        cosigs = []
        for related in ("cosignatures", "cosignature_set", "witness_cosignatures"):
            manager = getattr(checkpoint, related, None)
            if manager is not None and hasattr(manager, "all"):
                cosigs = [_describe(c) for c in manager.all()]
                break
        rows.append({"id": checkpoint.pk, "size": _field(checkpoint, "size", "tree_size"),
                     "root": _field(checkpoint, "root_hash", "root", default=""),
                     "created_at": _field(checkpoint, "created_at", "signed_at"),
                     "note": _field(checkpoint, "note", "text", "body", default=""),
                     "cosignatures": cosigs})
    return rows


def _describe(cosignature) -> dict:
    if hasattr(cosignature, "to_dict"):
        return cosignature.to_dict()
    return {"witness": str(_field(cosignature, "witness", "witness_name", "name", "key_id", default=cosignature)),
            "time": _field(cosignature, "created_at", "timestamp", default=None)}


def inclusion_status(ledger_index: int | None) -> dict:
    """Whether a record's ledger entry is provably in the latest signed checkpoint.
    Uses `compliance.proofs.inclusion_status(index)` once the Merkle-ledger work
    provides it; until then reports what is known."""
    provider = optional_function("compliance.proofs", "inclusion_status")
    if provider is not None and ledger_index is not None:
        return provider(ledger_index)
    latest = latest_checkpoint()
    if ledger_index is None:
        return {"state": "missing", "detail": "the record has no ledger entry"}
    if latest is None:
        return {"state": "pending", "detail": f"ledger entry #{ledger_index}; no signed checkpoint yet, so "
                                              "no inclusion proof can be given"}
    size = latest["size"]
    if isinstance(size, int) and ledger_index >= size:
        return {"state": "pending", "detail": f"ledger entry #{ledger_index} is newer than the latest checkpoint "
                                              f"(size {size}); it is covered by the next one"}
    return {"state": "covered", "detail": f"ledger entry #{ledger_index} lies within the latest checkpoint "
                                          f"(size {size})"}
