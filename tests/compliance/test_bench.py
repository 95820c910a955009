"""The bench dispatcher: benchmark modules by name, a clear refusal of a database that
is not migrated, medians over runs, and the dashboard bench's fill through the ingest
writer (the full benchmarks are run by `make bench`, their quick forms by `make check`)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from compliance.management.commands.bench import available
from tests.terminal import Terminal, counted

pytestmark = [pytest.mark.embedded]
ROOT = Path(__file__).resolve().parents[2]


def test_it_lists_the_ledger_benchmark_and_refuses_unknown_names():
    assert available()["ledger"] == "compliance.benchmarks.ledger"
    with pytest.raises(CommandError, match="unknown benchmark 'nosuch'; available: .*ledger"):
        call_command("bench", "nosuch")


def _manage(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _env(tmp_path, database_url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["TRACELEDGER_HOME"] = str(tmp_path / "home")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@pytest.fixture
def scratch_database_url(tmp_path):
    """An empty database: PostgreSQL beside the test database, else a fresh SQLite home."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield None
        return
    import psycopg

    db = connection.settings_dict
    conninfo = dict(host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432, user=db.get("USER"),
                    dbname="postgres")
    name = f"{db['NAME']}_unmigrated"
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db.get('USER')}@{conninfo['host']}:{conninfo['port']}/{name}"
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db
@pytest.mark.parametrize("bench", ["build", "dashboard", "ledger", "provenance", "all"])
def test_it_refuses_an_unmigrated_database_in_one_sentence(tmp_path, scratch_database_url, bench):
    done = _manage("bench", bench, "--quick", env=_env(tmp_path, scratch_database_url))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not migrated" in lines[0] and "run `manage.py migrate`" in lines[0], lines


def test_it_takes_the_median_of_every_figure_over_runs():
    from compliance.management.commands.bench import median_of

    runs = [{"a": 1.0, "b": {"c": 5}, "ok": True, "name": "x"}, {"a": 3.0, "b": {"c": 1}, "ok": False, "name": "y"},
            {"a": 2.0, "b": {"c": 3}, "ok": True, "name": "z"}]
    assert median_of(runs) == {"a": 2.0, "b": {"c": 3}, "ok": True, "name": "x"}


@pytest.mark.django_db
def test_it_fills_the_dashboard_bench_through_the_ingest_writer_and_the_ledger_verifies(tmp_path):
    """The quick dashboard bench on this test's own kind of database: pages answer, and
    the ledger the fill left (Merkle nodes included) passes verify_ledger."""
    from django.db import connection

    env = _env(tmp_path, None)
    if connection.vendor == "postgresql":
        db = connection.settings_dict  # the migrated test database; the bench makes <name>_bench beside it
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    else:
        assert _manage("migrate", "--noinput", "-v", "0", env=env).returncode == 0
    done = _manage("bench", "dashboard", "--quick", "--size", "6000", "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    assert figures["database"] == connection.vendor
    assert figures["predictions"] == 6000 and figures["verified_entries"] > 6000
    assert figures["fill_per_s"] > 0 and figures["trace_p95_ms"] > 0 and "trace_p95_ratio" in figures



def test_the_ledger_bench_fill_shows_its_progress_on_a_terminal(monkeypatch, transactional_db):
    """On PostgreSQL the fill COPYs and commits chunk by chunk: no test transaction around it."""
    from compliance.benchmarks import ledger as bench
    from compliance.models import LedgerEntry

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    bench._empty_ledger()
    bench._fill(300, chunk=128)
    assert LedgerEntry.objects.count() == 300
    shown = err.getvalue()
    assert "filling ledger" in shown and counted(300, 300) in shown and "entries/s" in shown, shown
    assert shown.count("\r") <= 6  # told once per chunk of 128, not per entry


@pytest.mark.parametrize("terminal", [True, False])
def test_the_ledger_bench_child_draws_on_our_terminal_only(monkeypatch, terminal):
    """The fill runs in a child process: on a terminal its stderr is ours (its bar shows),
    elsewhere it is kept to name a failure; stdout carries its JSON either way."""
    from compliance.benchmarks import ledger as bench

    calls = []

    def fake_run(args, **kwargs):
        calls.append(kwargs)
        return subprocess.CompletedProcess(args, 0, stdout='{"append_per_s": 1}\n', stderr=None)

    monkeypatch.setattr(bench, "_bench_env", lambda home: ({}, lambda: None))
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "stderr", Terminal() if terminal else io.StringIO())
    assert bench.run(quick=True) == {"append_per_s": 1}
    assert calls[0]["stdout"] == subprocess.PIPE
    assert calls[0]["stderr"] == (None if terminal else subprocess.PIPE)


def test_the_build_bench_shows_the_test_engine_being_written(tmp_path, monkeypatch):
    from compliance.benchmarks.build import _write_file

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    _write_file(tmp_path / "engine.bin", 10_000, block_size=4096)
    assert (tmp_path / "engine.bin").stat().st_size == 10_000
    shown = err.getvalue()
    assert "writing the test engine" in shown and "100%" in shown and counted(10_000, 10_000) in shown and "B/s" in shown, shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    _write_file(tmp_path / "quiet.bin", 10_000, block_size=4096)
    assert sys.stderr.getvalue() == ""
