"""The database-backed Merkle tree agrees with the reference and signs checkpoints."""
from __future__ import annotations

import pytest

from compliance.ledger import checkpoints, ledger, merkle, notes, tree
from compliance.ledger.keys import get_signer
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
    # only subtrees of 16 leaves or more are stored; smaller ones come from the leaf hashes
    assert [(n.level, n.index) for n in MerkleNode.objects.all()] == [(4, 0)]


def test_an_append_reads_its_frontier_in_one_query_per_table(django_assert_max_num_queries):
    _append_batches([21])  # a frontier of (4, 0), (2, 4), (0, 20): one stored node, five leaves
    # savepoint, head lock, entries, frontier node, frontier leaves, new nodes, head, release
    with django_assert_max_num_queries(8):
        ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(40)])
    hashes = leaves()
    assert tree.root(61) == merkle.naive_root(hashes)
    assert sorted((n.level, n.index) for n in MerkleNode.objects.all()) == [(4, 0), (4, 1), (4, 2), (5, 0)]


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


# ------------------------------------------------- against the naive reference

from django.db import transaction  # noqa: E402
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hsettings
from hypothesis import strategies as st

DB_EXAMPLES = hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _append_batches(batches: list[int]) -> list[bytes]:
    for batch in batches:
        ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(batch)])
    return leaves()


@DB_EXAMPLES
@given(st.lists(st.integers(1, 7), min_size=1, max_size=4))
def test_it_proves_every_pair_of_small_sizes_like_the_reference(batches):
    """Trees of up to 28 leaves grown in random batches: the root at every size, every
    inclusion proof and the consistency proof of every pair of sizes."""
    with transaction.atomic():
        hashes = _append_batches(batches)
        n = len(hashes)
        roots = [merkle.naive_root(hashes[:size]) for size in range(n + 1)]
        for size in range(n + 1):
            assert tree.root(size) == roots[size]
            for index in range(size):
                assert merkle.verify_inclusion(hashes[index], index, size, tree.inclusion_proof(index, size), roots[size])
        for old in range(n + 1):
            for new in range(old, n + 1):
                proof = tree.consistency_proof(old, new)
                assert merkle.verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
                if 0 < old < new:
                    assert not merkle.verify_consistency(old, new, roots[old], merkle.leaf_hash(b"x"), proof)
        transaction.set_rollback(True)


@DB_EXAMPLES
@given(st.lists(st.integers(1, 200), min_size=1, max_size=4), st.data())
def test_it_proves_larger_trees_like_the_reference(batches, data):
    """Trees of up to 800 leaves (mostly not powers of two): sampled sizes, indexes and pairs."""
    with transaction.atomic():
        hashes = _append_batches(batches)
        n = len(hashes)
        for _ in range(6):
            size = data.draw(st.integers(1, n))
            index = data.draw(st.integers(0, size - 1))
            old = data.draw(st.integers(0, size))
            root = merkle.naive_root(hashes[:size])
            assert tree.root(size) == root
            assert merkle.verify_inclusion(hashes[index], index, size, tree.inclusion_proof(index, size), root)
            assert merkle.verify_consistency(old, size, merkle.naive_root(hashes[:old]), root,
                                             tree.consistency_proof(old, size))
        transaction.set_rollback(True)


def test_reads_stay_logarithmic():
    hashes = _append_batches([1000, 25])
    reader = tree.DbNodeReader()
    merkle.inclusion_proof(517, 1025, reader)
    assert reader.reads <= 11
    reader = tree.DbNodeReader()
    merkle.consistency_proof(700, 1025, reader)
    assert reader.reads <= 2 * 11
    assert merkle.root(1025, tree.DbNodeReader()) == merkle.naive_root(hashes)


def test_a_missing_entry_makes_a_low_node_missing():
    _append_batches([10])
    reader = tree.DbNodeReader()
    with pytest.raises(merkle.MissingNodeError):
        reader.get_many([(3, 1)])  # leaves 8..15: only 8 and 9 exist
    assert reader.get(1, 4) == merkle.node_hash(*leaves()[8:10])


def test_a_checkpoint_is_not_made_for_its_own_entry_alone(settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path
    ledger.append("trace.viewed", {"n": 1})
    first = checkpoints.make_checkpoint()
    assert ledger.size() == first.size + 1  # its `checkpoint.created` entry
    assert checkpoints.make_checkpoint() == first
    ledger.append("trace.viewed", {"n": 2})
    second = checkpoints.make_checkpoint()
    assert second.size == first.size + 2
