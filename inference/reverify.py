"""Periodic re-verification of every stored engine (Celery beat, or
`manage.py reverify_engines`): re-hash the engine file, check the manifest against its
recorded digest and its DSSE signature under a registered, unrevoked build key, and the
signed subject against the engine digest.

An engine that drifted is marked unusable (the loader then refuses it), an Alert is
raised, and an `engine.reverified` ledger entry records the result for that engine.  Each
run ends with one `engine.reverified` summary entry listing every engine's verdict.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from compliance.ledger import events, ledger
from compliance.lib.store import default_store, hash_file
from lineage.models import Engine, EngineLoad


@dataclass
class Result:
    engine_id: int
    sha256: str
    verdict: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict == EngineLoad.VERIFIED


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    newly_unusable: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        return {
            "checked": len(self.results),
            "verified": sum(r.ok for r in self.results),
            "drifted": [r.engine_id for r in self.results if not r.ok],
            "newly_unusable": self.newly_unusable,
            "results": [{"engine_id": r.engine_id, "sha256": r.sha256, "verdict": r.verdict, "detail": r.detail}
                        for r in self.results],
        }


def check_engine(engine: Engine) -> Result:
    """Re-hash one engine and check its signed manifest; never raises for bad data."""
    store = default_store()
    path = store.path_for(engine.sha256)
    if not path.exists():
        return Result(engine.id, engine.sha256, "digest_mismatch", "engine file is missing from the store")
    actual = hash_file(path)
    if actual != engine.sha256:
        return Result(engine.id, engine.sha256, "digest_mismatch",
                      f"engine file hashes to {actual[:16]}…, recorded {engine.sha256[:16]}…")
    if hashlib.sha256(engine.manifest.encode()).hexdigest() != engine.manifest_sha256:
        return Result(engine.id, engine.sha256, "digest_mismatch", "manifest differs from its recorded digest")
    verdict, detail = engine.verify_manifest(actual)
    return Result(engine.id, engine.sha256, verdict, detail)


def reverify_engines() -> Run:
    run = Run()
    for engine in Engine.objects.order_by("id").iterator():
        result = check_engine(engine)
        run.results.append(result)
        now = timezone.now()
        if result.ok:
            Engine.objects.filter(pk=engine.pk).update(reverified_at=now, reverify_verdict=result.verdict)
            continue
        with transaction.atomic():
            newly = Engine.objects.filter(pk=engine.pk, usable=True).update(usable=False)
            Engine.objects.filter(pk=engine.pk).update(reverified_at=now, reverify_verdict=result.verdict)
            if newly:
                ledger.append("engine.reverified",
                              {"engine_id": engine.id, "engine_sha256": engine.sha256, "ok": False,
                               "verdict": result.verdict, "detail": result.detail, "usable": False},
                              subject=f"engine:{engine.id}")
        if newly:  # alert once, when the engine turns unusable, not on every later run
            run.newly_unusable.append(engine.id)
            events.report("engine.reverify_failed",
                        f"engine {engine.id} failed re-verification: {result.verdict} ({result.detail})",
                        severity="critical", subject=f"engine:{engine.id}",
                        details={"engine_id": engine.id, "engine_sha256": engine.sha256,
                                 "verdict": result.verdict, "detail": result.detail})
    summary = run.to_dict()
    ledger.append("engine.reverified",
                  {"checked": summary["checked"], "verified": summary["verified"], "drifted": summary["drifted"],
                   "results": [{"engine_id": r.engine_id, "verdict": r.verdict} for r in run.results]},
                  subject="engines")
    return run
