"""The whole audit chain, end to end: register → build (real worker on PostgreSQL +
Redis, or in-process on SQLite) → deploy → verified load → audited inference → trace."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from compliance.ledger import ledger
from compliance.lib.store import default_store
from compliance.models import Alert, LedgerEntry
from inference import digests
from inference.build_requests import do_request_build
from inference.loader import EngineRefused, check_deployment
from inference.runtime import AuditedService
from inference.specs import parse_profile
from lineage.actions import do_deploy
from lineage.models import Build, EngineLoad, Prediction, PredictionSalt
from lineage.trace import trace
from tests.conftest import register, wait_for_build

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def build_and_deploy(onnx_bytes, service, precision="fp32", profiles=None, name="m"):
    model = register(onnx_bytes, name=name)
    build = wait_for_build(do_request_build(model, precision=precision, profiles=profiles or {}, submitter="bob",
                                            commit="b" * 40))
    assert build.status == Build.SUCCEEDED, build.error
    return model, build, do_deploy(build.engine, service=service, acting_user="bob")


def test_it_runs_the_whole_chain(worker, credit_onnx):
    model, build, deployment = build_and_deploy(credit_onnx, "credit")
    engine = build.engine
    # the build record answers the auditor's questions
    assert build.submitter == "bob" and build.commit == "b" * 40
    assert build.backend_version and build.device["execution_providers"]
    assert build.started_at and build.finished_at and "build_ms" in build.timings
    if worker:
        assert build.worker_host and "Task inference.tasks.build_engine" in worker.log_path.read_text()
    assert default_store().verify(engine.sha256) is None
    manifest = json.loads(engine.manifest)
    assert manifest["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(__import__("base64").b64decode(manifest["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == engine.sha256
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["model"]["sha256"] == model.sha256

    service = AuditedService.open("credit")
    x = np.array([[35, 48.0, 0.3, 4, 0, 6]], dtype=np.float32)
    outputs, meta = service.predict({"X": x})
    assert set(outputs) == {"label", "probabilities"}
    assert meta["engine_sha256"] == engine.sha256
    assert meta["deployment"]["id"] == deployment.id
    prediction = Prediction.objects.get(inference_id=meta["inference_id"])
    assert prediction.input_digest == meta["input_digest"]
    salt = bytes.fromhex(PredictionSalt.objects.get(inference_id=prediction.inference_id).salt)
    assert prediction.output_digest == digests.output_commitment(salt, outputs) == meta["output_digest"]
    assert digests.verify_outputs(prediction.output_digest, salt, outputs)
    assert digests.verify_commitment(prediction.input_digest, salt, {"X": x})
    assert not digests.verify_commitment(prediction.input_digest, salt, {"X": x + 1})
    assert EngineLoad.objects.get().verdict == "verified"

    result = trace(prediction.inference_id)
    assert result.ok, result.to_dict()
    assert [l.kind for l in result.links] == ["prediction", "deployment", "engine", "build", "model", "commit", "submitter"]
    kinds = list(LedgerEntry.objects.values_list("kind", flat=True))
    for kind in ("model.registered", "build.requested", "build.started", "build.succeeded", "deployment.created",
                 "engine.loaded", "prediction.recorded", "key.registered"):
        assert kind in kinds
    assert list(LedgerEntry.objects.values_list("index", flat=True)) == list(range(ledger.size()))
    assert all(ledger.check_entry(e) is None for e in LedgerEntry.objects.all())


def test_it_handles_two_inputs_int64_and_a_dynamic_batch(worker, two_input_onnx):
    profiles = dict([parse_profile("features=1x4:8x4:64x4"), parse_profile("category=1:8:64")])
    model, build, _ = build_and_deploy(two_input_onnx, "fraud", profiles=profiles)
    assert {i["name"]: i["dtype"] for i in model.inputs} == {"features": "float32", "category": "int64"}
    assert model.inputs[0]["shape"] == ["batch", 4]
    service = AuditedService.open("fraud")
    for n in (1, 5, 17):
        out, meta = service.predict({"features": np.ones((n, 4), np.float32), "category": np.arange(n, dtype=np.int64) % 10})
        assert out["score"].shape == (n, 1)
    assert Prediction.objects.count() == 3
    assert trace(Prediction.objects.first().inference_id).ok


def test_it_refuses_a_tampered_engine_and_raises_an_alert(worker, credit_onnx):
    _, build, _ = build_and_deploy(credit_onnx, "credit")
    path = default_store().path_for(build.engine.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(EngineRefused) as refused:
        AuditedService.open("credit")
    assert refused.value.verdict == "digest_mismatch"
    assert Prediction.objects.count() == 0
    alert = Alert.objects.get(kind="engine.load_refused")
    assert alert.severity == "critical" and alert.ledger_index is not None
    assert LedgerEntry.objects.filter(kind="engine.load_refused").count() == 1
    load = EngineLoad.objects.get()
    assert load.verdict == "digest_mismatch" and load.actual_sha256 != load.expected_sha256


def test_it_refuses_an_engine_whose_file_is_opened_for_writing_while_it_is_checked(worker, credit_onnx):
    _, build, deployment = build_and_deploy(credit_onnx, "credit")
    path = default_store().path_for(build.engine.sha256)
    os.chmod(path, 0o644)
    with check_deployment(deployment) as check:
        if not check.mapped:
            pytest.skip("the kernel grants no read lease on this file system")
        assert check.verified and hashlib.sha256(check.data).hexdigest() == build.engine.sha256
        with pytest.raises(BlockingIOError):  # a writer waits for the lease to go; this one gives up
            os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    assert check.verdict == "digest_mismatch" and "opened for writing" in check.detail
    assert check.data is None and check.path is None


def test_onnx_runtime_loads_the_verified_file_itself_not_a_copy(worker, credit_onnx):
    """ONNX Runtime's Python API takes a path or bytes: under a lease the loader hands
    it the leased descriptor's path, so the engine is not copied into Python first."""
    _, build, deployment = build_and_deploy(credit_onnx, "credit")
    with check_deployment(deployment) as check:
        if not check.mapped:
            pytest.skip("the kernel grants no read lease on this file system")
        assert check.path is not None
        with open(check.path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == build.engine.sha256
    service = AuditedService.open("credit")
    assert service.loaded.runner.loaded_from == "path"
    assert service.loaded.load.verdict == "verified"
    _, shape = service.loaded.runner.inputs["X"]
    outputs, meta = service.predict({"X": np.zeros((1, shape[1]), np.float32)})
    assert meta["engine_sha256"] == build.engine.sha256 and outputs


def test_it_refuses_another_validly_built_engine_swapped_in(worker, credit_onnx, two_input_onnx):
    _, build, _ = build_and_deploy(credit_onnx, "credit")
    _, other, _ = build_and_deploy(two_input_onnx, "fraud", name="other",
                                   profiles=dict([parse_profile("features=1x4:1x4:8x4"), parse_profile("category=1:1:8")]))
    store = default_store()
    target = store.path_for(build.engine.sha256)
    os.chmod(target, 0o644)
    target.write_bytes(store.read(other.engine.sha256))  # a genuine, signed engine — of another build
    with pytest.raises(EngineRefused) as refused:
        AuditedService.open("credit")
    assert refused.value.verdict == "digest_mismatch"
    assert Alert.objects.filter(kind="engine.load_refused").exists()
    assert Prediction.objects.count() == 0


def test_it_refuses_an_engine_whose_manifest_was_re_signed_by_an_unknown_key(worker, credit_onnx):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from compliance.ledger import dsse
    from compliance.ledger.keys import key_id_for, public_raw
    from lineage.models import Deployment, Engine

    _, build, deployment = build_and_deploy(credit_onnx, "credit")
    engine = build.engine
    payload = __import__("base64").b64decode(json.loads(engine.manifest)["payload"])
    rogue = Ed25519PrivateKey.generate()
    forged = json.dumps(dsse.sign_envelope(payload, key_id_for(public_raw(rogue.public_key())), rogue.sign), sort_keys=True)
    digest = __import__("hashlib").sha256(forged.encode()).hexdigest()
    Engine.objects.filter(pk=engine.pk).update(manifest=forged, manifest_sha256=digest)
    Deployment.objects.filter(pk=deployment.pk).update(manifest_sha256=digest)
    with pytest.raises(EngineRefused) as refused:
        AuditedService.open("credit")
    assert refused.value.verdict == "unknown_key", str(refused.value)


def test_it_refuses_a_service_with_nothing_deployed(db):
    with pytest.raises(EngineRefused) as refused:
        AuditedService.open("nothing-here")
    assert refused.value.verdict == "not_deployed"
    assert Alert.objects.filter(kind="engine.load_refused").count() == 1


def test_it_rejects_inputs_that_do_not_match_the_model(worker, two_input_onnx):
    profiles = dict([parse_profile("features=1x4:1x4:8x4"), parse_profile("category=1:1:8")])
    build_and_deploy(two_input_onnx, "fraud", profiles=profiles)
    service = AuditedService.open("fraud")
    with pytest.raises(ValueError, match="missing input"):
        service.predict({"features": np.ones((1, 4), np.float32)})
    with pytest.raises(ValueError, match="axis 1"):
        service.predict({"features": np.ones((1, 5), np.float32), "category": np.zeros(1, np.int64)})
    with pytest.raises(ValueError, match="dtype"):
        service.predict({"features": np.ones((1, 4), np.float32), "category": np.zeros(1, np.float32)})
    assert Prediction.objects.count() == 0
