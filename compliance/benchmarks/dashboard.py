"""Dashboard latency with 1,000,000 predictions (`--size N` for another size), on
PostgreSQL or the embedded SQLite default.

Runs in a dedicated database (PostgreSQL: <DATABASE_URL's name>_bench, created and
dropped here; SQLite: a file in a temporary directory) with a private store and keys.
A real chain is built first (models registered, engines built and signed by ONNX
Runtime, deployments, audited predictions); then the bulk of the predictions is
written through the very writer that ingest uses (inference.provenance.writer:
Prediction rows, salts, `prediction.recorded` ledger leaves with their Merkle nodes,
COPY on PostgreSQL), so every page reads what production would have stored, and the
ledger verifies afterwards.

On PostgreSQL it then measures the partitioning plan on the same rows (daily UUIDv7
ranges; compliance/benchmarks/_partitions.py says how).

Figures: p50/p95 of the trace page, the overview (warm: closed hours cached; cold:
cache cleared before each request), the service+window search and the ledger
browser, first with the small real dataset (the baseline) and then at full size;
ratios = full / baseline; fill_per_s is the writer's rate.  TRACELEDGER_BENCH_KEEP_DB=1
keeps the seeded PostgreSQL database for the next run, which then measures the full
size only.
"""
from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

FULL, QUICK = 1_000_000, 20_000
ROUNDS = {"trace": 60, "overview": 30, "search": 30, "ledger": 30}
QUICK_ROUNDS = {"trace": 20, "overview": 10, "search": 10, "ledger": 10}


def _pg_conninfo(name: str) -> str:
    db = settings.DATABASES["default"]
    return (f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432} user={db.get('USER') or 'postgres'} "
            f"dbname={name}" + (f" password={db['PASSWORD']}" if db.get("PASSWORD") else ""))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def _exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(_pg_conninfo("postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _use_database(name: str) -> None:
    for conn in connections.all():
        conn.close()
    settings.DATABASES["default"]["NAME"] = name
    connections["default"].settings_dict["NAME"] = name


def _seed_real(home: str):
    from compliance.lib.roles import ensure_groups
    from compliance.project.celery import app
    from inference import samples
    from inference.build_requests import do_request_build
    from inference.runtime import AuditedService
    from lineage.actions import do_deploy, do_register_model
    from lineage.models import Build

    app.conf.task_always_eager = True
    ensure_groups()
    credit, _ = do_register_model(samples.credit_model_bytes()[0], name="credit-scoring-mlp",
                                  repo="https://git.example.com/risk", commit="3f9c2e1a" * 5, registered_by="bench")
    deployments = []
    for precision, service in (("fp32", "credit-scoring"), ("fp16", "credit-scoring-eu"), ("int8", "credit-shadow")):
        build = do_request_build(credit, precision=precision, submitter="bench", commit=credit.commit)
        build.refresh_from_db()
        if build.status != Build.SUCCEEDED:
            raise RuntimeError(f"bench build failed: {build.error}")
        deployments.append(do_deploy(build.engine, service=service, acting_user="bench"))
    x, _ = samples.credit_training_data(n=30, seed=5)
    for service in ("credit-scoring", "credit-scoring-eu", "credit-shadow"):
        audited = AuditedService.open(service)
        for i in range(10):
            audited.predict({"X": x[i:i + 1]})
    return deployments


def _bulk_predictions(deployments, count: int, batch: int = 5_000) -> float:
    """Write `count` predictions spread over the last 7 days (in time order) through
    the ingest writer, `batch` per transaction; returns the writer's records/s."""
    from compliance.lib.progress import progress
    from inference.provenance.stamp import uuid7_text
    from inference.provenance.writer import ProvenanceRecord, write_records

    now_us = time.time_ns() // 1000
    span_us = 7 * 24 * 3600 * 1_000_000
    step = span_us / count
    start_us = now_us - span_us
    rng = random.Random(7)
    spent = 0.0
    with progress(count, "filling predictions", unit="rec") as bar:
        for first in range(0, count, batch):
            records = []
            for i in range(first, min(first + batch, count)):
                ts = start_us + int(i * step) + rng.randrange(max(1, int(step)))
                d = deployments[i % len(deployments)] if i % 10 else deployments[0]
                records.append(ProvenanceRecord(uuid7_text(ts // 1000, rng.randbytes(10)), d.id, d.engine_sha256,
                                                None, f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(256):064x}",
                                                rng.randrange(200, 900), f"{rng.getrandbits(256):064x}", ts_us=ts))
            started = time.perf_counter()
            result = write_records(records, actor="bench")
            spent += time.perf_counter() - started
            if result.stored != len(records):
                raise RuntimeError(f"the writer stored {result.stored} of {len(records)} records")
            bar.update(len(records))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE lineage_prediction")
            cursor.execute("ANALYZE compliance_ledgerentry")
    return count / spent if spent else 0.0


def _time(fn, rounds: int) -> dict:
    fn()  # warm caches and connections
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1)}


