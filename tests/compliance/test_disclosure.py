"""Finding 3 of issue 21: the disclosure form was an online oracle (a wrong guess wrote
nothing, a right one returned the salt; 54 guesses recovered an applicant's age).  Now
every attempt is a ledger entry before the answer, attempts are limited per user and
per prediction with an alert past the limit, only the discloser role may attempt, and
files holding a disclosed input are 0600 in a 0700 directory (finding 7)."""
from __future__ import annotations

import io
import json
import stat

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from compliance.investigation.disclosure import DisclosureRefused, do_attempt_disclosure
from compliance.ledger import ledger
from compliance.models import Alert, DisclosureAttempt, LedgerEntry
from inference.runtime import AuditedService
from lineage.models import Prediction
from tests.conftest import make_user
from tests.inference.conftest import credit_deployment  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

APPLICANT = np.array([[35, 48.0, 0.25, 4, 0, 6]], dtype=np.float32)


@pytest.fixture
def prediction(credit_deployment):
    _, meta = AuditedService.open("credit").predict({"X": APPLICANT})
    return Prediction.objects.get(inference_id=meta["inference_id"])


@pytest.fixture
def dora(db):
    user = make_user("dora", "auditor")
    user.groups.add(Group.objects.get(name="discloser"))
    return user


def guess(age: float) -> dict:
    return {"X": np.array([[age, 48.0, 0.25, 4, 0, 6]], dtype=np.float32)}


def attempts(prediction) -> list[dict]:
    return [ledger.payload_of(e) for e in LedgerEntry.objects.filter(
        kind="disclosure.attempted", subject=f"prediction:{prediction.inference_id}").order_by("index")]


def test_every_attempt_is_recorded_before_the_answer(prediction, dora):
    answers = set()
    for age in (30, 31, 32):
        with pytest.raises(DisclosureRefused) as refused:
            do_attempt_disclosure(prediction, guess(age), user=dora)
        answers.add(str(refused.value))
    # a wrong guess says one thing, whatever the guess
    assert answers == {"the disclosed input does not match the prediction's input commitment"}
    disclosed = do_attempt_disclosure(prediction, {"X": APPLICANT}, user=dora)
    assert disclosed["inference_id"] == str(prediction.inference_id) and len(disclosed["salt"]) == 64
    recorded = attempts(prediction)
    assert [a["outcome"] for a in recorded] == ["no_match"] * 3 + ["matched"]
    assert all(a["user"] == "dora" and a["inference_id"] == str(prediction.inference_id) for a in recorded)
    rows = list(DisclosureAttempt.objects.order_by("id"))
    assert [r.outcome for r in rows] == [a["outcome"] for a in recorded]
    assert all(LedgerEntry.objects.get(index=r.ledger_index).kind == "disclosure.attempted" for r in rows)
    assert "salt" not in json.dumps(recorded)


def test_attempts_are_limited_per_user_and_per_prediction_with_an_alert(prediction, dora, settings):
    settings.TRACELEDGER_DISCLOSURES_PER_USER_PER_HOUR = 5
    settings.TRACELEDGER_DISCLOSURES_PER_PREDICTION_PER_DAY = 100
    for age in range(20, 25):
        with pytest.raises(DisclosureRefused, match="does not match"):
            do_attempt_disclosure(prediction, guess(age), user=dora)
    # the sixth attempt is refused, even with the right input, and says nothing about it
    with pytest.raises(DisclosureRefused, match="too many disclosure attempts") as refused:
        do_attempt_disclosure(prediction, {"X": APPLICANT}, user=dora)
    assert refused.value.status == 429
    assert [a["outcome"] for a in attempts(prediction)][-1] == "rate_limited"
    alert = Alert.objects.get(kind="disclosure.rate_limited")
    assert "dora made 5 disclosure attempts within an hour" in alert.message

    # per prediction: another discloser is refused too once the prediction had its share
    settings.TRACELEDGER_DISCLOSURES_PER_USER_PER_HOUR = 100
    settings.TRACELEDGER_DISCLOSURES_PER_PREDICTION_PER_DAY = 6
    eve = make_user("eve", "auditor")
    eve.groups.add(Group.objects.get(name="discloser"))
    with pytest.raises(DisclosureRefused, match="too many"):
        do_attempt_disclosure(prediction, {"X": APPLICANT}, user=eve)
    assert Alert.objects.filter(kind="disclosure.rate_limited", message__contains="within a day").exists()
    assert DisclosureAttempt.objects.count() == 7


def test_only_the_discloser_role_may_attempt(prediction, client, alice, charlie, dora):
    for user in (alice, charlie):  # an auditor, an admin
        with pytest.raises(DisclosureRefused, match="discloser role") as refused:
            do_attempt_disclosure(prediction, {"X": APPLICANT}, user=user)
        assert refused.value.status == 403
    url = f"/reports/prediction/{prediction.inference_id}/"
    buf = io.BytesIO()
    np.savez(buf, X=APPLICANT)
    client.force_login(alice)
    page = client.get(url)
    assert page.status_code == 200 and b"disclosed_input" not in page.content
    buf.seek(0)
    buf.name = "mine.npz"
    assert client.post(url, {"format": "bundle", "disclosed_input": buf}).status_code == 403
    assert not attempts(prediction)
    client.force_login(dora)
    assert b"disclosed_input" in client.get(url).content
    for age in (30, 31):
        wrong = io.BytesIO()
        np.savez(wrong, **guess(age))
        wrong.seek(0)
        wrong.name = "guess.npz"
        response = client.post(url, {"format": "bundle", "disclosed_input": wrong})
        assert response.status_code == 400 and b"does not match" in response.content
    assert [a["outcome"] for a in attempts(prediction)] == ["no_match", "no_match"]
    buf.seek(0)
    ok = client.post(url, {"format": "bundle", "disclosed_input": buf})
    assert ok.status_code == 200 and json.loads(ok.content)["disclosed_input"]["salt"]


def test_files_with_a_disclosed_input_are_0600_in_a_0700_directory(prediction, dora, tmp_path):
    np.savez(tmp_path / "mine.npz", X=APPLICANT)
    open_dir = tmp_path / "shared"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(CommandError, match="open to other users .*mkdir -m 700"):
        call_command("export_report", str(prediction.inference_id), "--bundle", str(open_dir / "b.json"),
                     "--disclose-input", str(tmp_path / "mine.npz"), "--user", "dora")
    assert not attempts(prediction) and not list(open_dir.iterdir())
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    call_command("export_report", str(prediction.inference_id), "--bundle", str(private / "b.json"),
                 "--pdf", str(private / "r.pdf"), "--disclose-input", str(tmp_path / "mine.npz"), "--user", "dora",
                 "--keys", str(private), stdout=io.StringIO())
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in private.iterdir()}
    assert modes["b.json"] == modes["r.pdf"] == 0o600
    assert modes["build.pub"] == 0o644  # public keys are public
    # and without a disclosed input, the bundle and report are 0600 all the same
    call_command("export_report", str(prediction.inference_id), "--bundle", str(open_dir / "b.json"),
                 "--pdf", str(open_dir / "r.pdf"), stdout=io.StringIO())
    assert {stat.S_IMODE(p.stat().st_mode) for p in open_dir.iterdir()} == {0o600}
