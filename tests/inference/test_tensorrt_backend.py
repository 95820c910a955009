"""TensorRT backend.

(a) Spec-to-config logic, tested without TensorRT: what plan_build decides for a
    BuildSpec on TensorRT 10.x and 11.x, profile checks, ONNX precision inspection,
    parser-error formatting, and the one-line BackendUnavailable when tensorrt or
    pycuda does not import. These never skip.
(b) Real TensorRT: build a tiny two-input ONNX model with a dynamic batch axis, run
    it through pycuda buffers and compare with onnxruntime. These skip where tensorrt
    does not import (its wheels come from NVIDIA's index, unreachable here).
"""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.backends.base import BackendUnavailable, BuildError, BuildSpec, Profile
from inference.backends.tensorrt_plan import (
    check_profiles_against_inputs,
    format_parser_errors,
    inspect_onnx_precision,
    one_line,
    parse_major,
    plan_build,
    validate_profiles,
)

TRT_SKIP_REASON = "TensorRT is not installed: its wheels come from NVIDIA's index, unreachable here"
BATCH = Profile(min=(1, 8), opt=(4, 8), max=(16, 8))


def tiny_model(dynamic: bool = True, weight_type=TensorProto.FLOAT, qdq: bool = False,
               extra_op: str | None = None) -> onnx.ModelProto:
    """out = Relu((a + b) @ W + bias), prod = a * b; a, b: [N, 8] float32."""
    batch = "N" if dynamic else 2
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Add", ["a", "b"], ["s"])]
    inits = [numpy_helper.from_array(bias, "bias")]
    if weight_type == TensorProto.FLOAT16:
        inits.append(numpy_helper.from_array(w.astype(np.float16), "w16"))
        nodes.append(helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
                  numpy_helper.from_array(np.array(0, np.int8), "zero")]
        nodes += [helper.make_node("QuantizeLinear", ["s", "scale", "zero"], ["sq"]),
                  helper.make_node("DequantizeLinear", ["sq", "scale", "zero"], ["sd"])]
        matmul_in = "sd"
    else:
        matmul_in = "s"
    nodes += [helper.make_node("MatMul", [matmul_in, "w"], ["m"]),
              helper.make_node("Add", ["m", "bias"], ["pre"]),
              helper.make_node("Relu", ["pre"], ["out"]),
              helper.make_node("Mul", ["a", "b"], ["prod"])]
    opsets = [helper.make_opsetid("", 17)]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["prod"], ["odd"], domain="example.custom"))
        opsets.append(helper.make_opsetid("example.custom", 1))
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 4]),
               helper.make_tensor_value_info("prod", TensorProto.FLOAT, [batch, 8])]
    if extra_op:
        outputs.append(helper.make_tensor_value_info("odd", TensorProto.FLOAT, [batch, 8]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [batch, 8]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [batch, 8])],
        outputs, initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=opsets, producer_name="traceledger-tests")
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------
# (a) spec-to-config logic, tested without TensorRT
# ---------------------------------------------------------------------------

def test_parse_major_reads_the_leading_number():
    assert parse_major("10.13.0.35") == 10
    assert parse_major("11.4.0.106") == 11
    with pytest.raises(BuildError, match="major version"):
        parse_major("ten")


@pytest.mark.parametrize("precision,flag", [("fp16", "FP16"), ("bf16", "BF16")])
def test_trt10_sets_the_precision_builder_flag(precision, flag):
    plan = plan_build(BuildSpec(precision=precision, profiles={"a": BATCH}), 10, model_has_qdq=False)
    assert plan.builder_flags == (flag,)
    assert plan.network_flags == ()  # explicit batch is implicit in 10.x: create_network(0)
    assert plan.precision_source == "builder_flags"
    assert plan.strongly_typed is False
    assert plan.profiles == {"a": BATCH}


def test_trt10_fp32_sets_no_precision_flag():
    plan = plan_build(BuildSpec(precision="fp32"), 10, model_has_qdq=False)
    assert plan.builder_flags == ()
    assert plan.cleared_builder_flags == ()
    assert plan.hardware_compatibility_level == "NONE"


def test_trt10_refuses_calibration_only_int8():
    spec = BuildSpec(precision="int8", calibration_path="/data/calib.npz")
    with pytest.raises(BuildError) as caught:
        plan_build(spec, 10, model_has_qdq=False)
    message = str(caught.value)
    assert "quantize it to Q/DQ first" in message
    assert "calibration set alone is not used" in message
    assert "\n" not in message


