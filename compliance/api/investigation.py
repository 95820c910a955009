"""REST API of the compliance app: alerts, the ledger, cases, notification rules and
public keys.  Same rules as the pages: reads need a read role; acknowledging needs
engineer or admin; "verify now" any read role; cases as in compliance.investigation.cases;
notification rules admin only."""
from __future__ import annotations

import json

from django.db import transaction
from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.api.errors import ApiError
from compliance.api.paging import page_for_api
from compliance.api.parsers import JSONParser
from compliance.investigation import cases
from compliance.investigation.alerts import AlertError, do_acknowledge_alert
from compliance.investigation.ledger_checks import VerificationBusy, last_verification, request_verification
from compliance.investigation.notify import do_delete_rule, do_save_rule
from compliance.ledger import ledger, proofs
from compliance.lib.roles import ADMIN, CASE_ROLES, actor_name, may
from compliance.models import Alert, Case, LedgerEntry, NotificationRule, VerificationRequest
from compliance.web.forms import NotificationRuleForm
from compliance.web.ledger_status import checkpoints
from lineage.models import Prediction

PAGING = {"cursor": "next_cursor of the previous page", "limit": "page size (1-500, default 50)"}


def _body(request) -> dict:
    return request.data if isinstance(request.data, dict) else {}


def _get(model, pk, what: str):
    row = model.objects.filter(pk=pk).first()
    if row is None:
        raise ApiError(f"no {what} {pk}", 404)
    return row


class AlertList(APIView):
    query_params = {"severity": "info, warning or critical", "kind": "alert kind",
                    "acknowledged": "yes or no"} | PAGING

    def get(self, request):
        """Alerts, newest first, filtered."""
        from compliance.web.investigation import filter_alerts

        return Response(page_for_api(filter_alerts(request.query_params), request))


class AlertAcknowledge(APIView):
    parser_classes = [JSONParser]

    def post(self, request, pk):
        """Acknowledge an alert with a note: {"note": "..."} (engineer or admin)."""
        alert = _get(Alert, pk, "alert")
        try:
            alert = do_acknowledge_alert(alert, note=str(_body(request).get("note", "")),
                                         acting_user=actor_name(request.user))
        except AlertError as exc:
            raise ApiError(str(exc), 409 if "already" in str(exc) else 400) from None
        return Response(alert.to_dict())


def entry_dict(entry: LedgerEntry) -> dict:
    return {"index": entry.index, "kind": entry.kind, "subject": entry.subject, "leaf_hash": entry.leaf_hash,
            "created_at": entry.created_at.isoformat(), "body": json.loads(entry.body)}


class LedgerEntryList(APIView):
    query_params = {"kind": "entry kind", "subject": "entry subject, e.g. build:12"} | PAGING

    def get(self, request):
        """Ledger entries, newest first (keyset by index)."""
        query = LedgerEntry.objects.all()
        if request.query_params.get("kind"):
            query = query.of_kind(request.query_params["kind"])
        if request.query_params.get("subject"):
            query = ledger.about(request.query_params["subject"], query)
        return Response(page_for_api(query, request, ("index",), entry_dict) | {"size": ledger.size()})


class LedgerEntryDetail(APIView):
    def get(self, request, index):
        """One ledger entry with the result of re-deriving it from its body."""
        entry = LedgerEntry.objects.filter(index=index).first()
        if entry is None:
            raise ApiError(f"no ledger entry #{index}", 404)
        return Response(entry_dict(entry) | {"problem": ledger.check_entry(entry)})


