"""Build requests: a request is checked against the model and the backend's capabilities
(inference.specs) before anything is stored, then written as a queued Build with its
`build.requested` ledger entry, and handed to the `gpu` queue after commit."""
from __future__ import annotations

from django.db import transaction

from compliance.ledger import ledger
from inference import specs
from lineage.actions import ActionError
from lineage.models import Build, CalibrationSet, ModelSource


def check_build_request(model: ModelSource, *, backend: str = "onnxruntime", precision: str = "fp32",
                        profiles: dict | None = None, options: dict | None = None,
                        calibration: CalibrationSet | None = None) -> None:
    """Validate a build request against the model; ActionError (one line) otherwise."""
    try:
        specs.validate(model.inputs, backend=backend, precision=precision, profiles=profiles or {},
                       options=options or {}, calibration_inputs=calibration.inputs if calibration else None)
    except specs.SpecError as exc:
        raise ActionError(str(exc)) from None


def do_request_build(model: ModelSource, *, backend: str = "onnxruntime", precision: str = "fp32",
                     profiles: dict | None = None, submitter: str, commit: str = "", repo: str = "",
                     options: dict | None = None, calibration: CalibrationSet | None = None) -> Build:
    """Validate a build request against the model and queue it on the gpu queue.
    A calibration set makes an INT8 build static and gives the parity check its inputs."""
    profiles = profiles or {}
    options = dict(options or {})
    if calibration is None and options.get("calibration_sha256"):
        calibration = CalibrationSet.objects.filter(model=model, sha256=str(options["calibration_sha256"])).first()
        if calibration is None:
            raise ActionError(f"calibration set {options['calibration_sha256']!r} is not registered for model {model.id}")
    options.pop("calibration_sha256", None)
    check_build_request(model, backend=backend, precision=precision, profiles=profiles, options=options,
                        calibration=calibration)
    if calibration is not None:
        options["calibration_sha256"] = calibration.sha256
    commit = (commit or model.commit).lower()
    if len(commit) > 64 or not all(c in "0123456789abcdef" for c in commit):
        raise ActionError(f"commit {commit!r} is not a git commit hash")
    with transaction.atomic():
        build = Build.objects.create(
            model=model, backend=backend, precision=precision, calibration=calibration,
            profiles={n: p.to_dict() for n, p in profiles.items()}, options=options,
            submitter=submitter, commit=commit, repo=repo or model.repo,
        )
        entry = ledger.append(
            "build.requested",
            {"build_id": build.id, "model_sha256": model.sha256, "backend": backend, "precision": precision,
             "profiles": build.profiles, "options": build.options, "submitter": submitter,
             "commit": commit, "repo": build.repo,
             "calibration_sha256": calibration.sha256 if calibration else None},
            subject=f"build:{build.id}", actor=submitter,
        )
        Build.objects.filter(pk=build.pk).update(ledger_index=entry.index)
        build.ledger_index = entry.index
        transaction.on_commit(lambda: _enqueue(build.id))
    return build


def _enqueue(build_id: int) -> None:
    from inference.tasks import build_engine

    result = build_engine.apply_async(args=[build_id], queue="gpu")
    Build.objects.filter(pk=build_id, task_id="").update(task_id=result.id or "")
