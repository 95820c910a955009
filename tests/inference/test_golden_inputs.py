"""Golden inputs come from the model: healthy builds of dynamic-shape zoo-like models
(a Resize detector, a dynamic-width recognizer, a transformer encoder) pass parity with
no alert, and a model no valid input can be made for is "not run", never a failure."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from compliance.models import Alert
from inference import golden_shapes, parity
from inference.builder import run_build
from inference.specs import parse_profile
from lineage.models import Build
from tests.conftest import register
from tests.inference import zoo_graphs

pytestmark = [pytest.mark.embedded]


def _path(tmp_path, data: bytes, name: str = "m.onnx") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _inputs(path: str) -> list[dict]:
    from lineage.onnx_model import describe

    return describe(path)["inputs"]


def test_it_gives_a_resize_detector_multiples_of_32_where_ones_break_it(tmp_path):
    path = _path(tmp_path, zoo_graphs.detector_bytes())
    inputs = _inputs(path)
    assert inputs[0]["shape"] == ["N", 3, "H", "W"]
    # what the old golden inputs (1 for every dynamic axis) did to this healthy model
    with pytest.raises(Exception, match="Concat"):
        parity.reference_session(path).run(None, {"x": np.ones((1, 3, 1, 1), np.float32)})
    plans = golden_shapes.plan(inputs, {}, path)
    n, c, h, w = plans["x"].shape
    assert (n, c) == (1, 3) and h % 32 == 0 and w % 32 == 0 and h >= 32
    golden = parity.golden_inputs(inputs, {}, seed_hex="ab" * 32, onnx_path=path)
    (out,) = parity.reference_outputs(path, golden)
    assert out["prob"].shape == (1, 1, h, w)


def test_it_uses_the_profile_opt_shape_when_the_build_names_one(tmp_path):
    path = _path(tmp_path, zoo_graphs.recognizer_bytes())
    profiles = {"x": {"min": [1, 3, 32, 32], "opt": [2, 3, 32, 160], "max": [4, 3, 32, 320]}}
    assert golden_shapes.plan(_inputs(path), profiles, path)["x"].shape == (2, 3, 32, 160)
    assert golden_shapes.plan(_inputs(path), {}, path)["x"].shape == (1, 3, 32, 64)


@pytest.mark.parametrize("id_type", [TensorProto.INT64, TensorProto.INT32], ids=["int64", "int32"])
def test_it_draws_token_ids_inside_their_embedding_tables(tmp_path, id_type):
    path = _path(tmp_path, zoo_graphs.encoder_bytes(vocab=300, types=2, id_type=id_type))
    plans = golden_shapes.plan(_inputs(path), {}, path)
    assert {n: p.shape for n, p in plans.items()} == {"input_ids": (1, 16), "attention_mask": (1, 16),
                                                       "token_type_ids": (1, 16)}
    assert plans["input_ids"].high == 300 and plans["token_type_ids"].high == 2
    assert plans["attention_mask"].high == 2
    golden = parity.golden_inputs(_inputs(path), {}, seed_hex="cd" * 32, onnx_path=path)
    ids = golden.batches[0]["input_ids"]
    assert ids.dtype == np.dtype("int64" if id_type == TensorProto.INT64 else "int32")
    assert 2 <= ids.max() < 300  # spread over the vocabulary, never past it
    assert golden.batches[0]["token_type_ids"].max() < 2
    (out,) = parity.reference_outputs(path, golden)
    assert out["last_hidden_state"].shape == (1, 16, 16) and np.isfinite(out["last_hidden_state"]).all()


def test_it_finds_no_valid_input_when_shape_inference_refuses_every_size(tmp_path):
    """A graph that only accepts width 7 (a MatMul on a 7-row weight): no size we try fits."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.ones((7, 3), dtype=np.float32), "weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = _path(tmp_path, model.SerializeToString())
    with pytest.raises(golden_shapes.NoGoldenInput, match="shape inference refuses every input size"):
        golden_shapes.plan(_inputs(path), {}, path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_it_builds_healthy_dynamic_shape_models_with_no_parity_alert(db, precision):
    for name, data in (("db-detector", zoo_graphs.detector_bytes()), ("crnn", zoo_graphs.recognizer_bytes()),
                       ("encoder", zoo_graphs.encoder_bytes())):
        model = register(data, name=f"{name}-{precision}")
        requested = Build.objects.create(model=model, backend="onnxruntime", precision=precision, submitter="bob",
                                         commit="c" * 40)
        done = run_build(requested.id)
        assert done.status == Build.SUCCEEDED, (name, done.error)
        assert done.parity["status"] == "checked" and done.parity_ok is True, (name, done.parity)
        assert all(o["elements"] > 0 for o in done.parity["outputs"].values())
    assert not Alert.objects.filter(kind="build.parity_failed").exists()
    detector = Build.objects.get(model__name=f"db-detector-{precision}")
    assert detector.parity["shapes"] == {"x": "1x3x64x64"}


@pytest.mark.django_db(transaction=True)
def test_it_checks_an_encoder_built_with_a_profile_at_its_opt_shape(db):
    model = register(zoo_graphs.encoder_bytes(), name="encoder-profiled")
    profiles = {}
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        key, profile = parse_profile(f"{name}=1x8:2x32:4x64")
        profiles[key] = {"min": list(profile.min), "opt": list(profile.opt), "max": list(profile.max)}
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                     commit="c" * 40, profiles=profiles)
    done = run_build(requested.id)
    assert done.parity_ok is True and done.parity["shapes"]["input_ids"] == "2x32"


@pytest.mark.django_db(transaction=True)
def test_it_marks_parity_not_run_with_a_warning_and_no_alert_when_no_input_can_be_made(db, client):
    from django.contrib.auth.models import Group, User

    graph = helper.make_graph([helper.make_node("Identity", ["text"], ["same"])], "strings",
                              [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
                              [helper.make_tensor_value_info("same", TensorProto.STRING, ["n"])])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    model = register(onnx_model.SerializeToString(), name="strings")
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                     commit="c" * 40)
    done = run_build(requested.id)
    assert done.status == Build.SUCCEEDED and done.parity_ok is None
    assert done.parity["status"] == "not_run" and "cannot generate golden inputs" in done.parity["reason"]
    assert not Alert.objects.filter(kind="build.parity_failed").exists()
    user = User.objects.create_user("alice-golden", password=None)
    user.groups.add(Group.objects.get_or_create(name="auditor")[0])
    client.force_login(user)
    page = client.get(f"/builds/{done.id}/")
    assert page.status_code == 200
    assert b'id="parity-not-run"' in page.content and b"cannot generate golden inputs" in page.content