def test_trt10_int8_for_a_qdq_model_sets_the_int8_flag_and_notes_the_unused_calibration():
    spec = BuildSpec(precision="int8", calibration_path="/data/calib.npz")
    plan = plan_build(spec, 10, model_has_qdq=True)
    assert plan.builder_flags == ("INT8",)
    assert any("calibration set not used" in note for note in plan.notes)


def test_trt10_refuses_a_non_int8_request_for_a_qdq_model():
    with pytest.raises(BuildError, match="explicitly quantized"):
        plan_build(BuildSpec(precision="fp16"), 10, model_has_qdq=True)


def test_trt10_strongly_typed_option_uses_the_creation_flag_and_the_model_precision():
    plan = plan_build(BuildSpec(precision="fp16", options={"strongly_typed": True}), 10,
                      model_has_qdq=False, model_precisions={"fp32", "fp16"})
    assert plan.network_flags == ("STRONGLY_TYPED",)
    assert plan.builder_flags == ()
    assert plan.precision_source == "model"
    with pytest.raises(BuildError, match="takes no FP16 builder flag"):
        plan_build(BuildSpec(precision="fp16", options={"strongly_typed": True}), 10, model_has_qdq=False)


def test_trt11_refuses_fp16_for_an_fp32_model():
    with pytest.raises(BuildError) as caught:
        plan_build(BuildSpec(precision="fp16"), 11, model_has_qdq=False, model_precisions={"fp32"})
    assert "strongly typed" in str(caught.value)
    assert "FP16 builder flag" in str(caught.value)
    assert "ModelOpt AutoCast" in str(caught.value)


def test_trt11_takes_fp16_from_an_fp16_model_without_flags():
    plan = plan_build(BuildSpec(precision="fp16"), 11, model_has_qdq=False, model_precisions={"fp32", "fp16"})
    assert plan.builder_flags == ()
    assert plan.network_flags == ()  # STRONGLY_TYPED is deprecated and ignored in 11.x
    assert plan.strongly_typed is True
    assert plan.precision_source == "model"


def test_trt11_int8_needs_qdq_and_never_sets_int8():
    with pytest.raises(BuildError, match="Q/DQ"):
        plan_build(BuildSpec(precision="int8", calibration_path="c.npz"), 11, model_has_qdq=False)
    plan = plan_build(BuildSpec(precision="int8"), 11, model_has_qdq=True)
    assert "INT8" not in plan.builder_flags
    assert plan.precision_source == "model"


def test_trt11_refuses_fp32_for_a_reduced_precision_model():
    with pytest.raises(BuildError, match="takes precision from the model"):
        plan_build(BuildSpec(precision="fp32"), 11, model_has_qdq=False, model_precisions={"fp32", "bf16"})


@pytest.mark.parametrize("option", ["refit", "strip_plan", "refit_identical", "refit_individual"])
@pytest.mark.parametrize("major", [10, 11])
def test_refittable_builds_are_refused(option, major):
    with pytest.raises(BuildError, match="weights could change after signing"):
        plan_build(BuildSpec(options={option: True}), major, model_has_qdq=False)


def test_unknown_options_precisions_and_versions_are_refused():
    with pytest.raises(BuildError, match="unknown TensorRT build option"):
        plan_build(BuildSpec(options={"fp16": True}), 10, model_has_qdq=False)
    with pytest.raises(BuildError, match="unknown precision"):
        plan_build(BuildSpec(precision="fp8"), 10, model_has_qdq=False)
    for major in (9, 12):
        with pytest.raises(BuildError, match=f"TensorRT {major}.x is not supported"):
            plan_build(BuildSpec(), major, model_has_qdq=False)
    with pytest.raises(BuildError, match="workspace_bytes"):
        plan_build(BuildSpec(workspace_bytes=0), 10, model_has_qdq=False)


