"""What an operator with full database and key-file access does to escape the auditor:
copy the database aside and restore it later, wipe the ledger and rebuild it, all with
the triggers dropped (tests/compliance/ledger_fixtures.attack)."""
from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from compliance.ledger import keys
from compliance.models import (
    Alert,
    Checkpoint,
    LedgerEntry,
    LedgerHead,
    MerkleNode,
    SigningKey,
    VerificationRun,
    WitnessCosignature,
)
from tests.compliance.ledger_fixtures import attack, sql

# children before parents, so deletes respect the foreign keys
TABLES = [WitnessCosignature, Checkpoint, MerkleNode, LedgerEntry, LedgerHead, SigningKey, VerificationRun, Alert]


def snapshot() -> dict:
    """A backup copy of everything the ledger is made of."""
    return {model: list(model.objects.values()) for model in TABLES}


def restore(copy: dict) -> None:
    """Put the backup back in place of what is there now, as a restore would."""
    with attack():
        for model in TABLES:
            sql(f'DELETE FROM "{model._meta.db_table}"')
        for model in reversed(TABLES):
            model.objects.bulk_create([model(**row) for row in copy[model]])
    keys.clear_cache()


def wipe(*, new_keys: bool) -> None:
    """Empty the ledger (and, with `new_keys`, throw the key files away), so that a
    history rebuilt from scratch is consistent with itself."""
    restore({model: [] for model in TABLES})
    if new_keys:
        shutil.rmtree(Path(settings.TRACELEDGER_KEYS_DIR))
    keys.clear_cache()
