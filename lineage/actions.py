"""Every write to the lineage graph goes through one of these actions: each saves its
rows and the ledger entry in one transaction, so neither exists without the other."""
from __future__ import annotations

import os
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.ledger import events, ledger
from compliance.lib.redact import redact_paths
from compliance.lib.store import TooLarge, default_store
from compliance.models import Case
from lineage import onnx_model
from lineage import validators as v
from lineage.models import Build, Deployment, Engine, ModelSource, Prediction, PredictionSalt


class ActionError(ValueError):
    """Bad input for an action: one line, shown to the user as is."""


class ErasureRefused(ActionError):
    """The prediction is under legal hold: nothing was erased (HTTP 409)."""


def _model_by_ref(ref) -> ModelSource:
    ref = str(ref).strip()
    query = ModelSource.objects.filter(sha256=ref.lower()) if len(ref) == 64 else (
        ModelSource.objects.filter(pk=int(ref)) if ref.isdigit() else ModelSource.objects.none())
    model = query.first()
    if model is None:
        raise ActionError(f"unknown model {ref!r}: give a registered model id or sha256")
    return model


def get_model(ref) -> ModelSource:
    return _model_by_ref(ref)


def get_engine(ref) -> Engine:
    ref = str(ref).strip()
    query = Engine.objects.filter(sha256=ref.lower()) if len(ref) == 64 else (
        Engine.objects.filter(pk=int(ref)) if ref.isdigit() else Engine.objects.none())
    engine = query.select_related("build").order_by("-created_at").first()
    if engine is None:
        raise ActionError(f"unknown engine {ref!r}: give an engine id or sha256")
    return engine


def do_register_model(source: BinaryIO | bytes, *, name: str, repo: str, commit: str,
                      registered_by: str, training_run_url: str = "", training_data_ref: str = "",
                      training_data_sha256: str = "") -> tuple[ModelSource, bool]:
    """Validate and store an ONNX model; returns (model, created). Registering the same
    bytes again returns the existing record."""
    if not repo or not commit:
        raise ActionError("repo and commit are required")
    try:
        v.clean(v.validate_commit, commit)
        v.clean(v.validate_repo, repo)
        v.clean(v.validate_model_name, name)
        v.clean(v.validate_training_run_url, training_run_url)
        v.clean(v.validate_training_ref, training_data_ref)
        if training_data_sha256:
            v.clean(v.validate_sha256, training_data_sha256)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    store = default_store()
    try:
        with store.spool(source, max_bytes=settings.TRACELEDGER_MAX_UPLOAD_BYTES) as spooled:
            if spooled.size == 0:
                raise ActionError("the file is empty: not an ONNX model")
            try:
                info = onnx_model.describe(spooled.path)
            except onnx_model.InvalidModel as exc:
                raise ActionError(str(exc)) from None
            existing = ModelSource.objects.filter(sha256=spooled.sha256).first()
            if existing:
                return existing, False
            stored = spooled.commit()
    except TooLarge as exc:
        raise ActionError(str(exc)) from None
    with store.removing_on_error(stored), transaction.atomic():
        model = ModelSource.objects.create(
            name=name or "model", sha256=stored.sha256, size=stored.size, repo=repo,
            commit=commit.lower(), registered_by=registered_by, training_run_url=training_run_url,
            training_data_ref=training_data_ref, training_data_sha256=training_data_sha256.lower(), **info,
        )
        entry = ledger.append(
            "model.registered",
            {k: v for k, v in model.to_dict().items() if k not in ("created_at", "ledger_index", "id")}
            | {"model_id": model.id},
            subject=f"model:{model.sha256}", actor=registered_by,
        )
        ModelSource.objects.filter(pk=model.pk).update(ledger_index=entry.index)
        model.ledger_index = entry.index
    return model, True


def do_cancel_build(build: Build, *, acting_user: str, reason: str = "") -> Build:
    """Cancel a build that is still queued; a build a worker has claimed runs to its end
    (or is failed by the reaper)."""
    with transaction.atomic():
        cancelled = Build.objects.filter(pk=build.pk, status=Build.QUEUED).update(
            status=Build.CANCELLED, finished_at=timezone.now(), error=f"cancelled by {acting_user}"[:1000])
        if not cancelled:
            build.refresh_from_db()
            raise ActionError(f"build {build.id} is {build.status}: only a queued build can be cancelled")
        ledger.append("build.cancelled", {"build_id": build.id, "reason": reason[:500], "cancelled_by": acting_user},
                      subject=f"build:{build.id}", actor=acting_user)
    build.refresh_from_db()
    return build


def get_build(ref) -> Build:
    ref = str(ref).strip()
    build = Build.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    if build is None:
        raise ActionError(f"unknown build {ref!r}: give a build id")
    return build


