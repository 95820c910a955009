"""Cases: open from a prediction, notes, a human decision, close — each step a ledger
entry; auditors investigate, reviewers and admins decide."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group

from compliance.investigation.cases import (
    CaseError,
    do_add_case_note,
    do_close_case,
    do_decide_case,
    do_open_case,
)
from compliance.lib.roles import REVIEWER
from compliance.models import Case, LedgerEntry
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def prediction(credit_onnx):
    return seed(credit_onnx, predictions=1).predictions[0]


def entries(case):
    return [(e.kind, json.loads(e.body)["actor"]) for e in LedgerEntry.objects.filter(subject=f"case:{case.id}")]


def test_it_records_every_step_of_a_case_in_the_ledger(prediction):
    case = do_open_case(prediction, kind=Case.GDPR_ART22, summary="contested refusal", acting_user="charlie",
                        legal_hold=True)
    do_add_case_note(case, text="engine and build verified", acting_user="alice")
    case.refresh_from_db()
    assert case.status == Case.UNDER_REVIEW and case.legal_hold
    case = do_decide_case(case, outcome=Case.OVERTURNED, reason="income was misread", acting_user="charlie")
    case = do_close_case(case, acting_user="charlie", note="applicant informed")
    assert case.status == Case.CLOSED and case.decided_by == "charlie" and case.closed_at
    assert entries(case) == [("case.opened", "charlie"), ("case.hold_placed", "charlie"), ("case.noted", "alice"),
                             ("case.decided", "charlie"), ("case.closed", "charlie")]
    opened = json.loads(LedgerEntry.objects.get(kind="case.opened").body)["payload"]
    assert opened["inference_id"] == str(prediction.inference_id) and opened["legal_hold"] is True


def test_it_refuses_steps_out_of_order_and_bad_input(prediction):
    with pytest.raises(CaseError, match="unknown case kind"):
        do_open_case(prediction, kind="complaint", summary="x", acting_user="alice")
    with pytest.raises(CaseError, match="summary is required"):
        do_open_case(prediction, kind=Case.INTERNAL_REVIEW, summary="  ", acting_user="alice")
    case = do_open_case(prediction, kind=Case.INTERNAL_REVIEW, summary="review", acting_user="alice")
    with pytest.raises(CaseError, match="record a decision before closing"):
        do_close_case(case, acting_user="charlie")
    with pytest.raises(CaseError, match="unknown outcome"):
        do_decide_case(case, outcome="maybe", reason="r", acting_user="charlie")
    do_decide_case(case, outcome=Case.UPHELD, reason="policy applied", acting_user="charlie")
    with pytest.raises(CaseError, match="decided only once"):
        do_decide_case(case, outcome=Case.OVERTURNED, reason="again", acting_user="charlie")
    do_close_case(case, acting_user="charlie")
    with pytest.raises(CaseError, match="closed"):
        do_add_case_note(case, text="late", acting_user="alice")
    assert [k for k, _ in entries(case)] == ["case.opened", "case.decided", "case.closed"]


def test_it_lets_an_auditor_open_and_note_but_not_decide(client, alice, prediction):
    client.force_login(alice)
    response = client.post("/cases/open/", {"inference_id": str(prediction.inference_id), "kind": "gdpr_art22",
                                            "summary": "applicant contests"})
    case = Case.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.id}/"
    assert client.post(f"/cases/{case.id}/note/", {"text": "checked the trace"}).status_code == 302
    assert client.post(f"/cases/{case.id}/decide/", {"outcome": "upheld", "reason": "r"}).status_code == 403
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert "checked the trace" in page and "Awaiting a human reviewer" in page
    case.refresh_from_db()
    assert case.status == Case.UNDER_REVIEW and case.opened_by == "alice"


def test_it_lets_a_reviewer_decide_through_the_api(client, alice, prediction):
    alice.groups.add(Group.objects.get(name=REVIEWER))
    client.force_login(alice)
    created = client.post("/api/v1/cases/", {"inference_id": str(prediction.inference_id), "kind": "internal_review",
                                             "summary": "spot check"}, content_type="application/json")
    assert created.status_code == 201, created.json()
    case_id = created.json()["id"]
    decided = client.post(f"/api/v1/cases/{case_id}/decision/", {"outcome": "upheld", "reason": "fine"},
                          content_type="application/json")
    assert decided.status_code == 200 and decided.json()["status"] == "decided"
    again = client.post(f"/api/v1/cases/{case_id}/decision/", {"outcome": "upheld", "reason": "fine"},
                        content_type="application/json")
    assert again.status_code == 409 and "decided only once" in again.json()["error"]
    bad = client.post("/api/v1/cases/", {"inference_id": "not-an-id", "kind": "gdpr_art22", "summary": "x"},
                      content_type="application/json")
    assert bad.status_code == 400 and "malformed inference id" in bad.json()["error"]
    detail = client.get(f"/api/v1/cases/{case_id}/").json()
    assert [e["kind"] for e in detail["ledger"]] == ["case.opened", "case.decided"]
