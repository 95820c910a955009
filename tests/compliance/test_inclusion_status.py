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
