"""verify_ledger over worker processes gives the same verdict, first bad entry and
message as the one-pass verifier: on an untouched ledger, and for tampering inside a
chunk, at a chunk boundary, in a node above the chunks and in a signed root.  Needs
rows the workers can see (committed, in a server or file database)."""
from __future__ import annotations

import pytest

from compliance.ledger import verify
from compliance.ledger.verify import verify_ledger
from compliance.models import MerkleNode
from tests.compliance.ledger_fixtures import attack, rebuild_all_nodes, rewrite_body, seed_ledger, sql

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

CHUNK = 4  # below the stored levels: nodes from level 4 up are checked by the parent


@pytest.fixture
def seeded(settings, tmp_path):
    if not verify._can_fork_workers():
        pytest.skip("worker processes cannot see this test database (in-memory SQLite)")
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return seed_ledger()


def both() -> tuple:
    return verify_ledger(chunk=CHUNK, workers=1), verify_ledger(chunk=CHUNK, workers=2)


def same(serial, parallel) -> None:
    assert parallel.workers == 2
    fields = ("ok", "first_bad_index", "message", "entries_checked", "checkpoints_checked", "checkpoint_id")
    assert [getattr(parallel, f) for f in fields] == [getattr(serial, f) for f in fields]


def test_it_passes_an_untouched_ledger_like_the_one_pass_verifier(seeded):
    seen = []
    serial = verify_ledger(chunk=CHUNK, workers=1)
    parallel = verify_ledger(chunk=CHUNK, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (44, 44) and len(seen) == 11  # chunk by chunk, through the workers
    same(serial, parallel)
    assert (serial.workers, parallel.workers) == (1, 2)
    assert parallel.ok and parallel.entries_checked == 44 and parallel.checkpoints_checked == 3
    assert parallel.nodes_checked == serial.nodes_checked == MerkleNode.objects.count()


@pytest.mark.parametrize("index", [1, 8, 21, 43])
def test_it_names_the_same_first_bad_entry_for_an_edited_row(seeded, index):
    with attack():
        rewrite_body(index, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=False)
    serial, parallel = both()
    same(serial, parallel)
    assert parallel.first_bad_index == index and "leaf hash does not match" in parallel.message


def test_it_finds_a_deleted_row_at_a_chunk_boundary(seeded):
    with attack():
        sql('DELETE FROM compliance_ledgerentry WHERE "index" = %s', [24])
    serial, parallel = both()
    same(serial, parallel)
    assert parallel.first_bad_index == 24 and "entry #24 is missing" in parallel.message


@pytest.mark.parametrize("level, index, first_bad", [(4, 1, 16), (5, 0, 0)])
def test_it_finds_an_edited_node_above_the_chunks(seeded, level, index, first_bad):
    with attack():
        sql("UPDATE compliance_merklenode SET hash = %s WHERE id = %s", [b"\x07" * 32, MerkleNode.key(level, index)])
    serial, parallel = both()
    same(serial, parallel)
    assert parallel.first_bad_index == first_bad and "differs from the hash recomputed" in parallel.message


def test_it_checks_a_signed_root_inside_a_chunk(seeded):
    """Checkpoint b has size 29, inside the chunk [28, 32): its root comes from the
    parent's frontier plus the worker's."""
    with attack():
        rewrite_body(20, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=True)
        rebuild_all_nodes()
    serial, parallel = both()
    same(serial, parallel)
    assert parallel.first_bad_index == 16 and "(size 29)" in parallel.message
