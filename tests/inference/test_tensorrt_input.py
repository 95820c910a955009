"""TensorRT spec-to-config logic that runs without TensorRT: the model TensorRT builds
from (a Q/DQ model quantized from the calibration set, an FP16 conversion for strongly
typed builds) and the plan made for it; and a build where the worker lacks TensorRT
fails cleanly in one line."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from django.test import override_settings

from compliance.ledger import ledger
from compliance.models import LedgerEntry
from inference.backends.base import BuildSpec, Profile
from inference.backends.tensorrt_input import prepare_input
from inference.backends.tensorrt_plan import inspect_onnx_precision, plan_build
from inference.build_requests import do_request_build
from inference.builder import run_build
from lineage.models import Build, Engine
from tests.conftest import register

PROFILES = {"features": Profile((1, 4), (8, 4), (64, 4)), "category": Profile((1,), (8,), (64,))}

try:
    import tensorrt  # noqa: F401

    HAVE_TRT = True
except Exception:  # ImportError, or OSError when libnvinfer cannot load
    HAVE_TRT = False


@pytest.fixture
def onnx_path(tmp_path, two_input_onnx):
    path = tmp_path / "two_input.onnx"
    path.write_bytes(two_input_onnx)
    return str(path)


@pytest.fixture
def calibration_path(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "calib.npz"
    np.savez(path, features=rng.normal(size=(32, 4)).astype(np.float32),
             category=rng.integers(0, 10, 32).astype(np.int64))
    return str(path)


def precision_of(path: str):
    return inspect_onnx_precision(onnx.load(path))


@pytest.mark.parametrize("major", [10, 11])
def test_tensorrt_spec_to_config_int8_from_a_calibration_set_builds_a_qdq_model(onnx_path, calibration_path,
                                                                                  tmp_path, major):
    spec = BuildSpec(precision="int8", profiles=PROFILES, calibration_path=calibration_path)
    prepared = prepare_input(onnx_path, spec, major, str(tmp_path))
    assert prepared.derived and "Q/DQ" in prepared.note
    has_qdq, precisions = precision_of(prepared.path)
    assert has_qdq
    plan = plan_build(replace(spec, calibration_path=None), major, has_qdq, precisions)
    assert plan.precision == "int8"
    if major == 10:
        assert plan.builder_flags == ("INT8",) and plan.precision_source == "builder_flags"
    else:
        assert plan.builder_flags == () and plan.precision_source == "model" and plan.strongly_typed
    assert not any("calibration set not used" in n for n in plan.notes)
    # the Q/DQ model still computes the model's function, int64 Gather input included
    feeds = {"features": np.ones((3, 4), np.float32), "category": np.array([0, 4, 9], np.int64)}
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(prepared.path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.allclose(got, ref, atol=0.05)


def test_tensorrt_spec_to_config_fp16_is_converted_only_for_strongly_typed_builds(onnx_path, tmp_path):
    spec = BuildSpec(precision="fp16", profiles=PROFILES)
    on_10 = prepare_input(onnx_path, spec, 10, str(tmp_path))
    assert not on_10.derived and on_10.path == onnx_path
    assert plan_build(spec, 10, *precision_of(onnx_path)).builder_flags == ("FP16",)
    on_11 = prepare_input(onnx_path, spec, 11, str(tmp_path))
    assert on_11.derived and "FP16" in on_11.note
    has_qdq, precisions = precision_of(on_11.path)
    assert "fp16" in precisions
    plan = plan_build(spec, 11, has_qdq, precisions)
    assert plan.precision_source == "model" and plan.builder_flags == ()
    # the same request against the unconverted model is refused on 11
    with pytest.raises(Exception, match="strongly typed networks"):
        plan_build(spec, 11, *precision_of(onnx_path))
    strongly = prepare_input(onnx_path, replace(spec, options={"strongly_typed": True}), 10, str(tmp_path))
    assert strongly.derived


def test_tensorrt_spec_to_config_leaves_fp32_and_qdq_models_as_registered(onnx_path, calibration_path, tmp_path):
    assert not prepare_input(onnx_path, BuildSpec(precision="fp32"), 11, str(tmp_path)).derived
    assert not prepare_input(onnx_path, BuildSpec(precision="int8"), 10, str(tmp_path)).derived  # refused by the plan
    qdq = prepare_input(onnx_path, BuildSpec(precision="int8", calibration_path=calibration_path), 10, str(tmp_path))
    again = prepare_input(qdq.path, BuildSpec(precision="int8", calibration_path=calibration_path), 10, str(tmp_path))
    assert not again.derived  # already explicitly quantized


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
@pytest.mark.embedded
@pytest.mark.django_db
def test_a_tensorrt_build_on_a_worker_without_tensorrt_fails_cleanly(two_input_onnx):
    model = register(two_input_onnx)
    with override_settings(TRACELEDGER_BUILD_BACKENDS=["onnxruntime", "tensorrt"]):
        requested = do_request_build(model, backend="tensorrt", profiles=PROFILES, submitter="bob")
    assert requested.status == Build.QUEUED
    done = run_build(requested.id)  # here, as a worker without TensorRT would
    assert done.status == Build.FAILED
    assert done.error.startswith("TensorRT is not installed") and "\n" not in done.error
    assert not Engine.objects.exists()
    entry = LedgerEntry.objects.filter(kind="build.failed", subject=f"build:{done.id}").get()
    assert ledger.payload_of(entry)["error"] == done.error


def test_tensorrt_prepare_input_refuses_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(io.BytesIO(b"\x08\x07junk").getvalue())
    with pytest.raises(Exception, match="not a readable ONNX model"):
        prepare_input(str(path), BuildSpec(precision="int8"), 10, str(tmp_path))
