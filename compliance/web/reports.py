"""Dashboard pages of the compliance app: exporting regulator reports and evidence
bundles for a prediction, a case or a service over a time window."""
from __future__ import annotations

import base64
from datetime import timedelta

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from compliance.investigation.disclosure import DisclosureRefused, may_disclose
from compliance.investigation.evidence import ExportError, Scope
from compliance.investigation.exports import do_export_report, load_npz
from compliance.ledger import notes
from compliance.lib.ids import parse_inference_id
from compliance.lib.roles import READ_ROLES, actor_name, role_required
from compliance.models import Checkpoint, SigningKey
from compliance.web import throttle
from lineage.models import Deployment, Prediction

FORMATS = [("pdf", "PDF report"), ("bundle", "Evidence bundle (JSON)")]


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=FORMATS, initial="pdf", widget=forms.RadioSelect)
    disclosed_input = forms.FileField(
        required=False, label="Disclosed input (.npz, optional)",
        help_text="The data subject's own input. It is checked against the prediction's commitment and put, "
                  "with its salt, into the bundle. Every attempt, matching or not, is recorded in the ledger "
                  "and attempts are rate-limited.")

    def clean(self):
        data = super().clean()
        if data.get("disclosed_input") and data.get("format") != "bundle":
            raise forms.ValidationError("a disclosed input goes into the evidence bundle: choose the bundle")
        return data


class ServiceExportForm(forms.Form):
    format = forms.ChoiceField(choices=FORMATS, initial="pdf", widget=forms.RadioSelect)
    service = forms.ChoiceField(choices=[])
    since = forms.DateTimeField(help_text="UTC", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
    until = forms.DateTimeField(help_text="UTC, exclusive", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        services = Deployment.objects.order_by("service").values_list("service", flat=True).distinct()
        self.fields["service"].choices = [(s, s) for s in services]
        now = timezone.now().replace(second=0, microsecond=0)
        self.fields["since"].initial = now - timedelta(days=1)
        self.fields["until"].initial = now + timedelta(minutes=1)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("the window must start before it ends")
        return data


def _keys_to_pin() -> dict:
    """The public keys a regulator pins: the ledger key of the latest checkpoint (as a
    C2SP vkey) and the unrevoked build keys (raw base64)."""
    checkpoint = Checkpoint.objects.order_by("-id").first()
    ledger = SigningKey.objects.filter(key_id=checkpoint.key_id).first() if checkpoint else None
    vkey = ""
    if ledger is not None:
        origin = notes.parse_checkpoint(notes.parse_note(checkpoint.note)[0]).origin
        vkey = notes.format_vkey(origin, base64.b64decode(ledger.public_key))
    return {"ledger": vkey, "build": SigningKey.objects.filter(purpose="build", revoked_at=None)}


def _download(export, fmt: str, stem: str) -> HttpResponse:
    if fmt == "pdf":
        response = HttpResponse(export.files["pdf"], content_type="application/pdf")
        name = f"traceledger-report-{stem}.pdf"
    else:
        response = HttpResponse(export.files["bundle"], content_type="application/json")
        name = f"traceledger-evidence-{stem}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-TraceLedger-Ledger-Entry"] = str(export.ledger_index)
    return response


def _throttled(request, template: str, context: dict):
    """A 429 page when this user has started too many exports lately, else None."""
    wait = throttle.take("export", str(request.user.pk), limit=settings.TRACELEDGER_EXPORTS_PER_WINDOW,
                         window_s=settings.TRACELEDGER_EXPORT_WINDOW_S)
    if wait is None:
        return None
    error = (f"You have started {settings.TRACELEDGER_EXPORTS_PER_WINDOW} exports in the last "
             f"{settings.TRACELEDGER_EXPORT_WINDOW_S // 60} minutes: try again in {wait} seconds.")
    response = render(request, template, context | {"error": error}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _export_page(request, scope: Scope, stem: str, context: dict):
    form = ExportForm(request.POST or None, request.FILES or None)
    discloser = may_disclose(request.user)
    if not discloser:
        del form.fields["disclosed_input"]  # matching an input is the discloser role's right
    error, status = "", 400
    if request.method == "POST":
        if not discloser and request.FILES.get("disclosed_input"):
            raise PermissionDenied("only a person holding the discloser role may disclose an input")
        if form.is_valid():
            fmt = form.cleaned_data["format"]
            limited = _throttled(request, "reports/export.html",
                                 context | {"form": form, "scope": scope, "keys": _keys_to_pin()})
            if limited:
                return limited
            try:
                upload = form.cleaned_data.get("disclosed_input")
                disclose = load_npz(upload) if upload else None
                export = do_export_report(scope, acting_user=actor_name(request.user), pdf=fmt == "pdf",
                                          bundle=fmt == "bundle", disclose=disclose, discloser=request.user,
                                          bundle_name=f"traceledger-evidence-{stem}.json")
            except DisclosureRefused as exc:
                error, status = str(exc), exc.status
            except (ExportError, ValueError) as exc:
                error = str(exc).splitlines()[0]
            else:
                return _download(export, fmt, stem)
        else:
            error = "; ".join(e for errors in form.errors.values() for e in errors)
    context |= {"form": form, "error": error, "scope": scope, "keys": _keys_to_pin()}
    return render(request, "reports/export.html", context, status=status if error else 200)


@require_http_methods(["GET", "POST"])
@role_required(*READ_ROLES)
def report_export(request, inference_id):
    try:
        iid = parse_inference_id(inference_id)
    except ValueError:
        raise Http404("malformed inference id")
    prediction = Prediction.objects.select_related("deployment__engine", "batch").filter(inference_id=iid).first()
    if prediction is None:
        raise Http404("no such prediction")
    return _export_page(request, Scope.for_prediction(iid), str(iid), {"prediction": prediction})


@require_http_methods(["GET", "POST"])
@role_required(*READ_ROLES)
def report_export_case(request, case_id: int):
    try:
        scope = Scope.for_case(case_id)
    except ExportError as exc:
        raise Http404(str(exc))
    prediction = Prediction.objects.select_related("deployment__engine", "batch").get(inference_id=scope.inference_id)
    return _export_page(request, scope, f"case-{case_id}", {"prediction": prediction, "case": scope.case})


@require_http_methods(["GET", "POST"])
@role_required(*READ_ROLES)
def report_export_service(request):
    form = ServiceExportForm(request.POST or None)
    error = ""
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            limited = _throttled(request, "reports/export.html",
                                 {"form": form, "service_form": True, "keys": _keys_to_pin()})
            if limited:
                return limited
            try:
                scope = Scope.for_service(data["service"], data["since"], data["until"])
                export = do_export_report(scope, acting_user=actor_name(request.user), pdf=data["format"] == "pdf",
                                          bundle=data["format"] == "bundle")
            except (ExportError, ValueError) as exc:
                error = str(exc).splitlines()[0]
            else:
                stem = f"{data['service']}-{data['since']:%Y%m%dT%H%M}-{data['until']:%Y%m%dT%H%M}"
                return _download(export, data["format"], stem)
        else:
            error = "; ".join(e for errors in form.errors.values() for e in errors)
    return render(request, "reports/export.html", {"form": form, "error": error, "service_form": True,
                                                   "keys": _keys_to_pin()}, status=400 if error else 200)
