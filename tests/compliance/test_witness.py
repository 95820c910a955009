"""The witness cosigns a checkpoint only when it extends the last one it cosigned, keeps
its own memory outside our database, and refuses forks and rollbacks with an alert."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from compliance.ledger import checkpoints, keys, ledger, notes
from compliance.ledger.verify import verify_ledger
from compliance.ledger.witness import Witness, WitnessRefused
from compliance.models import Alert, Checkpoint, LedgerEntry, WitnessCosignature
from tests.compliance.ledger_fixtures import attack, delete_checkpoints_after, seed_ledger, sql, truncate_log

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def home(settings, tmp_path):
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    return tmp_path


def ledger_vkey() -> str:
    return checkpoints.ledger_vkey()


def test_it_cosigns_and_then_only_extensions(home, capsys):
    seeded = seed_ledger()
    call_command("witness")
    assert "cosigned checkpoint" in capsys.readouterr().out
    cosig = WitnessCosignature.objects.get()
    assert cosig.checkpoint_id == seeded.c.id and cosig.witness == "traceledger.local/witness"
    assert cosig.key_id == keys.get_signer("witness").key_id
    # what it published verifies with the two public keys alone
    witness_vkey = Witness().vkey()
    witnessed = (home / "checkpoints" / f"{40:012d}.witnessed").read_text()
    assert witnessed == seeded.c.note + cosig.line == (home / "checkpoints" / "latest.witnessed").read_text()
    assert notes.verify_note(witnessed, [ledger_vkey()]) == [checkpoints.origin()]
    parsed_vkey = notes.parse_vkey(witness_vkey)
    assert notes.verify_cosignature(witnessed, parsed_vkey.name, parsed_vkey.public_key) == cosig.timestamp
    # its memory is its own file, not our database
    state = json.loads((home / "witness" / "state.json").read_text())
    assert (state["size"], state["checkpoint_id"]) == (40, seeded.c.id)
    assert (home / "witness" / "ledger.vkeys").read_text() == ledger_vkey() + "\n"
    assert LedgerEntry.objects.filter(kind="checkpoint.cosigned", subject=f"checkpoint:{seeded.c.id}").count() == 1

    ledger.append_many([ledger.Event("trace.viewed", {"n": i}) for i in range(9)])
    newer = checkpoints.make_checkpoint()
    done = Witness().cosign_latest()
    assert (done.status, done.previous_size, done.checkpoint_id) == ("cosigned", 40, newer.id)
    assert Witness().cosign_latest().status == "already_cosigned"
    assert WitnessCosignature.objects.count() == 2
    assert verify_ledger().cosignatures_checked == 2


def test_it_refuses_a_rollback(home):
    seeded = seed_ledger()
    Witness().cosign_latest()  # size 40
    with attack():
        delete_checkpoints_after(29)
        truncate_log(30)
    assert checkpoints.latest().id == seeded.b.id
    state_before = (home / "witness" / "state.json").read_text()
    with pytest.raises(WitnessRefused, match="rollback: checkpoint .* has 29 entries, this witness already cosigned 40"):
        Witness().cosign_latest()
    alert = Alert.objects.get(kind="ledger.rollback_detected")
    assert alert.severity == "critical" and alert.details["cosigned_size"] == 40
    assert (home / "witness" / "state.json").read_text() == state_before
    assert not WitnessCosignature.objects.filter(checkpoint=seeded.b).exists()


def test_it_refuses_a_fork_that_verify_ledger_cannot_see(home):
    seed_ledger()
    Witness().cosign_latest()  # size 40
    # rewrite history from entry 33 on, drop the checkpoints that knew it, and sign the
    # new history with the real ledger key: the database is consistent with itself again
    # (the witness key's registration went with the tail, so its cached row goes too)
    with attack():
        delete_checkpoints_after(29)
        truncate_log(33)
        sql("DELETE FROM compliance_signingkey WHERE purpose = 'witness'")
    ledger.append_many([ledger.Event("trace.viewed", {"n": i, "who": "mallory"}) for i in range(20)])
    forked = checkpoints.make_checkpoint()
    assert forked.size == 53
    assert verify_ledger().ok
    with pytest.raises(CommandError, match="fork: checkpoint .* does not extend the checkpoint this witness cosigned at size 40"):
        call_command("witness")
    alert = Alert.objects.get(kind="ledger.fork_detected")
    assert alert.details["checkpoint_id"] == forked.id and alert.details["cosigned_size"] == 40
    assert not WitnessCosignature.objects.filter(checkpoint=forked).exists()


def test_it_refuses_a_different_root_at_the_same_size(home):
    seeded = seed_ledger()
    Witness().cosign_latest()  # size 40
    with attack():
        delete_checkpoints_after(29)
        truncate_log(33)
    ledger.append_many([ledger.Event("trace.viewed", {"n": i, "who": "mallory"}) for i in range(7)])
    forked = checkpoints.make_checkpoint()
    assert forked.size == 40 and forked.root_hash != seeded.c.root_hash
    with pytest.raises(WitnessRefused, match="fork: checkpoint .* has a different root at size 40"):
        Witness().cosign_latest()
    assert Alert.objects.filter(kind="ledger.fork_detected").exists()


def test_it_refuses_a_checkpoint_it_cannot_trust(home):
    seed_ledger()
    Witness().cosign_latest()
    # signed by a key the witness never pinned
    latest = checkpoints.latest()
    body, _ = notes.parse_note(latest.note)
    rogue = notes.sign_note(body, checkpoints.origin(), Ed25519PrivateKey.generate())
    forged = Checkpoint.objects.create(size=latest.size, root_hash=latest.root_hash, note=rogue, key_id="f" * 64)
    with pytest.raises(WitnessRefused, match="not signed by a ledger key this witness trusts"):
        Witness().cosign(forged)
    assert Alert.objects.filter(kind="ledger.checkpoint_untrusted").exists()


def test_it_follows_a_ledger_key_rotation_once_told(home, settings):
    settings.TRACELEDGER_KEYS_DIR = home / "keys"
    seed_ledger()
    Witness().cosign_latest()
    new, _ = keys.rotate("ledger")
    ledger.append("trace.viewed", {"n": 1})
    checkpoints.make_checkpoint()
    with pytest.raises(WitnessRefused, match="not signed by a ledger key this witness trusts"):
        Witness().cosign_latest()
    call_command("witness", "--trust-vkey", ledger_vkey())
    assert WitnessCosignature.objects.filter(checkpoint=checkpoints.latest()).exists()
    assert verify_ledger().ok
