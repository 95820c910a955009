"""Concurrent writers get a gapless, totally ordered ledger: indexes 0..n-1, each once,
every writer's entries in its own order, and a tree whose root is the reference root
of the leaves.  Writers are threads in several processes, on PostgreSQL and on an
SQLite file (the SQLite test database lives in one process's memory, so that pass
uses a file database of its own)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from compliance.ledger import merkle, tree
from compliance.ledger.verify import verify_ledger
from compliance.models import LedgerEntry, LedgerHead
from tests.conftest import ROOT, on_postgres, worker_env

WRITER = """
import os, sys, threading, time
import django
django.setup()
from django.db import connection
from compliance.ledger import ledger
start, process, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors = []

def write(writer):
    try:
        while not os.path.exists(start):
            time.sleep(0.002)
        for k in range(12):
            ledger.append_many([ledger.Event("trace.viewed", {"w": writer, "k": k, "i": i}, subject=f"w:{writer}")
                                for i in range(1 + (writer + k) % 4)])
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connection.close()

workers = [threading.Thread(target=write, args=(process * threads + t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
sys.exit("; ".join(errors) or 0)
"""


def expected_count(writers: int, rounds: int = 12) -> int:
    return sum(1 + (w + k) % 4 for w in range(writers) for k in range(rounds))


def check_order(rows: list[tuple[int, str]], writers: int, rounds: int = 12) -> list[bytes]:
    """rows: (index, body) in index order; returns the leaf hashes."""
    assert [index for index, _ in rows] == list(range(expected_count(writers, rounds)))
    seen: dict[int, list[tuple[int, int]]] = {}
    for index, body in rows:
        payload = json.loads(body)["payload"]
        assert json.loads(body)["index"] == index
        seen.setdefault(payload["w"], []).append((payload["k"], payload["i"]))
    for w, order in seen.items():
        assert order == sorted(order), f"writer {w}'s entries are out of order"
    return [merkle.leaf_hash(body.encode()) for _, body in rows]


def run_writers(env: dict, processes: int, threads: int, tmp_path: Path) -> int:
    """Start every writer, then let them all go at once; returns how many there were."""
    start = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(start), str(p), str(threads)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for p in range(processes)]
    start.touch()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()[-3000:]
    return processes * threads


@pytest.mark.embedded
def test_it_orders_concurrent_writers(transactional_db, tmp_path):
    if on_postgres():
        LedgerHead.objects.get_or_create(pk=1)
        writers = run_writers(worker_env(), 3, 2, tmp_path)
        rows = list(LedgerEntry.objects.order_by("index").values_list("index", "body"))
        leaves = check_order(rows, writers)
        assert tree.root(len(leaves)) == merkle.naive_root(leaves)
        assert verify_ledger().ok
        return
    # SQLite: a file database shared by two processes (the test database lives in memory)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"TRACELEDGER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "compliance.project.settings",
            "PYTHONPATH": str(ROOT), "TRACELEDGER_KEYS_DIR": str(settings.TRACELEDGER_KEYS_DIR)}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    writers = run_writers(env, 2, 2, tmp_path)
    db = sqlite3.connect(tmp_path / "traceledger.sqlite3")
    rows = db.execute('SELECT "index", body FROM compliance_ledgerentry ORDER BY "index"').fetchall()
    leaves = check_order(rows, writers)
    nodes = {(i >> 56, i & ((1 << 56) - 1)): bytes(h) for i, h in db.execute("SELECT id, hash FROM compliance_merklenode")}
    assert db.execute("SELECT size FROM compliance_ledgerhead").fetchone()[0] == len(leaves)
    db.close()
    computed = {(level, index): h for level, index, h in merkle.nodes_for_batch(0, leaves, {})}
    assert nodes == {k: h for k, h in computed.items() if k[0] >= tree.STORED_FROM_LEVEL}
    assert merkle.root(len(leaves), computed) == merkle.naive_root(leaves)
    verified = subprocess.run([sys.executable, "manage.py", "verify_ledger", "--json"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    assert verified.returncode == 0 and json.loads(verified.stdout)["entries_checked"] == len(leaves), verified.stderr
