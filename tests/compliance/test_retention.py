"""Retention: input salts are erased after TRACELEDGER_RETENTION_DAYS unless a case holds
them; ledger rows are never touched; production refuses less than six months."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from compliance.investigation.retention import do_apply_retention, held_inference_ids
from compliance.ledger import ledger
from compliance.lib.ids import uuid7
from compliance.models import LedgerEntry
from inference import digests
from inference.build_requests import do_request_build
from inference.builder import run_build
from inference.provenance.writer import ProvenanceRecord, write_records
from inference.runtime import AuditedService
from lineage.actions import do_deploy
from lineage.models import Prediction, PredictionSalt
from lineage.trace import trace
from tests.conftest import ROOT, register
from tests.terminal import Terminal, counted

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def record_old_prediction(deployment, days_ago: int) -> uuid.UUID:
    """A prediction reported by an external runtime, made `days_ago` days ago."""
    x = np.array([[41, 52.0, 0.2, 3, 0, 9]], dtype=np.float32)
    salt = digests.new_salt()
    when = timezone.now() - timedelta(days=days_ago)
    record = ProvenanceRecord(uuid7(int(when.timestamp() * 1000)), deployment.id, deployment.engine_sha256, when,
                              digests.input_commitment(salt, {"X": x}), digests.tensors_digest({"y": x}), 100,
                              salt.hex())
    write_records([record])
    return record.inference_id


@pytest.fixture
def service(db, credit_onnx):
    """A deployed engine. The build runs here, in-process (the queued task is never
    sent: the test's transaction does not commit)."""
    build = do_request_build(register(credit_onnx), submitter="bob", commit="c" * 40)
    run_build(build.id)
    build.refresh_from_db()
    deployment = do_deploy(build.engine, service="credit", acting_user="bob")
    AuditedService.open("credit").predict({"X": np.ones((1, 6), np.float32)})
    return deployment


def test_it_erases_only_salts_past_retention_and_keeps_every_ledger_row(service):
    old = record_old_prediction(service, days_ago=settings.TRACELEDGER_RETENTION_DAYS + 5)
    recent = record_old_prediction(service, days_ago=settings.TRACELEDGER_RETENTION_DAYS - 5)
    assert PredictionSalt.objects.count() == 3
    entries_before = LedgerEntry.objects.count()

    dry = do_apply_retention(dry_run=True)
    assert dry["salts_expired"] == 1 and dry["salts_erased"] == 0
    assert PredictionSalt.objects.count() == 3 and LedgerEntry.objects.count() == entries_before

    result = do_apply_retention(acting_user="charlie")
    assert result["salts_erased"] == 1 and result["held_by_legal_hold"] == 0
    assert not PredictionSalt.objects.filter(inference_id=old).exists()
    assert PredictionSalt.objects.filter(inference_id=recent).exists() and PredictionSalt.objects.count() == 2
    # nothing but one new entry: predictions and their ledger leaves stay, and stay verifiable
    assert LedgerEntry.objects.count() == entries_before + 1 and Prediction.objects.count() == 3
    entry = LedgerEntry.objects.get(index=result["ledger_index"])
    assert entry.kind == "retention.applied" and json.loads(entry.body)["actor"] == "charlie"
    assert ledger.payload_of(entry) | {"cutoff": ""} == {
        "retention_days": settings.TRACELEDGER_RETENTION_DAYS, "cutoff": "", "salts_erased": 1, "salts_expired": 1,
        "held_by_legal_hold": 0}
    assert trace(old).ok
    assert do_apply_retention()["salts_erased"] == 0


def test_it_keeps_salts_under_legal_hold(service):
    from compliance.investigation.cases import do_open_case
    from lineage.models import Prediction

    held = record_old_prediction(service, days_ago=400)
    free = record_old_prediction(service, days_ago=400)
    do_open_case(Prediction.objects.get(inference_id=held), kind="gdpr_art22", summary="contested", acting_user="alice",
                 legal_hold=True)
    do_open_case(Prediction.objects.get(inference_id=free), kind="internal_review", summary="routine", acting_user="alice")
    assert held_inference_ids() == {held}
    result = do_apply_retention()
    assert result["salts_erased"] == 1 and result["held_by_legal_hold"] == 1
    assert PredictionSalt.objects.filter(inference_id=held).exists()
    assert not PredictionSalt.objects.filter(inference_id=free).exists()


def test_it_applies_retention_from_the_command_line(service):
    record_old_prediction(service, days_ago=1000)
    out = io.StringIO()
    call_command("apply_retention", "--dry-run", "--json", stdout=out)
    assert json.loads(out.getvalue())["salts_expired"] == 1 and PredictionSalt.objects.count() == 2
    out = io.StringIO()
    call_command("apply_retention", stdout=out)
    assert out.getvalue().startswith("erased 1 salt(s) older than 190 days")
    assert PredictionSalt.objects.count() == 1



def test_it_erases_in_batches_and_reports_each(service):
    old = {record_old_prediction(service, days_ago=400) for _ in range(5)}
    held = record_old_prediction(service, days_ago=400)
    from compliance.investigation.cases import do_open_case

    do_open_case(Prediction.objects.get(inference_id=held), kind="gdpr_art22", summary="contested",
                 acting_user="alice", legal_hold=True)
    seen = []
    result = do_apply_retention(batch=2, progress=lambda done, total: seen.append((done, total)))
    assert result["salts_erased"] == 5 and result["held_by_legal_hold"] == 1
    assert not PredictionSalt.objects.filter(inference_id__in=old).exists()
    assert PredictionSalt.objects.filter(inference_id=held).exists()
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and (2, 5) in seen and (4, 5) in seen
    entry = LedgerEntry.objects.get(index=result["ledger_index"])
    assert ledger.payload_of(entry)["salts_erased"] == 5  # one entry for all the batches


def test_it_shows_retention_progress_on_a_terminal_only(service):
    for _ in range(3):
        record_old_prediction(service, days_ago=1000)
    out, err = io.StringIO(), Terminal()
    call_command("apply_retention", "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["salts_erased"] == 3  # stdout stays one JSON object
    assert "erasing salts" in err.getvalue() and counted(3, 3) in err.getvalue(), err.getvalue()
    assert "salts/s" in err.getvalue()

    record_old_prediction(service, days_ago=1000)
    out, err = io.StringIO(), io.StringIO()
    call_command("apply_retention", "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["salts_erased"] == 1 and err.getvalue() == ""
    out, err = io.StringIO(), Terminal()
    call_command("apply_retention", "--dry-run", "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["dry_run"] is True and err.getvalue() == ""  # a count shows no bar


def test_it_refuses_less_than_six_months_in_production():
    assert settings.TRACELEDGER_RETENTION_DAYS == 190
    env = dict(os.environ, SECRET_KEY="x" * 60, DATABASE_URL="postgres://u@127.0.0.1:5432/x", ALLOWED_HOSTS="a.example",
               TRACELEDGER_RETENTION_DAYS="90", DJANGO_SETTINGS_MODULE="compliance.project.settings_production")
    probe = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "TRACELEDGER_RETENTION_DAYS must be at least 183" in probe.stderr
    env["TRACELEDGER_RETENTION_DAYS"] = "183"
    assert subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, timeout=60).returncode == 0