class LedgerVerify(APIView):
    """GET: the last result, the latest request and the checkpoints. POST: queue a full
    verification (auditor or admin; one at a time) and poll its status URL."""

    write_action = "ledger.verify_full"

    def get(self, request):
        """The last verification result, the latest request and the latest checkpoints."""
        rows = checkpoints()
        latest = VerificationRequest.objects.order_by("-id").first()
        return Response({"last_verification": last_verification(), "size": ledger.size(),
                         "request": latest.to_dict() if latest else None,
                         "checkpoints": None if rows is None else [
                             {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()
                              if k != "cosignatures"} | {"cosignatures": len(r["cosignatures"])} for r in rows]})

    def post(self, request):
        """Queue a full verification; 202 with its status URL, or 409 naming the one running."""
        try:
            queued = request_verification(actor=actor_name(request.user))
        except VerificationBusy as exc:
            running = exc.running.to_dict() if exc.running else {}
            raise ApiError(str(exc), status.HTTP_409_CONFLICT, {"request": running}) from None
        queued.refresh_from_db()
        return Response({"request": queued.to_dict(), "status_url": reverse("api-ledger-verify-status", args=[queued.id])},
                        status=status.HTTP_202_ACCEPTED)


class LedgerVerifyStatus(APIView):
    def get(self, request, pk):
        """One verification request: queued, running, succeeded or failed."""
        return Response(_get(VerificationRequest, pk, "verification request").to_dict())


class CaseList(APIView):
    parser_classes = [JSONParser]
    write_roles = CASE_ROLES
    query_params = {"status": "open, under_review, decided, closed", "kind": "gdpr_art22 or internal_review"} | PAGING

    def get(self, request):
        """Cases, newest first."""
        query = Case.objects.all()
        for field in ("status", "kind"):
            if request.query_params.get(field):
                query = query.filter(**{field: request.query_params[field]})
        return Response(page_for_api(query, request))

    def post(self, request):
        """Open a case on a prediction: {"inference_id", "kind", "summary", "legal_hold", "hold_reason"};
        a legal hold needs the reviewer or admin role."""
        from compliance.lib.ids import parse_inference_id

        data = _body(request)
        legal_hold = data.get("legal_hold") is True
        if legal_hold and not may(request.user, "case.hold"):
            raise ApiError("placing a legal hold needs the reviewer or admin role", status.HTTP_403_FORBIDDEN)
        try:
            iid = parse_inference_id(str(data.get("inference_id", "")))
        except ValueError as exc:
            raise ApiError(str(exc)) from None
        prediction = Prediction.objects.filter(inference_id=iid).first()
        if prediction is None:
            raise ApiError(f"no prediction with inference id {iid}", 404)
        try:
            case = cases.do_open_case(prediction, kind=str(data.get("kind", "")), summary=str(data.get("summary", "")),
                                      legal_hold=legal_hold, hold_reason=str(data.get("hold_reason", "")),
                                      acting_user=actor_name(request.user))
        except cases.CaseError as exc:
            raise ApiError(str(exc)) from None
        return Response(case.to_dict(), status=status.HTTP_201_CREATED)


class CaseDetail(APIView):
    def get(self, request, pk):
        """One case with its notes and its ledger entries."""
        case = _get(Case, pk, "case")
        entries = ledger.about(f"case:{case.id}").order_by("index")
        return Response(case.to_dict() | {"notes": [n.to_dict() for n in case.notes.all()],
                                          "ledger": [entry_dict(e) for e in entries]})


def _case_step(request, pk, step, code=status.HTTP_200_OK) -> Response:
    case = _get(Case, pk, "case")
    try:
        result = step(case, _body(request), actor_name(request.user))
    except cases.CaseError as exc:
        raise ApiError(str(exc), 409 if isinstance(exc, cases.CaseConflict) else 400) from None
    return Response(result.to_dict(), status=code)


class CaseNoteCreate(APIView):
    parser_classes = [JSONParser]
    write_roles = CASE_ROLES

    def post(self, request, pk):
        """Add a note: {"text"} (auditor, engineer or admin)."""
        return _case_step(request, pk, lambda case, data, actor: cases.do_add_case_note(
            case, text=str(data.get("text", "")), acting_user=actor), status.HTTP_201_CREATED)


