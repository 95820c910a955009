"""Periodic re-verification: every stored engine is re-hashed and its signature checked;
drift raises an Alert, marks the engine unusable (the loader then refuses it) and is
recorded in the ledger."""
from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from django.core.management import call_command

from compliance.ledger import dsse, ledger
from compliance.lib.store import default_store
from compliance.models import Alert, LedgerEntry
from inference.build_requests import do_request_build
from inference.loader import EngineRefused
from inference.reverify import reverify_engines
from inference.runtime import AuditedService
from inference.tasks import reverify_engines as reverify_task
from lineage.actions import do_deploy
from lineage.models import Build, Engine
from tests.conftest import register, wait_for_build

pytestmark = [pytest.mark.embedded]


@pytest.fixture
def worker(module_worker, transactional_db):
    return module_worker


def built(model, precision):
    build = wait_for_build(do_request_build(model, precision=precision, submitter="bob"))
    assert build.status == Build.SUCCEEDED, build.error
    return build.engine


def test_it_reverifies_engines_and_marks_drifted_ones_unusable(worker, two_input_onnx, capsys):
    model = register(two_input_onnx)
    good, altered, forged = (built(model, p) for p in ("fp32", "fp16", "int8"))
    do_deploy(altered, service="fraud", acting_user="bob")

    call_command("reverify_engines", "--json")
    first = json.loads(capsys.readouterr().out)
    assert first["checked"] == 3 and first["verified"] == 3 and first["drifted"] == []
    assert Engine.objects.filter(reverify_verdict="verified", reverified_at__isnull=False).count() == 3

    path = default_store().path_for(altered.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from compliance.ledger.keys import key_id_for, public_raw

    payload = base64.b64decode(json.loads(forged.manifest)["payload"])
    rogue = Ed25519PrivateKey.generate()
    manifest = json.dumps(dsse.sign_envelope(payload, key_id_for(public_raw(rogue.public_key())), rogue.sign))
    Engine.objects.filter(pk=forged.pk).update(manifest=manifest,
                                               manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest())

    with pytest.raises(SystemExit) as exited:
        call_command("reverify_engines")
    assert exited.value.code == 1
    summary = capsys.readouterr().out
    assert "2 drifted" in summary and f"engine {altered.id}: digest_mismatch" in summary
    assert f"engine {forged.id}: unknown_key" in summary
    for engine in (good, altered, forged):
        engine.refresh_from_db()
    assert good.usable and not altered.usable and not forged.usable
    assert altered.reverify_verdict == "digest_mismatch" and forged.reverify_verdict == "unknown_key"
    alerts = Alert.objects.filter(kind="engine.reverify_failed")
    assert {a.details["engine_id"] for a in alerts} == {altered.id, forged.id}
    assert all(a.severity == "critical" for a in alerts)
    entry = LedgerEntry.objects.get(kind="engine.reverified", subject=f"engine:{altered.id}")
    assert ledger.payload_of(entry)["verdict"] == "digest_mismatch" and ledger.payload_of(entry)["usable"] is False
    runs = LedgerEntry.objects.filter(kind="engine.reverified", subject="engines").order_by("index")
    assert [ledger.payload_of(e)["drifted"] for e in runs] == [[], sorted([altered.id, forged.id])]

    # the loader refuses the unusable engine before hashing it
    with pytest.raises(EngineRefused) as refused:
        AuditedService.open("fraud")
    assert refused.value.verdict in ("digest_mismatch", "unusable")
    # a drifted engine alerts once, not on every later run
    reverify_engines()
    assert Alert.objects.filter(kind="engine.reverify_failed").count() == 2
    assert LedgerEntry.objects.filter(kind="engine.reverified", subject="engines").count() == 3


def test_it_runs_as_a_celery_task_on_a_worker(worker, two_input_onnx):
    model = register(two_input_onnx)
    engine = built(model, "fp32")
    os.chmod(default_store().path_for(engine.sha256), 0o644)
    default_store().path_for(engine.sha256).unlink()
    reverify_task.delay()
    import time

    deadline = time.monotonic() + 30
    while not LedgerEntry.objects.filter(kind="engine.reverified", subject="engines").exists():
        assert time.monotonic() < deadline, "the re-verification task did not run"
        time.sleep(0.1)
    engine.refresh_from_db()
    assert not engine.usable and engine.reverify_verdict == "digest_mismatch"
    assert Alert.objects.get(kind="engine.reverify_failed").details["detail"] == "engine file is missing from the store"
