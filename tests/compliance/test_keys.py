"""Key registry: rotation keeps past signatures valid, revocation invalidates what the key
signs afterwards, private keys stay in 0600 files."""
from __future__ import annotations

import json
import stat

import pytest
from django.core.management import CommandError, call_command

from compliance.ledger import checkpoints, dsse, keys, ledger, notes, tree
from compliance.ledger.manifests import key_lookup
from compliance.ledger.verify import verify_ledger
from compliance.models import Checkpoint, LedgerEntry, SigningKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def keys_dir(settings, tmp_path):
    settings.TRACELEDGER_KEYS_DIR = tmp_path / "keys"
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return tmp_path / "keys"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_rotates_a_key_and_keeps_its_past_signatures_valid(keys_dir, capsys):
    old = keys.get_signer("ledger")
    ledger.append("trace.viewed", {"n": 1})
    before = checkpoints.make_checkpoint()

    call_command("keys", "rotate", "--purpose", "ledger", "--json")
    out = json.loads(capsys.readouterr().out)
    new = keys.get_signer("ledger")
    assert out["retired"]["key_id"] == old.key_id and out["new"]["key_id"] == new.key_id != old.key_id
    # the old private key is destroyed: no file in the key directory holds it any more
    assert sorted(p.name for p in keys_dir.iterdir()) == ["ledger.pem"] and mode(keys_dir / "ledger.pem") == 0o600
    assert keys.signer_from_private("ledger", keys.read_private_key(keys_dir / "ledger.pem")).key_id == new.key_id
    assert SigningKey.objects.get(key_id=old.key_id).retired_at is not None
    assert SigningKey.objects.get(key_id=new.key_id).state == "current"
    retired = LedgerEntry.objects.get(kind="key.retired")
    assert ledger.payload_of(retired)["replaced_by"] == new.key_id
    assert ledger.payload_of(retired)["private_key"] == "destroyed"

    ledger.append("trace.viewed", {"n": 2})
    after = checkpoints.make_checkpoint()
    assert after.key_id == new.key_id and before.key_id == old.key_id
    assert notes.verify_note(after.note, [checkpoints.ledger_vkey()])
    result = verify_ledger()
    assert result.ok and result.checkpoints_checked == 2, result.message

    call_command("keys", "list", "--json")
    listed = {k["key_id"]: k for k in json.loads(capsys.readouterr().out)["keys"]}
    assert listed[old.key_id]["state"] == "retired" and not listed[old.key_id]["current"]
    assert listed[new.key_id]["current"]
    assert "PRIVATE" not in json.dumps(listed)


def test_a_revoked_key_invalidates_what_it_signs_afterwards(keys_dir, capsys):
    compromised = keys.get_signer("ledger")
    ledger.append("trace.viewed", {"n": 1})
    honest = checkpoints.make_checkpoint()

    call_command("keys", "revoke", compromised.key_id[:12], "--reason", "key file leaked")
    assert "it was current: new ledger key" in capsys.readouterr().out
    key = SigningKey.objects.get(key_id=compromised.key_id)
    assert key.revoked_at and key.revocation_reason == "key file leaked"
    assert not (keys_dir / f"ledger-{compromised.key_id[:16]}.revoked.pem").exists()
    assert sorted(p.name for p in keys_dir.iterdir()) == ["ledger.pem"]
    assert keys.get_signer("ledger").key_id != compromised.key_id
    assert ledger.payload_of(LedgerEntry.objects.get(kind="key.revoked"))["reason"] == "key file leaked"
    assert verify_ledger().ok  # signed before the revocation: still valid

    # whoever holds the leaked key signs a checkpoint after the revocation
    size = ledger.size()
    body = notes.format_checkpoint(checkpoints.origin(), size, tree.root(size))
    forged = Checkpoint.objects.create(size=size, root_hash=tree.root(size).hex(), key_id=compromised.key_id,
                                       note=notes.sign_note(body, checkpoints.origin(), compromised.private_key))
    result = verify_ledger()
    assert not result.ok and result.first_bad_index == honest.size
    assert f"checkpoint #{forged.id}" in result.message and "revoked" in result.message


def test_a_revoked_build_key_stops_verifying_new_signatures(keys_dir):
    build = keys.get_signer("build")
    lookup = key_lookup(signed_at=None)
    keys.revoke(build.key_id, reason="rotated out after an incident")
    with pytest.raises(dsse.EnvelopeError, match="revoked"):
        lookup(build.key_id)
    assert keys.get_signer("build").key_id != build.key_id