class CaseDecide(APIView):
    parser_classes = [JSONParser]
    write_action = "case.decide"

    def post(self, request, pk):
        """Record the human reviewer's decision: {"outcome": upheld|overturned, "reason"} (reviewer or admin)."""
        return _case_step(request, pk, lambda case, data, actor: cases.do_decide_case(
            case, outcome=str(data.get("outcome", "")), reason=str(data.get("reason", "")), acting_user=actor))


class CaseClose(APIView):
    parser_classes = [JSONParser]
    write_action = "case.close"

    def post(self, request, pk):
        """Close a decided case: {"note"} (reviewer or admin)."""
        return _case_step(request, pk, lambda case, data, actor: cases.do_close_case(
            case, note=str(data.get("note", "")), acting_user=actor))


class CaseHold(APIView):
    parser_classes = [JSONParser]
    write_action = "case.hold"

    def post(self, request, pk):
        """Place a legal hold on the case's prediction: {"reason"} (reviewer or admin); 409 if already held."""
        return _case_step(request, pk, lambda case, data, actor: cases.do_place_hold(
            case, reason=str(data.get("reason", "")), acting_user=actor))


class CaseHoldRelease(APIView):
    parser_classes = [JSONParser]
    write_action = "case.hold"

    def post(self, request, pk):
        """Release the case's legal hold: {"reason"} (reviewer or admin); 409 if not held."""
        return _case_step(request, pk, lambda case, data, actor: cases.do_release_hold(
            case, reason=str(data.get("reason", "")), acting_user=actor))


class NotificationRuleList(APIView):
    parser_classes = [JSONParser]
    read_roles = (ADMIN,)
    write_roles = (ADMIN,)

    def get(self, request):
        """Notification rules (admin)."""
        return Response({"results": [r.to_dict() for r in NotificationRule.objects.all()]})

    def post(self, request):
        """Create a rule: {"name", "kind_pattern", "min_severity", "emails": [...], "webhook_url", "enabled"} (admin)."""
        return _save_rule(request, NotificationRule(), status.HTTP_201_CREATED)


def _save_rule(request, rule: NotificationRule, code: int) -> Response:
    data = dict(_body(request))
    if isinstance(data.get("emails"), list):
        data["emails"] = "\n".join(str(e) for e in data["emails"])
    base = {} if rule.pk is None else {k: v for k, v in rule.to_dict().items()}
    if "emails" in base:
        base["emails"] = "\n".join(base["emails"])
    merged = base | data
    merged.setdefault("enabled", True)
    form = NotificationRuleForm(merged, instance=rule)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise ApiError(f"{field}: {errors[0]}" if field != "__all__" else errors[0], detail=form.errors)
    with transaction.atomic():
        saved = do_save_rule(form.save(commit=False), acting_user=actor_name(request.user))
    return Response(saved.to_dict(), status=code)


class NotificationRuleDetail(APIView):
    parser_classes = [JSONParser]
    read_roles = (ADMIN,)
    write_roles = (ADMIN,)

    def get(self, request, pk):
        """One notification rule (admin)."""
        return Response(_get(NotificationRule, pk, "notification rule").to_dict())

    def put(self, request, pk):
        """Change a rule (admin)."""
        return _save_rule(request, _get(NotificationRule, pk, "notification rule"), status.HTTP_200_OK)

    def delete(self, request, pk):
        """Delete a rule (admin)."""
        do_delete_rule(_get(NotificationRule, pk, "notification rule"), acting_user=actor_name(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyList(APIView):
    query_params = {"purpose": "build, ledger, witness or webhook"}

    def get(self, request):
        """Registered public keys, as the ledger's key entries register them (webhook
        receivers verify signatures with the `webhook` key)."""
        listed = proofs.public_keys()
        if request.query_params.get("purpose"):
            listed = [k for k in listed if k["purpose"] == request.query_params["purpose"]]
        return Response({"results": listed})
