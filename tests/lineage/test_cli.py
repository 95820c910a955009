"""The command-line contract: --json shapes, one-line errors, nothing half-stored."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from compliance.models import LedgerEntry
from lineage.models import Build, ModelSource, Prediction
from tests.conftest import ROOT

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def run_json(*args) -> dict:
    from io import StringIO

    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def store_files() -> set:
    root = settings.TRACELEDGER_STORE_DIR / "sha256"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_it_runs_the_chain_from_the_command_line(worker, two_input_onnx, tmp_path, monkeypatch):
    path = tmp_path / "fraud.onnx"
    path.write_bytes(two_input_onnx)
    monkeypatch.setenv("GITHUB_ACTOR", "ci-runner")
    monkeypatch.setenv("GIT_COMMIT", "c" * 40)
    registered = run_json("register_model", str(path), "--repo", "https://git.example.com/fraud")
    assert registered["sha256"] == ModelSource.objects.get(pk=registered["id"]).sha256
    built = run_json("build_engine", "--model", registered["sha256"], "--shape", "features=1x4:4x4:16x4",
                     "--shape", "category=1:4:16", "--wait")
    assert built["status"] == "succeeded" and built["engine_sha256"] and built["build_id"] and built["engine_id"]
    build = Build.objects.get(pk=built["build_id"])
    assert build.submitter == "ci-runner" and build.commit == "c" * 40
    deployed = run_json("deploy", str(built["engine_id"]), "--service", "fraud")
    assert deployed["deployment_id"]
    inputs = tmp_path / "x.npz"
    np.savez(inputs, features=np.ones((2, 4), np.float32), category=np.array([1, 2], np.int64))
    predicted = run_json("predict", "--service", "fraud", "--input", str(inputs))
    assert len(predicted["outputs"]["score"]) == 2
    inference_id = predicted["metadata"]["inference_id"]
    traced = run_json("trace", inference_id)
    assert traced["ok"] is True
    assert [link["kind"] for link in traced["links"]][:3] == ["prediction", "deployment", "engine"]
    assert all(link["ok"] for link in traced["links"])


@pytest.mark.parametrize("content, reason", [
    (b"this is not a model at all", "not an ONNX model"),
    (b"", "empty"),
])
def test_it_refuses_files_that_are_not_onnx(content, reason, tmp_path, db):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    before = store_files()
    with pytest.raises(CommandError, match=reason):
        call_command("register_model", str(path), "--repo", "r", "--commit", "a" * 40)
    assert ModelSource.objects.count() == 0 and LedgerEntry.objects.count() == 0
    assert store_files() == before


def test_it_refuses_a_truncated_onnx_and_leaves_nothing(credit_onnx, tmp_path, db):
    path = tmp_path / "cut.onnx"
    path.write_bytes(credit_onnx[: len(credit_onnx) // 2])
    before = store_files()
    with pytest.raises(CommandError, match="ONNX"):
        call_command("register_model", str(path), "--repo", "r", "--commit", "a" * 40)
    assert ModelSource.objects.count() == 0
    assert store_files() == before
    assert not any((settings.TRACELEDGER_STORE_DIR / "tmp").iterdir())


def test_it_names_an_unknown_model(db):
    with pytest.raises(CommandError, match="unknown model '999'"):
        call_command("build_engine", "--model", "999")
    assert Build.objects.count() == 0


@pytest.mark.parametrize("shape, reason", [
    ("nosuch=1x4:1x4:1x4", "unknown input 'nosuch'"),
    ("features=1x5:1x5:1x5", "dimension 1 is 5"),
    ("features=4x4:2x4:8x4", "min <= opt <= max"),
    ("features=1x4", "rank"),
    ("features=oops", "bad shape"),
])
def test_it_refuses_build_shapes_that_do_not_match_the_model(shape, reason, two_input_onnx, tmp_path, db):
    from tests.conftest import register

    model = register(two_input_onnx)
    if shape == "features=1x4":
        shape = "features=4:4:4"
    with pytest.raises(CommandError, match=reason):
        call_command("build_engine", "--model", str(model.id), "--shape", shape)
    assert Build.objects.count() == 0


def test_it_refuses_an_unknown_precision(two_input_onnx, db):
    from tests.conftest import register

    model = register(two_input_onnx)
    with pytest.raises(CommandError, match="unknown precision 'fp8'"):
        call_command("build_engine", "--model", str(model.id), "--precision", "fp8")
    assert Build.objects.count() == 0


def test_it_refuses_predict_inputs_that_do_not_match(worker, two_input_onnx, tmp_path):
    from inference.build_requests import do_request_build
    from lineage.actions import do_deploy
    from tests.conftest import register, wait_for_build

    model = register(two_input_onnx)
    build = wait_for_build(do_request_build(model, submitter="bob", profiles={}))
    do_deploy(build.engine, service="fraud", acting_user="bob")
    inputs = tmp_path / "x.npz"
    np.savez(inputs, features=np.ones((2, 3), np.float32), category=np.array([1, 2], np.int64))
    with pytest.raises(CommandError, match="model expects batchx4"):
        call_command("predict", "--service", "fraud", "--input", str(inputs))
    assert Prediction.objects.count() == 0


def test_it_rejects_a_malformed_inference_id_with_exit_1():
    proc = subprocess.run([sys.executable, "manage.py", "trace", "not-an-id"], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["CommandError: malformed inference id 'not-an-id': expected a UUID like 0190f2c4-…"]