def _measure(client, rounds: dict) -> dict:
    from lineage.models import Prediction

    ids = [str(i) for i in Prediction.objects.order_by("?").values_list("inference_id", flat=True)[:200]]
    picks = iter(ids * 10)

    def trace():
        iid = next(picks)
        response = client.get(f"/trace/{iid}/")
        assert response.status_code == 200 and b"Every link verified" in response.content, iid

    def overview():
        assert client.get("/").status_code == 200

    def overview_cold():  # the first request after the cached closed hours expire
        from django.core.cache import cache

        cache.clear()
        assert client.get("/").status_code == 200

    def search():
        since = (datetime.now(timezone.utc) - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
        assert client.get("/trace/", {"service": "credit-scoring", "since": since}).status_code == 200

    def ledger_page():
        assert client.get("/ledger/", {"kind": "build.succeeded"}).status_code == 200

    return {"trace": _time(trace, rounds["trace"]), "overview": _time(overview, rounds["overview"]),
            "overview_cold": _time(overview_cold, rounds["overview"]),
            "search": _time(search, rounds["search"]), "ledger": _time(ledger_page, rounds["ledger"])}


def run(quick: bool = False, size: int | None = None) -> dict:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from compliance.ledger.verify import verify_ledger

    postgres = connection.vendor == "postgresql"
    count = size or (QUICK if quick else FULL)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    original = settings.DATABASES["default"]["NAME"]
    home = tempfile.mkdtemp(prefix="traceledger-bench-")
    bench_db = f"{original}_bench" if postgres else os.path.join(home, "bench.sqlite3")
    saved = {k: getattr(settings, k) for k in ("TRACELEDGER_STORE_DIR", "TRACELEDGER_KEYS_DIR", "ALLOWED_HOSTS")}
    settings.TRACELEDGER_STORE_DIR = os.path.join(home, "store")
    settings.TRACELEDGER_KEYS_DIR = os.path.join(home, "keys")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # TRACELEDGER_BENCH_KEEP_DB=1 keeps the seeded database (and its store) for the
    # next run, which then measures the full size only: for iterating on queries.
    keep = postgres and os.environ.get("TRACELEDGER_BENCH_KEEP_DB") == "1"
    if keep:
        home = os.path.join(tempfile.gettempdir(), f"traceledger-bench-{bench_db}")
        settings.TRACELEDGER_STORE_DIR = os.path.join(home, "store")
        settings.TRACELEDGER_KEYS_DIR = os.path.join(home, "keys")
    reuse = keep and _exists(bench_db)
    if postgres and not reuse:
        _admin(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{bench_db}"')
    baseline, seed_s, fill_per_s, verified, partitioning = None, 0.0, 0.0, None, None
    try:
        _use_database(bench_db)
        if not reuse:
            call_command("migrate", verbosity=0)
            deployments = _seed_real(home)
            user = User.objects.create_user("bench-auditor", password=None)
            user.groups.add(Group.objects.get(name="auditor"))
        client = Client()
        client.force_login(User.objects.get(username="bench-auditor"))
        if not reuse:
            baseline = _measure(client, rounds)
            seeded = time.perf_counter()
            fill_per_s = _bulk_predictions(deployments, count)
            seed_s = time.perf_counter() - seeded
        full = _measure(client, rounds)
        if postgres:  # the partitioning plan, measured on the same rows (compliance.benchmarks._partitions)
            from compliance.benchmarks import _partitions

            partitioning = _partitions.measure(connection, rounds=rounds["search"])
        if quick:  # the fill is the ingest path's own: the ledger it leaves verifies
            verified = verify_ledger()
            if not verified.ok:
                raise RuntimeError(f"the filled ledger does not verify: {verified.message}")
    finally:
        _use_database(original)
        if postgres and not keep:
            _admin(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            setattr(settings, key, value)
    result = {"database": "postgresql" if postgres else "sqlite", "predictions": count, "seed_s": round(seed_s, 1),
              "fill_per_s": round(fill_per_s), "baseline_predictions": 30}
    if verified is not None:
        result["verified_entries"] = verified.entries_checked
    for name in ("trace", "overview", "overview_cold", "search", "ledger"):
        result[f"{name}_p50_ms"] = full[name]["p50_ms"]
        result[f"{name}_p95_ms"] = full[name]["p95_ms"]
        if baseline:
            result[f"{name}_p95_baseline_ms"] = baseline[name]["p95_ms"]
            result[f"{name}_p95_ratio"] = round(full[name]["p95_ms"] / max(baseline[name]["p95_ms"], 0.1), 2)
    if partitioning is not None:
        result["partitioning"] = partitioning
    result["goals"] = {"trace_p95_ms": "< 100", "overview_p95_ms": "< 300"}
    result["met"] = {"trace_p95_ms": result["trace_p95_ms"] < 100, "overview_p95_ms": result["overview_p95_ms"] < 300}
    return result
