"""Dashboard pages: server-rendered, login required, role-checked."""
from __future__ import annotations

from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone

from compliance import ledger
from compliance.ids import parse_inference_id
from compliance.models import Alert
from compliance.roles import READ_ROLES, actor_name, role_required

from .graph import trace_figure
from .models import Build, Deployment, Engine, EngineLoad, ModelSource, Prediction
from .trace import trace


@role_required(*READ_ROLES)
def home(request):
    since = timezone.now() - timezone.timedelta(days=1)
    context = {
        "counts": {
            "models": ModelSource.objects.count(),
            "engines": Engine.objects.count(),
            "live_deployments": Deployment.objects.filter(retired_at=None).count(),
            "predictions_24h": Prediction.objects.filter(timestamp__gte=since).count(),
            "open_alerts": Alert.objects.filter(acknowledged_at=None).count(),
            "ledger_size": ledger.size(),
        },
        "builds_by_status": dict(Build.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")),
        "deployments": Deployment.objects.filter(retired_at=None).select_related("engine")[:20],
        "alerts": Alert.objects.all()[:8],
        "refused_loads": EngineLoad.objects.exclude(verdict=EngineLoad.VERIFIED)[:8],
    }
    return render(request, "lineage/home.html", context)


@role_required(*READ_ROLES)
def trace_search(request):
    query = request.GET.get("q", "").strip()
    error = ""
    if query:
        try:
            return redirect("trace", inference_id=str(parse_inference_id(query)))
        except ValueError as exc:
            error = str(exc)
    recent = Prediction.objects.select_related("deployment")[:10]
    return render(request, "lineage/trace_search.html", {"q": query, "error": error, "recent": recent},
                  status=400 if error else 200)


@role_required(*READ_ROLES)
def trace_detail(request, inference_id):
    try:
        iid = parse_inference_id(inference_id)
    except ValueError:
        raise Http404("malformed inference id")
    result = trace(iid)
    if result.prediction is None:
        raise Http404("no such prediction")
    ledger.append("trace.viewed", {"inference_id": str(iid), "ok": result.ok},
                  subject=f"prediction:{iid}", actor=actor_name(request.user))
    figure = trace_figure(result).to_plotly_json()
    return render(request, "lineage/trace.html", {"trace": result, "prediction": result.prediction, "figure": figure})