def test_compatibility_options_map_to_trt_settings():
    spec = BuildSpec(options={"hardware_compatibility_level": "ampere_plus", "version_compatible": True,
                              "tf32": False, "builder_optimization_level": 5})
    plan = plan_build(spec, 11, model_has_qdq=False)
    assert plan.hardware_compatibility_level == "AMPERE_PLUS"
    assert "VERSION_COMPATIBLE" in plan.builder_flags
    assert plan.cleared_builder_flags == ("TF32",)
    assert plan.builder_optimization_level == 5
    with pytest.raises(BuildError, match="hardware_compatibility_level"):
        plan_build(BuildSpec(options={"hardware_compatibility_level": "turing"}), 10, model_has_qdq=False)
    with pytest.raises(BuildError, match="builder_optimization_level"):
        plan_build(BuildSpec(options={"builder_optimization_level": 9}), 10, model_has_qdq=False)


@pytest.mark.parametrize("profile,fragment", [
    (Profile((4, 8), (2, 8), (16, 8)), "min <= opt <= max"),
    (Profile((1, 8), (4, 8), (2, 8)), "min <= opt <= max"),
    (Profile((1, 8), (4,), (16, 8)), "same non-zero rank"),
    (Profile((0, 8), (4, 8), (16, 8)), "positive integers"),
    (Profile((1.5, 8), (4, 8), (16, 8)), "positive integers"),
])
def test_invalid_profiles_are_refused_naming_the_input(profile, fragment):
    with pytest.raises(BuildError) as caught:
        validate_profiles({"a": profile})
    assert fragment in str(caught.value)
    assert "a:" in str(caught.value)
    with pytest.raises(BuildError, match="invalid optimization profile"):
        plan_build(BuildSpec(profiles={"a": profile}), 10, model_has_qdq=False)


def test_profiles_are_matched_against_the_network_inputs():
    inputs = {"a": (-1, 8), "b": (-1, 8)}
    check_profiles_against_inputs({"a": BATCH, "b": BATCH}, inputs)
    check_profiles_against_inputs({}, {"x": (1, 3)})  # static model, no profile needed
    with pytest.raises(BuildError, match="'b' has dynamic shape -1x8"):
        check_profiles_against_inputs({"a": BATCH}, inputs)
    with pytest.raises(BuildError, match="'c', which is not an input"):
        check_profiles_against_inputs({"a": BATCH, "b": BATCH, "c": BATCH}, inputs)
    with pytest.raises(BuildError, match="rank 3"):
        check_profiles_against_inputs({"a": Profile((1, 1, 8), (1, 1, 8), (1, 1, 8)), "b": BATCH}, inputs)
    with pytest.raises(BuildError, match="static axis 1"):
        check_profiles_against_inputs({"a": Profile((1, 4), (1, 4), (1, 4)), "b": BATCH}, inputs)


def test_onnx_precision_inspection_finds_qdq_fp16_and_bf16():
    assert inspect_onnx_precision(tiny_model()) == (False, frozenset({"fp32"}))
    has_qdq, precisions = inspect_onnx_precision(tiny_model(qdq=True))
    assert has_qdq is True and precisions == frozenset({"fp32"})
    assert inspect_onnx_precision(tiny_model(weight_type=TensorProto.FLOAT16))[1] == frozenset({"fp32", "fp16"})
    bf16 = tiny_model()
    bf16.graph.initializer.append(helper.make_tensor("extra", TensorProto.BFLOAT16, [1], [1.0]))
    assert "bf16" in inspect_onnx_precision(bf16)[1]


def test_plan_metadata_is_json_safe_without_floats():
    plan = plan_build(BuildSpec(precision="fp16", profiles={"a": BATCH, "b": BATCH}), 10, model_has_qdq=False)
    meta = plan.to_metadata()

    def walk(value):
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(meta)
    assert json.loads(json.dumps(meta))["profiles"]["a"] == {"min": [1, 8], "opt": [4, 8], "max": [16, 8]}


def test_parser_errors_are_joined_into_one_line():
    text = format_parser_errors([
        {"desc": "No importer registered for op: Foo\nmore", "node": 3, "node_name": "foo_0", "op": "Foo"},
        {"desc": "Invalid graph", "node": -1, "node_name": "", "op": ""},
    ])
    assert text == "node 3 'foo_0' (Foo): No importer registered for op: Foo; Invalid graph"
    assert format_parser_errors([]) == "no error detail from the parser"
    assert one_line(RuntimeError("")) == "RuntimeError"


def test_without_tensorrt_the_backend_raises_a_one_line_backend_unavailable(monkeypatch):
    from inference.backends import get_backend
    from inference.backends.tensorrt import TensorRTBackend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail here
    for make in (TensorRTBackend, lambda: get_backend("tensorrt")):
        with pytest.raises(BackendUnavailable) as caught:
            make()
        message = str(caught.value)
        assert message.startswith("TensorRT is not installed: the tensorrt module does not import")
        assert "\n" not in message