def test_it_refuses_bad_key_commands(keys_dir):
    keys.get_signer("ledger")
    with pytest.raises(CommandError, match="no registered key"):
        call_command("keys", "revoke", "0123456789abcdef", "--reason", "x")
    with pytest.raises(CommandError, match="at least 8 hex digits"):
        call_command("keys", "revoke", "abc", "--reason", "x")
    with pytest.raises(CommandError):
        call_command("keys", "rotate", "--purpose", "marketing")
    key_id = SigningKey.objects.get().key_id
    call_command("keys", "revoke", key_id, "--reason", "first")
    with pytest.raises(CommandError, match="already revoked"):
        call_command("keys", "revoke", key_id, "--reason", "again")
    assert LedgerEntry.objects.filter(kind="key.revoked").count() == 1


def test_it_refuses_to_sign_with_a_revoked_current_key(keys_dir):
    signer = keys.get_signer("witness")
    SigningKey.objects.filter(key_id=signer.key_id).update(revoked_at=SigningKey.objects.get().created_at)
    with pytest.raises(keys.KeyFileError, match="is revoked"):
        keys.get_signer("witness")


def test_it_refuses_what_a_retired_key_signs_after_the_ledger_retired_it(keys_dir):
    """Finding 5: whoever kept a copy of a rotated key signs a checkpoint after the
    rotation.  The ledger's `key.retired` entry dates the end of the key, and clearing
    the key table's retired_at (the database owner can) changes nothing."""
    old = keys.get_signer("ledger")
    ledger.append("trace.viewed", {"n": 1})
    honest = checkpoints.make_checkpoint()
    keys.rotate("ledger")
    ledger.append("trace.viewed", {"n": 2})
    size = ledger.size()
    body = notes.format_checkpoint(checkpoints.origin(), size, tree.root(size))
    late = Checkpoint.objects.create(size=size, root_hash=tree.root(size).hex(), key_id=old.key_id,
                                     note=notes.sign_note(body, checkpoints.origin(), old.private_key))
    SigningKey.objects.filter(key_id=old.key_id).update(retired_at=None)  # the cache lies; the ledger does not
    result = verify_ledger()
    assert not result.ok and result.first_bad_index == honest.size
    assert f"checkpoint #{late.id}" in result.message and "retired at" in result.message


def test_a_retired_build_key_signs_no_engine_after_its_retirement(keys_dir):
    from datetime import timedelta

    from django.utils import timezone

    build = keys.get_signer("build")
    before = timezone.now()
    keys.rotate("build")
    assert key_lookup(signed_at=before)(build.key_id) is not None  # what it signed before still counts
    with pytest.raises(dsse.EnvelopeError, match="retired at"):
        key_lookup(signed_at=timezone.now() + timedelta(seconds=1))(build.key_id)


def test_it_purges_private_keys_that_earlier_versions_set_aside(keys_dir, capsys):
    signer = keys.get_signer("witness")
    aside = keys.set_aside_path("witness", signer.key_id, "retired")
    keys.write_private_key(aside, signer.private_key)
    (keys_dir / "notes.txt").write_text("not a key")
    call_command("keys", "purge", "--json")
    assert json.loads(capsys.readouterr().out)["destroyed"] == [aside.name]
    assert not aside.exists() and (keys_dir / "notes.txt").exists() and (keys_dir / "witness.pem").exists()
    assert ledger.payload_of(LedgerEntry.objects.get(kind="key.private_destroyed"))["file"] == aside.name


def test_it_makes_missing_keys_once_where_generation_is_off(keys_dir, settings, capsys):
    settings.TRACELEDGER_GENERATE_KEYS = False
    with pytest.raises(keys.KeyFileError):
        keys.get_signer("ledger")
    call_command("keys", "init", "--purpose", "ledger", "webhook", "--json")
    made = json.loads(capsys.readouterr().out)["keys"]
    assert [(k["purpose"], k["made"]) for k in made] == [("ledger", True), ("webhook", True)]
    assert mode(keys_dir / "ledger.pem") == 0o600
    assert SigningKey.objects.filter(key_id=made[0]["key_id"], purpose="ledger").exists()
    call_command("keys", "init", "--purpose", "ledger", "--json")
    again = json.loads(capsys.readouterr().out)["keys"]
    assert again == [{"purpose": "ledger", "key_id": made[0]["key_id"], "made": False}]
    assert keys.get_signer("ledger").key_id == made[0]["key_id"]
