"""`bench ledger`: the tamper-evident ledger's costs, in a dedicated benchmark database.

- append_per_s: entries appended per second with their Merkle nodes (batches of 1,000,
  the real `ledger.append_many`), beside auditlog_per_s: django-auditlog LogEntry rows
  with the same payloads, on the same database in the same run, batch for batch.
- proof_ms_10k / proof_ms_1m: median inclusion-proof time at 10,000 and 1,000,000
  leaves in the same 1M-leaf tree (filled fast: entries and nodes computed in memory
  with merkle.nodes_for_batch and COPYed in); the ratio should follow log2(n).
- verify_per_s: entries per second of a full `verify_ledger` over the 1M-entry
  ledger with its default worker processes (TRACELEDGER_VERIFY_WORKERS: one per CPU),
  beside verify_one_process_per_s (--workers 1, same ledger, same run); each runs as
  its own process so its peak memory can be reported.

The benchmark never touches real data: on PostgreSQL it creates `<db>_bench` (or
TRACELEDGER_BENCH_DATABASE) on the same server and drops it afterwards; on SQLite it
uses a file in a temporary directory.  The measuring runs in a child process with
compliance.benchmarks.settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


# ----------------------------------------------------------------- parent side


def _bench_env(home: Path) -> tuple[dict, callable]:
    """Environment for the child and a cleanup function."""
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env |= {"DJANGO_SETTINGS_MODULE": "compliance.benchmarks.settings", "TRACELEDGER_HOME": str(home),
            "TRACELEDGER_KEYS_DIR": str(home / "keys"), "TRACELEDGER_CHECKPOINT_DIR": str(home / "checkpoints"),
            "TRACELEDGER_GENERATE_KEYS": "True", "PYTHONPATH": str(BASE_DIR)}
    env.pop("REDIS_URL", None)
    for name in list(env):
        if name.startswith("TRACELEDGER_") and name not in (
                "TRACELEDGER_HOME", "TRACELEDGER_KEYS_DIR", "TRACELEDGER_CHECKPOINT_DIR", "TRACELEDGER_GENERATE_KEYS"):
            env.pop(name)
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return env, lambda: None
    import psycopg

    name = os.environ.get("TRACELEDGER_BENCH_DATABASE") or f"{db['NAME']}_bench"
    if name == db["NAME"]:
        raise RuntimeError("the benchmark database must not be the application's database")
    conninfo = {"host": db.get("HOST") or "127.0.0.1", "port": db.get("PORT") or 5432, "user": db.get("USER"),
                "password": db.get("PASSWORD") or None, "dbname": "postgres"}

    def admin(sql: str) -> None:
        with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env["DATABASE_URL"] = f"postgres://{auth}@{conninfo['host']}:{conninfo['port']}/{name}"
    return env, lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(quick: bool = False) -> dict:
    from compliance.lib.progress import on_terminal

    home = Path(tempfile.mkdtemp(prefix="traceledger-bench-"))
    env, cleanup = _bench_env(home)
    try:
        # on a terminal the child draws its fill's progress there (its stderr is ours);
        # elsewhere its stderr is kept to name a failure
        child = subprocess.run([sys.executable, "-m", "compliance.benchmarks.ledger", "--child"]
                               + (["--quick"] if quick else []), cwd=BASE_DIR, env=env, stdout=subprocess.PIPE,
                               stderr=None if on_terminal() else subprocess.PIPE, text=True)
        if child.returncode != 0:
            said = (child.stderr or child.stdout or "").strip().splitlines()[-1:] or [
                f"exit status {child.returncode}, its error shown above"]
            raise RuntimeError(f"ledger benchmark failed: {said}")
        return json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        cleanup()
        shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------ child side


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _payload(i: int) -> dict:
    """A prediction record's ledger payload, the commonest entry."""
    from compliance.lib.ids import uuid7

    return {"inference_id": str(uuid7()), "deployment_id": 1 + i % 7, "engine_sha256": _digest("engine", i % 7),
            "input_digest": _digest("in", i), "output_digest": _digest("out", i),
            "timestamp": "2026-01-02T03:04:05.123456Z", "latency_us": 800 + i % 300}


