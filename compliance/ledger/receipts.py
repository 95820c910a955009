"""Per-prediction receipts (C2SP tlog-proof, see compliance.ledger.offline.receipt):
the prediction's ledger entry as the extra data, its inclusion proof and a checkpoint
with its witness cosignatures, preferring the newest one that meets the quorum."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from compliance.ledger import checkpoints, ledger, tree, witnesses
from compliance.ledger.offline.receipt import format_receipt
from compliance.models import Checkpoint


class ReceiptError(LookupError):
    pass


@dataclass
class Receipt:
    text: str
    index: int
    checkpoint: Checkpoint
    witnessed: bool


def make_receipt(inference_id: uuid.UUID) -> Receipt:
    entry = ledger.about(f"prediction:{inference_id}").filter(kind="prediction.recorded").order_by("index").first()
    if entry is None:
        raise ReceiptError(f"no ledger entry records prediction {inference_id}")
    keys = witnesses.pinned()
    covering = Checkpoint.objects.filter(size__gt=entry.index).order_by("-id")[:50]
    checkpoint = next((c for c in covering if witnesses.is_witnessed(c, keys)), None)
    witnessed = checkpoint is not None
    if checkpoint is None:
        checkpoint = checkpoints.latest()
        if checkpoint is None or checkpoint.size <= entry.index:
            checkpoint = checkpoints.make_checkpoint()
    note = checkpoint.note + "".join(c.line for c in checkpoint.cosignatures.order_by("id"))
    proof = tree.inclusion_proof(entry.index, checkpoint.size)
    return Receipt(format_receipt(entry.body.encode(), entry.index, proof, note), entry.index, checkpoint, witnessed)
