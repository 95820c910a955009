"""Dashboard pages: overview, trace search and trace, lineage explorer.  Server-rendered,
login required, role-checked (any read role: auditor, engineer, admin)."""
from __future__ import annotations

import re
from datetime import timedelta

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from compliance.investigation.access import record_access
from compliance.lib.ids import parse_inference_id
from compliance.lib.roles import ADMIN, READ_ROLES, actor_name, has_role, may, role_required
from compliance.models import Alert, Case
from compliance.web import charts, stats
from compliance.web.forms import EraseSaltForm
from compliance.web.graph import lineage_spec, trace_spec
from compliance.web.ledger_status import inclusion_status, url_or_none
from compliance.web.paging import CursorError, keyset_page, parse_limit
from lineage import actions
from lineage.models import Deployment, ModelSource, Prediction, PredictionSalt
from lineage.trace import trace

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


@role_required(*READ_ROLES)
def home(request):
    now = timezone.now()
    hourly = stats.predictions_per_hour(24, now)
    counts = stats.overview_counts(now, hourly)
    context = {
        "counts": counts,
        "health": stats.ledger_health(),
        "figures": {
            "predictions": charts.predictions_per_hour_spec(hourly, now=now),
            "refused": charts.refused_loads_spec(stats.refused_loads_per_day(30, now), now=now),
            "builds": charts.builds_by_status_spec(counts["builds_by_status"]),
        },
        "deployments": Deployment.objects.filter(retired_at=None).select_related("engine").order_by("service")[:20],
        "alerts": Alert.objects.filter(acknowledged_at=None)[:6],
    }
    return render(request, "lineage/home.html", context)


def _parse_when(value: str, what: str):
    value = (value or "").strip()
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"{what} {value!r} is not a date and time (YYYY-MM-DDTHH:MM)")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_current_timezone())


def search_predictions(params) -> tuple[str, object, dict]:
    """(mode, queryset, echo) for a search by input digest or by service + window.
    Raises ValueError with a one-line reason on bad input."""
    digest = params.get("digest", "").strip().lower()
    service = params.get("service", "").strip()
    if digest:
        if not DIGEST_RE.match(digest):
            raise ValueError("an input digest is 64 lowercase hex characters (sha256)")
        return "digest", Prediction.objects.filter(input_digest=digest), {"digest": digest}
    if service:
        since = _parse_when(params.get("since", ""), "since")
        until = _parse_when(params.get("until", ""), "until")
        if since and until and since > until:
            raise ValueError("the window's start is after its end")
        ids = list(Deployment.objects.filter(service=service).values_list("id", flat=True))
        if not ids:
            raise ValueError(f"no deployment was ever made to service {service!r}")
        query = Prediction.objects.filter(deployment_id__in=ids)
        if since:
            query = query.filter(timestamp__gte=since)
        if until:
            query = query.filter(timestamp__lte=until)
        return "service", query, {"service": service, "since": params.get("since", ""), "until": params.get("until", "")}
    return "", Prediction.objects.none(), {}


@role_required(*READ_ROLES)
def trace_search(request):
    """Find a prediction by inference id (straight to its trace), by input digest, or
    by service and time window (newest first, keyset-paginated)."""
    query = request.GET.get("q", "").strip()
    error, page, mode, echo = "", None, "", {}
    if query:
        if DIGEST_RE.match(query.lower()):
            return redirect(f"{request.path}?digest={query.lower()}")
        try:
            return redirect("trace", inference_id=str(parse_inference_id(query)))
        except ValueError as exc:
            error = f"{exc}; or paste a 64-character input digest"
    else:
        try:
            mode, found, echo = search_predictions(request.GET)
            if mode:
                page = keyset_page(found.select_related("deployment"), ("timestamp", "inference_id"),
                                   cursor=request.GET.get("cursor"), limit=parse_limit(request.GET.get("limit")))
        except (ValueError, CursorError) as exc:
            error = str(exc)
    services = sorted(set(Deployment.objects.values_list("service", flat=True)))
    now = timezone.localtime()
    context = {"q": query, "error": error, "page": page, "mode": mode, "echo": echo, "services": services,
               "default_since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
               "default_until": now.strftime("%Y-%m-%dT%H:%M"),
               "recent": [] if page else Prediction.objects.select_related("deployment")[:8]}
    return render(request, "lineage/trace_search.html", context, status=400 if error else 200)


