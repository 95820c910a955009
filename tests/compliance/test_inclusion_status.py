"""The dashboard's proof status is a verified inclusion proof, not a size comparison."""
from __future__ import annotations

import pytest

from compliance.ledger import checkpoints, dbguards, ledger
from compliance.models import LedgerEntry
from compliance.web.ledger_status import inclusion_status

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def test_it_proves_inclusion_against_the_signed_checkpoint_and_catches_an_edit():
    from django.db import connection

    entries = ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(5)])
    target = entries[2].index
    assert inclusion_status(target)["state"] == "pending"
    checkpoint = checkpoints.make_checkpoint()
    status = inclusion_status(target)
    assert status["state"] == "covered" and f"signed checkpoint {checkpoint.id}" in status["detail"]
    assert inclusion_status(checkpoint.size)["state"] == "pending"
    assert inclusion_status(None)["state"] == "missing"

    body = LedgerEntry.objects.get(index=target).body.replace('"n":2', '"n":7')
    with dbguards.suspended(connection, ["compliance_ledgerentry"]):
        with connection.cursor() as cursor:
            cursor.execute('UPDATE compliance_ledgerentry SET body = %s WHERE "index" = %s', [body, target])
    status = inclusion_status(target)
    assert status["state"] == "failed" and "leaf hash does not match" in status["detail"]


def test_it_refuses_a_checkpoint_signed_by_a_key_of_another_purpose():
    """The dashboard applies the one purpose rule: a checkpoint signed with the build key
    under the log's origin (issue 21, finding 1) proves nothing."""
    from compliance.ledger import keys, notes, tree
    from compliance.models import Checkpoint

    entries = ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(3)])
    checkpoints.make_checkpoint()
    assert inclusion_status(entries[1].index)["state"] == "covered"
    size = ledger.size()
    body = notes.format_checkpoint(checkpoints.origin(), size, tree.root(size))
    build = keys.get_signer("build")
    Checkpoint.objects.create(size=size, root_hash=tree.root(size).hex(), key_id=build.key_id,
                              note=notes.sign_note(body, checkpoints.origin(), build.private_key))
    status = inclusion_status(entries[1].index)
    assert status["state"] == "failed" and "not signed by a registered ledger key" in status["detail"]
