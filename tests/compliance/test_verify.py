"""verify_ledger finds every kind of tampering, with the right first bad entry, even when
the attacker dropped the append-only triggers first; and the triggers refuse plain
UPDATE/DELETE (and TRUNCATE, even as a replica, on PostgreSQL).  Runs on PostgreSQL and
on SQLite."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import DatabaseError, transaction

from compliance import tasks
from compliance.ledger import checkpoints, dbguards, ledger, notes
from compliance.ledger.verify import verify_ledger
from compliance.ledger.witness import Witness
from compliance.models import Alert, Checkpoint, LedgerEntry, MerkleNode, VerificationRun, WitnessCosignature
from tests.compliance.ledger_fixtures import (
    attack,
    entry_row,
    rebuild_all_nodes,
    rewrite_body,
    seed_ledger,
    sql,
    truncate_log,
)
from tests.conftest import on_postgres

pytestmark = [pytest.mark.embedded]

SMALL_CHUNK = 8  # many chunk boundaries in a 44-entry ledger


@pytest.fixture
def seeded(db, settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return seed_ledger()


def check(expected_index: int, *words: str):
    result = verify_ledger(chunk=SMALL_CHUNK)
    assert not result.ok, result.summary()
    assert result.first_bad_index == expected_index, result.message
    for word in words:
        assert word in result.message, result.message
    return result


def test_it_passes_an_untouched_ledger_and_records_the_run(seeded):
    result = verify_ledger(chunk=SMALL_CHUNK)
    assert result.ok, result.message
    assert (result.entries_checked, result.checkpoints_checked, result.checkpoint_id) == (44, 3, seeded.c.id)
    assert result.nodes_checked == MerkleNode.objects.count()
    run = VerificationRun.objects.get(pk=result.run_id)
    assert run.ok and run.checked_upto == 44 and run.checkpoint_size == 40 and run.finished_at


# ------------------------------------------------------------ the tamper matrix


def test_it_finds_an_edited_payload(seeded):
    with attack():
        rewrite_body(20, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=False)
    check(20, "entry #20", "leaf hash does not match")


def test_it_finds_an_edited_payload_whose_leaf_hash_was_updated(seeded):
    with attack():
        rewrite_body(20, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=True)
    # leaves are not stored apart from their entries, so the edit is consistent up to
    # the first stored node or signed root over it: checkpoint b (size 29) comes first
    check(16, f"checkpoint #{seeded.b.id} (size 29)", "differs from the root recomputed", "entries 16..28")


def test_it_finds_an_edited_payload_even_when_every_node_was_recomputed(seeded):
    with attack():
        rewrite_body(20, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=True)
        rebuild_all_nodes()
    # entries and nodes agree again; only the signed root of checkpoint b (size 29) can
    # tell, so the first entry no valid checkpoint vouches for is a's size, 16
    result = check(16, f"checkpoint #{seeded.b.id} (size 29)", "differs from the root recomputed", "entries 16..28")
    assert result.checkpoints_checked == 1


def test_it_finds_a_deleted_row(seeded):
    with attack():
        sql('DELETE FROM compliance_ledgerentry WHERE "index" = %s', [22])
    check(22, "entry #22 is missing")


def test_it_finds_a_row_inserted_in_the_middle(seeded):
    forged = ledger.Event("trace.viewed", {"n": 999, "who": "mallory"}, subject="t:forged")
    with attack():
        for index in range(seeded.size - 1, 21, -1):  # make room at 22
            sql('UPDATE compliance_ledgerentry SET "index" = %s WHERE "index" = %s', [index + 1, index])
        row = entry_row(21)
        body = ledger.entry_body(22, forged, row["created_at"])
        sql('INSERT INTO compliance_ledgerentry ("index", kind, subject, body, leaf_hash, created_at) '
            'VALUES (%s, %s, %s, %s, %s, %s)',
            [22, forged.kind, forged.subject, body.decode(), ledger.leaf_hash(body), row["created_at"]])
    # the forged row is self-consistent; the row pushed down after it is not
    check(23, "entry #23", "body says index 22, row is 23")


def test_it_finds_two_swapped_rows(seeded):
    first, second = entry_row(18), entry_row(25)
    with attack():
        for target, source in ((18, second), (25, first)):
            sql('UPDATE compliance_ledgerentry SET kind = %s, subject = %s, body = %s, leaf_hash = %s '
                'WHERE "index" = %s', [source["kind"], source["subject"], source["body"], source["leaf_hash"], target])
    check(18, "body says index 25, row is 18")


@pytest.mark.parametrize("level, index, first_bad", [(4, 0, 0), (4, 1, 16), (5, 0, 0)])
def test_it_finds_an_edited_node_hash(seeded, level, index, first_bad):
    with attack():
        sql("UPDATE compliance_merklenode SET hash = %s WHERE id = %s", [b"\x07" * 32, MerkleNode.key(level, index)])
    check(first_bad, "differs from the hash recomputed")


def test_it_finds_a_deleted_node(seeded):
    with attack():
        sql("DELETE FROM compliance_merklenode WHERE id = %s", [MerkleNode.key(4, 1)])
    check(16, "(level 4, index 1)", "is missing")


def test_it_checks_a_low_node_an_older_version_stored(seeded):
    """Below level 4 nodes are derived from the leaves, not stored; one an older
    version stored must still agree with the entries."""
    with attack():
        sql("INSERT INTO compliance_merklenode (id, hash) VALUES (%s, %s)", [MerkleNode.key(2, 5), b"\x07" * 32])
    check(20, "(level 2, index 5)", "differs from the hash recomputed")


def test_it_finds_a_checkpoint_resigned_with_an_unregistered_key(seeded):
    rogue = Ed25519PrivateKey.generate()
    body, _ = notes.parse_note(seeded.b.note)
    forged = notes.sign_note(body, checkpoints.origin(), rogue)
    with attack():
        sql("UPDATE compliance_checkpoint SET note = %s WHERE id = %s", [forged, seeded.b.id])
    check(16, f"checkpoint #{seeded.b.id} (size 29)", "not signed by a registered ledger key")


def test_it_finds_an_edited_checkpoint_root(seeded):
    forged_root = bytes(32)
    body, sigs = notes.parse_note(seeded.b.note)
    forged_body = notes.format_checkpoint(checkpoints.origin(), 29, forged_root)
    forged = seeded.b.note.replace(body, forged_body)
    with attack():
        sql("UPDATE compliance_checkpoint SET note = %s, root_hash = %s WHERE id = %s",
            [forged, forged_root.hex(), seeded.b.id])
    check(16, f"checkpoint #{seeded.b.id}", "does not verify", "differs from the root recomputed")


def test_it_finds_an_edited_checkpoint_root_column(seeded):
    with attack():
        sql("UPDATE compliance_checkpoint SET root_hash = %s WHERE id = %s", ["00" * 32, seeded.c.id])
    check(29, f"checkpoint #{seeded.c.id} (size 40)", "root_hash column")


def test_it_finds_a_log_truncated_and_regrown(seeded):
    with attack():
        truncate_log(33)
    ledger.append_many([ledger.Event("trace.viewed", {"n": i, "who": "mallory"}) for i in range(12)])
    assert ledger.size() == 45
    # entries, nodes and head agree with each other; checkpoint c (size 40) no longer does
    check(29, f"checkpoint #{seeded.c.id} (size 40)", "entries 29..39 are not vouched for")


def test_it_finds_a_truncated_log(seeded):
    with attack():
        truncate_log(33)
    check(33, f"checkpoint #{seeded.c.id} vouches for 40 entries but the ledger has 33")


def test_it_finds_a_row_appended_behind_the_heads_back(seeded):
    event = ledger.Event("trace.viewed", {"n": 1})
    body = ledger.entry_body(seeded.size, event, entry_row(0)["created_at"])
    LedgerEntry.objects.create(index=seeded.size, kind=event.kind, subject="", body=body.decode(),
                               leaf_hash=ledger.leaf_hash(body), created_at=entry_row(0)["created_at"])
    check(seeded.size, f"entry #{seeded.size} lies beyond the ledger head")


def test_it_finds_a_forged_cosignature(seeded, settings, tmp_path):
    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    Witness().cosign_latest()
    cosig = WitnessCosignature.objects.get()
    body, _ = notes.parse_note(seeded.c.note)
    forged = notes.cosign(body, settings.TRACELEDGER_WITNESS_NAME, Ed25519PrivateKey.generate(), cosig.timestamp)
    with attack():
        sql("UPDATE compliance_witnesscosignature SET line = %s WHERE id = %s", [forged, cosig.id])
    check(29, "cosignature by key", "does not verify")


# ------------------------------------------------------------ the command and the task


def test_the_command_exits_1_naming_the_first_bad_entry(seeded, capsys):
    call_command("verify_ledger")
    assert "ledger OK (full): entries 0..43 of 44" in capsys.readouterr().out
    with attack():
        sql('DELETE FROM compliance_ledgerentry WHERE "index" = %s', [7])
        rewrite_body(3, lambda b: b["payload"].update(n=-1), fix_leaf_hash=False)
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_ledger", "--json")
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["ok"] is False and data["first_bad_index"] == 3
    assert "FAILED at entry #3" in err


def test_the_periodic_task_raises_an_alert_on_failure(seeded):
    assert tasks.verify_ledger(since_last=False) is True
    assert not Alert.objects.filter(kind="ledger.verification_failed").exists()
    with attack():
        rewrite_body(5, lambda b: b["payload"].update(n=-1), fix_leaf_hash=False)
    assert tasks.verify_ledger(since_last=False) is False
    alert = Alert.objects.get(kind="ledger.verification_failed")
    assert alert.severity == "critical" and alert.details["first_bad_index"] == 5
    assert LedgerEntry.objects.filter(kind="alert.raised").exists()


def test_since_last_checks_only_what_is_new(seeded):
    assert verify_ledger(chunk=SMALL_CHUNK).ok
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(20)])
    checkpoints.make_checkpoint()  # size 64
    result = verify_ledger(since_last=True, chunk=SMALL_CHUNK)
    assert result.ok and result.mode == "since_last", result.message
    assert (result.checked_from, result.checked_upto, result.entries_checked) == (40, 65, 25)
    assert result.checkpoint_size == 64

    # an edit after the last verified checkpoint is found; an older one needs a full run
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(10)])
    checkpoints.make_checkpoint()  # size 75
    with attack():
        rewrite_body(70, lambda b: b["payload"].update(n=-1), fix_leaf_hash=False)
        rewrite_body(10, lambda b: b["payload"].update(n=-1), fix_leaf_hash=False)
    result = verify_ledger(since_last=True, chunk=SMALL_CHUNK)
    assert not result.ok and result.first_bad_index == 70 and result.checked_from == 64
    assert verify_ledger(chunk=SMALL_CHUNK).first_bad_index == 10


def test_since_last_falls_back_to_a_full_run_when_its_anchor_changed(seeded):
    assert verify_ledger(chunk=SMALL_CHUNK).ok
    with attack():
        rewrite_body(20, lambda b: b["payload"].update(who="mallory"), fix_leaf_hash=True)
        rebuild_all_nodes()
    result = verify_ledger(since_last=True, chunk=SMALL_CHUNK)
    assert result.mode == "full" and not result.ok and result.first_bad_index == 16


def test_it_verifies_an_empty_ledger(db):
    result = verify_ledger()
    assert result.ok and result.size == 0 and result.entries_checked == 0


# ------------------------------------------------------------ the guards


def _refused(statement: str, params=None) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            sql(statement, params)


def test_the_triggers_refuse_updates_and_deletes(seeded, settings, tmp_path):
    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    Witness().cosign_latest()
    for table, column, value in [("compliance_ledgerentry", "kind", "x"), ("compliance_merklenode", "hash", b"x"),
                                 ("compliance_checkpoint", "note", "x"), ("compliance_witnesscosignature", "line", "x")]:
        _refused(f"UPDATE {table} SET {column} = %s", [value])
        _refused(f"DELETE FROM {table}")
    assert verify_ledger().ok
    if on_postgres():
        sql("SET CONSTRAINTS ALL IMMEDIATE")  # else PostgreSQL refuses for pending FK checks, not our trigger
        for table in dbguards.APPEND_ONLY_TABLES:
            _refused(f"TRUNCATE {table} CASCADE")
        # a replica session skips ordinary triggers, not ENABLE ALWAYS ones
        with transaction.atomic():
            sql("SET LOCAL session_replication_role = replica")
            _refused("UPDATE compliance_ledgerentry SET kind = 'x'")
            _refused("DELETE FROM compliance_checkpoint")
            _refused("TRUNCATE compliance_merklenode CASCADE")
    assert LedgerEntry.objects.count() == ledger.size() == 46 and Checkpoint.objects.count() == 3


def test_the_model_layer_refuses_updates_and_deletes(seeded):
    entry = LedgerEntry.objects.get(index=3)
    entry.kind = "x"
    for call in (entry.save, entry.delete, lambda: LedgerEntry.objects.filter(index=3).update(kind="x"),
                 lambda: Checkpoint.objects.all().delete(), lambda: MerkleNode.objects.all().delete()):
        with pytest.raises(PermissionError, match="append-only"):
            call()
