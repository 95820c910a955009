"""The ledger's Merkle tree in the database (RFC 9162), on top of compliance.ledger.merkle.

Appends store every complete subtree of 2**STORED_FROM_LEVEL leaves or more that
they finish (MerkleNode), reading only the O(log n) left-frontier nodes.  Smaller
subtrees are not stored: each is recomputed from at most 2**STORED_FROM_LEVEL - 1
leaf hashes, which LedgerEntry holds anyway (and verify_ledger re-derives from the
bodies).  That keeps the ledger's Merkle rows at about 1/8 per leaf instead of 2,
on a path that appends thousands of leaves a second.  Roots at any size and
inclusion/consistency proofs read O(log n) nodes and at most 15 leaf hashes per
needed low subtree, in one query each.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from compliance.ledger import merkle
from compliance.ledger.bulk import insert_rows
from compliance.models import LedgerEntry, MerkleNode

STORED_FROM_LEVEL = 4


class DbNodeReader:
    """merkle.NodeReader over MerkleNode and LedgerEntry: `get_many` is at most one
    SELECT … WHERE id IN (…) for stored nodes and one for the leaf hashes of lower ones."""

    def __init__(self):
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        return self.get_many([(level, index)])[(level, index)]

    def get_many(self, keys: Sequence[merkle.Key]) -> Mapping[merkle.Key, bytes]:
        if not keys:
            return {}
        self.reads += len(keys)
        ids = {MerkleNode.key(level, index): (level, index) for level, index in keys if level >= STORED_FROM_LEVEL}
        found = {ids[i]: bytes(h) for i, h in MerkleNode.objects.filter(id__in=list(ids)).values_list("id", "hash")}
        found.update(low_nodes([k for k in keys if k[0] < STORED_FROM_LEVEL]))
        missing = [k for k in keys if k not in found]
        if missing:
            raise merkle.MissingNodeError(missing[0])
        return found


def low_nodes(keys: Sequence[merkle.Key]) -> dict[merkle.Key, bytes]:
    """Hashes of unstored subtrees (level < STORED_FROM_LEVEL), folded from the leaf
    hashes of their entries; a subtree with a missing entry is left out."""
    if not keys:
        return {}
    wanted = sorted({i for level, index in keys for i in range(index << level, (index + 1) << level)})
    leaves = {i: bytes.fromhex(h) for i, h in
              LedgerEntry.objects.filter(index__in=wanted).values_list("index", "leaf_hash")}
    out = {}
    for level, index in keys:
        hashes = [leaves.get(i) for i in range(index << level, (index + 1) << level)]
        if None in hashes:
            continue
        while len(hashes) > 1:
            hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        out[(level, index)] = hashes[0]
    return out


def store_leaves(size_before: int, leaf_hashes: list[bytes]) -> None:
    """Store the nodes for leaves appended at [size_before, size_before + n) (their
    entries already inserted). Runs inside the append transaction, under the ledger
    head lock."""
    store_nodes(merkle.nodes_for_batch(size_before, leaf_hashes, DbNodeReader()))


def open_batch(size_before: int, count: int) -> merkle.BatchNodes:
    """A merkle.BatchNodes for `count` leaves appended at `size_before`, its frontier
    read now (so that the caller can then stream the entries in one COPY); hand its
    rows to store_nodes once every leaf is added."""
    return merkle.BatchNodes(size_before, count, DbNodeReader())


def store_nodes(rows: list[merkle.NodeRow]) -> None:
    insert_rows(MerkleNode, ("id", "hash"),
                [(MerkleNode.key(level, index), h) for level, index, h in rows if level >= STORED_FROM_LEVEL])


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
