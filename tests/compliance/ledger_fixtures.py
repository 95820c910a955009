"""Helpers for ledger tests: a small ledger with three checkpoints, and the raw SQL an
attacker with the table owner's rights would run (triggers dropped first)."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from compliance.ledger import checkpoints, dbguards, ledger, merkle
from compliance.ledger.keys import get_signer
from compliance.models import Checkpoint, LedgerEntry, MerkleNode


@dataclass
class Seeded:
    a: Checkpoint
    b: Checkpoint
    c: Checkpoint
    size: int


def seed_ledger() -> Seeded:
    """Entry 0 registers the ledger key; checkpoints at sizes 16, 29 and 40 (each adds its
    own `checkpoint.created` entry); 44 entries in all."""
    get_signer("ledger")
    made = []
    for count in (15, 12, 10):
        ledger.append_many([ledger.Event("trace.viewed", {"n": i, "who": "alice"}, subject=f"t:{i}")
                            for i in range(count)])
        made.append(checkpoints.make_checkpoint())
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(3)])
    a, b, c = made
    assert (a.size, b.size, c.size, ledger.size()) == (16, 29, 40, 44)
    return Seeded(a, b, c, ledger.size())


def sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def attack():
    """Drop the append-only triggers for the block, as a table owner could."""
    return dbguards.suspended(connection)


def entry_row(index: int) -> dict:
    return LedgerEntry.objects.filter(index=index).values("index", "kind", "subject", "body", "leaf_hash",
                                                         "created_at").get()


def rewrite_body(index: int, change, *, fix_leaf_hash: bool) -> None:
    """Edit an entry's payload, keeping its body canonical JSON."""
    import json

    from compliance.ledger.canonical import canonical_json

    row = entry_row(index)
    body = json.loads(row["body"])
    change(body)
    new_body = canonical_json(body).decode()
    if fix_leaf_hash:
        sql('UPDATE compliance_ledgerentry SET body = %s, leaf_hash = %s WHERE "index" = %s',
            [new_body, ledger.leaf_hash(new_body.encode()), index])
    else:
        sql('UPDATE compliance_ledgerentry SET body = %s WHERE "index" = %s', [new_body, index])


def rebuild_all_nodes() -> None:
    """Recompute every stored node from the (edited) entries, as a careful attacker would."""
    leaves = [bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)]
    sql("DELETE FROM compliance_merklenode")
    MerkleNode.objects.bulk_create([MerkleNode(id=MerkleNode.key(level, index), hash=h)
                                    for level, index, h in merkle.nodes_for_batch(0, leaves, {})])


def truncate_log(size: int) -> None:
    """Delete entries from `size` on, the nodes covering them, and set the head back."""
    sql('DELETE FROM compliance_ledgerentry WHERE "index" >= %s', [size])
    doomed = [i for i in MerkleNode.objects.values_list("id", flat=True)
              if ((i & ((1 << 56) - 1)) + 1) << (i >> 56) > size]
    for start in range(0, len(doomed), 500):
        ids = doomed[start:start + 500]
        sql(f"DELETE FROM compliance_merklenode WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
    sql("UPDATE compliance_ledgerhead SET size = %s WHERE id = 1", [size])


def delete_checkpoints_after(size: int) -> None:
    ids = list(Checkpoint.objects.filter(size__gt=size).values_list("id", flat=True))
    for i in ids:
        sql("DELETE FROM compliance_witnesscosignature WHERE checkpoint_id = %s", [i])
        sql("DELETE FROM compliance_checkpoint WHERE id = %s", [i])
