"""Dashboard latency with 1,000,000 predictions in PostgreSQL.

Runs in a dedicated database (<DATABASE_URL's name>_bench, created and dropped here)
with a private store and keys.  A real chain is built first (models registered,
engines built and signed by ONNX Runtime, deployments, audited predictions); then the
bulk of the predictions and their `prediction.recorded` ledger entries are written
with COPY — valid entries (canonical JSON, RFC 9162 leaf hashes, gapless indexes), so
tracing any of them re-checks a real ledger entry.

Figures: p50/p95 of the trace page, the overview (warm: closed hours cached; cold:
cache cleared before each request), the service+window search and the ledger
browser, first with the small real dataset (the baseline) and then at full size;
ratios = full / baseline.  TRACELEDGER_BENCH_KEEP_DB=1 keeps the seeded database for
the next run, which then measures the full size only.
"""
from __future__ import annotations

import io
import json
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

FULL, QUICK = 1_000_000, 100_000
ROUNDS = {"trace": 60, "overview": 30, "search": 30, "ledger": 30}


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


def _bulk_predictions(deployments, count: int, chunk: int = 50_000) -> None:
    """COPY `count` predictions spread over the last 7 days and their ledger leaves,
    in chunks so that memory stays flat."""
    from compliance.ledger import ledger, merkle
    from compliance.ledger.canonical import canonical_json
    from compliance.lib.ids import uuid7
    from compliance.models import LedgerHead
    from lineage.models import PredictionBatch

    start = ledger.size()
    now = datetime.now(timezone.utc)
    span_us = 7 * 24 * 3600 * 1_000_000
    rng = random.Random(7)
    offsets = sorted(rng.randrange(span_us) for _ in range(count))
    connection.ensure_connection()
    raw = connection.connection
    # Building the secondary indexes once after the load is much faster than a
    # million random insertions into each of them (this database is ours alone).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN "
            "('lineage_prediction', 'compliance_ledgerentry') AND i.indexname NOT IN "
            "(SELECT conname FROM pg_constraint)")
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    for first in range(0, count, chunk):
        pred_buf, entry_buf = io.StringIO(), io.StringIO()
        placed = PredictionBatch.objects.create(first_index=start + first, size=min(chunk, count - first))
        for i in range(first, min(first + chunk, count)):
            ts = now - timedelta(microseconds=span_us - offsets[i])
            d = deployments[i % len(deployments)] if i % 10 else deployments[0]
            iid = uuid7(int(ts.timestamp() * 1000))
            input_digest = f"{rng.getrandbits(256):064x}"
            output_digest = f"{rng.getrandbits(256):064x}"
            stamp = ts.isoformat(timespec="microseconds").replace("+00:00", "Z")
            payload = {"inference_id": str(iid), "deployment_id": d.id, "engine_sha256": d.engine_sha256,
                       "timestamp": stamp, "input_digest": input_digest, "output_digest": output_digest}
            index = start + i
            body = json.dumps({"index": index, "kind": "prediction.recorded", "subject": f"prediction:{iid}",
                               "actor": "inference", "time": stamp, "payload": payload},
                              sort_keys=True, separators=(",", ":"))
            if i < 3:  # this fast encoding is RFC 8785 for these ASCII/integer bodies
                assert body.encode() == canonical_json(json.loads(body))
            leaf = merkle.leaf_hash(body.encode()).hex()
            pred_buf.write(f"{iid}\t{d.id}\t{d.engine_sha256}\t{stamp}\t{input_digest}\t{output_digest}\t"
                           f"{rng.randrange(200, 900)}\t{placed.pk}\t{i - first}\n")
            entry_buf.write(f"{index}\tprediction.recorded\tprediction:{iid}\t{body}\t{leaf}\t{stamp}\n")
        with raw.cursor() as cur:
            with cur.copy('COPY compliance_ledgerentry ("index", kind, subject, body, leaf_hash, created_at) '
                          "FROM STDIN") as copy:
                copy.write(entry_buf.getvalue())
            with cur.copy("COPY lineage_prediction (inference_id, deployment_id, engine_sha256, timestamp, "
                          "input_digest, output_digest, latency_us, batch_id, batch_pos) FROM STDIN") as copy:
                copy.write(pred_buf.getvalue())
    LedgerHead.objects.filter(pk=1).update(size=start + count)
    with connection.cursor() as cursor:
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE lineage_prediction")
        cursor.execute("VACUUM ANALYZE compliance_ledgerentry")


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


def run(quick: bool = False) -> dict:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    if connection.vendor != "postgresql":
        raise RuntimeError("the dashboard benchmark needs PostgreSQL: set DATABASE_URL")
    count = QUICK if quick else FULL
    original = settings.DATABASES["default"]["NAME"]
    bench_db = f"{original}_bench"
    home = tempfile.mkdtemp(prefix="traceledger-bench-")
    saved = {k: getattr(settings, k) for k in ("TRACELEDGER_STORE_DIR", "TRACELEDGER_KEYS_DIR", "ALLOWED_HOSTS")}
    settings.TRACELEDGER_STORE_DIR = os.path.join(home, "store")
    settings.TRACELEDGER_KEYS_DIR = os.path.join(home, "keys")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # TRACELEDGER_BENCH_KEEP_DB=1 keeps the seeded database (and its store) for the
    # next run, which then measures the full size only: for iterating on queries.
    keep = os.environ.get("TRACELEDGER_BENCH_KEEP_DB") == "1"
    if keep:
        home = os.path.join(tempfile.gettempdir(), f"traceledger-bench-{bench_db}")
        settings.TRACELEDGER_STORE_DIR = os.path.join(home, "store")
        settings.TRACELEDGER_KEYS_DIR = os.path.join(home, "keys")
    reuse = keep and _exists(bench_db)
    if not reuse:
        _admin(f'DROP DATABASE IF EXISTS "{bench_db}"')
        _admin(f'CREATE DATABASE "{bench_db}"')
    baseline, seed_s = None, 0.0
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
            baseline = _measure(client, ROUNDS)
            seeded = time.perf_counter()
            _bulk_predictions(deployments, count)
            seed_s = time.perf_counter() - seeded
        full = _measure(client, ROUNDS)
    finally:
        _use_database(original)
        if not keep:
            _admin(f'DROP DATABASE IF EXISTS "{bench_db}"')
            shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            setattr(settings, key, value)
    result = {"predictions": count, "seed_s": round(seed_s, 1), "baseline_predictions": 30}
    for name in ("trace", "overview", "overview_cold", "search", "ledger"):
        result[f"{name}_p50_ms"] = full[name]["p50_ms"]
        result[f"{name}_p95_ms"] = full[name]["p95_ms"]
        if baseline:
            result[f"{name}_p95_baseline_ms"] = baseline[name]["p95_ms"]
            result[f"{name}_p95_ratio"] = round(full[name]["p95_ms"] / max(baseline[name]["p95_ms"], 0.1), 2)
    result["trace_goal_met"] = result["trace_p95_ms"] < 100
    return result
