"""deploy/backup.sh and deploy/restore.sh on PostgreSQL: a backup restores into a new
database whose ledger and store verify; a damaged backup or a missing artifact fails
the restore, naming what is wrong."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from compliance.ledger import checkpoints
from compliance.lib.store import default_store
from compliance.models import LedgerEntry
from tests.conftest import ROOT, on_postgres
from tests.dashboard_data import seed

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if not on_postgres():
        pytest.skip("pg_dump and pg_restore need PostgreSQL")


def url(name: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")}
    env = base | {"PYTHON": sys.executable, "DJANGO_SETTINGS_MODULE": "compliance.project.settings",
                  "TRACELEDGER_GENERATE_KEYS": "False", "REDIS_URL": ""} | env
    return subprocess.run([str(ROOT / "deploy" / script), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def new_database():
    name = f"{settings.DATABASES['default']['NAME']}_restored_{os.getpid()}"
    admin = url("postgres")
    subprocess.run(["dropdb", "--if-exists", "--force", f"--maintenance-db={admin}", name], check=True)
    subprocess.run(["createdb", f"--maintenance-db={admin}", name], check=True)
    yield name
    subprocess.run(["dropdb", "--if-exists", "--force", f"--maintenance-db={admin}", name], check=True)


@pytest.fixture
def backed_up(credit_onnx, eager, tmp_path):
    """A deployment with a build, an engine, predictions and a signed checkpoint, backed up."""
    data = seed(credit_onnx, predictions=3)
    checkpoint = checkpoints.make_checkpoint()
    done = run("backup.sh", str(tmp_path / "backups"), DATABASE_URL=url(settings.DATABASES["default"]["NAME"]),
               TRACELEDGER_HOME=str(settings.TRACELEDGER_HOME),
               TRACELEDGER_STORE_DIR=str(settings.TRACELEDGER_STORE_DIR),
               TRACELEDGER_CHECKPOINT_DIR=str(settings.TRACELEDGER_CHECKPOINT_DIR),
               TRACELEDGER_KEYS_DIR=str(settings.TRACELEDGER_KEYS_DIR))
    assert done.returncode == 0, done.stderr
    return data, checkpoint, Path(done.stdout.strip().splitlines()[-1])


def restore(backup: Path, database: str, target: Path, **env) -> subprocess.CompletedProcess:
    return run("restore.sh", str(backup), DATABASE_URL=url(database), TRACELEDGER_HOME=str(target),
               TRACELEDGER_KEYS_DIR=str(target / "keys"), **env)


def test_it_backs_up_restores_into_a_new_database_and_verifies_the_copy(backed_up, new_database, tmp_path):
    data, checkpoint, backup = backed_up
    assert sorted(p.name for p in backup.iterdir()) == ["backup.json", "checkpoints", "database.dump",
                                                        "manifest.sha256", "public-keys.json", "store.tar"]
    assert {k["purpose"] for k in json.loads((backup / "public-keys.json").read_text())["keys"]} >= {"ledger", "build"}
    assert not any(p.suffix == ".pem" for p in backup.rglob("*")), "private keys stay in the secret store"

    target = tmp_path / "restored"
    done = restore(backup, new_database, target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored and verified" in done.stdout
    assert f"{checkpoint.size}" in done.stdout and "stored files present" in done.stdout
    restored_engine = target / "store" / default_store().path_for(data.engine.sha256).relative_to(
        settings.TRACELEDGER_STORE_DIR)
    assert restored_engine.read_bytes() == default_store().read(data.engine.sha256)
    count = subprocess.run(["psql", url(new_database), "-Atc", "SELECT count(*) FROM compliance_ledgerentry"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert int(count) == LedgerEntry.objects.count()
    assert list((target / "checkpoints").iterdir())

    again = restore(backup, new_database, target)
    assert again.returncode == 1 and "create a new one" in again.stderr


def test_it_refuses_a_damaged_backup(backed_up, new_database, tmp_path):
    _, _, backup = backed_up
    dump = bytearray((backup / "database.dump").read_bytes())
    dump[len(dump) // 2] ^= 0x01
    (backup / "database.dump").write_bytes(bytes(dump))
    done = restore(backup, new_database, tmp_path / "restored")
    assert done.returncode == 1 and "backup damaged" in done.stderr
    tables = subprocess.run(["psql", url(new_database), "-Atc", "SELECT count(*) FROM pg_tables WHERE schemaname='public'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert tables == "0"


def test_the_restore_fails_when_the_store_lacks_an_engine(credit_onnx, eager, new_database, tmp_path):
    data = seed(credit_onnx, predictions=1)
    checkpoints.make_checkpoint()
    engine_file = default_store().path_for(data.engine.sha256)
    engine_file.unlink()  # lost from the shared storage before the backup ran
    done = run("backup.sh", str(tmp_path / "backups"), DATABASE_URL=url(settings.DATABASES["default"]["NAME"]),
               TRACELEDGER_HOME=str(settings.TRACELEDGER_HOME), TRACELEDGER_KEYS_DIR=str(settings.TRACELEDGER_KEYS_DIR))
    assert done.returncode == 0, done.stderr
    restored = restore(Path(done.stdout.strip().splitlines()[-1]), new_database, tmp_path / "restored")
    assert restored.returncode == 1
    assert f"engine {data.engine.id} {data.engine.sha256}: file is missing from the store" in restored.stderr
