"""Dashboard pages for builds, engines and deployments.  Reading needs a read role;
requesting a build and deploying need engineer or admin (WRITE_ROLES)."""
from __future__ import annotations

import base64
import json

from django.contrib import messages
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from compliance.lib.ids import parse_db_int
from compliance.lib.roles import READ_ROLES, WRITE_ROLES, actor_name, role_required
from compliance.lib.store import default_store
from compliance.web import charts
from compliance.web.build_forms import BuildRequestForm, DeployForm
from compliance.web.paging import page_for_view
from inference import build_requests
from inference.backends import BACKENDS
from inference.backends.base import PRECISIONS
from inference.calibration import do_register_calibration
from lineage import actions
from lineage.models import Build, Deployment, Engine, EngineLoad

STAGES = [Build.QUEUED, Build.BUILDING, Build.VERIFYING, Build.SIGNING, Build.SUCCEEDED]


def filter_builds(params, query=None):
    """Builds matching the filters in `params`; ValueError for a model that is not an id."""
    query = query if query is not None else Build.objects.all()
    for field in ("status", "backend", "precision"):
        if params.get(field):
            query = query.filter(**{field: params[field]})
    if params.get("submitter"):
        query = query.filter(submitter=params["submitter"].strip())
    if params.get("model"):
        query = query.filter(model_id=parse_db_int(params["model"], "model", minimum=1))
    return query


@role_required(*READ_ROLES)
def build_list(request):
    status = 200
    try:
        query = filter_builds(request.GET, Build.objects.select_related("model", "engine"))
    except ValueError as exc:
        messages.error(request, str(exc))
        query, status = Build.objects.none(), 400
    page = page_for_view(request, query, ("id",))
    submitters = Build.objects.order_by("submitter").values_list("submitter", flat=True).distinct()[:200]
    context = {"page": page, "filters": {k: request.GET.get(k, "") for k in ("status", "backend", "precision", "submitter")},
               "statuses": [s for s, _ in Build.STATUSES], "backends": BACKENDS, "precisions": PRECISIONS,
               "submitters": submitters, "filtered": any(request.GET.get(k) for k in ("status", "backend", "precision", "submitter"))}
    return render(request, "lineage/build_list.html", context, status=status)


def stage_view(build: Build) -> list[dict]:
    """Each stage with its state: done, current, failed or todo."""
    if build.status in STAGES:
        current = STAGES.index(build.status)
        return [{"name": s, "state": "done" if i < current or build.status == Build.SUCCEEDED else
                 "current" if i == current else "todo"} for i, s in enumerate(STAGES)]
    stopped_at = 1 if build.started_at else 0  # failed or cancelled: before or after the worker took it
    rows = [{"name": s, "state": "done" if i < stopped_at else "todo"} for i, s in enumerate(STAGES)]
    rows[stopped_at] = {"name": f"{STAGES[stopped_at]}: {build.status}", "state": "failed"}
    return rows[: stopped_at + 1]


def build_status_dict(build: Build) -> dict:
    return {"id": build.id, "status": build.status, "final": build.status in Build.FINAL,
            "stages": stage_view(build), "error": build.error or None,
            "started_at": build.started_at.isoformat() if build.started_at else None,
            "finished_at": build.finished_at.isoformat() if build.finished_at else None,
            "engine_id": build.engine.id if build.status == Build.SUCCEEDED and hasattr(build, "engine") else None}


def decode_attestation(engine: Engine) -> dict:
    """The DSSE envelope, its decoded in-toto Statement and the live verification."""
    try:
        envelope = json.loads(engine.manifest)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        signatures = [{"keyid": s.get("keyid", ""), "sig": s.get("sig", "")[:24] + "…"} for s in envelope.get("signatures", [])]
        payload_type = envelope.get("payloadType", "")
    except (ValueError, KeyError, TypeError):
        statement, signatures, payload_type = None, [], ""
    file_problem = default_store().verify(engine.sha256)
    verdict, detail = ("digest_mismatch", file_problem) if file_problem else engine.verify_manifest(engine.sha256)
    return {"statement": json.dumps(statement, indent=2, sort_keys=True) if statement else None,
            "payload_type": payload_type, "signatures": signatures, "verdict": verdict, "detail": detail,
            "ok": verdict == EngineLoad.VERIFIED}


def parity_of(build: Build):
    """Parity results (engine outputs against the ONNX model's) where the build
    service records them: a `parity` attribute or relation on the build."""
    parity = getattr(build, "parity", None)
    if parity is None:
        return None
    if hasattr(parity, "all"):
        rows = [p.to_dict() if hasattr(p, "to_dict") else str(p) for p in parity.all()]
        return json.dumps(rows, indent=2, default=str) if rows else None
    if hasattr(parity, "to_dict"):
        parity = parity.to_dict()
    return json.dumps(parity, indent=2, default=str) if parity else None


@role_required(*READ_ROLES)
def build_detail(request, pk):
    build = get_object_or_404(Build.objects.select_related("model"), pk=pk)
    engine = build.engine if build.status == Build.SUCCEEDED and hasattr(build, "engine") else None
    context = {"build": build, "engine": engine, "status": build_status_dict(build),
               "attestation": decode_attestation(engine) if engine else None, "parity": parity_of(build),
               "record": json.dumps(build.to_dict() | {"options": build.options}, indent=2, sort_keys=True, default=str)}
    return render(request, "lineage/build_detail.html", context)