def _trace_result(inference_id: str):
    try:
        iid = parse_inference_id(inference_id)
    except ValueError:
        raise Http404("malformed inference id")
    result = trace(iid)
    if result.prediction is None:
        raise Http404("no such prediction")
    return iid, result


def _trace_page(request, result, status: int = 200):
    cases = Case.objects.filter(prediction=result.prediction)
    context = {
        "trace": result, "prediction": result.prediction, "figure": trace_spec(result),
        "proof": inclusion_status(result.prediction.ledger_index),
        "cases": cases, "holding": [c for c in cases if c.legal_hold],
        "case_kinds": Case.KINDS,
        "export_url": url_or_none("report-export", str(result.prediction.inference_id)),
        "may_hold": may(request.user, "case.hold"), "may_erase": has_role(request.user, ADMIN),
        "salt_kept": PredictionSalt.objects.filter(inference_id=result.prediction.inference_id).exists(),
        "erase_form": EraseSaltForm(),
    }
    return render(request, "lineage/trace.html", context, status=status)


@role_required(*READ_ROLES)
def trace_detail(request, inference_id):
    iid, result = _trace_result(inference_id)
    # the access log, not the ledger: a GET (a link in an e-mail) must not write evidence
    record_access(actor_name(request.user), "trace.viewed", f"prediction:{iid}", detail=f"ok={result.ok}")
    return _trace_page(request, result)


@role_required(ADMIN)
@require_POST
def erase_salt(request, inference_id):
    """GDPR erasure of a prediction's input salt from its trace page (admin); a legal
    hold refuses it with a 409 and the reason on the page."""
    iid, result = _trace_result(inference_id)
    form = EraseSaltForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The reference is a ticket id of at most 100 characters.")
        return _trace_page(request, result, status=400)
    try:
        erased = actions.do_erase_input_salt(iid, acting_user=actor_name(request.user),
                                             reference=form.cleaned_data["reference"])
    except actions.ErasureRefused as exc:
        messages.error(request, str(exc))
        return _trace_page(request, result, status=409)
    messages.success(request, "Input salt erased: the disclosed input can no longer be linked to this prediction."
                     if erased else "The input salt was already erased.")
    return redirect("trace", inference_id=str(iid))


@role_required(*READ_ROLES)
def explorer(request):
    """Every registered model with how far it got: builds, engines, deployments."""
    models = ModelSource.objects.all()
    rows = []
    for model in models:
        builds = list(model.builds.all())
        rows.append({"model": model, "builds": len(builds),
                     "succeeded": sum(b.status == "succeeded" for b in builds),
                     "live": Deployment.objects.filter(engine__build__model=model, retired_at=None).count()})
    return render(request, "lineage/explorer.html", {"rows": rows})


@role_required(*READ_ROLES)
def explorer_model(request, pk):
    model = get_object_or_404(ModelSource, pk=pk)
    builds = list(model.builds.select_related("engine").order_by("-id"))
    deployments = list(Deployment.objects.filter(engine__build__model=model).select_related("engine").order_by("-id"))
    counts = stats.prediction_counts([d.id for d in deployments])
    engines = [b.engine for b in builds if b.status == "succeeded" and hasattr(b, "engine")]
    context = {"model": model, "builds": builds, "engines": engines, "deployments": deployments,
               "counts": counts, "total_predictions": sum(counts.values()),
               "figure": lineage_spec(model, builds, deployments, counts)}
    return render(request, "lineage/explorer_model.html", context)
