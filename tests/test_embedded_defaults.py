"""The embedded default is safe to leave running: DEBUG off unless asked for, its own
random SECRET_KEY, and the SQLite file and the secret readable by us alone (key files:
tests/compliance/test_keys.py; exported reports: tests/compliance/test_reports.py)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.embedded

PROBE = """
import json, os, stat, django
django.setup()
from django.conf import settings
from django.db import connection
connection.ensure_connection()
with connection.cursor() as c:
    c.execute("create table if not exists probe (x int)")
home = settings.TRACELEDGER_HOME
mode = lambda p: oct(stat.S_IMODE(os.stat(p).st_mode))
print(json.dumps({"debug": settings.DEBUG, "secret": settings.SECRET_KEY, "home": mode(home),
                  "db": mode(settings.DATABASES["default"]["NAME"]), "secret_file": mode(home / "secret_key"),
                  "files": {p.name: mode(p) for p in home.rglob("*") if p.is_file()}}))
"""


def probe(home, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY")}
    environment |= {"TRACELEDGER_HOME": str(home), "DJANGO_SETTINGS_MODULE": "compliance.project.settings",
                    "PYTHONPATH": str(ROOT)} | env
    out = subprocess.run([sys.executable, "-c", PROBE], env=environment, cwd=ROOT, capture_output=True, text=True,
                         check=True, umask=0o022)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_embedded_default_keeps_its_files_private_and_debug_off(tmp_path):
    home = tmp_path / "home"
    first = probe(home)
    assert first["debug"] is False
    assert first["home"] == "0o700" and first["db"] == "0o600" and first["secret_file"] == "0o600"
    assert len(first["secret"]) >= 50 and "insecure" not in first["secret"]
    assert probe(home)["secret"] == first["secret"]  # kept across restarts
    assert probe(tmp_path / "other")["secret"] != first["secret"]
    assert probe(home, DEBUG="true")["debug"] is True


def test_an_existing_database_file_is_tightened_to_0600(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "traceledger.sqlite3").touch(mode=0o644)
    os.chmod(home / "traceledger.sqlite3", 0o644)
    assert probe(home)["db"] == "0o600"
    assert stat.S_IMODE((home / "traceledger.sqlite3").stat().st_mode) == 0o600
