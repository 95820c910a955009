"""Legal holds that hold (issue 22, findings 1 and 2): while a case holds a prediction
no erasure path removes its input salt — API, command, web form, retention — and each
refusal is a 409 (or a non-zero exit) with the reason, recorded in the ledger.  Only
reviewers and admins place or release a hold, each time with a reason and a ledger entry."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from compliance.investigation.cases import CaseError, do_open_case, do_place_hold, do_release_hold
from compliance.investigation.retention import do_apply_retention
from compliance.lib.roles import REVIEWER
from compliance.models import Case, LedgerEntry
from lineage.actions import ErasureRefused, do_erase_input_salt
from lineage.models import PredictionSalt
from tests.dashboard_data import seed

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def prediction(credit_onnx):
    prediction = seed(credit_onnx, predictions=1).predictions[0]
    assert PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()
    return prediction


@pytest.fixture
def held(prediction):
    return do_open_case(prediction, kind=Case.GDPR_ART22, summary="contested", acting_user="charlie",
                        legal_hold=True, hold_reason="litigation pending")


def salt_kept(prediction) -> bool:
    return PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists()


def kinds(subject: str) -> list[str]:
    return list(LedgerEntry.objects.filter(subject=subject).order_by("index").values_list("kind", flat=True))


def payload(kind: str) -> dict:
    body = json.loads(LedgerEntry.objects.filter(kind=kind).latest("index").body)
    return body["payload"] | {"actor": body["actor"]}


def test_it_refuses_erasure_through_the_api_while_a_case_holds_the_prediction(client, charlie, prediction):
    client.force_login(charlie)
    opened = client.post("/api/v1/cases/", {"inference_id": str(prediction.inference_id), "kind": "gdpr_art22",
                                            "summary": "contested", "legal_hold": True}, content_type="application/json")
    assert opened.status_code == 201 and opened.json()["legal_hold"] is True
    response = client.post(f"/api/v1/predictions/{prediction.inference_id}/erase-salt/", {"reference": "T-1"},
                           content_type="application/json")
    assert response.status_code == 409
    assert "under legal hold" in response.json()["error"] and f"case {opened.json()['id']}" in response.json()["error"]
    assert salt_kept(prediction)
    subject = f"prediction:{prediction.inference_id}"
    assert "prediction.erasure_refused" in kinds(subject) and "prediction.salt_erased" not in kinds(subject)
    assert payload("prediction.erasure_refused")["held_by_cases"] == [opened.json()["id"]]


def test_it_refuses_erasure_through_the_command_with_a_one_line_reason(held, prediction):
    with pytest.raises(CommandError, match="under legal hold"):
        call_command("erase_salt", str(prediction.inference_id), "--reference", "T-2", "--user", "ops")
    assert salt_kept(prediction)


def test_it_refuses_erasure_through_the_web_form_with_a_409(client, charlie, held, prediction):
    client.force_login(charlie)
    page = client.get(f"/trace/{prediction.inference_id}/").content.decode()
    assert 'id="erase-form"' in page and "keeps this prediction from erasure" in page
    response = client.post(f"/trace/{prediction.inference_id}/erase-salt/", {"reference": "T-3"})
    assert response.status_code == 409
    assert "under legal hold" in response.content.decode()
    assert salt_kept(prediction)


def test_it_erases_through_the_web_form_once_every_hold_is_released(client, charlie, held, prediction):
    second = do_open_case(prediction, kind=Case.INTERNAL_REVIEW, summary="audit", acting_user="charlie",
                          legal_hold=True)
    do_release_hold(held, reason="settled", acting_user="charlie")
    with pytest.raises(ErasureRefused, match=f"case {second.id}"):
        do_erase_input_salt(prediction.inference_id, acting_user="charlie")
    do_release_hold(second, reason="audit finished", acting_user="charlie")
    client.force_login(charlie)
    response = client.post(f"/trace/{prediction.inference_id}/erase-salt/", {"reference": "T-4"})
    assert response.status_code == 302 and not salt_kept(prediction)
    assert payload("prediction.salt_erased")["reference"] == "T-4"


def test_it_keeps_held_salts_from_retention_until_the_hold_is_released(held, prediction):
    later = prediction.timestamp + timedelta(days=400)
    result = do_apply_retention(now=later)
    assert result["held_by_legal_hold"] == 1 and result["salts_erased"] == 0 and salt_kept(prediction)
    do_release_hold(held, reason="case closed and appeal window over", acting_user="charlie")
    assert do_apply_retention(now=later)["salts_erased"] == 1 and not salt_kept(prediction)


def test_it_lets_no_reader_place_a_hold(client, alice, prediction):
    client.force_login(alice)
    body = {"inference_id": str(prediction.inference_id), "kind": "gdpr_art22", "summary": "contested"}
    api = client.post("/api/v1/cases/", body | {"legal_hold": True}, content_type="application/json")
    assert api.status_code == 403 and "reviewer or admin" in api.json()["error"]
    form = client.post("/cases/open/", body | {"legal_hold": "on"})
    assert form.status_code == 403
    assert not Case.objects.exists()
    case = do_open_case(prediction, kind=Case.GDPR_ART22, summary="contested", acting_user="alice")
    assert client.post(f"/api/v1/cases/{case.id}/hold/", {"reason": "x"}, content_type="application/json").status_code == 403
    assert client.post(f"/cases/{case.id}/hold/", {"reason": "x"}).status_code == 403
    page = client.get(f"/trace/{prediction.inference_id}/").content.decode()
    assert 'name="legal_hold"' not in page and 'id="erase-form"' not in page
    case.refresh_from_db()
    assert not case.legal_hold and "case.hold_placed" not in kinds(f"case:{case.id}")


def test_it_lets_a_reviewer_place_and_release_a_hold_each_with_a_reason(client, alice, prediction):
    alice.groups.add(Group.objects.get(name=REVIEWER))
    client.force_login(alice)
    case = do_open_case(prediction, kind=Case.GDPR_ART22, summary="contested", acting_user="alice")
    url = f"/api/v1/cases/{case.id}/hold/"
    missing = client.post(url, {"reason": " "}, content_type="application/json")
    assert missing.status_code == 400 and "reason is required" in missing.json()["error"]
    placed = client.post(url, {"reason": "regulator inquiry R-7"}, content_type="application/json")
    assert placed.status_code == 200 and placed.json()["hold"]["placed_by"] == "alice"
    assert client.post(url, {"reason": "again"}, content_type="application/json").status_code == 409
    assert {"reason": "regulator inquiry R-7", "actor": "alice",
            "inference_id": str(prediction.inference_id)}.items() <= payload("case.hold_placed").items()
    released = client.post(f"{url}release/", {"reason": "inquiry closed"}, content_type="application/json")
    assert released.status_code == 200 and released.json()["legal_hold"] is False
    assert released.json()["hold"]["released_by"] == "alice"
    assert client.post(f"{url}release/", {"reason": "again"}, content_type="application/json").status_code == 409
    assert payload("case.hold_released")["reason"] == "inquiry closed"
    assert kinds(f"case:{case.id}") == ["case.opened", "case.hold_placed", "case.hold_released"]


def test_it_shows_who_placed_the_hold_when_and_why(client, alice, charlie, held):
    client.force_login(alice)
    page = client.get(f"/cases/{held.id}/").content.decode()
    assert 'id="hold-placed-by">charlie<' in page and 'id="hold-reason">litigation pending<' in page
    assert "Reviewers and admins place and release holds" in page
    client.force_login(charlie)
    response = client.post(f"/cases/{held.id}/hold/release/", {"reason": "settled out of court"})
    assert response.status_code == 302
    page = client.get(f"/cases/{held.id}/").content.decode()
    assert 'id="hold-released-by">charlie<' in page and "settled out of court" in page


def test_it_keeps_the_hold_after_the_case_closes(held, prediction):
    from compliance.investigation.cases import do_close_case, do_decide_case

    do_decide_case(held, outcome=Case.UPHELD, reason="policy applied", acting_user="charlie")
    do_close_case(held, acting_user="charlie")
    with pytest.raises(ErasureRefused):
        do_erase_input_salt(prediction.inference_id, acting_user="charlie")
    with pytest.raises(CaseError, match="already under legal hold"):
        do_place_hold(held, reason="again", acting_user="charlie")
