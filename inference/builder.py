"""The audited engine build, run by the Celery task on the `gpu` queue.

Stages: queued → building → verifying → signing → succeeded | failed.  The engine is
written to the store atomically with its digest computed while writing; the signed
manifest is an in-toto Statement v1 (subject: the engine digest; predicate: the build,
SLSA-provenance-like) in a DSSE envelope signed with the build service's Ed25519 key.
Audit writes are small inserts beside the build, never on the backend's path.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone

from django.db import transaction
from django.utils import timezone as djtz

from compliance import dsse, keys, ledger
from compliance.alerts import raise_alert
from compliance.canonical import canonical_json
from compliance.store import default_store
from lineage.actions import host_name
from lineage.models import Build, Engine

from .backends import BackendUnavailable, BuildError, BuildSpec, get_backend
from .specs import profiles_from_json

log = logging.getLogger("traceledger.build")
ACTIVE = (Build.BUILDING, Build.VERIFYING, Build.SIGNING)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _set_status(build: Build, status: str) -> None:
    Build.objects.filter(pk=build.pk).update(status=status)
    build.status = status


def fail_build(build: Build, reason: str, *, log_text: str = "") -> None:
    """Mark a build failed with its ledger entry and an alert."""
    reason = reason.strip().splitlines()[0][:1000] if reason.strip() else "build failed"
    with transaction.atomic():
        updated = Build.objects.filter(pk=build.pk).exclude(status__in=Build.FINAL).update(
            status=Build.FAILED, error=reason, finished_at=djtz.now(),
            log=(build.log + "\n" + log_text).strip() if log_text else build.log,
        )
        if not updated:
            return
        ledger.append("build.failed", {"build_id": build.id, "error": reason}, subject=f"build:{build.id}")
    raise_alert("build.failed", f"build {build.id} failed: {reason}", severity="warning",
                subject=f"build:{build.id}", details={"build_id": build.id})


def run_build(build_id: int) -> Build | None:
    """Claim and run one queued build. Returns the build, or None when it was not
    claimable (already running elsewhere, finished or cancelled)."""
    build = Build.objects.select_related("model").get(pk=build_id)
    if build.status in ACTIVE:
        # Redelivered after the worker that held it died (acks_late): never leave it
        # `started` forever, and never run it twice.
        fail_build(build, "the worker running this build died before finishing it")
        return build
    host = host_name()
    now = djtz.now()
    claimed = Build.objects.filter(pk=build_id, status=Build.QUEUED).update(
        status=Build.BUILDING, started_at=now, worker_host=host)
    if claimed != 1:
        return None
    build.refresh_from_db()
    try:
        return _build(build, host)
    except Exception as exc:  # the backend's or our own: the build is failed, never stuck
        log.warning("build %s failed: %s", build_id, exc)
        known = isinstance(exc, (BuildError, BackendUnavailable))
        fail_build(build, str(exc) if known else f"{type(exc).__name__}: {exc}")
        build.refresh_from_db()
        return build


def _build(build: Build, host: str) -> Build:
    backend = get_backend(build.backend)
    device = backend.describe_device()
    with transaction.atomic():
        Build.objects.filter(pk=build.pk).update(device=device, backend_version=backend.version())
        ledger.append(
            "build.started",
            {"build_id": build.id, "worker_host": host, "device": device, "backend": backend.name,
             "backend_version": backend.version()},
            subject=f"build:{build.id}",
        )
    store = default_store()
    spec = BuildSpec(precision=build.precision, profiles=profiles_from_json(build.profiles),
                     options=build.options, calibration_path=build.options.get("calibration_path"))
    started = time.perf_counter()
    result = backend.build(str(store.path_for(build.model.sha256)), spec)
    build_s = time.perf_counter() - started

    _set_status(build, Build.VERIFYING)
    started = time.perf_counter()
    stored = store.put_bytes(result.engine)
    runner = backend.load(result.engine)  # an engine that does not deserialize is not an engine
    verify_s = time.perf_counter() - started

    _set_status(build, Build.SIGNING)
    finished = djtz.now()
    timings = {"build_ms": f"{build_s * 1000:.1f}", "verify_ms": f"{verify_s * 1000:.1f}"} | {
        k: str(v) for k, v in result.metadata.get("timings", {}).items()}
    predicate = _predicate(build, backend, device, result.metadata, host, finished, timings, runner)
    statement = dsse.make_statement(f"engine-{build.id}.{build.backend}", stored.sha256, predicate)
    signer = keys.get_signer("build")
    envelope = dsse.sign_envelope(canonical_json(statement), signer.key_id, signer.sign)
    manifest = json.dumps(envelope, sort_keys=True)
    try:
        with transaction.atomic():
            engine = Engine.objects.create(
                build=build, sha256=stored.sha256, size=stored.size, backend=backend.name,
                backend_version=backend.version(), precision=build.precision, metadata=result.metadata,
                manifest=manifest, manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest(),
                signing_key_id=signer.key_id,
            )
            Build.objects.filter(pk=build.pk).update(
                status=Build.SUCCEEDED, finished_at=finished, timings=timings, log=result.log)
            ledger.append(
                "build.succeeded",
                {"build_id": build.id, "engine_id": engine.id, "engine_sha256": engine.sha256,
                 "engine_size": engine.size, "manifest_sha256": engine.manifest_sha256,
                 "signing_key_id": signer.key_id, "timings": timings},
                subject=f"build:{build.id}",
            )
    except BaseException:
        if stored.created:
            store.remove(stored.sha256)
        raise
    build.refresh_from_db()
    return build


def _predicate(build: Build, backend, device: dict, metadata: dict, host: str, finished: datetime,
               timings: dict, runner) -> dict:
    model = build.model
    return {
        "buildDefinition": {
            "buildType": dsse.BUILD_TYPE,
            "externalParameters": {
                "model": {"name": model.name, "sha256": model.sha256, "repo": model.repo, "commit": model.commit},
                "backend": build.backend,
                "precision": build.precision,
                "profiles": build.profiles,
                "options": {k: v for k, v in build.options.items() if k != "calibration_path"},
                "submitter": build.submitter,
                "commit": build.commit,
                "repo": build.repo,
            },
            "internalParameters": {"backend_metadata": metadata},
            "resolvedDependencies": [
                {"uri": f"git+{build.repo}@{build.commit}", "digest": {"gitCommit": build.commit}},
                {"name": "model.onnx", "digest": {"sha256": model.sha256}},
            ],
        },
        "runDetails": {
            "builder": {"id": f"traceledger-build-service/{host}",
                        "version": {backend.name: backend.version()}},
            "metadata": {
                "invocationId": f"build-{build.id}",
                "startedOn": _iso(build.started_at),
                "finishedOn": _iso(finished),
            },
            "device": device,
            "timings": timings,
            "engine_io": {
                "inputs": {n: {"dtype": t, "shape": list(s)} for n, (t, s) in runner.inputs.items()},
                "outputs": {n: {"dtype": t, "shape": list(s)} for n, (t, s) in runner.outputs.items()},
            },
        },
    }
