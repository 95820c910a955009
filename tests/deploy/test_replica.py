"""The replica router: page views read our tables from the replica, nothing else does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import RequestFactory

from compliance.models import LedgerEntry
from compliance.project import dbrouter
from lineage.models import Prediction

pytestmark = pytest.mark.embedded
ROOT = Path(__file__).resolve().parents[2]


def test_page_views_read_our_tables_from_the_replica_and_nothing_else_does():
    router, seen = dbrouter.ReplicaRouter(), {}

    def view(request):
        seen[request.method] = (router.db_for_read(Prediction), router.db_for_read(LedgerEntry),
                                router.db_for_read(User), router.db_for_read(Session), router.db_for_write(Prediction))
        return None

    middleware = dbrouter.replica_reads(view)
    middleware(RequestFactory().get("/trace/"))
    middleware(RequestFactory().post("/cases/open/"))
    assert seen["GET"] == ("replica", "replica", None, None, "default")
    assert seen["POST"] == (None, None, None, None, "default")
    # outside a request (tasks, commands, the ledger's appends) the primary
    assert router.db_for_read(Prediction) is None
    assert not router.allow_migrate("replica", "lineage") and router.allow_migrate("default", "lineage")


def test_the_setting_installs_the_replica_only_beside_a_primary_url():
    code = ("from django.conf import settings as s; print(sorted(s.DATABASES), s.DATABASE_ROUTERS, "
            "'compliance.project.dbrouter.replica_reads' in s.MIDDLEWARE)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "compliance.project.settings",
           "DATABASE_URL": "postgres://app@db.example/traceledger",
           "DATABASE_REPLICA_URL": "postgres://app@replica.example/traceledger"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['default', 'replica'] ['compliance.project.dbrouter.ReplicaRouter'] True", out.stderr
    env.pop("DATABASE_URL")
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], cwd=ROOT,
                         env={k: v for k, v in env.items() if k not in ("DATABASE_URL",)},
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().startswith("['default'] []"), out.stderr
