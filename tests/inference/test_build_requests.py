"""Build requests: the spec is validated against the model before anything is queued
(CLI, API and action alike), TensorRT where it is missing is a one-line refusal, and the
CLI takes --calibration, --shape, --wait and the CI variables for commit and submitter."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from compliance.models import LedgerEntry
from inference.build_requests import do_request_build
from inference.calibration import do_register_calibration
from inference.specs import parse_profile
from lineage.actions import ActionError
from lineage.models import Build, CalibrationSet
from tests.conftest import register
from tests.terminal import Terminal, counted

pytestmark = [pytest.mark.embedded]

try:
    import tensorrt  # noqa: F401

    HAVE_TRT = True
except Exception:
    HAVE_TRT = False


@pytest.fixture
def worker(module_worker, transactional_db):
    return module_worker


def npz(n: int = 20, **overrides) -> bytes:
    rng = np.random.default_rng(1)
    arrays = {"features": rng.normal(size=(n, 4)).astype(np.float32),
              "category": rng.integers(0, 10, n).astype(np.int64)} | overrides
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def queued_messages() -> int:
    if not settings.REDIS_URL:
        return 0
    import redis

    return redis.Redis.from_url(settings.REDIS_URL).llen("gpu")


def assert_nothing_queued():
    assert Build.objects.count() == 0
    assert not LedgerEntry.objects.filter(kind="build.requested").exists()
    assert queued_messages() == 0


BAD_SPECS = [
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"precision": "bf16"}, "backend onnxruntime does not support precision bf16"),
    ({"backend": "openvino"}, "unknown backend 'openvino'"),
    ({"profiles": ["feature=1x4:8x4:64x4"]}, "profile for unknown input 'feature'"),
    ({"profiles": ["features=1x5:8x5:64x5"]}, "dimension 1 is 5, the model fixes it at 4"),
    ({"profiles": ["features=1x4x1:8x4x1:64x4x1"]}, "has rank 3, the model's input has rank 2"),
    ({"profiles": ["features=8x4:1x4:64x4"]}, "min <= opt <= max"),
    ({"options": {"refit": True}}, "unknown build option(s) refit for backend onnxruntime"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("spec,message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_it_refuses_a_bad_spec_before_anything_is_queued(two_input_onnx, spec, message):
    model = register(two_input_onnx)
    profiles = dict(parse_profile(p) for p in spec.get("profiles", []))
    with pytest.raises(ActionError) as refused:
        do_request_build(model, backend=spec.get("backend", "onnxruntime"), precision=spec.get("precision", "fp32"),
                         profiles=profiles, options=spec.get("options"), submitter="bob")
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert_nothing_queued()


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
@pytest.mark.django_db
def test_it_refuses_tensorrt_where_it_is_missing_in_one_line(two_input_onnx, capsys):
    model = register(two_input_onnx)
    with pytest.raises(ActionError) as refused:
        do_request_build(model, backend="tensorrt", submitter="bob")
    assert str(refused.value).startswith("TensorRT is not installed")
    assert "backend onnxruntime" in str(refused.value)
    with pytest.raises(CommandError) as cli:
        call_command("build_engine", "--model", str(model.id), "--backend", "tensorrt",
                     "--shape", "features=1x4:8x4:64x4", "--shape", "category=1:8:64")
    assert str(cli.value).startswith("TensorRT is not installed") and "\n" not in str(cli.value)
    assert_nothing_queued()


@pytest.mark.django_db
def test_it_checks_tensorrt_specs_when_the_workers_declare_it(two_input_onnx):
    model = register(two_input_onnx)
    with override_settings(TRACELEDGER_BUILD_BACKENDS=["onnxruntime", "tensorrt"]):
        with pytest.raises(ActionError, match="'features' has dynamic axes; TensorRT needs a profile"):
            do_request_build(model, backend="tensorrt", submitter="bob")
        with pytest.raises(ActionError, match="refittable engines are refused"):
            do_request_build(model, backend="tensorrt", submitter="bob", options={"refit": True},
                             profiles=dict([parse_profile("features=1x4:8x4:64x4"), parse_profile("category=1:8:64")]))
    with override_settings(TRACELEDGER_BUILD_BACKENDS=["onnxruntime"]):
        with pytest.raises(ActionError, match="not offered by the build workers"):
            do_request_build(model, backend="tensorrt", submitter="bob")
    assert_nothing_queued()


@pytest.mark.django_db
def test_it_refuses_a_calibration_set_that_does_not_fit_the_spec(two_input_onnx, credit_onnx):
    model = register(two_input_onnx)
    other = register(credit_onnx, name="credit")
    calibration, _ = do_register_calibration(npz(), model=model, name="cal", registered_by="bob")
    with pytest.raises(ActionError, match="calibration set does not match the model"):
        do_request_build(other, precision="int8", calibration=calibration, submitter="bob")
    with pytest.raises(ActionError, match="outside the profile"):
        do_request_build(model, precision="int8", calibration=calibration, submitter="bob",
                         profiles=dict([parse_profile("features=2x4:8x4:64x4")]))
    with pytest.raises(ActionError, match="is not registered for model"):
        do_request_build(other, precision="int8", options={"calibration_sha256": calibration.sha256}, submitter="bob")
    assert_nothing_queued()


def test_it_builds_from_the_cli_with_calibration_shapes_wait_and_ci_variables(worker, two_input_onnx, tmp_path,
                                                                              monkeypatch, capsys):
    model = register(two_input_onnx)
    path = tmp_path / "calib.npz"
    path.write_bytes(npz())
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    monkeypatch.setenv("GIT_COMMIT", "d" * 40)
    for name in ("TRACELEDGER_USER", "GITLAB_USER_LOGIN", "CI_COMMIT_SHA"):
        monkeypatch.delenv(name, raising=False)
    err = Terminal()
    call_command("build_engine", "--model", model.sha256, "--precision", "int8", "--calibration", str(path),
                 "--shape", "features=1x4:8x4:64x4", "--shape", "category=1:8:64", "--wait", "--json", stderr=err)
    data = json.loads(capsys.readouterr().out)  # stdout stays one JSON object; the stages went to stderr
    assert f"build {data['build_id']}" in err.getvalue() and counted(4, 4) in err.getvalue(), err.getvalue()
    build = Build.objects.get(pk=data["build_id"])
    assert data["status"] == "succeeded" and data["engine_sha256"] == build.engine.sha256
    assert build.submitter == data["submitter"] == "octocat" and build.commit == "d" * 40
    calibration = CalibrationSet.objects.get()
    assert calibration.registered_by == "octocat" and data["calibration_sha256"] == calibration.sha256
    assert build.options["calibration_sha256"] == calibration.sha256
    assert build.engine.metadata["quantization"] == "static"
    assert build.profiles["category"] == {"min": [1], "opt": [8], "max": [64]}

    monkeypatch.delenv("GITHUB_ACTOR")
    monkeypatch.delenv("GIT_COMMIT")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "gitlab-runner")
    monkeypatch.setenv("CI_COMMIT_SHA", "e" * 40)
    call_command("build_engine", "--model", str(model.id), "--wait")
    summary = capsys.readouterr().out
    latest = Build.objects.order_by("-id").first()
    assert f"build {latest.id}: succeeded; engine {latest.engine.id} sha256 {latest.engine.sha256}" in summary
    assert latest.submitter == "gitlab-runner" and latest.commit == "e" * 40


@pytest.mark.django_db
def test_it_does_not_store_a_calibration_set_for_a_refused_cli_request(two_input_onnx, tmp_path):
    model = register(two_input_onnx)
    path = tmp_path / "calib.npz"
    path.write_bytes(npz())
    with pytest.raises(CommandError, match="unknown precision"):
        call_command("build_engine", "--model", str(model.id), "--precision", "int4", "--calibration", str(path))
    with pytest.raises(CommandError, match="at least 16"):
        path.write_bytes(npz(n=4))
        call_command("build_engine", "--model", str(model.id), "--precision", "int8", "--calibration", str(path))
    assert CalibrationSet.objects.count() == 0
    assert_nothing_queued()


def test_it_requests_a_build_with_a_calibration_set_through_the_api(worker, two_input_onnx, alice, bob):
    model = register(two_input_onnx)
    calibration, _ = do_register_calibration(npz(), model=model, name="cal", registered_by="bob")
    client = APIClient()
    body = {"model": model.sha256, "precision": "int8", "calibration": calibration.sha256,
            "shapes": ["features=1x4:8x4:64x4", "category=1:8:64"]}
    client.force_authenticate(alice)
    assert client.post("/api/v1/builds/", body, format="json").status_code == 403
    client.force_authenticate(bob)
    bad = client.post("/api/v1/builds/", body | {"precision": "bf16"}, format="json")
    assert bad.status_code == 400 and "does not support precision bf16" in bad.json()["error"]
    unknown = client.post("/api/v1/builds/", body | {"calibration": "f" * 64}, format="json")
    assert unknown.status_code == 400 and "unknown calibration set" in unknown.json()["error"]
    assert Build.objects.count() == 0
    response = client.post("/api/v1/builds/", body, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["calibration_sha256"] == calibration.sha256
    from tests.conftest import wait_for_build

    build = wait_for_build(Build.objects.get(pk=response.json()["id"]))
    detail = client.get(f"/api/v1/builds/{build.id}/").json()
    assert detail["status"] == "succeeded" and detail["parity_ok"] is True
    assert detail["parity"]["inputs"] == "calibration" and "static INT8" in detail["log"]
    assert detail["artifacts"]["inspector.json"]["sha256"]
