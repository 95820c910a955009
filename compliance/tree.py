"""The ledger's Merkle tree in the database (RFC 9162), on top of compliance.merkle.

Appends store every leaf and every complete subtree it finishes (MerkleNode), reading
only the O(log n) left-frontier nodes; roots at any size and inclusion/consistency
proofs read O(log n) nodes in one query.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import merkle
from .bulk import insert_rows
from .models import LedgerEntry, MerkleNode


class DbNodeReader:
    """merkle.NodeReader over MerkleNode: `get_many` is one SELECT … WHERE id IN (…)."""

    def __init__(self):
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        return self.get_many([(level, index)])[(level, index)]

    def get_many(self, keys: Sequence[merkle.Key]) -> Mapping[merkle.Key, bytes]:
        if not keys:
            return {}
        self.reads += len(keys)
        ids = {MerkleNode.key(level, index): (level, index) for level, index in keys}
        found = {ids[i]: bytes(h) for i, h in MerkleNode.objects.filter(id__in=list(ids)).values_list("id", "hash")}
        missing = [k for k in keys if k not in found]
        if missing:
            raise merkle.MissingNodeError(missing[0])
        return found


def store_leaves(size_before: int, leaf_hashes: list[bytes]) -> None:
    """Store the nodes for leaves appended at [size_before, size_before + n). Runs inside
    the append transaction, under the ledger head lock."""
    rows = merkle.nodes_for_batch(size_before, leaf_hashes, DbNodeReader())
    insert_rows(MerkleNode, ("id", "hash"), [(MerkleNode.key(level, index), h) for level, index, h in rows])


def root(size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    return merkle.root(size, DbNodeReader())


def inclusion_proof(index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, DbNodeReader())


def consistency_proof(old_size: int, new_size: int) -> list[bytes]:
    return merkle.consistency_proof(old_size, new_size, DbNodeReader())


def leaf(index: int) -> bytes:
    return bytes.fromhex(LedgerEntry.objects.values_list("leaf_hash", flat=True).get(index=index))
