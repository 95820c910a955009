"""Calibration sets: registered content-addressed with digest, sample count and per-input
dtype/shape, validated against the model's inputs; bad files leave nothing behind."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from compliance.ledger import ledger
from compliance.lib.store import default_store
from compliance.models import LedgerEntry
from inference.calibration import do_register_calibration, register_calibration_file
from lineage.actions import ActionError
from lineage.models import CalibrationSet
from tests.conftest import register

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def good(n: int = 20) -> dict:
    rng = np.random.default_rng(1)
    return {"features": rng.normal(size=(n, 4)).astype(np.float32), "category": rng.integers(0, 10, n).astype(np.int64)}


@pytest.fixture
def model(db, two_input_onnx):
    return register(two_input_onnx, name="fraud")


def store_files() -> set:
    root = default_store().root / "sha256"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_it_registers_a_calibration_set_with_its_digest_and_sample_count(model):
    data = npz(**good())
    calibration, created = do_register_calibration(data, model=model, name="cal", registered_by="bob")
    assert created
    assert calibration.sha256 == hashlib.sha256(data).hexdigest()
    assert calibration.sample_count == 20 and calibration.size == len(data)
    assert calibration.inputs == {"features": {"dtype": "float32", "shape": [20, 4]},
                                  "category": {"dtype": "int64", "shape": [20]}}
    assert default_store().read(calibration.sha256) == data
    entry = LedgerEntry.objects.get(kind="calibration.registered")
    payload = ledger.payload_of(entry)
    assert payload["sha256"] == calibration.sha256 and payload["sample_count"] == 20
    assert payload["model_sha256"] == model.sha256 and entry.index == calibration.ledger_index
    again, created = do_register_calibration(data, model=model, name="cal", registered_by="bob")
    assert not created and again.id == calibration.id
    assert LedgerEntry.objects.filter(kind="calibration.registered").count() == 1


BAD = [
    ("wrong input names", lambda: npz(features=good()["features"], cat=good()["category"]),
     "missing input(s) category; unknown input(s) cat"),
    ("wrong dtype", lambda: npz(features=good()["features"].astype(np.float64), category=good()["category"]),
     "'features' has dtype float64, the model expects float32"),
    ("wrong shape", lambda: npz(features=np.zeros((20, 5), np.float32), category=good()["category"]),
     "'features' has shape 20x5, the model expects batchx4"),
    ("wrong rank", lambda: npz(features=np.zeros((20, 4, 1), np.float32), category=good()["category"]),
     "has rank 2"),
    ("too few samples", lambda: npz(**good(3)), "has 3 samples; at least 16 are needed"),
    ("uneven samples", lambda: npz(features=good(20)["features"], category=good(18)["category"]),
     "different sample counts"),
    ("not an npz", lambda: b"this is not a zip archive at all", "not an .npz file"),
    ("truncated", lambda: npz(**good())[:-200], "not an .npz file (or a truncated one)"),
    ("empty", lambda: b"", "empty"),
    ("nan", lambda: npz(features=np.full((20, 4), np.nan, np.float32), category=good()["category"]),
     "NaN or infinite"),
    ("strings", lambda: npz(features=np.array(["a"] * 20), category=good()["category"]), "only numeric arrays"),
]


@pytest.mark.parametrize("label,make,message", BAD, ids=[b[0] for b in BAD])
def test_it_refuses_a_bad_calibration_set_and_stores_nothing(model, label, make, message):
    before = store_files()
    with pytest.raises(ActionError) as refused:
        do_register_calibration(make(), model=model, name="bad", registered_by="bob")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert CalibrationSet.objects.count() == 0
    assert not LedgerEntry.objects.filter(kind="calibration.registered").exists()
    assert store_files() == before
    assert not list((default_store().root / "tmp").glob("incoming-*"))


def test_it_refuses_a_damaged_member_inside_a_valid_archive(model):
    data = bytearray(npz(**good()))
    start = data.index(b"\x93NUMPY", 200)  # second member's header
    data[start + 100:start + 120] = b"\xff" * 20
    with pytest.raises(ActionError):
        do_register_calibration(bytes(data), model=model, name="bad", registered_by="bob")
    assert CalibrationSet.objects.count() == 0


def test_it_refuses_a_calibration_set_larger_than_the_upload_limit(model):
    with override_settings(TRACELEDGER_MAX_UPLOAD_BYTES=300):
        with pytest.raises(ActionError, match="byte limit"):
            do_register_calibration(npz(**good()), model=model, name="big", registered_by="bob")
    assert CalibrationSet.objects.count() == 0


def test_it_registers_from_a_file_path_with_the_ci_user(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    path = tmp_path / "calib.npz"
    path.write_bytes(npz(**good()))
    calibration = register_calibration_file(str(path), model)
    assert calibration.name == "calib" and calibration.registered_by == "ci-bot"
    with pytest.raises(ActionError, match="no such calibration file"):
        register_calibration_file(str(tmp_path / "missing.npz"), model)


def test_it_registers_through_the_cli(model, tmp_path, capsys):
    path = tmp_path / "calib.npz"
    path.write_bytes(npz(**good()))
    call_command("register_calibration", str(path), "--model", str(model.id), "--user", "bob", "--json")
    assert '"sample_count": 20' in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(CommandError, match="not an .npz file"):
        call_command("register_calibration", str(bad), "--model", str(model.id))


def test_it_uploads_a_calibration_set_through_the_api(model, alice, bob, dave):
    client = APIClient()
    url = f"/api/v1/models/{model.id}/calibrations/"

    def upload(data: bytes):
        return client.post(url, {"file": io.BytesIO(data), "name": "cal"}, format="multipart")

    client.force_authenticate(dave)
    assert upload(npz(**good())).status_code == 403
    client.force_authenticate(alice)
    assert upload(npz(**good())).status_code == 403  # auditors read only
    assert client.get(url).status_code == 200
    client.force_authenticate(bob)
    response = upload(npz(**good()))
    assert response.status_code == 201, response.json()
    assert response.json()["sample_count"] == 20 and response.json()["registered_by"] == "bob"
    bad = upload(npz(**good(3)))
    assert bad.status_code == 400 and "at least 16" in bad.json()["error"]
    assert client.post(url, {}, format="multipart").status_code == 400
    assert client.get(f"/api/v1/models/{'0' * 64}/calibrations/").status_code == 404
    listed = client.get(url).json()["results"]
    assert [c["sha256"] for c in listed] == [response.json()["sha256"]]
    assert CalibrationSet.objects.count() == 1
