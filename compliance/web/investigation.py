"""Dashboard pages of the compliance app: alerts, the ledger, cases, notification rules
(admin), /metrics and the API docs page.

Roles: every page needs a read role (auditor, engineer, admin).  Acknowledging an
alert needs engineer or admin.  "Verify now" is open to every read role because it
only reads (its result is recorded).  Cases: see compliance.investigation.cases for who may open,
note, decide and close.  Notification rules are admin-only.
"""
from __future__ import annotations

import hmac
import json

from celery import current_app
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from compliance.investigation import cases
from compliance.investigation.alerts import AlertError, do_acknowledge_alert
from compliance.investigation.ledger_checks import VerificationBusy, last_verification, request_verification
from compliance.investigation.notify import KEY_PURPOSE, do_delete_rule, do_save_rule
from compliance.ledger import ledger, witnesses
from compliance.lib.roles import (
    ADMIN,
    CASE_ROLES,
    READ_ROLES,
    WRITE_ROLES,
    action_required,
    actor_name,
    has_role,
    may,
    role_required,
)
from compliance.models import Alert, Case, LedgerEntry, NotificationDelivery, NotificationRule, VerificationRequest
from compliance.web import charts, metrics, stats
from compliance.web.forms import (
    SEVERITY_CHOICES,
    AcknowledgeForm,
    CaseNoteForm,
    CloseCaseForm,
    DecideCaseForm,
    HoldForm,
    NotificationRuleForm,
    OpenCaseForm,
)
from compliance.web.ledger_status import checkpoints
from compliance.web.paging import page_for_view
from compliance.web.redirects import safe_next
from lineage.models import Prediction


def filter_alerts(params, query=None):
    query = query if query is not None else Alert.objects.all()
    if params.get("severity"):
        query = query.filter(severity=params["severity"])
    if params.get("kind"):
        query = query.filter(kind=params["kind"])
    acknowledged = params.get("acknowledged", "")
    if acknowledged in ("yes", "true", "1"):
        query = query.exclude(acknowledged_at=None)
    elif acknowledged in ("no", "false", "0"):
        query = query.filter(acknowledged_at=None)
    return query


@role_required(*READ_ROLES)
def alert_list(request):
    page = page_for_view(request, filter_alerts(request.GET), ("id",))
    now = timezone.now()
    context = {
        "page": page, "severities": SEVERITY_CHOICES[1:],
        "kinds": Alert.objects.order_by("kind").values_list("kind", flat=True).distinct(),
        "filters": {k: request.GET.get(k, "") for k in ("severity", "kind", "acknowledged")},
        "trend": charts.alerts_trend_spec(stats.alerts_per_day(30, now), now=now),
        "refused": charts.refused_loads_spec(stats.refused_loads_per_day(30, now), now=now),
        "ack_form": AcknowledgeForm(),
    }
    return render(request, "compliance/alert_list.html", context)


@role_required(*WRITE_ROLES)
@require_POST
def alert_acknowledge(request, pk):
    alert = get_object_or_404(Alert, pk=pk)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Alert {pk}: a note is required to acknowledge it.")
    else:
        try:
            do_acknowledge_alert(alert, note=form.cleaned_data["note"], acting_user=actor_name(request.user))
            messages.success(request, f"Alert {pk} acknowledged.")
        except AlertError as exc:
            messages.error(request, str(exc))
    return safe_next(request, "alert-list")


@role_required(*READ_ROLES)
def ledger_list(request):
    query = LedgerEntry.objects.all()
    if request.GET.get("kind"):
        query = query.of_kind(request.GET["kind"])
    if request.GET.get("subject"):
        query = ledger.about(request.GET["subject"].strip(), query)
    page = page_for_view(request, query.defer("body"), ("index",))
    # a verification queued or running: its progress, refreshed by static/js/verify_progress.js
    running = VerificationRequest.objects.filter(slot=True).order_by("-id").first()
    context = {"page": page, "kinds": sorted(ledger.KINDS), "size": ledger.size(),
               "filters": {k: request.GET.get(k, "") for k in ("kind", "subject")},
               "checkpoints": checkpoints(), "verification": last_verification(),
               "witness_status": witnesses.status(), "running": running,
               "running_progress": running.progress() if running else None,
               "running_url": reverse("api-ledger-verify-status", args=[running.id]) if running else ""}
    return render(request, "compliance/ledger_list.html", context)