@role_required(*READ_ROLES)
def build_status(request, pk):
    """The small JSON the build page polls every second until the build is final."""
    build = get_object_or_404(Build, pk=pk)
    return JsonResponse(build_status_dict(build))


@role_required(*WRITE_ROLES)
@require_http_methods(["GET", "POST"])
def build_new(request):
    form = BuildRequestForm(request.POST or None, request.FILES or None, initial={"model": request.GET.get("model")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actor = actor_name(request.user)
        try:
            model = data["model"]
            if model is None:
                upload = data["onnx_file"]
                model, _ = actions.do_register_model(
                    upload, name=data["name"] or upload.name.rsplit(".", 1)[0], repo=data["repo"],
                    commit=data["commit"], registered_by=actor)
            calibration = None
            if data.get("calibration"):
                upload = data["calibration"]
                calibration, _ = do_register_calibration(upload, model=model, name=upload.name.rsplit(".", 1)[0],
                                                         registered_by=actor)
            build = build_requests.do_request_build(model, backend=data["backend"], precision=data["precision"],
                                             profiles=data["shapes"], submitter=actor,
                                             commit=data["commit"] or model.commit, calibration=calibration)
        except (actions.ActionError, ValueError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Build {build.id} queued.")
            return redirect("build-detail", pk=build.id)
    return render(request, "lineage/build_new.html", {"form": form}, status=400 if form.errors else 200)


@role_required(*READ_ROLES)
def engine_list(request):
    page = page_for_view(request, Engine.objects.select_related("build__model"), ("id",))
    return render(request, "lineage/engine_list.html", {"page": page})


def layer_info(engine: Engine) -> dict | None:
    """What the backend recorded about the engine's structure (TensorRT: layer count
    and the inspector's layers; ONNX Runtime: optimization and quantization), and
    the engine's inputs and outputs as signed in its attestation."""
    meta = engine.metadata or {}
    info = {k: meta[k] for k in ("num_layers", "layers", "io", "optimization_level", "quantization",
                                 "hardware_compatibility_level") if k in meta}
    try:
        statement = json.loads(base64.b64decode(json.loads(engine.manifest)["payload"]))
        engine_io = statement["predicate"]["runDetails"].get("engine_io")
    except (ValueError, KeyError, TypeError):
        engine_io = None
    if engine_io and "io" not in info:
        info["io"] = engine_io
    return info or None


@role_required(*READ_ROLES)
def engine_detail(request, pk):
    engine = get_object_or_404(Engine.objects.select_related("build__model"), pk=pk)
    loads = page_for_view(request, EngineLoad.objects.filter(deployment__engine=engine).select_related("deployment"), ("id",))
    context = {"engine": engine, "attestation": decode_attestation(engine), "layers": layer_info(engine),
               "layers_json": json.dumps(layer_info(engine), indent=2, sort_keys=True) if layer_info(engine) else "",
               "metadata": json.dumps(engine.metadata, indent=2, sort_keys=True),
               "loads": loads, "deployments": engine.deployments.order_by("-id")}
    return render(request, "lineage/engine_detail.html", context)


@role_required(*READ_ROLES)
def deployment_list(request):
    lanes = (Deployment.objects.order_by().values("service", "environment")
             .annotate(n=Count("id"), live=Count("id", filter=Q(retired_at=None))).order_by("service", "environment"))
    live = {(d.service, d.environment): d for d in Deployment.objects.filter(retired_at=None).select_related("engine__build__model")}
    rows = [dict(lane, current=live.get((lane["service"], lane["environment"]))) for lane in lanes]
    return render(request, "lineage/deployment_list.html", {"rows": rows})


@role_required(*READ_ROLES)
def deployment_service(request, service):
    deployments = list(Deployment.objects.filter(service=service).select_related("engine__build__model").order_by("-id"))
    if not deployments:
        return render(request, "404.html", {"message": f"No deployment was ever made to service “{service}”."},
                      status=404)
    loads = page_for_view(request, EngineLoad.objects.filter(service=service).select_related("deployment"), ("id",))
    figure = charts.deployment_timeline_spec(deployments, timezone.now())
    return render(request, "lineage/deployment_service.html",
                  {"service": service, "deployments": deployments, "loads": loads, "figure": figure})


@role_required(*WRITE_ROLES)
@require_http_methods(["GET", "POST"])
def deployment_new(request):
    initial = {k: request.GET[k] for k in ("engine", "service") if request.GET.get(k)}
    form = DeployForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            deployment = actions.do_deploy(data["engine"], service=data["service"], environment=data["environment"],
                                           acting_user=actor_name(request.user))
        except actions.ActionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Engine {deployment.engine_id} is live on {deployment.service}/{deployment.environment}.")
            return redirect("deployment-service", service=deployment.service)
    return render(request, "lineage/deployment_new.html", {"form": form}, status=400 if form.errors else 200)