def _measure_append(batches: int) -> dict:
    """Ledger batches and django-auditlog batches of 1,000, interleaved so both see the
    same database state and machine load."""
    from django.contrib.auth.models import User
    from django.db import transaction

    from compliance.ledger import ledger

    try:
        from auditlog.models import LogEntry
    except (ImportError, RuntimeError):
        LogEntry = None
    subject = User.objects.create_user("bench-subject")
    ledger_s = auditlog_s = 0.0
    for b in range(batches):
        payloads = [_payload(b * 1000 + i) for i in range(1000)]
        events = [ledger.Event("prediction.recorded", p, subject=f"prediction:{p['inference_id']}", actor="bench")
                  for p in payloads]
        t = time.perf_counter()
        ledger.append_many(events)
        ledger_s += time.perf_counter() - t
        if LogEntry is not None:
            t = time.perf_counter()
            with transaction.atomic():
                for p in payloads:
                    LogEntry.objects.log_create(subject, force_log=True, action=LogEntry.Action.CREATE,
                                                changes={k: [None, str(v)] for k, v in p.items()})
            auditlog_s += time.perf_counter() - t
    n = batches * 1000
    out = {"append_entries": n, "append_per_s": round(n / ledger_s, 1)}
    if LogEntry is not None:
        out |= {"auditlog_per_s": round(n / auditlog_s, 1),
                "auditlog_method": "LogEntry.objects.log_create per event (as its save signals do), 1,000 per transaction",
                "append_vs_auditlog": round((n / ledger_s) / (n / auditlog_s), 3)}
    else:
        out |= {"auditlog_per_s": None, "auditlog_note": "django-auditlog is not installed"}
    return out


def _empty_ledger() -> None:
    from django.db import connection

    from compliance.ledger import dbguards
    from compliance.models import Checkpoint, LedgerEntry, LedgerHead, MerkleNode, VerificationRun, WitnessCosignature

    with dbguards.suspended(connection):
        with connection.cursor() as cursor:
            for model in (WitnessCosignature, Checkpoint, MerkleNode, LedgerEntry, VerificationRun):
                cursor.execute(f"DELETE FROM {model._meta.db_table}")
    LedgerHead.objects.update_or_create(pk=1, defaults={"size": 0})


