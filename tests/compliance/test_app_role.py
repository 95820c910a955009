"""PostgreSQL: the role the application runs as (README, "Running in production") can
read and append to the evidence tables and nothing more, not even with the triggers'
help withdrawn: it cannot drop or disable them, nor become a replica."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import DatabaseError, transaction

from compliance.ledger import checkpoints, dbguards, ledger
from compliance.ledger.verify import verify_ledger
from tests.compliance.ledger_fixtures import sql

pytestmark = [pytest.mark.django_db]

ROOT_README = Path(__file__).resolve().parents[2] / "README.md"


def refused(statement: str, words: str) -> None:
    with pytest.raises(DatabaseError, match=words):
        with transaction.atomic():
            sql(statement)


def test_the_app_role_can_only_read_and_append(settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path
    role = f"traceledger_app_test_{os.getpid()}"  # rolled back with the test's transaction
    sql(f"CREATE ROLE {role} NOLOGIN")
    for statement in dbguards.app_role_sql(role):
        sql(statement)
    sql(f"SET LOCAL ROLE {role}")

    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(5)])
    checkpoint = checkpoints.make_checkpoint()
    assert verify_ledger().ok and checkpoint.size == 6
    for table in dbguards.APPEND_ONLY_TABLES:
        refused(f"UPDATE {table} SET id = id" if table != "compliance_ledgerentry"
                else f'UPDATE {table} SET "index" = "index"', "permission denied")
        refused(f"DELETE FROM {table}", "permission denied")
        refused(f"TRUNCATE {table} CASCADE", "permission denied")
        refused(f"ALTER TABLE {table} DISABLE TRIGGER ALL", "must be owner")
    refused("DROP TRIGGER compliance_ledgerentry_no_update_delete ON compliance_ledgerentry", "must be owner")
    refused("SET session_replication_role = replica", "permission denied")


def test_the_readme_shows_these_grants():
    readme = ROOT_README.read_text()
    for statement in dbguards.app_role_sql():
        assert statement + ";" in readme
