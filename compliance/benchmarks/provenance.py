"""`manage.py bench provenance`: what provenance costs per inference, and how fast
records become durable.

Runs in a scratch database (`<name>_bench` on PostgreSQL, a temporary file on
SQLite, dropped afterwards) and temporary store/keys/spool directories, so nothing
lands in the real ledger.  All figures come from the same run:

- overhead_ratio / overhead_us: median latency of `AuditedService.predict` (feed
  check, run, stamp, enqueue into a live BufferedRecorder that is writing to the
  database meanwhile — on PostgreSQL from its shipper process, as in serving) over
  plain `InferenceSession.run` on the same engine bytes, batch 1, one intra-op
  thread, calls interleaved; for a small CNN (~1 ms) and the credit-scoring MLP
  (tens of µs).  audit_us is the audit work timed directly.
- ingest_per_s: records pushed through BufferedRecorder.record() until all are in
  the database with their ledger leaves (spool append + fsync, read back, COPY,
  ledger append), over ≥200,000 records.
- copy_per_s: a bare binary COPY of the same kind of Prediction rows (no spool, no
  ledger, no salts), in transactions of the same batch size: the ceiling.
- auditlog_per_s: django-auditlog CREATE entries for Prediction instances, written
  the way its post_save receiver writes them, in transactions of the same batch size.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import statistics
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import override_settings

from compliance.ledger import keys
from compliance.lib.ids import uuid7
from compliance.lib.progress import progress
from inference import samples
from inference.provenance.recorder import BufferedRecorder
from inference.provenance.stamp import ProvenanceRecord, uuid7_text

CNN = {"channels": 80, "size": 48}  # the "about 1 ms" plain batch-1 call on one core here (cnn.plain_us says)


@contextmanager
def scratch_environment():
    """A throwaway database (with django-auditlog's tables when it is installed) and
    throwaway store/keys/spool directories; everything is removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="bench-provenance-", dir=settings.TRACELEDGER_HOME))
    installed = list(settings.INSTALLED_APPS)
    if find_spec("auditlog") and "auditlog" not in installed:
        installed.append("auditlog")
    db = settings.DATABASES["default"]
    test = db.setdefault("TEST", {})
    saved_test_name = test.get("NAME")
    test["NAME"] = f"{db['NAME']}_bench" if connection.vendor == "postgresql" else str(home / "bench.sqlite3")
    from compliance.project.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # builds run in-process, as in the embedded default
    try:
        with override_settings(INSTALLED_APPS=installed, TRACELEDGER_STORE_DIR=home / "store",
                               TRACELEDGER_KEYS_DIR=home / "keys", TRACELEDGER_SPOOL_DIR=home / "spool"):
            keys.clear_cache()
            old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
            try:
                yield home
            finally:
                connection.creation.destroy_test_db(old_name, verbosity=0)
    finally:
        celery_app.conf.task_always_eager = eager
        keys.clear_cache()
        test["NAME"] = saved_test_name
        shutil.rmtree(home, ignore_errors=True)


def deploy(onnx_bytes: bytes, service: str):
    from inference.build_requests import do_request_build
    from lineage.actions import do_deploy, do_register_model
    from lineage.models import Build

    model, _ = do_register_model(io.BytesIO(onnx_bytes), name=service, repo="https://git.example.com/bench",
                                 commit="c" * 40, registered_by="bench")
    build = do_request_build(model, submitter="bench", commit="c" * 40)
    build.refresh_from_db()
    if build.status != Build.SUCCEEDED:
        raise RuntimeError(f"benchmark build failed: {build.status} {build.error}")
    return do_deploy(build.engine, service=service, acting_user="bench")


def plain_session(deployment):
    from compliance.lib.store import default_store
    from inference.backends import get_backend

    # the same engine bytes and session options the verified loader uses
    return get_backend(deployment.engine.backend).load(default_store().read(deployment.engine_sha256)).session


