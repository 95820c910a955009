"""The verified loader: an engine is deserialized only after its bytes hash to the
deployment's pinned digest and its manifest verifies under a registered, unrevoked
build key.  The bytes that are hashed are the bytes that are loaded: the store file is
hashed once, through a memory mapping held under a read lease, and the same mapping is
handed to the backend; a write to the file while it is held turns the verdict into a
refusal (see compliance.lib.store.pinned; without a lease the bytes are read once into
private memory instead).

Every attempt is an EngineLoad with its verdict and a ledger entry; any refusal also
raises an Alert, and nothing runs.
"""
from __future__ import annotations

import hashlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from django.db import transaction

from compliance.ledger import events, ledger
from compliance.lib.store import Pinned, default_store
from inference.backends import get_backend
from inference.backends.base import Runner
from lineage.actions import host_name, live_deployment
from lineage.models import Deployment, Engine, EngineLoad


class EngineRefused(RuntimeError):
    def __init__(self, verdict: str, message: str, load: EngineLoad):
        super().__init__(message)
        self.verdict = verdict
        self.load = load


@dataclass
class LoadedEngine:
    deployment: Deployment
    engine: Engine
    runner: Runner
    load: EngineLoad
    model_inputs: list


@dataclass
class EngineCheck:
    """The load-time check of a deployment's engine.  `data` (the engine bytes, when
    verified) is valid only inside `check_deployment`'s `with`; the verdict is final
    once the `with` has ended."""

    verdict: str
    detail: str
    actual_sha256: str
    data: memoryview | bytes | None = None
    mapped: bool = False  # hashed through a mapping held under a read lease (else a private copy)
    path: str | None = None  # the leased file itself, for backends that load from a path (see Pinned.path)
    _pinned: Pinned | None = field(default=None, repr=False)

    @property
    def verified(self) -> bool:
        return self.verdict == EngineLoad.VERIFIED

    def settle(self) -> None:
        """After the last use of `data`: refuse if the file was written to meanwhile."""
        if self.verified and self._pinned is not None and not self._pinned.unchanged():
            self.verdict = "digest_mismatch"
            self.detail = "the engine file was opened for writing while it was verified and loaded"
        self.data = self.path = self._pinned = None


@contextmanager
def check_deployment(deployment: Deployment) -> Iterator[EngineCheck]:
    """Check a deployment's engine: its bytes (hashed once, from the store) against the
    deployment's pin, the manifest against its pin, the engine's usability, and the
    manifest's DSSE signature and signed subject.  The engine bytes are held, unchanged,
    until the `with` ends."""
    with ExitStack() as stack:
        try:
            pinned = stack.enter_context(default_store().pinned(deployment.engine_sha256))
        except FileNotFoundError:
            yield EngineCheck("digest_mismatch", "engine file is missing from the store", "")
            return
        check = _check(deployment, deployment.engine, pinned.sha256)
        check.mapped = pinned.mapped
        if check.verified:
            check.data, check.path, check._pinned = pinned.data, pinned.path, pinned
        try:
            yield check
        finally:
            check.settle()


def _check(deployment: Deployment, engine: Engine, actual: str) -> EngineCheck:
    if actual != deployment.engine_sha256:
        return EngineCheck("digest_mismatch", f"engine bytes hash to {actual[:16]}…, deployment pins "
                                              f"{deployment.engine_sha256[:16]}…", actual)
    if hashlib.sha256(engine.manifest.encode()).hexdigest() != deployment.manifest_sha256:
        return EngineCheck("digest_mismatch", "engine manifest differs from the one pinned at deployment", actual)
    if not engine.usable:
        return EngineCheck("unusable", "engine was marked unusable by re-verification", actual)
    return EngineCheck(*engine.verify_manifest(actual), actual)


def load_verified(service: str, environment: str | None = None) -> LoadedEngine:
    deployment = live_deployment(service, environment)
    host = host_name()
    if deployment is None:
        load = record_load(None, service, "not_deployed", f"no live deployment for service {service!r}", "", host)
        raise EngineRefused("not_deployed", load.detail, load)
    engine = deployment.engine
    runner = None
    with check_deployment(deployment) as check:
        if check.verified:
            try:
                runner = get_backend(engine.backend).load(check.data, path=check.path)
            except Exception:
                check.settle()
                record_load(deployment, service, check.verdict, check.detail, check.actual_sha256, host)
                raise
    load = record_load(deployment, service, check.verdict, check.detail, check.actual_sha256, host)
    if not check.verified:
        if runner is not None and hasattr(runner, "close"):
            runner.close()
        raise EngineRefused(check.verdict, f"engine load refused for {service}: {check.verdict} ({check.detail})",
                            load)
    return LoadedEngine(deployment, engine, runner, load, engine.build.model.inputs)


def record_load(deployment: Deployment | None, service: str, verdict: str, detail: str, actual: str,
                host: str, *, attempt_id=None, actor: str = "system") -> EngineLoad:
    """Record one engine-load attempt: the EngineLoad row and its ledger entry in one
    transaction, then an Alert if the load was refused.  Used by the verified loader
    here and by the ingestion API for runtimes that load engines themselves
    (`attempt_id` makes their retries idempotent)."""
    with transaction.atomic():
        load = EngineLoad.objects.create(
            deployment=deployment, service=service, verdict=verdict, detail=detail[:500], host=host,
            expected_sha256=deployment.engine_sha256 if deployment else "", actual_sha256=actual,
            attempt_id=attempt_id,
        )
        kind = "engine.loaded" if verdict == EngineLoad.VERIFIED else "engine.load_refused"
        entry = ledger.append(
            kind,
            {"load_id": load.id, "service": service, "deployment_id": deployment.id if deployment else None,
             "expected_sha256": load.expected_sha256, "actual_sha256": actual, "verdict": verdict,
             "detail": load.detail, "host": host} | ({"attempt_id": str(attempt_id)} if attempt_id else {}),
            subject=f"deployment:{deployment.id}" if deployment else f"service:{service}", actor=actor,
        )
        EngineLoad.objects.filter(pk=load.pk).update(ledger_index=entry.index)
        load.ledger_index = entry.index
    if verdict != EngineLoad.VERIFIED:
        events.report(
            "engine.load_refused", f"refused to load the engine of {service}: {verdict}",
            severity="critical", subject=f"service:{service}",
            details={"load_id": load.id, "verdict": verdict, "detail": load.detail,
                     "deployment_id": deployment.id if deployment else None, "host": host},
        )
    return load