@role_required(*READ_ROLES)
def ledger_entry(request, index):
    entry = get_object_or_404(LedgerEntry, index=index)
    body = json.loads(entry.body)
    return render(request, "compliance/ledger_entry.html",
                  {"entry": entry, "body": json.dumps(body, indent=2, sort_keys=True), "actor": body.get("actor"),
                   "problem": ledger.check_entry(entry)})


@action_required("ledger.verify_full")
@require_POST
def ledger_verify(request):
    """Auditors and admins: queue a full verification (one at a time, in the background)."""
    try:
        request_verification(actor=actor_name(request.user))
    except VerificationBusy as exc:
        messages.info(request, str(exc))
        return redirect("ledger-list")
    result = last_verification()
    if current_app.conf.task_always_eager and result:
        (messages.success if result["ok"] else messages.error)(request, f"Ledger verification: {result['detail']}")
    else:
        messages.info(request, "Verification started; its result appears here when it finishes.")
    return redirect("ledger-list")


@role_required(*READ_ROLES)
def case_list(request):
    query = Case.objects.select_related("prediction__deployment")
    if request.GET.get("status"):
        query = query.filter(status=request.GET["status"])
    if request.GET.get("kind"):
        query = query.filter(kind=request.GET["kind"])
    page = page_for_view(request, query, ("id",))
    return render(request, "compliance/case_list.html",
                  {"page": page, "statuses": Case.STATUSES, "kinds": Case.KINDS,
                   "filters": {k: request.GET.get(k, "") for k in ("status", "kind")}})


@role_required(*READ_ROLES)
def case_detail(request, pk):
    case = get_object_or_404(Case.objects.select_related("prediction__deployment"), pk=pk)
    entries = ledger.about(f"case:{case.id}").order_by("index")
    return render(request, "compliance/case_detail.html", {
        "case": case, "notes": case.notes.all(), "entries": entries,
        "note_form": CaseNoteForm(), "decide_form": DecideCaseForm(), "close_form": CloseCaseForm(),
        "hold_form": HoldForm(), "hold": case.hold_dict(),
        "may_note": has_role(request.user, *CASE_ROLES), "may_decide": may(request.user, "case.decide"),
        "may_hold": may(request.user, "case.hold"),
    })


@role_required(*CASE_ROLES)
@require_POST
def case_open(request):
    """Auditors, engineers and admins may open a case: it records an investigation and
    changes none of the audited records."""
    form = OpenCaseForm(request.POST)
    if not form.is_valid():
        iid = request.POST.get("inference_id", "")
        messages.error(request, "To open a case, choose its kind and give a summary.")
        return redirect("trace", inference_id=iid) if iid else redirect("case-list")
    if form.cleaned_data["legal_hold"] and not may(request.user, "case.hold"):
        raise PermissionDenied("placing a legal hold needs the reviewer or admin role")
    prediction = Prediction.objects.filter(inference_id=form.cleaned_data["inference_id"]).first()
    if prediction is None:
        raise Http404("no such prediction")
    try:
        case = cases.do_open_case(prediction, kind=form.cleaned_data["kind"], summary=form.cleaned_data["summary"],
                                  legal_hold=form.cleaned_data["legal_hold"],
                                  hold_reason=form.cleaned_data["hold_reason"], acting_user=actor_name(request.user))
    except cases.CaseError as exc:
        messages.error(request, str(exc))
        return redirect("trace", inference_id=str(prediction.inference_id))
    messages.success(request, f"Case {case.id} opened.")
    return redirect("case-detail", pk=case.id)


def _case_step(request, pk, form_class, step):
    case = get_object_or_404(Case, pk=pk)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        try:
            step(case, form.cleaned_data, actor_name(request.user))
        except cases.CaseError as exc:
            messages.error(request, str(exc))
    return redirect("case-detail", pk=pk)


