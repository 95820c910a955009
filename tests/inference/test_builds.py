"""Real ONNX Runtime builds through the audited builder (a real Celery worker on Redis,
or in-process on SQLite): every precision on a model with two inputs, an int64 input
and a dynamic batch axis; the build record, the byproducts in the store, the parity
check and the signed attestation."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from django.test import override_settings

from compliance.ledger import dsse, ledger
from compliance.ledger.canonical import canonical_json
from compliance.lib.store import default_store
from compliance.models import Alert, LedgerEntry
from inference import samples
from inference.backends.onnxruntime import OnnxRuntimeBackend
from inference.build_requests import do_request_build
from inference.builder import run_build
from inference.calibration import do_register_calibration
from inference.specs import parse_profile
from lineage.models import Build
from tests.conftest import register, wait_for_build

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def worker(module_worker, transactional_db):
    return module_worker


PROFILES = dict([parse_profile("features=1x4:8x4:64x4"), parse_profile("category=1:8:64")])


def two_input_npz(n: int = 32, seed: int = 0, **overrides) -> bytes:
    rng = np.random.default_rng(seed)
    arrays = {"features": rng.normal(size=(n, 4)).astype(np.float32),
              "category": rng.integers(0, 10, n).astype(np.int64)}
    arrays.update(overrides)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def statement_of(engine) -> dict:
    envelope = json.loads(engine.manifest)
    payload = base64.b64decode(envelope["payload"])
    assert canonical_json(json.loads(payload)) == payload  # canonical: no floats anywhere
    return json.loads(payload)


def build(model, precision="fp32", calibration=None, profiles=PROFILES, **kw):
    requested = do_request_build(model, precision=precision, profiles=profiles, submitter="bob", commit="c" * 40,
                                 calibration=calibration, **kw)
    done = wait_for_build(requested)
    assert done.status == Build.SUCCEEDED, done.error
    return done


def test_it_builds_fp32_fp16_and_int8_of_a_two_input_int64_dynamic_model(worker, two_input_onnx):
    model = register(two_input_onnx, name="fraud")
    calibration, _ = do_register_calibration(two_input_npz(), model=model, name="cal", registered_by="bob")
    builds = {
        "fp32": build(model, "fp32"),
        "fp16": build(model, "fp16"),
        "int8-static": build(model, "int8", calibration=calibration),
        "int8-dynamic": build(model, "int8"),
    }
    store = default_store()
    feeds = {"features": np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32),
             "category": np.array([0, 3, 9, 1, 7], np.int64)}
    reference = ort.InferenceSession(two_input_onnx, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    for label, done in builds.items():
        engine = done.engine
        # engine metadata: ORT version, providers, optimization level
        assert engine.metadata["backend_version"] == ort.__version__
        assert engine.metadata["execution_providers"] == ["CPUExecutionProvider"]
        assert engine.metadata["optimization_level"] == "ORT_ENABLE_EXTENDED"
        # the loader adds the hardware-specific layout optimizations that are not saved
        assert engine.metadata["load_optimization_level"] == "ORT_ENABLE_ALL"
        loaded = OnnxRuntimeBackend().load(store.read(engine.sha256)).session
        assert loaded.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the engine really runs, on a batch size the profile allows
        session = ort.InferenceSession(store.read(engine.sha256), providers=["CPUExecutionProvider"])
        out = session.run(None, feeds)[0]
        assert out.shape == (5, 1)
        assert np.allclose(out, reference, atol=0.1), label
        # parity: per output, decimal strings, within tolerance
        assert done.parity_ok is True, (label, done.parity)
        score = done.parity["outputs"]["score"]
        assert isinstance(score["max_abs_error"], str) and float(score["max_abs_error"]) >= 0
        assert isinstance(score["max_rel_error"], str)
        # byproducts: the inspector JSON is in the store under its digest
        inspector = done.artifacts["inspector.json"]
        layers = json.loads(store.read(inspector["sha256"]))
        assert layers["optimization_level"] == "ORT_ENABLE_EXTENDED" and layers["layers"]
        # the signed attestation carries the whole build record
        predicate = statement_of(engine)["predicate"]
        params = predicate["buildDefinition"]["externalParameters"]
        internal = predicate["buildDefinition"]["internalParameters"]
        run = predicate["runDetails"]
        assert params["model"]["sha256"] == internal["onnx_sha256"] == model.sha256
        assert params["submitter"] == "bob" and params["commit"] == "c" * 40 and params["repo"] == model.repo
        assert params["profiles"]["features"] == {"min": [1, 4], "opt": [8, 4], "max": [64, 4]}
        assert internal["inspector_sha256"] == inspector["sha256"]
        assert internal["timing_cache_sha256"] is None  # ONNX Runtime keeps no timing cache
        assert run["builder"]["version"] == {"onnxruntime": ort.__version__}
        assert run["device"]["execution_providers"] == ["CPUExecutionProvider"]
        assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]
        assert run["parity"] == done.parity
        assert {"name": "inspector.json", "digest": {"sha256": inspector["sha256"]},
                "size": inspector["size"]} in run["byproducts"]
        assert engine.verify_manifest(engine.sha256)[0] == "verified"
    static = builds["int8-static"]
    assert static.engine.metadata["quantization"] == "static"
    assert builds["int8-dynamic"].engine.metadata["quantization"] == "dynamic"
    static_params = statement_of(static.engine)["predicate"]["buildDefinition"]
    assert static_params["externalParameters"]["calibration"] == {
        "sha256": calibration.sha256, "name": "cal", "sample_count": 32}
    assert static_params["internalParameters"]["calibration_sha256"] == calibration.sha256
    dependency = {"name": "calibration.npz", "digest": {"sha256": calibration.sha256}}
    assert dependency in static_params["resolvedDependencies"]
    assert static_params["externalParameters"]["precision_flags"] == ["INT8_STATIC_QDQ"]
    assert static.options == {"calibration_sha256": calibration.sha256} and static.calibration_id == calibration.id
    # golden inputs came from the calibration set when there was one
    assert static.parity["inputs"] == "calibration" and static.parity["samples"] == 8
    assert builds["fp32"].parity["inputs"] == "generated" and builds["fp32"].parity["samples"] == 8  # opt batch
    assert "static INT8 quantization" in static.log and "optimized with ORT_ENABLE_EXTENDED" in static.log
    assert "FP16" in builds["fp16"].log or "fp16" in builds["fp16"].log.lower()
    # every stage was recorded, in order, for every build
    for done in builds.values():
        kinds = [e.kind for e in LedgerEntry.objects.filter(subject=f"build:{done.id}").order_by("index")]
        assert kinds == ["build.requested", "build.started", "build.succeeded"]
    assert all(ledger.check_entry(e) is None for e in LedgerEntry.objects.all())


def test_it_generates_golden_inputs_to_the_profile_opt_shape(worker):
    model = register(samples.small_cnn_bytes(channels=4, size=16), name="cnn")
    done = build(model, "fp16", profiles=dict([parse_profile("input=1x3x16x16:2x3x16x16:4x3x16x16")]))
    assert done.parity["inputs"] == "generated" and done.parity["samples"] == 2
    assert done.parity["outputs"]["logits"]["elements"] == 20
    assert done.parity_ok is True
    # the golden inputs are reproducible from the model digest alone
    from inference.parity import golden_inputs

    again = golden_inputs(model.inputs, done.profiles, seed_hex=model.sha256)
    assert again.digest() == done.parity["golden_sha256"]


def test_it_builds_a_model_with_no_profiles_using_batch_one(worker, credit_onnx):
    model = register(credit_onnx, name="credit")
    done = build(model, "int8", profiles={})
    assert done.parity["samples"] == 1
    assert set(done.parity["outputs"]) == {"label", "probabilities"}


def test_it_flags_a_build_outside_its_parity_tolerance_and_raises_an_alert(db, two_input_onnx):
    model = register(two_input_onnx, name="fraud")
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="int8", submitter="bob",
                                     commit="c" * 40, profiles={k: p.to_dict() for k, p in PROFILES.items()})
    strict = {"fp32": {"atol": "0", "rtol": "0"}, "fp16": {"atol": "0", "rtol": "0"},
              "int8": {"atol": "0", "rtol": "0"}, "bf16": {"atol": "0", "rtol": "0"}}
    with override_settings(TRACELEDGER_PARITY_TOLERANCE=strict):
        done = run_build(requested.id)
    assert done.status == Build.SUCCEEDED  # flagged, not failed: the engine is real
    assert done.parity_ok is False and done.parity["ok"] is False
    assert done.parity["tolerance"]["atol"] == "0"
    assert float(done.parity["outputs"]["score"]["max_abs_error"]) > 0
    alert = Alert.objects.get(kind="build.parity_failed")
    assert alert.details["build_id"] == done.id and "score" in alert.message
    predicate = statement_of(done.engine)["predicate"]
    assert predicate["runDetails"]["parity"]["ok"] is False
    assert LedgerEntry.objects.filter(kind="alert.raised", subject=f"build:{done.id}").exists()


def test_it_fails_a_build_whose_model_file_was_altered_in_the_store(db, two_input_onnx):
    import os

    model = register(two_input_onnx, name="fraud")
    path = default_store().path_for(model.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"\0")
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                     commit="c" * 40)
    done = run_build(requested.id)
    assert done.status == Build.FAILED and "not intact" in done.error
    assert not hasattr(done, "engine") or done.engine is None
    entry = LedgerEntry.objects.get(kind="build.failed", subject=f"build:{done.id}")
    assert ledger.payload_of(entry)["stage"] == "building"


def test_it_fails_a_build_whose_calibration_set_was_altered_in_the_store(db, two_input_onnx):
    import os

    model = register(two_input_onnx, name="fraud")
    calibration, _ = do_register_calibration(two_input_npz(), model=model, name="cal", registered_by="bob")
    path = default_store().path_for(calibration.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(two_input_npz(seed=1))  # a valid calibration set, but not the registered one
    stored = set(default_store().root.glob("sha256/*/*"))
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="int8", calibration=calibration,
                                     options={"calibration_sha256": calibration.sha256}, submitter="bob",
                                     commit="c" * 40)
    done = run_build(requested.id)
    assert done.status == Build.FAILED and done.error.startswith(f"calibration set {calibration.sha256[:16]}")
    assert "not intact" in done.error
    assert not hasattr(done, "engine") or done.engine is None
    assert set(default_store().root.glob("sha256/*/*")) == stored  # no engine, no byproduct
    entry = LedgerEntry.objects.get(kind="build.failed", subject=f"build:{done.id}")
    assert ledger.payload_of(entry)["stage"] == "building"


def test_it_records_every_precision_flag_and_no_floats_in_the_manifest(worker, two_input_onnx):
    model = register(two_input_onnx, name="fraud")
    done = build(model, "fp16")
    statement = statement_of(done.engine)
    assert statement["_type"] == dsse.STATEMENT_TYPE
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["precision_flags"] == ["FP16"]
    assert statement["predicate"]["buildDefinition"]["buildType"] == dsse.BUILD_TYPE


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_it_reads_only_the_first_golden_samples_of_a_calibration_set(tmp_path, save):
    from inference.parity import golden_inputs

    rng = np.random.default_rng(2)
    arrays = {"features": rng.normal(size=(40, 4)).astype(np.float32), "category": np.arange(40, dtype=np.int64)}
    path = tmp_path / "calib.npz"
    save(path, **arrays)
    inputs = [{"name": "features", "dtype": "float32", "shape": ["batch", 4]},
              {"name": "category", "dtype": "int64", "shape": ["batch"]}]
    golden = golden_inputs(inputs, {}, seed_hex="0" * 64, calibration_path=str(path), max_samples=5)
    assert golden.source == "calibration" and golden.samples == 5
    assert np.array_equal(golden.batches[3]["features"], arrays["features"][3:4])
    assert golden.batches[4]["category"].tolist() == [4]


def test_it_builds_from_the_bytes_it_hashed_even_if_the_store_file_is_swapped(db, two_input_onnx, credit_onnx,
                                                                              monkeypatch):
    """Finding 6 of issue 21: a writer to the store swaps the ONNX file while the build
    runs.  The backend is given the private copy that was hashed, so the swap changes
    nothing; the spy only watches what the backend is given and swaps the file then."""
    import hashlib
    import os

    model = register(two_input_onnx, name="fraud")
    path = default_store().path_for(model.sha256)
    given = []
    real_build = OnnxRuntimeBackend.build

    def build_and_swap(self, onnx_path, spec):
        os.chmod(path, 0o644)
        path.write_bytes(credit_onnx)  # the swap, between the hash and the build
        given.append((onnx_path, hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()))
        return real_build(self, onnx_path, spec)

    monkeypatch.setattr(OnnxRuntimeBackend, "build", build_and_swap)
    requested = Build.objects.create(model=model, backend="onnxruntime", precision="fp32", submitter="bob",
                                     commit="c" * 40)
    done = run_build(requested.id)
    assert done.status == Build.SUCCEEDED, done.error
    ((onnx_path, digest),) = given
    assert onnx_path != str(path) and digest == model.sha256  # the hashed copy, not the store path
    inputs = {i.name for i in ort.InferenceSession(default_store().read(done.engine.sha256)).get_inputs()}
    assert inputs == {i.name for i in ort.InferenceSession(two_input_onnx).get_inputs()}