def measure_overhead(service: str, feeds: dict, calls: int, recorder) -> dict:
    from inference.runtime import AuditedService

    audited = AuditedService.open(service, recorder=recorder)
    session = plain_session(audited.deployment)
    names = [o.name for o in session.get_outputs()]
    run = session.run
    predict = audited.predict
    clock = time.perf_counter_ns
    for _ in range(min(calls, 300)):
        run(names, feeds)
        predict(feeds)
    plain, full = [], []
    for i in range(calls):
        if i & 1:
            t0 = clock(); run(names, feeds); t1 = clock(); predict(feeds); t2 = clock()  # noqa: E702
            plain.append(t1 - t0)
            full.append(t2 - t1)
        else:
            t0 = clock(); predict(feeds); t1 = clock(); run(names, feeds); t2 = clock()  # noqa: E702
            full.append(t1 - t0)
            plain.append(t2 - t1)
    # the audit work alone: feed check + stamp + enqueue around an already computed output
    outputs = audited._run(feeds)
    check, stamp, record = audited._check, audited._stamp, audited._record
    audit = []
    for _ in range(calls):
        t0 = clock()
        checked = check(feeds)
        rec, _meta = stamp(checked, outputs, 100)
        record(rec)
        audit.append(clock() - t0)
    # the floor: SHA-256 over the input's bytes alone, in the same process, same arrays
    arrays = [memoryview(np.ascontiguousarray(a)).cast("B") for _, a in sorted(feeds.items())]
    sha256 = hashlib.sha256
    floor = []
    for _ in range(calls):
        t0 = clock()
        h = sha256()
        for view in arrays:
            h.update(view)
        h.digest()
        floor.append(clock() - t0)
    plain_med, full_med = statistics.median(plain), statistics.median(full)
    floor_med = statistics.median(floor)
    return {
        "overhead_floor_us": round(floor_med / 1000, 2),
        "overhead_over_floor_us": round((full_med - plain_med - floor_med) / 1000, 2),
        "plain_us": round(plain_med / 1000, 2),
        "audited_us": round(full_med / 1000, 2),
        "overhead_us": round((full_med - plain_med) / 1000, 2),
        "overhead_ratio": round(full_med / plain_med, 4),
        "audit_us": round(statistics.median(audit) / 1000, 2),
        "audit_p99_us": round(float(np.percentile(audit, 99)) / 1000, 2),
        "calls": calls,
    }