def test_without_pycuda_the_runtime_raises_a_one_line_backend_unavailable(monkeypatch):
    from inference.backends.tensorrt import _import_pycuda

    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(BackendUnavailable) as caught:
        _import_pycuda()
    assert str(caught.value).startswith("pycuda is not installed")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------
# (b) real TensorRT
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trt_backend():
    pytest.importorskip("tensorrt", reason=TRT_SKIP_REASON)
    from inference.backends.tensorrt import TensorRTBackend

    return TensorRTBackend()


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), str(path))
    return str(path)


def _feeds(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {"a": rng.standard_normal((batch, 8)).astype(np.float32),
            "b": rng.standard_normal((batch, 8)).astype(np.float32)}


def test_trt_build_and_run_match_onnxruntime(trt_backend, model_path, tmp_path):
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    import onnxruntime as ort

    spec = BuildSpec(precision="fp32", profiles={"a": BATCH, "b": BATCH},
                     timing_cache_path=str(tmp_path / "timing.cache"))
    result = trt_backend.build(model_path, spec)
    assert result.engine
    meta = json.loads(json.dumps(result.metadata))
    assert meta["backend"] == "tensorrt" and meta["backend_version"] == trt_backend.version()
    assert meta["refittable"] is False
    assert meta["profiles"]["a"] == {"min": [1, 8], "opt": [4, 8], "max": [16, 8]}
    assert meta["artifacts"]["inspector.json"] == hashlib.sha256(result.artifacts["inspector.json"]).hexdigest()
    assert meta["timing_cache"]["sha256"] == hashlib.sha256(result.artifacts["timing.cache"]).hexdigest()
    assert meta["engine_sha256"] == hashlib.sha256(result.engine).hexdigest()
    assert isinstance(json.loads(result.artifacts["inspector.json"]), dict)
    assert meta["precision_source"] == ("model" if trt_backend.trt_major >= 11 else "builder_flags")

    runner = trt_backend.load(result.engine)
    assert runner.inputs == {"a": ("float32", (-1, 8)), "b": ("float32", (-1, 8))}
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    for batch in (1, 3, 16):
        feeds = _feeds(batch)
        got = runner.run(feeds)
        want = dict(zip(["out", "prod"], session.run(["out", "prod"], feeds)))
        for name in ("out", "prod"):
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="outside the engine's optimization profile"):
        runner.run(_feeds(17))
    with pytest.raises(ValueError, match="missing"):
        runner.run({"a": _feeds(2)["a"]})
    runner.close()


def test_trt_precision_requests_follow_the_installed_major(trt_backend, model_path):
    spec = BuildSpec(precision="fp16", profiles={"a": BATCH, "b": BATCH})
    if trt_backend.trt_major >= 11:
        with pytest.raises(BuildError, match="strongly typed"):
            trt_backend.build(model_path, spec)
    else:
        meta = trt_backend.build(model_path, spec).metadata
        assert "FP16" in meta["builder_flags"]
    with pytest.raises(BuildError, match="Q/DQ"):
        trt_backend.build(model_path, BuildSpec(precision="int8", profiles={"a": BATCH, "b": BATCH},
                                                calibration_path="calib.npz"))


def test_trt_refuses_refit_and_surfaces_parser_errors(trt_backend, model_path, tmp_path):
    with pytest.raises(BuildError, match="weights could change after signing"):
        trt_backend.build(model_path, BuildSpec(profiles={"a": BATCH, "b": BATCH}, options={"refit": True}))
    bad = tmp_path / "bad.onnx"
    onnx.save(tiny_model(extra_op="NoSuchOp"), str(bad))
    with pytest.raises(BuildError) as caught:
        trt_backend.build(str(bad), BuildSpec(profiles={"a": BATCH, "b": BATCH}))
    assert str(caught.value).startswith("TensorRT's ONNX parser rejected the model")
    assert "\n" not in str(caught.value)
    with pytest.raises(BuildError, match="dynamic shape"):
        trt_backend.build(model_path, BuildSpec())


def test_trt_describe_device_is_strings(trt_backend):
    pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    device = trt_backend.describe_device()
    assert all(isinstance(v, str) for v in device.values())
    assert device["backend_version"] == trt_backend.version()