def do_deploy(engine: Engine, *, service: str, environment: str = "production", acting_user: str) -> Deployment:
    service = service.strip()
    try:
        v.clean(v.validate_service_name, service)
        v.clean(v.validate_environment, environment)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    if not engine.usable:
        raise ActionError(f"engine {engine.id} is marked unusable (failed re-verification)")
    if engine.build.status != Build.SUCCEEDED:
        raise ActionError(f"engine {engine.id} comes from a build that did not succeed")
    with transaction.atomic():
        now = timezone.now()
        previous = list(
            Deployment.objects.select_for_update().filter(service=service, environment=environment, retired_at=None)
        )
        Deployment.objects.filter(pk__in=[d.pk for d in previous]).update(retired_at=now)
        deployment = Deployment.objects.create(
            service=service, environment=environment, engine=engine, engine_sha256=engine.sha256,
            manifest_sha256=engine.manifest_sha256, created_by=acting_user,
        )
        entry = ledger.append(
            "deployment.created",
            {"deployment_id": deployment.id, "service": service, "environment": environment,
             "engine_id": engine.id, "engine_sha256": engine.sha256,
             "manifest_sha256": engine.manifest_sha256, "replaces": [d.id for d in previous]},
            subject=f"deployment:{deployment.id}", actor=acting_user,
        )
        Deployment.objects.filter(pk=deployment.pk).update(ledger_index=entry.index)
        deployment.ledger_index = entry.index
    return deployment


def do_erase_input_salt(inference_id, *, acting_user: str, reference: str = "") -> bool:
    """Erase the salt of a prediction's input commitment (a GDPR erasure request): the
    disclosed input can no longer be linked to the prediction, while the prediction,
    its ledger entry and every checkpoint stay as they were and keep verifying.  The
    erasure itself is a ledger entry (`reference` is a ticket id, never personal
    data).  Returns False when the salt was already gone.

    A prediction under legal hold (any case holding it) is never erased: the attempt is
    recorded (`prediction.erasure_refused`) and ErasureRefused raised."""
    reference = (reference or "").strip()
    if len(reference) > 100:
        raise ActionError("reference must be at most 100 characters (a ticket id, not personal data)")
    with transaction.atomic():
        # The prediction row is the lock a hold placement takes too (cases._place_hold).
        prediction = Prediction.objects.select_for_update().filter(inference_id=inference_id).first()
        if prediction is None:
            raise ActionError(f"no prediction with inference id {inference_id}")
        holding = sorted(Case.holding(inference_id).values_list("id", flat=True))
        if not holding:
            deleted, _ = PredictionSalt.objects.filter(inference_id=inference_id).delete()
            if not deleted:
                return False
            ledger.append("prediction.salt_erased",
                          {"inference_id": str(inference_id), "reference": reference,
                           "outputs_still_linkable": prediction.outputs_linkable_without_salt},
                          subject=f"prediction:{inference_id}", actor=acting_user)
            return True
    with transaction.atomic():
        ledger.append("prediction.erasure_refused",
                      {"inference_id": str(inference_id), "reference": reference, "held_by_cases": holding},
                      subject=f"prediction:{inference_id}", actor=acting_user)
    cases = ", ".join(str(c) for c in holding)
    raise ErasureRefused(f"prediction {inference_id} is under legal hold (case {cases}): its input salt is kept "
                         "until a reviewer or admin releases every hold")


def live_deployment(service: str, environment: str | None = None) -> Deployment | None:
    query = Deployment.objects.filter(service=service, retired_at=None).select_related("engine")
    if environment:
        query = query.filter(environment=environment)
    return query.order_by("-created_at").first()


def host_name() -> str:
    return os.uname().nodename


LOG_LIMIT = 200_000  # characters of a build log kept


def first_line(text: str) -> str:
    """The first line of a message, at most 1000 characters (errors kept on a row)."""
    text = text.strip()
    return text.splitlines()[0][:1000] if text else ""


def do_fail_build(build: Build, reason: str, *, log_text: str = "") -> bool:
    """Mark a build failed with its ledger entry and an alert; False when it had
    already finished (succeeded, failed or cancelled)."""
    # Backends name files of the store and the scratch directory; the reason and the log
    # are shown to every reader, so they name no server path (the worker logs the full one).
    reason = redact_paths(first_line(reason)) or "build failed"
    log_text = redact_paths(log_text)
    with transaction.atomic():
        current = Build.objects.select_for_update().filter(pk=build.pk).first()
        if current is None or current.status in Build.FINAL:
            return False
        text = (current.log + "\n" + log_text).strip() if log_text else current.log
        Build.objects.filter(pk=build.pk).update(status=Build.FAILED, error=reason, finished_at=timezone.now(),
                                                 log=text[-LOG_LIMIT:])
        ledger.append("build.failed", {"build_id": build.id, "error": reason, "stage": current.status},
                      subject=f"build:{build.id}")
    events.report("build.failed", f"build {build.id} failed: {reason}", severity="warning",
                subject=f"build:{build.id}", details={"build_id": build.id, "stage": current.status})
    return True