def fake_records(deployment, n: int, *, salted: bool = True) -> list[ProvenanceRecord]:
    """Records shaped exactly like real ones (fresh UUIDv7s, now, random digests)."""
    base_us = time.time_ns() // 1000
    blob = os.urandom(n * 96)
    out = []
    for i in range(n):
        chunk = blob[i * 96:(i + 1) * 96]
        ts = base_us + i
        out.append(ProvenanceRecord(uuid7_text(ts // 1000, os.urandom(10)), deployment.id, deployment.engine_sha256,
                                    None, chunk[:32].hex(), "v2:" + chunk[32:64].hex(), 40,
                                    chunk[64:].hex() if salted else "", ts_us=ts))
    return out


def measure_ingest(deployment, n: int, batch: int, spool_dir: Path) -> dict:
    from compliance.ledger import ledger
    from lineage.models import Prediction

    records = fake_records(deployment, n)
    before_predictions, before_ledger = Prediction.objects.count(), ledger.size()
    recorder = BufferedRecorder(spool_dir, batch=batch, interval_ms=20, buffer_max=max(4 * batch, 50_000),
                                name="bench-ingest")
    # on a terminal, records in the database so far, read by a thread twice a second: the timed loop is untouched
    with progress(n, "ingesting records", unit="rec") as bar, bar.following(lambda: recorder.delivered):
        started = time.perf_counter()
        record = recorder.record
        for r in records:
            record(r)
        recorder.flush()
        acknowledged = time.perf_counter()
        if not recorder.drain(timeout=1800):
            raise RuntimeError(f"ingest did not finish: {recorder.metrics()}")
        finished = time.perf_counter()
    metrics = recorder.metrics()
    recorder.close()
    stored = Prediction.objects.count() - before_predictions
    leaves = ledger.size() - before_ledger
    if stored != n or leaves != n:
        raise RuntimeError(f"ingest stored {stored} predictions and {leaves} leaves for {n} records")
    return {
        "ingest_per_s": round(n / (finished - started)),
        "acknowledge_per_s": round(n / (acknowledged - started)),
        "ingest_records": n,
        "ingest_seconds": round(finished - started, 2),
        "blocked_calls": metrics["blocked_calls"],
    }


def measure_copy(deployment, n: int, batch: int) -> dict:
    """Binary COPY of Prediction rows (fresh ids; no salt, no ledger entry), each
    transaction's rows referring to a batch row made in it, as ingest's do."""
    from lineage.models import Prediction, PredictionBatch

    if connection.vendor != "postgresql":
        return {"copy_per_s": None}
    records = fake_records(deployment, n, salted=False)
    rows = [(uuid.UUID(r.id), r.deployment_id, r.engine_sha256, r.timestamp, r.input_digest, r.output_digest,
             r.latency_us) for r in records]
    columns = ", ".join(Prediction._meta.get_field(f).column for f in (
        "inference_id", "deployment", "engine_sha256", "timestamp", "input_digest", "output_digest", "latency_us",
        "batch", "batch_pos"))
    started = time.perf_counter()
    for start in range(0, n, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            chunk = rows[start:start + batch]
            placed = PredictionBatch.objects.create(size=len(chunk)).pk
            with cursor.copy(f'COPY "{Prediction._meta.db_table}" ({columns}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types(["uuid", "int8", "varchar", "timestamptz", "varchar", "varchar", "int4", "int8", "int4"])
                for pos, row in enumerate(chunk):
                    copy.write_row((*row, placed, pos))
    elapsed = time.perf_counter() - started
    return {"copy_per_s": round(n / elapsed), "copy_records": n}


def measure_auditlog(deployment, n: int, batch: int) -> dict:
    if not find_spec("auditlog"):
        return {"auditlog_per_s": None}
    from auditlog.models import LogEntry
    from auditlog.receivers import log_create
    from auditlog.registry import auditlog

    from lineage.models import Prediction

    predictions = [Prediction(inference_id=uuid7(), deployment=deployment, engine_sha256=deployment.engine_sha256,
                              timestamp=deployment.created_at + timedelta(microseconds=i), input_digest="a" * 64,
                              output_digest="b" * 64, latency_us=40) for i in range(n)]
    auditlog.register(Prediction)
    try:
        started = time.perf_counter()
        for start in range(0, n, batch):
            with transaction.atomic():
                for p in predictions[start:start + batch]:
                    log_create(sender=Prediction, instance=p, created=True)
        elapsed = time.perf_counter() - started
    finally:
        auditlog.unregister(Prediction)
    if LogEntry.objects.count() != n:
        raise RuntimeError("auditlog did not write one entry per instance")
    return {"auditlog_per_s": round(n / elapsed), "auditlog_records": n}


def run(quick: bool = False) -> dict:
    cnn_calls, mlp_calls = (300, 2000) if quick else (3000, 20000)
    ingest_n = 20_000 if quick else 200_000
    copy_n = 20_000 if quick else 200_000
    auditlog_n = 2_000 if quick else 10_000
    batch = settings.TRACELEDGER_PROVENANCE_BATCH
    with scratch_environment() as home:
        credit = deploy(samples.credit_model_bytes()[0], "bench-credit")
        deploy(samples.small_cnn_bytes(**CNN), "bench-cnn")
        recorder = BufferedRecorder(home / "spool" / "serve", name="bench-serve")
        x, _ = samples.credit_training_data(n=1)
        cnn_feeds = {"input": np.random.default_rng(1).random((1, 3, CNN["size"], CNN["size"]), np.float32)}
        cnn_figures = measure_overhead("bench-cnn", cnn_feeds, cnn_calls, recorder)
        mlp_figures = measure_overhead("bench-credit", {"X": np.ascontiguousarray(x[:1])}, mlp_calls, recorder)
        recorder.close(timeout=120)
        ingest = measure_ingest(credit, ingest_n, batch, home / "spool" / "ingest")
        copy = measure_copy(credit, copy_n, batch)
        audit = measure_auditlog(credit, auditlog_n, min(batch, 1000))
        vendor = connection.vendor
    result = {
        "database": vendor,
        "cpus": os.cpu_count(),
        "overhead_ratio": cnn_figures["overhead_ratio"],
        "overhead_us": mlp_figures["overhead_us"],
        "overhead_floor_us": mlp_figures["overhead_floor_us"],
        "goals": {"overhead_us": "<= overhead_floor_us + 10", "ingest_vs_copy": ">= 0.6"},
        "cnn": cnn_figures,
        "mlp": mlp_figures,
        "batch": batch,
        **ingest,
        **copy,
        **audit,
    }
    if result.get("copy_per_s"):
        result["ingest_vs_copy"] = round(result["ingest_per_s"] / result["copy_per_s"], 3)
    result["met"] = {"overhead_us": result["overhead_us"] <= result["overhead_floor_us"] + 10,
                     "ingest_vs_copy": result["ingest_vs_copy"] >= 0.6 if "ingest_vs_copy" in result else None}
    if result.get("auditlog_per_s"):
        result["ingest_vs_auditlog"] = round(result["ingest_per_s"] / result["auditlog_per_s"], 1)
    return result