@role_required(*CASE_ROLES)
@require_POST
def case_note(request, pk):
    """Auditors, engineers and admins may add notes to a case that is not closed."""
    return _case_step(request, pk, CaseNoteForm,
                      lambda case, d, actor: cases.do_add_case_note(case, text=d["text"], acting_user=actor))


@action_required("case.decide")
@require_POST
def case_decide(request, pk):
    """Only a reviewer (who may also read the case) or an admin decides: the human review
    the data subject is owed."""
    return _case_step(request, pk, DecideCaseForm,
                      lambda case, d, actor: cases.do_decide_case(case, outcome=d["outcome"], reason=d["reason"],
                                                                  acting_user=actor))


@action_required("case.close")
@require_POST
def case_close(request, pk):
    """Closing a decided case: reviewer or admin."""
    return _case_step(request, pk, CloseCaseForm,
                      lambda case, d, actor: cases.do_close_case(case, note=d["note"], acting_user=actor))


@action_required("case.hold")
@require_POST
def case_hold(request, pk):
    """Place a legal hold, with a reason: reviewer or admin."""
    return _case_step(request, pk, HoldForm,
                      lambda case, d, actor: cases.do_place_hold(case, reason=d["reason"], acting_user=actor))


@action_required("case.hold")
@require_POST
def case_hold_release(request, pk):
    """Release a legal hold, with a reason: reviewer or admin."""
    return _case_step(request, pk, HoldForm,
                      lambda case, d, actor: cases.do_release_hold(case, reason=d["reason"], acting_user=actor))


@role_required(ADMIN)
def rule_list(request):
    from compliance.ledger import keys

    try:
        signer = keys.get_signer(KEY_PURPOSE)
        key = {"key_id": signer.key_id, "public_key": signer.public_b64}
    except keys.KeyFileError as exc:
        key = {"error": str(exc)}
    return render(request, "compliance/rule_list.html", {
        "rules": NotificationRule.objects.all(), "key": key,
        "deliveries": NotificationDelivery.objects.select_related("alert", "rule")[:20],
    })


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def rule_edit(request, pk=None):
    rule = get_object_or_404(NotificationRule, pk=pk) if pk else NotificationRule()
    form = NotificationRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        do_save_rule(form.save(commit=False), acting_user=actor_name(request.user))
        messages.success(request, f"Notification rule “{form.instance.name}” saved.")
        return redirect("rule-list")
    return render(request, "compliance/rule_edit.html", {"form": form, "rule": rule},
                  status=400 if form.errors else 200)


@role_required(ADMIN)
@require_POST
def rule_delete(request, pk):
    rule = get_object_or_404(NotificationRule, pk=pk)
    do_delete_rule(rule, acting_user=actor_name(request.user))
    messages.success(request, f"Notification rule “{rule.name}” deleted.")
    return redirect("rule-list")


def metrics_view(request):
    """Prometheus text format. A scraper sends `Authorization: Bearer <token>`
    (TRACELEDGER_METRICS_TOKEN); a signed-in person needs a read role."""
    token = settings.TRACELEDGER_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        if not token or not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            return HttpResponse("invalid metrics token\n", status=401, content_type="text/plain")
    elif not request.user.is_authenticated:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    elif not has_role(request.user, *READ_ROLES):
        return HttpResponse("your role does not allow this\n", status=403, content_type="text/plain")
    body, content_type = metrics.render(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


@role_required(*READ_ROLES)
def api_docs(request):
    """The API's endpoints, listed from the OpenAPI schema itself."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    endpoints = []
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            endpoints.append({"method": method.upper(), "path": path, "summary": op.get("summary") or
                              (op.get("description") or "").split("\n")[0], "tag": (op.get("tags") or ["api"])[0],
                              "parameters": [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]})
    endpoints.sort(key=lambda e: (e["tag"], e["path"], e["method"]))
    return render(request, "api_docs.html", {"endpoints": endpoints, "info": schema.get("info", {})})