def _fill(total: int, chunk: int = 1 << 16) -> None:
    """Write `total` canonical entries and every Merkle node, chunk by chunk, keeping
    only the tree's right frontier in memory."""
    from datetime import datetime, timezone

    from django.db import connection, transaction

    from compliance.ledger import merkle
    from compliance.lib.progress import progress
    from compliance.models import LedgerHead

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    stamp = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
    frontier: dict = {}
    postgres = connection.vendor == "postgresql"
    connection.ensure_connection()
    with progress(total, "filling ledger", unit="entries") as bar:  # told once per chunk
        for start in range(0, total, chunk):
            count = min(chunk, total - start)
            entries, leaves = [], []
            for index in range(start, start + count):
                payload = _payload(index)
                # the ASCII fast path of RFC 8785 (what ledger.check_row accepts as canonical)
                body = json.dumps({"index": index, "kind": "prediction.recorded", "subject": "", "actor": "bench",
                                   "time": stamp, "payload": payload},
                                  sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                leaf = merkle.leaf_hash(body.encode())
                entries.append((index, "prediction.recorded", "", body, leaf.hex(), when))
                leaves.append(leaf)
            rows = merkle.nodes_for_batch(start, leaves, frontier)
            produced = {(level, i): h for level, i, h in rows}
            frontier = {k: produced.get(k) or frontier[k] for k in merkle.nodes_needed_for_root(start + count)}
            nodes = [((level << 56) | i, h) for level, i, h in rows]
            if postgres:
                with connection.connection.cursor() as cursor:
                    with cursor.copy('COPY compliance_ledgerentry ("index", kind, subject, body, leaf_hash, created_at) '
                                     "FROM STDIN") as copy:
                        for row in entries:
                            copy.write_row(row)
                    with cursor.copy("COPY compliance_merklenode (id, hash) FROM STDIN") as copy:
                        for row in nodes:
                            copy.write_row(row)
                connection.connection.commit()
            else:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany('INSERT INTO compliance_ledgerentry ("index", kind, subject, body, leaf_hash, '
                                       "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                                       [(i, k, s, b, h, w.isoformat()) for i, k, s, b, h, w in entries])
                    cursor.executemany("INSERT INTO compliance_merklenode (id, hash) VALUES (%s, %s)", nodes)
            bar.update(count)
    LedgerHead.objects.update_or_create(pk=1, defaults={"size": total})
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE compliance_merklenode")
            cursor.execute("ANALYZE compliance_ledgerentry")


def _median_ms(fn, args: list) -> float:
    for a in args[:20]:  # warm the cache and the plan
        fn(*a)
    times = []
    for a in args:
        t = time.perf_counter()
        fn(*a)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def _measure_proofs(sizes: list[int], samples: int) -> dict:
    import random

    from compliance.ledger import merkle, tree

    rng = random.Random(7)
    out = {}
    for size in sizes:
        label = f"{size // 1_000_000}m" if size >= 1_000_000 else f"{size // 1000}k"
        indexes = [(rng.randrange(size), size) for _ in range(samples)]
        out[f"proof_ms_{label}"] = _median_ms(tree.inclusion_proof, indexes)
        out[f"proof_nodes_{label}"] = len(merkle.nodes_needed_for_inclusion(size // 3, size))
        pairs = [(rng.randrange(1, size), size) for _ in range(samples)]
        out[f"consistency_ms_{label}"] = _median_ms(tree.consistency_proof, pairs)
    small, large = (f"{s // 1_000_000}m" if s >= 1_000_000 else f"{s // 1000}k" for s in sizes)
    out[f"proof_ratio_{large}_vs_{small}"] = round(out[f"proof_ms_{large}"] / out[f"proof_ms_{small}"], 3)
    import math

    out[f"log2_ratio_{large}_vs_{small}"] = round(math.log2(sizes[1]) / math.log2(sizes[0]), 3)
    return out


def _verify_once(total: int, workers: int) -> dict:
    """A full verify_ledger in its own process, for its rate and its peak memory."""
    t = time.perf_counter()
    child = subprocess.run([sys.executable, "manage.py", "verify_ledger", "--json", "--workers", str(workers)],
                           cwd=BASE_DIR, capture_output=True, text=True)
    wall = time.perf_counter() - t
    # the process's own peak, with its workers' (each its own RSS; they share the code pages)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(child.stdout)
    if not result["ok"] or result["entries_checked"] != total:
        raise RuntimeError(f"verify_ledger did not pass the benchmark ledger: {result['message']}")
    return {"per_s": round(result["entries_per_s"], 1), "s": round(result["seconds"], 2),
            "process_s": round(wall, 2), "peak_rss_mb": round(peak_kb / 1024, 1), "workers": result["workers"]}


def _measure_verify(total: int) -> dict:
    """verify_ledger with its default workers, and in one process (the baseline), same run."""
    one = _verify_once(total, 1)
    parallel = _verify_once(total, 0)
    return {"verify_entries": total, "verify_per_s": parallel["per_s"], "verify_s": parallel["s"],
            "verify_process_s": parallel["process_s"], "verify_workers": parallel["workers"],
            "verify_peak_rss_mb": max(parallel["peak_rss_mb"], one["peak_rss_mb"]),
            "verify_one_process_per_s": one["per_s"],
            "verify_speedup": round(parallel["per_s"] / one["per_s"], 2) if one["per_s"] else None}


def child(quick: bool) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from compliance.ledger import checkpoints, ledger

    call_command("migrate", verbosity=0)
    batches, total, samples = (3, 100_000, 200) if quick else (20, 1_000_000, 500)
    out = {"database": connection.vendor, "quick": quick, "cpus": os.cpu_count(),
           "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}
    out |= _measure_append(batches)
    _empty_ledger()
    t = time.perf_counter()
    _fill(total)
    out["fill_s"] = round(time.perf_counter() - t, 1)
    checkpoint = checkpoints.make_checkpoint()  # a signed root for verify_ledger to hold the tree against
    out["checkpoint_size"] = checkpoint.size
    out |= _measure_proofs([10_000, total], samples)
    out |= _measure_verify(ledger.size())
    return out


if __name__ == "__main__":
    if "--child" not in sys.argv:
        raise SystemExit("run it with `python manage.py bench ledger`")
    print(json.dumps(child("--quick" in sys.argv)))
