"""The database-backed Merkle tree agrees with the reference and signs checkpoints."""
from __future__ import annotations

import pytest

from compliance import checkpoints, ledger, merkle, notes, tree
from compliance.keys import get_signer
from compliance.models import LedgerEntry, MerkleNode

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]


def test_it_stores_nodes_that_reproduce_the_reference_root_at_every_size():
    for batch in (1, 3, 1, 7, 16, 2):
        ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(batch)])
    hashes = leaves()
    assert len(hashes) == 30
    for size in range(0, 31):
        assert tree.root(size) == merkle.naive_root(hashes[:size])
    for index in range(30):
        proof = tree.inclusion_proof(index, 30)
        assert merkle.verify_inclusion(hashes[index], index, 30, proof, tree.root(30))
    for old in range(1, 30):
        assert merkle.verify_consistency(old, 30, tree.root(old), tree.root(30), tree.consistency_proof(old, 30))
    assert MerkleNode.objects.count() == 30 + 15 + 7 + 3 + 1


def test_it_makes_a_signed_checkpoint_and_exports_it(settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path
    get_signer("ledger")  # registering the key is itself entry 0
    ledger.append("trace.viewed", {"n": 1})
    checkpoint = checkpoints.make_checkpoint()
    body, _ = notes.parse_note(checkpoint.note)
    parsed = notes.parse_checkpoint(body)
    assert parsed.size == 2 and parsed.root_hash == tree.root(2)
    assert notes.verify_note(checkpoint.note, {checkpoints.origin(): get_signer("ledger").public_key})
    assert (tmp_path / "latest").read_text() == checkpoint.note
    assert LedgerEntry.objects.filter(kind="checkpoint.created").count() == 1
