"""Provenance recording: one transaction for rows, salts and ledger leaves; idempotent
and race-free by inference id; nothing lost through a database outage or a SIGKILL."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from compliance.benchmarks.provenance import fake_records
from compliance.ledger import ledger
from compliance.lib.ids import datetime_from_us
from compliance.models import LedgerEntry
from inference.provenance import recorder as recorder_module
from inference.provenance import writer as db_writer
from inference.provenance.recorder import BufferedRecorder
from inference.provenance.spool import Rejected
from inference.provenance.stamp import ProvenanceRecord, iso_from_us, uuid7_text
from inference.provenance.writer import write_records
from inference.runtime import AuditedService
from lineage.models import Prediction, PredictionBatch, PredictionHour, PredictionSalt
from lineage.trace import trace
from tests.conftest import ROOT, on_postgres, worker_env
from tests.tcp_proxy import TcpProxy

STREAMER = ROOT / "tests" / "inference" / "stream_predictions.py"


def assert_ledger_matches(expected_ids: set[str] | None = None) -> None:
    """Every prediction has exactly one intact `prediction.recorded` leaf that says
    what its row says, and the ledger is gapless."""
    predictions = {str(p.inference_id): p for p in Prediction.objects.all()}
    if expected_ids is not None:
        assert expected_ids <= set(predictions)
    entries = list(LedgerEntry.objects.filter(kind="prediction.recorded"))
    subjects = [e.subject for e in entries]
    assert len(subjects) == len(set(subjects)) == len(predictions)
    by_index = {e.index: e for e in entries}
    for iid, p in predictions.items():
        entry = by_index[p.ledger_index]
        assert entry.subject == f"prediction:{iid}"
        assert ledger.payload_of(entry) == p.ledger_payload()
    assert all(ledger.check_entry(e) is None for e in LedgerEntry.objects.all())
    assert list(LedgerEntry.objects.order_by("index").values_list("index", flat=True)) == list(range(ledger.size()))
    # each batch row places its predictions: positions 0..size-1 over consecutive entries
    for batch in PredictionBatch.objects.all():
        positions = sorted(Prediction.objects.filter(batch=batch).values_list("batch_pos", flat=True))
        assert batch.first_index is not None and positions == list(range(batch.size))
        assert all(by_index[batch.first_index + pos].kind == "prediction.recorded" for pos in positions)


@pytest.mark.embedded
def test_it_writes_rows_salts_and_leaves_together_and_skips_duplicates(credit_deployment):
    records = fake_records(credit_deployment, 300)
    first = write_records(records[:200])
    assert (first.stored, first.duplicates) == (200, [])
    again = write_records(records[100:] + records[250:260])  # a replay overlapping the first batch
    assert again.stored == 100
    assert sorted(again.duplicates) == sorted([r.id for r in records[100:200]] + [r.id for r in records[250:260]])
    assert Prediction.objects.count() == 300 and PredictionSalt.objects.count() == 300
    # the replay first failed on the stored ids and was written again: one batch for
    # its fresh records, nothing left of the attempt that failed
    assert PredictionBatch.objects.count() == 2
    assert write_records(records[:50]).stored == 0 and PredictionBatch.objects.count() == 2
    salt = PredictionSalt.objects.get(inference_id=records[7].id).salt
    assert salt == records[7].salt
    assert_ledger_matches({r.id for r in records})
    assert trace(records[7].inference_id).ok
    assert_hours_counted()


def assert_hours_counted():
    """PredictionHour holds, per deployment and UTC hour, the number of stored rows."""
    from collections import Counter
    from datetime import timezone

    stored = Counter((t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0), d)
                     for t, d in Prediction.objects.values_list("timestamp", "deployment_id"))
    counted = {(h.astimezone(timezone.utc), d): n for h, d, n in
               PredictionHour.objects.filter(n__gt=0).values_list("hour", "deployment_id", "n")}
    assert counted == dict(stored)


@pytest.mark.embedded
def test_it_stores_nothing_of_a_batch_with_a_malformed_record(credit_deployment):
    records = fake_records(credit_deployment, 5)
    records[3].input_digest = "not\thex"
    size = ledger.size()
    with pytest.raises(ValueError, match=records[3].id):
        write_records(records)
    assert Prediction.objects.count() == 0 and ledger.size() == size


def test_a_record_the_database_refuses_is_a_database_error_and_stores_nothing(credit_deployment):
    """A value that passes the record's pattern but not the column (month 13) comes back
    from COPY as Django's DataError (the recorder sets such records aside), not as a
    driver error (which it would take for an outage and retry for ever)."""
    assert on_postgres(), "COPY is the PostgreSQL path"
    records = fake_records(credit_deployment, 3)
    size = ledger.size()
    records[1].ts_us = 1_700_000_000_000_000
    write_records(records[1:2])  # a valid, already stored record: the batch below retries with a check
    bad = fake_records(credit_deployment, 1)[0]
    row = db_writer.prepare([bad])
    row.rows[0] = row.rows[0].replace(row.rows[0].split("\t")[3], "2026-13-45T10:00:00.000000Z")
    with pytest.raises(DataError):
        db_writer.write_prepared(row)
    again = write_records(records)
    assert (again.stored, again.duplicates) == (2, [records[1].id])
    assert Prediction.objects.count() == 3 and ledger.size() == size + 3


def test_only_the_ledger_entries_wait_for_the_head_lock(transactional_db, credit_deployment):
    """A writer queued on the ledger head lock has already stored its prediction rows
    and salts (its transaction holds their tables' row-exclusive locks) and has not
    touched the ledger; once the lock is free its entries and batch row follow."""
    assert on_postgres(), "the PostgreSQL write path"
    records = fake_records(credit_deployment, 50)
    holding, release, result = threading.Event(), threading.Event(), {}

    def hold():
        try:
            with transaction.atomic():
                ledger.hold_head()
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    def write():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                result["pid"] = cursor.fetchone()[0]
            result["written"] = write_records(records)
        except Exception as exc:  # reported below
            result["error"] = exc
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 20
        with connection.cursor() as cursor:
            while True:
                pid = result.get("pid")
                if pid:
                    cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
                    if cursor.fetchone() == ("Lock",):
                        break
                assert "error" not in result and time.monotonic() < deadline, "the writer never queued for the lock"
                time.sleep(0.01)
            cursor.execute("SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                           "WHERE l.pid = %s AND l.mode = 'RowExclusiveLock'", [pid])
            written = {row[0] for row in cursor.fetchall()}
    finally:
        release.set()
        holder.join(30)
        writer.join(30)
    assert {Prediction._meta.db_table, PredictionSalt._meta.db_table} <= written
    assert not {LedgerEntry._meta.db_table, PredictionBatch._meta.db_table, PredictionHour._meta.db_table} & written
    assert result["written"].stored == 50
    assert_ledger_matches({r.id for r in records})


@pytest.mark.embedded
def test_a_written_batch_cannot_be_moved(credit_deployment):
    """Where a prediction's entry is is as append-only as the ledger: the model layer
    and the database's triggers refuse to change or delete a batch row."""
    write_records(fake_records(credit_deployment, 3))
    batch = PredictionBatch.objects.get()
    batch.first_index += 1
    for call in (batch.save, batch.delete, lambda: PredictionBatch.objects.update(first_index=0),
                 lambda: PredictionBatch.objects.all().delete()):
        with pytest.raises(PermissionError, match="append-only"):
            call()
    table = PredictionBatch._meta.db_table
    for statement in (f"UPDATE {table} SET first_index = first_index + 1", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
    assert_ledger_matches()


@pytest.mark.embedded
def test_trace_catches_a_prediction_row_pointed_at_another_entry(credit_deployment):
    """The prediction table is not append-only; a row moved within its batch or to a
    batch that does not exist resolves to an entry that is not its own, or to none."""
    records = fake_records(credit_deployment, 3)
    write_records(records)
    assert trace(records[0].inference_id).ok
    Prediction.objects.filter(inference_id=records[0].id).update(batch_pos=1)
    link = trace(records[0].inference_id).links[0]
    assert not link.ok and link.detail == "prediction row differs from its ledger entry"
    Prediction.objects.filter(inference_id=records[0].id).update(batch_id=10**9)
    link = trace(records[0].inference_id).links[0]
    assert not link.ok and link.detail == "no ledger entry recorded"


@pytest.mark.embedded
def test_a_batch_naming_an_unknown_deployment_stores_nothing(transactional_db, credit_deployment):
    """The rows' keys are checked as they go in on PostgreSQL (not deferred to the
    commit, under the head lock), at the commit on SQLite; either way the whole batch
    is refused.  Real commits: SQLite checks deferred keys only there."""
    records = fake_records(credit_deployment, 4)
    records[2].deployment_id = credit_deployment.id + 1000
    size = ledger.size()
    with pytest.raises(IntegrityError):
        write_records(records)
    assert Prediction.objects.count() == 0 and PredictionBatch.objects.count() == 0 and ledger.size() == size


@settings_hypothesis(max_examples=200, deadline=None)
@given(actor=st.text(max_size=40), deployment_id=st.integers(1, 10**15 - 1), ts_us=st.integers(0, 2**52),
       index=st.integers(0, 2**53 - 1), digests=st.lists(st.binary(min_size=32, max_size=32), min_size=3, max_size=3),
       rand=st.binary(min_size=10, max_size=10))
def test_the_rendered_prediction_body_is_the_canonical_entry_body(actor, deployment_id, ts_us, index, digests, rand):
    record = ProvenanceRecord(uuid7_text(ts_us // 1000, rand), deployment_id, digests[0].hex(), None,
                              digests[1].hex(), digests[2].hex(), 17, "", ts_us=ts_us)
    entry = db_writer.prepare([record]).entries[0]
    subject, when, body = db_writer.entry_renderer(actor)(index, entry)
    event = ledger.Event("prediction.recorded", record.ledger_payload(), subject=f"prediction:{record.id}",
                         actor=actor)
    assert body.encode() == ledger.entry_body(index, event, datetime_from_us(ts_us))
    assert (subject, when) == (event.subject, iso_from_us(ts_us))
    assert ledger.check_row(index, "prediction.recorded", subject, body,
                            ledger.leaf_hash(body.encode()))[1] is None


@settings_hypothesis(max_examples=200, deadline=None)
@given(deployment_ids=st.lists(st.integers(0, 10**15 - 1), min_size=1, max_size=6),
       ts_us=st.integers(0, 10**16 - 10), latency=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
       salted=st.booleans(), seed=st.binary(min_size=16, max_size=16))
def test_spool_lines_prepare_exactly_as_their_records_do(deployment_ids, ts_us, latency, salted, seed):
    """The shipper's fast path (spool lines straight to COPY lines and entries) makes
    what decode + prepare() makes of the same lines, field for field."""
    records = []
    for n, deployment_id in enumerate(deployment_ids):
        digest = hashlib.sha256(seed + bytes([n])).digest()
        records.append(ProvenanceRecord(uuid7_text(ts_us // 1000, digest[:10]), deployment_id, digest.hex(), None,
                                        digest[::-1].hex(), hashlib.sha256(digest).hexdigest(), latency,
                                        digest.hex() if salted else "", ts_us=ts_us + n))
    lines = [r.encode() for r in records]
    fast, slow = db_writer.prepare_spooled(lines), db_writer.prepare(
        [ProvenanceRecord.decode(line) for line in lines])
    assert fast is not None
    for name in ("ids", "rows", "salts", "entries", "duplicates"):
        assert getattr(fast, name) == getattr(slow, name), name


def test_spool_lines_not_in_the_exact_form_take_the_checked_path():
    good = ProvenanceRecord(uuid7_text(1_700_000_000_000, bytes(10)), 7, "a" * 64, None, "b" * 64, "c" * 64, 40,
                            "d" * 64, ts_us=1_700_000_000_000_000).encode()
    assert db_writer.prepare_spooled([good]) is not None
    for bad in ([], [good, good],  # a repeated id: prepare() reports it as a duplicate
                [good.replace(b",7,", b",007,")],  # decodes to 7, but "007" is not canonical JSON
                [good.replace(b"a" * 64, b"A" * 64)], [good + b",extra"], [good.replace(b"1,", b"2,", 1)],
                [good, good.replace(b"b" * 64, "é".encode() * 32)]):
        assert db_writer.prepare_spooled(bad) is None, bad


@pytest.mark.embedded
def test_the_sink_writes_spool_lines_and_sets_aside_what_it_cannot_decode(credit_deployment):
    records = fake_records(credit_deployment, 4)
    sink = db_writer.DatabaseSink()
    sink.write_spooled([r.encode() for r in records[:2]])  # the fast path
    sink.write_spooled([r.encode() for r in records[1:]])  # a replay overlapping it: the checked path
    assert Prediction.objects.count() == 4
    with pytest.raises(Rejected, match="cannot decode"):
        sink.write_spooled([b"1,not-a-record"])
    assert_ledger_matches({r.id for r in records})


@pytest.mark.embedded
@pytest.mark.django_db
def test_rendered_appends_store_what_was_rendered_even_with_copy_control_characters():
    """Bodies with a tab, newline or backslash survive PostgreSQL's COPY text format
    unchanged, and each leaf hashes its stored body."""
    texts = ["plain", "tab\there", "new\nline", "back\\slash", "cr\rhere", "ünïcode"]

    def render(index, text):
        event = ledger.Event("alert.raised", {"message": text}, subject=f"s:{text}", actor="t")
        return event.subject, "2026-11-26T04:00:00.000000Z", ledger.entry_body(
            index, event, datetime_from_us(1_795_665_600_000_000)).decode()

    with transaction.atomic():
        first = ledger.append_rendered("alert.raised", texts, render)
    rows = list(LedgerEntry.objects.filter(index__gte=first).order_by("index"))
    assert [ledger.payload_of(e)["message"] for e in rows] == texts
    assert [e.subject for e in rows] == [f"s:{t}" for t in texts]
    assert all(ledger.check_entry(e) is None for e in rows)
    assert ledger.size() == first + len(texts)
    with pytest.raises(ValueError, match="unknown ledger event kind"), transaction.atomic():
        ledger.append_rendered("no.such.kind", texts, render)


# PostgreSQL only: the test database on SQLite is an in-memory shared cache, whose
# table locks fail at once instead of waiting (a file database with IMMEDIATE
# transactions, the embedded default, serializes writers by itself).
@pytest.mark.django_db(transaction=True)
def test_it_never_stores_a_record_twice_under_concurrent_writers(credit_onnx):
    from tests.inference.conftest import deploy_model

    deployment = deploy_model(credit_onnx, "credit")
    records = fake_records(deployment, 1500)
    results = []

    def replay(chunk):
        from django.db import connections

        try:
            results.append(write_records(chunk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=replay, args=(records[i * 250:i * 250 + 1000],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.stored for r in results) == 1500 == Prediction.objects.count()
    assert_ledger_matches({r.id for r in records})


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)  # the recorder writes from its own thread and connection
def test_it_records_audited_inference_in_the_background(credit_onnx, tmp_path):
    from tests.inference.conftest import deploy_model

    deploy_model(credit_onnx, "credit")
    recorder = BufferedRecorder(tmp_path, batch=100, interval_ms=10)
    service = AuditedService.open("credit", recorder=recorder)
    x = np.random.default_rng(0).normal(size=(250, 6)).astype(np.float32)
    metas = [service.predict({"X": x[i:i + 1]})[1] for i in range(250)]
    assert recorder.drain(timeout=30)
    figures = recorder_module.metrics()
    mine = [m for m in figures["recorders"] if m["spool_dir"] == str(recorder.spool.dir)][0]
    assert mine["delivered"] == 250 and mine["spool_depth"] == 0 and mine["blocked_calls"] == 0
    assert recorder.close()
    assert Prediction.objects.count() == 250
    assert {str(i) for i in Prediction.objects.values_list("inference_id", flat=True)} == {m["inference_id"] for m in metas}
    assert_ledger_matches()


@pytest.mark.django_db(transaction=True)
def test_the_database_work_runs_in_a_child_process_that_is_restarted_when_killed(credit_onnx, tmp_path):
    """On PostgreSQL the recorder's database writes run in a forked child, off the
    serving process's GIL; a killed child is replaced, a refused record is set aside."""
    assert on_postgres(), "the shipper process is used on PostgreSQL only"
    from tests.inference.conftest import deploy_model

    deployment = deploy_model(credit_onnx, "credit")
    recorder = BufferedRecorder(tmp_path, batch=50, interval_ms=10, backoff_max_s=0.2)
    assert recorder.shipper == "process" and recorder.metrics()["shipper"] == "process"
    records = fake_records(deployment, 600)
    for r in records[:300]:
        recorder.record(r)
    assert recorder.drain(timeout=30)
    children = recorder.sink.pids
    assert len(children) == 2 and os.getpid() not in children
    child = children[0]
    os.kill(child, signal.SIGKILL)
    records[450].input_digest = "not hex"
    for r in records[300:]:
        recorder.record(r)
    assert recorder.drain(timeout=30)
    assert child not in recorder.sink.pids and len(recorder.sink.pids) == 2
    assert recorder.close()
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
    stored = {str(i) for i in Prediction.objects.values_list("inference_id", flat=True)}
    assert stored == {r.id for r in records} - {records[450].id}
    rejected_file = recorder.spool.dir / "rejected" / "rejected.jsonl"
    rejected = [json.loads(line) for line in rejected_file.read_text().splitlines()]
    assert len(rejected) == 1 and records[450].id in rejected[0]["payload"]
    assert "malformed provenance record" in rejected[0]["reason"]
    assert_ledger_matches(stored)


def test_the_shipper_setting_is_checked(settings, tmp_path):
    settings.TRACELEDGER_PROVENANCE_SHIPPER = "carrier-pigeon"
    with pytest.raises(ValueError, match="must be 'process' or 'thread'"):
        BufferedRecorder(tmp_path)


# --- outages and crashes, for real: separate recording processes -------------------------

def streamer_env(db_port: int) -> dict:
    env = worker_env()
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{db_port}/{db['NAME']}"
    env.pop("REDIS_URL", None)
    return env


def start_streamer(env: dict, spool: Path, acks: Path, count: int = 0, rate: float = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(STREAMER), "--spool", str(spool), "--acks", str(acks), "--count", str(count),
         "--rate", str(rate), "--timeout", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def acked_ids(acks: Path) -> list[str]:
    text = acks.read_text() if acks.exists() else ""
    return text.split("\n")[:-1]  # a last line without its newline was never fully written


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the recording process exited early while waiting for {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def prediction_count() -> int:
    return Prediction.objects.count()


def db_proxy() -> TcpProxy:
    db = settings.DATABASES["default"]
    return TcpProxy(int(db.get("PORT") or 5432), db.get("HOST") or "127.0.0.1").start()


@pytest.mark.django_db(transaction=True)
def test_it_streams_10000_predictions_through_a_database_outage(credit_onnx, tmp_path):
    assert on_postgres(), "the outage is a network cut between the recorder and PostgreSQL"
    from tests.inference.conftest import deploy_model

    deploy_model(credit_onnx, "credit")
    proxy = db_proxy()
    acks = tmp_path / "acks"
    proc = start_streamer(streamer_env(proxy.port), tmp_path / "spool", acks, count=10_000, rate=2500)
    try:
        wait_for(lambda: prediction_count() >= 1500, 60, "the first predictions in the database", proc)
        proxy.stop()  # PostgreSQL is gone for the recorder: connections cut, new ones refused
        during = prediction_count()
        time.sleep(1.5)
        assert prediction_count() == during  # nothing can arrive while it is away…
        assert len(acked_ids(acks)) > during  # …yet predictions go on being acknowledged (spooled)
        proxy.start()
        out, err = proc.communicate(timeout=90)
    finally:
        proxy.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["delivery_failures"] > 0 and figures["spool_depth"] == 0
    ids = set(acked_ids(acks))
    assert len(ids) == 10_000 == prediction_count()
    assert_ledger_matches(ids)


@pytest.mark.django_db(transaction=True)
def test_it_keeps_every_acknowledged_prediction_when_killed_mid_batch(credit_onnx, tmp_path):
    assert on_postgres(), "the recording process shares the database through the network"
    from tests.inference.conftest import deploy_model

    deploy_model(credit_onnx, "credit")
    proxy = db_proxy()
    env = streamer_env(proxy.port)
    spool, acks = tmp_path / "spool", tmp_path / "acks"
    try:
        # 1. killed while streaming and writing batches to the database
        proc = start_streamer(env, spool, acks, count=20_000)
        wait_for(lambda: len(acked_ids(acks)) >= 3000 and prediction_count() > 0, 60, "acknowledged predictions",
                 proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # 2. restarted: it replays its spool and streams on; killed again while the
        #    database is away, so acknowledged predictions exist only in the spool
        proc = start_streamer(env, spool, acks, count=20_000)
        seen = len(acked_ids(acks))
        wait_for(lambda: len(acked_ids(acks)) >= seen + 2000, 60, "more acknowledged predictions", proc)
        proxy.stop()
        seen = len(acked_ids(acks))
        wait_for(lambda: len(acked_ids(acks)) >= seen + 2000, 60, "predictions spooled during the outage", proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        in_db_before_replay = prediction_count()
        # 3. the database is back; a restart replays what was left
        proxy.start()
        proc = start_streamer(env, spool, acks)
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
    finally:
        proxy.stop()
    acknowledged = acked_ids(acks)
    assert len(acknowledged) == len(set(acknowledged))
    assert prediction_count() > in_db_before_replay
    stored = {str(i) for i in Prediction.objects.values_list("inference_id", flat=True)}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged predictions lost"
    assert_ledger_matches(set(acknowledged))
    assert not list(spool.glob("slot-*/*.seg"))


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_it_replays_a_spool_left_by_a_server_that_is_gone(credit_onnx, tmp_path, capsys):
    from django.core.management import call_command

    from inference.provenance.spool import Spool
    from tests.inference.conftest import deploy_model

    deployment = deploy_model(credit_onnx, "credit")
    records = fake_records(deployment, 700)
    left = Spool(tmp_path)  # what a killed server process left behind
    left.append([r.encode() for r in records[:400]])
    left.append([r.encode() for r in records[400:]])
    left.close()
    write_records(records[:100])  # some of it had reached the database before the crash
    call_command("replay_spool", "--dir", str(tmp_path), "--json")
    assert json.loads(capsys.readouterr().out)["delivered"] == 700
    assert Prediction.objects.count() == 700
    assert_ledger_matches({r.id for r in records})
    assert not list(tmp_path.glob("slot-*/*.seg"))


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_it_offers_rejected_records_again_and_keeps_those_still_refused(credit_onnx, tmp_path, capsys):
    """`replay_spool --rejected`: a record refused while its deployment was missing is
    stored once it is back; one still refused stays, with today's reason; a slot in
    use by a running recorder is left alone."""
    from django.core.management import call_command

    from inference.provenance.spool import Spool
    from tests.inference.conftest import deploy_model

    deployment = deploy_model(credit_onnx, "credit")
    good, orphan, malformed, in_use = fake_records(deployment, 4)
    orphan.deployment_id = deployment.id + 1000
    malformed.output_digest = "not hex"
    running = Spool(tmp_path)  # a live server holds its own slot
    running.reject(in_use.encode(), "refused")
    gone = Spool(tmp_path)  # a server that is gone left three refused records
    for record in (good, orphan, malformed):
        gone.reject(record.encode(), f"deployment {deployment.id} does not exist")
    gone.close()

    call_command("replay_spool", "--dir", str(tmp_path), "--rejected", "--json")
    out = json.loads(capsys.readouterr().out)
    assert (out["stored"], out["duplicates"], out["still_rejected"]) == (1, 0, 2)
    assert out["busy_slots"] == [str(running.dir)]
    assert list(Prediction.objects.values_list("inference_id", flat=True)) == [good.inference_id]
    left = [json.loads(line) for line in (gone.dir / "rejected" / "rejected.jsonl").read_text().splitlines()]
    assert [ProvenanceRecord.decode(e["payload"].encode("latin-1")).id for e in left] == [orphan.id, malformed.id]
    assert "does not exist" not in left[0]["reason"] and "malformed provenance record" in left[1]["reason"]
    assert_ledger_matches({good.id})

    call_command("replay_spool", "--dir", str(tmp_path), "--rejected", "--json")  # nothing new: idempotent
    assert json.loads(capsys.readouterr().out)["stored"] == 0 and Prediction.objects.count() == 1
    running.close()


@pytest.mark.embedded
def test_it_counts_each_stored_prediction_in_its_hour_once(credit_deployment):
    """Records over three UTC hours, written in batches that straddle them and again as a
    replay: each stored row is counted in its own hour, a duplicate never."""
    records = fake_records(credit_deployment, 90)
    base = 1_790_000_000_000_000 - 1_790_000_000_000_000 % 3_600_000_000 + 3_599_000_000  # 1 s before an hour ends
    for i, r in enumerate(records):
        r.ts_us = base + i * 80_000_000  # 80 s apart: 90 records over three hours
        r.id = uuid7_text(r.ts_us // 1000, os.urandom(10))
    write_records(records[:40])
    write_records(records[30:70])  # overlaps the first batch
    write_records(records)
    assert Prediction.objects.count() == 90
    assert_hours_counted()
    assert sorted(PredictionHour.objects.values_list("n", flat=True)) == [1, 44, 45]


def test_concurrent_writers_count_the_same_hour_without_deadlock(transactional_db, credit_deployment):
    """Four writers, two of them replaying (the path that takes the head lock before its
    rows), all counting into the same hour's row: no deadlock, every row counted once."""
    assert on_postgres(), "concurrent writers need a server"
    records = fake_records(credit_deployment, 800)
    errors = []

    def write(part):
        try:
            for start in range(0, len(part), 50):
                write_records(part[start:start + 50])
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    parts = [records[:400], records[400:], records[200:600], records[::-1]]
    threads = [threading.Thread(target=write, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert Prediction.objects.count() == 800
    assert_hours_counted()
