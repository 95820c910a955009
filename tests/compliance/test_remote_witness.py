"""A witness on another host: a separate process with no Django and no database, its
own key and state directory, talking to the published checkpoint and proof endpoints
only; N-of-M witness policy; the ledger page shows how far behind each witness is; a
rollback it sees becomes a critical alert."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from compliance.api import tokens
from compliance.ledger import checkpoints, keys, ledger, witnesses
from compliance.models import Alert, WitnessCosignature
from tests.compliance.ledger_fixtures import attack, delete_checkpoints_after, truncate_log
from tests.conftest import ROOT

pytestmark = [pytest.mark.embedded]
NAME = "witness.example.org/w1"


def remote(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    """The witness process: only the standard library and cryptography get imported
    (no DJANGO_SETTINGS_MODULE, no database URL in its environment)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "compliance.ledger.remotewitness", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def log(live_server, transactional_db, alice, settings, tmp_path):
    settings.TRACELEDGER_KEYS_DIR = tmp_path / "keys"
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.TRACELEDGER_WITNESS_QUORUM = 1
    keys.get_signer("ledger")
    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(20)])
    checkpoints.make_checkpoint()
    return {"url": live_server.url, "token": tokens.issue(alice)[1], "dir": tmp_path / "elsewhere"}


def run(log) -> subprocess.CompletedProcess:
    return remote("run", "--log", log["url"], "--dir", log["dir"], "--token", log["token"])


def test_it_cosigns_from_another_host_and_the_page_shows_how_far_behind(log, client, alice):
    vkey = remote("init", "--dir", log["dir"], "--name", NAME).stdout.strip()
    assert vkey.startswith(NAME + "+") and (log["dir"] / "witness.pem").stat().st_mode & 0o777 == 0o600
    call_command("keys", "register-witness", vkey)

    first = run(log)
    assert first.returncode == 0 and "first cosignature" in first.stdout, first.stderr
    latest = checkpoints.latest()
    assert WitnessCosignature.objects.get(checkpoint=latest).witness == NAME
    assert witnesses.is_witnessed(latest)
    assert json.loads((log["dir"] / "state.json").read_text())["size"] == latest.size

    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(7)])
    grown = checkpoints.make_checkpoint()
    status = {w["name"]: w for w in witnesses.status()["witnesses"]}
    assert status[NAME]["behind"] == grown.size - latest.size and not witnesses.status()["latest_witnessed"]
    client.force_login(alice)
    page = client.get("/ledger/").content.decode()
    assert NAME in page and f">{grown.size - latest.size}<" in page and "not witnessed" in page

    second = run(log)
    assert second.returncode == 0 and f"extends size {latest.size}" in second.stdout, second.stderr
    assert witnesses.status()["latest_witnessed"]
    assert {w["name"]: w for w in witnesses.status()["witnesses"]}[NAME]["behind"] == 0


def test_the_policy_needs_n_of_m_pinned_witnesses(log, settings):
    call_command("keys", "register-witness", remote("init", "--dir", log["dir"], "--name", NAME).stdout.strip())
    assert run(log).returncode == 0
    settings.TRACELEDGER_WITNESS_QUORUM = 2
    assert not witnesses.is_witnessed(checkpoints.latest())  # one of the two the policy needs
    second = log | {"dir": log["dir"].parent / "second"}
    call_command("keys", "register-witness",
                 remote("init", "--dir", second["dir"], "--name", "witness.other.org/w2").stdout.strip())
    assert run(second).returncode == 0
    assert witnesses.is_witnessed(checkpoints.latest())


def test_a_rollback_it_sees_raises_a_critical_alert(log):
    call_command("keys", "register-witness", remote("init", "--dir", log["dir"], "--name", NAME).stdout.strip())
    assert run(log).returncode == 0
    cosigned = checkpoints.latest().size
    with attack():
        delete_checkpoints_after(0)
        truncate_log(10)
    checkpoints.make_checkpoint()
    refused = run(log)
    assert refused.returncode == 1 and "rollback" in refused.stderr
    alert = Alert.objects.get(kind="ledger.rollback_detected")
    assert alert.severity == "critical" and alert.details["remote"] and alert.details["cosigned_size"] == cosigned
    # the rollback took the witness's registration with it: raised all the same, marked unverified
    assert alert.details["verified"] is False and "not registered in this ledger" in alert.message
    assert json.loads((log["dir"] / "state.json").read_text())["size"] == cosigned  # kept its memory


def test_it_refuses_a_cosignature_from_an_unregistered_witness(log):
    remote("init", "--dir", log["dir"], "--name", NAME)
    refused = run(log)
    assert refused.returncode == 1 and "no cosignature by a registered witness key" in refused.stderr
    assert not WitnessCosignature.objects.exists()


def test_it_refuses_an_alarm_whose_signature_does_not_verify(log, client, alice):
    vkey = remote("init", "--dir", log["dir"], "--name", NAME).stdout.strip()
    key = witnesses.register_remote(vkey)
    client.force_login(alice)
    report = {"kind": "fork", "message": "made up", "size": 1, "cosigned_size": 2, "key_id": key.key_id, "witness": NAME}
    response = client.post("/api/v1/ledger/witness/alarms/", {"report": report, "signature": "A" * 86 + "=="},
                           content_type="application/json")
    assert response.status_code == 400 and "does not verify" in response.json()["error"]
    assert not Alert.objects.filter(kind="ledger.fork_detected").exists()
    bad = client.post("/api/v1/ledger/witness/cosignatures/", {"note": "not a note"}, content_type="application/json")
    assert bad.status_code == 400 and not WitnessCosignature.objects.exists()
