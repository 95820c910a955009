"""Signed checkpoints of the ledger: C2SP tlog-checkpoint bodies in signed notes,
signed with the ledger's Ed25519 key, stored append-only and exported as files so that
they can be published outside our control."""
from __future__ import annotations

import base64
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from . import keys, ledger, notes, tree
from .models import Checkpoint, LedgerHead


def origin() -> str:
    return settings.TRACELEDGER_LOG_ORIGIN


def export_dir() -> Path:
    return Path(settings.TRACELEDGER_CHECKPOINT_DIR)


def make_checkpoint() -> Checkpoint:
    """Sign the tree as it is now. The head lock keeps appends out while the root is
    computed, so size and root belong together."""
    signer = keys.get_signer("ledger")
    with transaction.atomic():
        head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
        size = head.size
        latest = Checkpoint.objects.order_by("-id").first()
        if latest and latest.size == size:
            return latest
        root = tree.root(size)
        body = notes.format_checkpoint(origin(), size, root)
        note = notes.sign_note(body, origin(), signer.private_key)
        checkpoint = Checkpoint.objects.create(size=size, root_hash=root.hex(), note=note, key_id=signer.key_id)
    _export(checkpoint)
    ledger.append("checkpoint.created",
                  {"checkpoint_id": checkpoint.id, "size": size, "root_hash": checkpoint.root_hash,
                   "key_id": signer.key_id},
                  subject=f"checkpoint:{checkpoint.id}")
    return checkpoint


def _export(checkpoint: Checkpoint) -> None:
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{checkpoint.size:012d}.checkpoint"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(checkpoint.note)
    os.replace(tmp, path)
    (directory / "latest.tmp").write_text(checkpoint.note)
    os.replace(directory / "latest.tmp", directory / "latest")


def latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-id").first()


def ledger_vkey() -> str:
    """The ledger key as a C2SP verifier key string, for anyone who verifies checkpoints."""
    signer = keys.get_signer("ledger")
    return notes.format_vkey(origin(), signer.public_key)


def root_b64(checkpoint: Checkpoint) -> str:
    return base64.b64encode(bytes.fromhex(checkpoint.root_hash)).decode()
