"""The audited runtime's hot path: full provenance metadata on every answer, feeds
passed through untouched when they already match the model, converted or refused
otherwise."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inference import digests
from inference.provenance.recorder import ListRecorder
from inference.runtime import AuditedService
from lineage.models import Prediction, PredictionSalt
from lineage.onnx_model import FeedChecker

pytestmark = pytest.mark.embedded


def test_it_returns_outputs_with_their_provenance(credit_deployment):
    service = AuditedService.open("credit")
    x = np.array([[41, 52.0, 0.31, 3, 1, 9]], dtype=np.float32)
    before = time.time()
    outputs, meta = service.predict({"X": x})
    assert set(meta) == {"inference_id", "deployment", "engine_sha256", "timestamp", "input_digest",
                         "output_digest", "latency_ms"}
    iid = uuid.UUID(meta["inference_id"])
    assert iid.version == 7 and abs((iid.int >> 80) / 1000 - before) < 5
    stamp = datetime.fromisoformat(meta["timestamp"])
    assert meta["timestamp"].endswith("Z") and abs(stamp - datetime.now(timezone.utc)) < timedelta(seconds=5)
    assert meta["deployment"] == {"id": credit_deployment.id, "service": "credit"}
    assert meta["engine_sha256"] == credit_deployment.engine_sha256
    assert 0 < float(meta["latency_ms"]) < 1000
    salt = bytes.fromhex(PredictionSalt.objects.get(inference_id=iid).salt)
    assert meta["output_digest"] == digests.output_commitment(salt, outputs) != "v2:" + digests.tensors_digest(outputs)
    row = Prediction.objects.get(inference_id=iid)
    assert row.ledger_payload() == {k: meta[k] for k in ("inference_id", "engine_sha256", "timestamp",
                                                          "input_digest", "output_digest")} | {
        "deployment_id": credit_deployment.id}
    assert row.latency_us == round(float(meta["latency_ms"]) * 1000)


def test_it_gives_every_call_its_own_id_and_salt(credit_deployment):
    recorder = ListRecorder()
    service = AuditedService.open("credit", recorder=recorder)
    x = np.zeros((1, 6), np.float32)
    metas = [service.predict({"X": x})[1] for _ in range(50)]
    assert len({m["inference_id"] for m in metas}) == 50
    assert len({m["input_digest"] for m in metas}) == 50  # same input, fresh salt each time
    assert len({m["output_digest"] for m in metas}) == 50  # same outputs too: salted like the input
    assert len({r.salt for r in recorder.records}) == 50
    assert recorder.flush() == 50


def test_it_passes_matching_feeds_through_and_converts_or_refuses_the_rest():
    check = FeedChecker([{"name": "X", "dtype": "float32", "shape": ["batch", 6]},
                         {"name": "ids", "dtype": "int64", "shape": [2]}])
    feeds = {"X": np.ones((3, 6), np.float32), "ids": np.arange(2, dtype=np.int64)}
    assert check(feeds) is feeds  # nothing copied
    strided = {"X": np.ones((3, 12), np.float32)[:, ::2], "ids": np.arange(2, dtype=">i8")}
    converted = check(strided)
    assert converted["X"].flags.c_contiguous and converted["ids"].dtype == np.dtype("<i8")
    salt = bytes(32)
    assert digests.input_commitment(salt, converted) == digests.input_commitment(salt, strided)
    assert check({"X": np.ones((1, 6)), "ids": [1, 2]})["X"].dtype == np.float32
    with pytest.raises(ValueError, match="axis 1"):
        check({"X": np.ones((1, 5), np.float32), "ids": np.arange(2)})
    with pytest.raises(ValueError, match="missing input"):
        check({"X": np.ones((1, 6), np.float32)})
    with pytest.raises(ValueError, match="dtype"):
        check({"X": np.ones((1, 6), np.float32), "ids": np.array(["a", "b"])})
