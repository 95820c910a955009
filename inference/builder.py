"""The audited engine build, run by the Celery task on the `gpu` queue.

Stages: queued → building → verifying → signing → succeeded | failed (or cancelled
while queued).  Each stage change is a conditional update from the stage before, so a
build that the reaper failed (or a cancel) is never overwritten by a worker that wakes
up late; the worker then drops what it made.

building   the registered ONNX model and calibration set are copied into the build's
           private scratch directory, hashed while they are copied (the build fails if
           either changed since registration); the backend builds from those copies,
           the bytes that were hashed, as the loader does, so a writer to the store
           cannot swap a file between the hash and the build.  Meanwhile a second
           thread runs the parity reference on the same copies.
verifying  the engine and its byproducts (inspector JSON, timing cache) are spooled
           into the store's tmp/ with their digests computed while writing; the engine
           is deserialized and the parity check runs golden inputs through it and
           through the ONNX model in FP32.
signing    an in-toto Statement v1 (subject: the engine digest; predicate: the build,
           SLSA-provenance-like) in a DSSE envelope signed with the build key; the
           engine and byproducts are renamed into the store and the Engine row, the
           build's final state and the ledger entry commit together.

A worker killed mid-build leaves its scratch directory under the store's tmp/ (swept by
the reaper) and nothing in the store proper.  While a build runs, a heartbeat thread
refreshes Build.heartbeat_at; `reaper.reap_builds` fails builds whose heartbeat went stale or
that ran past TRACELEDGER_BUILD_TIMEOUT_S.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone as djtz

from compliance.ledger import dsse, events, keys, ledger
from compliance.ledger.canonical import canonical_json
from compliance.lib.ids import iso_utc
from compliance.lib.store import default_store
from inference import parity
from inference.backends import BackendUnavailable, BuildError, BuildSpec, get_backend
from inference.backends.tensorrt_input import prepare_input
from inference.reaper import Heartbeat, remove_scratch, scratch_root
from inference.specs import profiles_from_json
from lineage.actions import LOG_LIMIT, do_fail_build, first_line, host_name
from lineage.models import Build, Engine

log = logging.getLogger("traceledger.build")
ACTIVE = Build.ACTIVE
# One build per worker process at a time, whatever the pool (prefork, threads, eager).
_ONE_BUILD = threading.Lock()


class BuildAborted(RuntimeError):
    """The build left the stage this worker expected (reaped or cancelled meanwhile)."""


def _advance(build: Build, from_status: str, to_status: str, **fields) -> None:
    moved = Build.objects.filter(pk=build.pk, status=from_status).update(
        status=to_status, heartbeat_at=djtz.now(), **fields)
    if moved != 1:
        raise BuildAborted(f"build {build.id} is no longer {from_status}")
    build.status = to_status


def run_build(build_id: int) -> Build | None:
    """Claim and run one queued build. Returns the build, or None when it was not
    claimable (already finished or cancelled)."""
    with _ONE_BUILD:
        return _run_build(build_id)


def _run_build(build_id: int) -> Build | None:
    build = Build.objects.select_related("model", "calibration").filter(pk=build_id).first()
    if build is None:
        log.warning("build %s does not exist; nothing to do", build_id)
        return None
    if build.status in ACTIVE:
        # Redelivered after the worker that held it died (acks_late): never leave it
        # active forever, and never run it twice.
        do_fail_build(build, "the worker running this build died before finishing it (message redelivered)")
        remove_scratch(build_id)
        build.refresh_from_db()
        return build
    host = host_name()
    now = djtz.now()
    claimed = Build.objects.filter(pk=build_id, status=Build.QUEUED).update(
        status=Build.BUILDING, started_at=now, heartbeat_at=now, worker_host=host)
    if claimed != 1:
        return None
    # What the claim wrote, set here rather than re-read: the model and calibration set
    # loaded with the build stay cached for the whole build.
    build.status, build.started_at, build.heartbeat_at, build.worker_host = Build.BUILDING, now, now, host
    capture = LogCapture()
    scratch = tempfile.mkdtemp(prefix=f"build-{build.id}-", dir=scratch_root())
    try:
        with Heartbeat(build.id), capture:
            return _build(build, host, scratch, capture)
    except BuildAborted as exc:
        log.warning("build %s aborted: %s", build_id, exc)
        build.refresh_from_db()
        return build
    except Exception as exc:  # the backend's or our own: the build is failed, never stuck
        log.warning("build %s failed: %s", build_id, exc)
        known = isinstance(exc, (BuildError, BackendUnavailable))
        reason = str(exc) if known else f"{type(exc).__name__}: {exc}"
        do_fail_build(build, reason, log_text=capture.text())
        build.refresh_from_db()
        return build
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build(build: Build, host: str, scratch: str, capture: "LogCapture") -> Build:
    backend = get_backend(build.backend)
    device = backend.describe_device()
    with transaction.atomic():
        moved = Build.objects.filter(pk=build.pk, status=Build.BUILDING).update(
            device=device, backend_version=backend.version())
        if moved != 1:
            raise BuildAborted(f"build {build.id} is no longer building")
        ledger.append(
            "build.started",
            {"build_id": build.id, "worker_host": host, "device": device, "backend": backend.name,
             "backend_version": backend.version()},
            subject=f"build:{build.id}",
        )
    store = default_store()
    model = build.model
    started = time.perf_counter()
    onnx_path, problem = _hashed_copy(store, model.sha256, scratch, "model.onnx")
    if problem:
        raise BuildError(f"the registered ONNX model {model.sha256[:16]}… is not intact: {problem}")
    calibration_path = None
    if build.calibration is not None:
        calibration_path, problem = _hashed_copy(store, build.calibration.sha256, scratch, "calibration.npz")
        if problem:
            raise BuildError(f"calibration set {build.calibration.sha256[:16]}… is not intact: {problem}")
    # Checked before any parser sees them: the inputs are hashed as they are copied, and the
    # backend reads only the copies.  (Hashing in the background while the backend builds
    # would save most of this time, but let a parser read bytes not yet known to be ours.)
    inputs_s = time.perf_counter() - started
    cache_path = timing_cache_path(backend.name, backend.version(), device) if backend.name == "tensorrt" else None
    spec = BuildSpec(precision=build.precision, profiles=profiles_from_json(build.profiles),
                     options={k: v for k, v in build.options.items() if k != "calibration_sha256"},
                     calibration_path=calibration_path, timing_cache_path=cache_path, work_dir=scratch)
    tolerance = settings.TRACELEDGER_PARITY_TOLERANCE[build.precision]
    # The parity reference (the ONNX model in FP32) does not depend on the engine: a
    # second thread runs it while the backend builds.  The inputs were checked above.
    intact: Future = Future()
    intact.set_result(None)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"build-{build.id}-inputs") as pool:
        reference = pool.submit(_parity_reference, model, build.profiles, onnx_path, calibration_path)
        return _build_and_sign(build, host, scratch, capture, backend, device, store, onnx_path, spec,
                               tolerance, intact, reference, inputs_s)


def _hashed_copy(store, sha256: str, scratch: str, name: str) -> tuple[str, str | None]:
    """Copy a stored input into the build's private scratch directory, hashing the bytes
    as they are copied: (the copy's path, None) when they are the registered ones, else
    (path, why not).  The build reads only the copy, the bytes that were hashed."""
    source = store.path_for(sha256)
    target = os.path.join(scratch, name)
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(target, "xb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except FileNotFoundError:
        return target, "file is missing from the store"
    os.chmod(target, 0o400)
    actual = digest.hexdigest()
    if actual != sha256:
        return target, f"stored file hashes to {actual[:16]}…, expected {sha256[:16]}…"
    return target, None


def _parity_reference(model, profiles: dict, onnx_path: str,
                      calibration_path: str | None) -> tuple["parity.Golden", list | Exception]:
    """The golden inputs and the ONNX model's FP32 outputs for them, or why there are none."""
    try:
        golden = parity.golden_inputs(model.inputs, profiles, seed_hex=model.sha256, calibration_path=calibration_path,
                                      max_samples=settings.TRACELEDGER_PARITY_SAMPLES, onnx_path=onnx_path)
    except ValueError as exc:  # no valid input can be made (strings, sizes the graph refuses)
        return parity.Golden("none", []), exc
    try:
        return golden, parity.reference_outputs(onnx_path, golden)
    except Exception as exc:  # ONNX Runtime cannot run the model itself
        return golden, exc


def _raise_if_not_intact(intact: Future) -> None:
    problem = intact.result()
    if problem:
        raise BuildError(problem)


def _build_and_sign(build: Build, host: str, scratch: str, capture: "LogCapture", backend, device: dict, store,
                    onnx_path: str, spec: BuildSpec, tolerance: dict, intact: Future, reference: Future,
                    inputs_s: float = 0.0) -> Build:
    started = time.perf_counter()
    try:
        result, build_input = _backend_build(build, backend, onnx_path, spec, scratch)
    except Exception:
        _raise_if_not_intact(intact)  # a damaged input explains a failed build better than the backend can
        raise
    build_s = time.perf_counter() - started
    _raise_if_not_intact(intact)

    _advance(build, Build.BUILDING, Build.VERIFYING)
    with ExitStack() as stack:
        started = time.perf_counter()
        spooled = stack.enter_context(store.spool(result.engine))
        byproducts = {name: stack.enter_context(store.spool(data)) for name, data in sorted(result.artifacts.items())}
        # An engine that does not deserialize is not an engine.  The parity run that follows
        # has the worker to itself: let it use every core.
        runner = backend.load(result.engine, threads=os.cpu_count())
        if hasattr(runner, "close"):  # TensorRT: free its CUDA context when the build is done
            stack.callback(runner.close)
        verify_s = time.perf_counter() - started
        started = time.perf_counter()
        golden, expected = reference.result()
        if isinstance(expected, Exception):  # nothing to compare with: not run, not failed
            why = first_line(str(expected)) or type(expected).__name__
            if golden.source != "none":
                why = f"no FP32 reference on ONNX Runtime: {why}"
            parity_record = parity.not_run(golden, tolerance, why)
            log.warning("build %s: parity not run: %s", build.id, why)
        else:
            try:
                parity_record = parity.check(runner, golden, tolerance, expected)
            except Exception as exc:
                raise BuildError(f"the engine failed the parity run: "
                                 f"{first_line(str(exc)) or type(exc).__name__}") from None
        parity_s = time.perf_counter() - started
        artifacts = {name: {"sha256": s.sha256, "size": s.size} for name, s in byproducts.items()}

        _advance(build, Build.VERIFYING, Build.SIGNING, parity=parity_record, parity_ok=parity_record["ok"],
                 artifacts=artifacts)
        finished = djtz.now()
        timings = {"inputs_ms": f"{inputs_s * 1000:.1f}", "build_ms": f"{build_s * 1000:.1f}",
                   "verify_ms": f"{verify_s * 1000:.1f}",
                   "parity_ms": f"{parity_s * 1000:.1f}"} | {
            f"backend_{k}": str(v) for k, v in result.metadata.get("timings", {}).items()}
        predicate = _predicate(build, backend, device, result.metadata, host, finished, timings, runner,
                               artifacts, parity_record, build_input)
        statement = dsse.make_statement(f"engine-{build.id}.{build.backend}", spooled.sha256, predicate)
        signer = keys.get_signer("build")
        envelope = dsse.sign_envelope(canonical_json(statement), signer.key_id, signer.sign)
        manifest = json.dumps(envelope, sort_keys=True)
        backend_log = "\n".join(t for t in (result.log, capture.text()) if t)

        created = []
        try:
            for item in [spooled, *byproducts.values()]:
                stored = item.commit()
                if stored.created:
                    created.append(stored.sha256)
            with transaction.atomic():
                done = Build.objects.filter(pk=build.pk, status=Build.SIGNING).update(
                    status=Build.SUCCEEDED, finished_at=finished, timings=timings, log=backend_log[-LOG_LIMIT:],
                    heartbeat_at=finished)
                if done != 1:
                    raise BuildAborted(f"build {build.id} is no longer signing")
                engine = Engine.objects.create(
                    build=build, sha256=spooled.sha256, size=spooled.size, backend=backend.name,
                    backend_version=backend.version(), precision=build.precision, metadata=result.metadata,
                    manifest=manifest, manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest(),
                    signing_key_id=signer.key_id,
                )
                ledger.append(
                    "build.succeeded",
                    {"build_id": build.id, "engine_id": engine.id, "engine_sha256": engine.sha256,
                     "engine_size": engine.size, "manifest_sha256": engine.manifest_sha256,
                     "signing_key_id": signer.key_id, "timings": timings, "artifacts": artifacts,
                     "parity_ok": parity_record["ok"]},
                    subject=f"build:{build.id}",
                )
        except BaseException:
            for sha256 in created:
                store.remove(sha256)
            raise
    if spec.timing_cache_path and "timing.cache" in result.artifacts:
        _save_timing_cache(spec.timing_cache_path, result.artifacts["timing.cache"])
    if parity_record["ok"] is False:  # None: not run, shown on the build page, no alert
        failing = sorted(n for n, o in parity_record["outputs"].items() if not o["ok"])
        why = (f"is outside its parity tolerance on {', '.join(failing)}" if failing
               else "has no parity result: no outputs compared")
        events.report("build.parity_failed", f"build {build.id} ({build.precision}) {why}",
                    severity="warning", subject=f"build:{build.id}",
                    details={"build_id": build.id, "engine_sha256": spooled.sha256, "outputs": parity_record["outputs"],
                             "tolerance": parity_record["tolerance"]})
    build.refresh_from_db()
    return build


def _backend_build(build: Build, backend, onnx_path: str, spec: BuildSpec, scratch: str):
    """(BuildResult, the model TensorRT built from instead of the registered one, or None)."""
    if backend.name == "tensorrt":
        prepared = prepare_input(onnx_path, spec, backend.trt_major, scratch)
        if prepared.derived:
            data = Path(prepared.path).read_bytes()
            log.info("build %s: %s", build.id, prepared.note)
            spec = replace(spec, calibration_path=None)  # its scales are in the Q/DQ model now
            result = backend.build(prepared.path, spec)
            result.artifacts["engine-input.onnx"] = data
            result.log = f"{prepared.note}\n{result.log}"
            return result, {"sha256": hashlib.sha256(data).hexdigest(), "note": prepared.note}
    return backend.build(onnx_path, spec), None


def _precision_flags(backend_name: str, precision: str, metadata: dict) -> list[str]:
    if backend_name == "tensorrt":
        return list(metadata.get("builder_flags", [])) + list(metadata.get("network_flags", []))
    if precision == "int8":
        return ["INT8_STATIC_QDQ" if metadata.get("quantization") == "static" else "INT8_DYNAMIC"]
    return ["FP16"] if precision == "fp16" else []


def _predicate(build: Build, backend, device: dict, metadata: dict, host: str, finished: datetime,
               timings: dict, runner, artifacts: dict, parity_record: dict, build_input: dict | None = None) -> dict:
    model = build.model
    calibration = build.calibration
    dependencies = [
        {"uri": f"git+{build.repo}@{build.commit}", "digest": {"gitCommit": build.commit}},
        {"name": "model.onnx", "digest": {"sha256": model.sha256}},
    ]
    if calibration is not None:
        dependencies.append({"name": "calibration.npz", "digest": {"sha256": calibration.sha256}})
    if build_input is not None:  # what the backend really built from, made from the model above
        dependencies.append({"name": "engine-input.onnx", "digest": {"sha256": build_input["sha256"]},
                             "annotations": {"derivedFrom": model.sha256, "how": build_input["note"]}})
    cache_in = (metadata.get("timing_cache") or {}).get("input_sha256")
    if cache_in:
        dependencies.append({"name": "timing.cache (input)", "digest": {"sha256": cache_in}})
    return {
        "buildDefinition": {
            "buildType": dsse.BUILD_TYPE,
            "externalParameters": {
                "model": {"name": model.name, "sha256": model.sha256, "repo": model.repo, "commit": model.commit},
                "backend": build.backend,
                "precision": build.precision,
                "precision_flags": _precision_flags(backend.name, build.precision, metadata),
                "profiles": build.profiles,
                "options": {k: v for k, v in build.options.items() if k != "calibration_sha256"},
                "calibration": {"sha256": calibration.sha256, "name": calibration.name,
                                "sample_count": calibration.sample_count} if calibration else None,
                "submitter": build.submitter,
                "commit": build.commit,
                "repo": build.repo,
            },
            "internalParameters": {
                "backend_metadata": metadata,
                "onnx_sha256": model.sha256,
                "build_input_sha256": build_input["sha256"] if build_input else model.sha256,
                "calibration_sha256": calibration.sha256 if calibration else None,
                "timing_cache_sha256": (artifacts.get("timing.cache") or {}).get("sha256"),
                "inspector_sha256": (artifacts.get("inspector.json") or {}).get("sha256"),
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": f"traceledger-build-service/{host}",
                        "version": {backend.name: backend.version()}},
            "metadata": {
                "invocationId": f"build-{build.id}",
                "startedOn": iso_utc(build.started_at),
                "finishedOn": iso_utc(finished),
            },
            "byproducts": [{"name": name, "digest": {"sha256": a["sha256"]}, "size": a["size"]}
                           for name, a in sorted(artifacts.items())],
            "device": device,
            "timings": timings,
            "engine_io": {
                "inputs": {n: {"dtype": t, "shape": list(s)} for n, (t, s) in runner.inputs.items()},
                "outputs": {n: {"dtype": t, "shape": list(s)} for n, (t, s) in runner.outputs.items()},
            },
            "parity": parity_record,
        },
    }


# -- timing cache ----------------------------------------------------------------------

def timing_cache_path(backend: str, version: str, device: dict) -> str:
    """One timing cache per backend version and device model, kept between builds."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{backend}-{version}-{device.get('name', 'device')}-"
                                             f"{device.get('compute_capability', '')}")
    return str(Path(settings.TRACELEDGER_HOME) / "timing-cache" / f"{label}.cache")


def _save_timing_cache(path: str, data: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- log capture -------------------------------------------------------------------------

class LogCapture(logging.Handler):
    """Collect what libraries log (and warn) while a build runs, for Build.log."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < 2000 and not record.name.startswith("traceledger"):
            try:
                self.lines.append(self.format(record))
            except Exception:
                self.lines.append(f"[{record.levelname}] {record.name}: (unformattable message)")

    def text(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> "LogCapture":
        self._root = logging.getLogger()
        self._root.addHandler(self)
        logging.captureWarnings(True)
        return self

    def __exit__(self, *exc) -> None:
        logging.captureWarnings(False)
        self._root.removeHandler(self)
