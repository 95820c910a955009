"""The attack matrix: each test plays the operator, who owns the database and the key
files, against an auditor who keeps a trust file (`trust export`) elsewhere.  Every
attack must be caught by `verify_ledger --trust FILE` with its one clear line, and every
legitimate change (growth, rotation, revocation, `trust update`) must pass."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command

from compliance.ledger import checkpoints, dsse, keyevents, keys, ledger, proofs, trustcheck, trustfile
from compliance.ledger.manifests import key_lookup
from compliance.ledger.verify import verify_ledger
from compliance.ledger.witness import Witness
from compliance.models import Alert, Checkpoint, SigningKey
from tests.compliance.ledger_fixtures import attack, delete_checkpoints_after, seed_ledger, sql, truncate_log
from tests.compliance.trust_fixtures import restore, snapshot, wipe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def home(settings, tmp_path):
    settings.TRACELEDGER_KEYS_DIR = tmp_path / "keys"
    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    settings.TRACELEDGER_WITNESS_QUORUM = 1
    return tmp_path


@pytest.fixture
def trusted(home):
    """A ledger with three checkpoints, the newest cosigned, and the auditor's trust
    file exported from it."""
    seed_ledger()
    keys.get_signer("build")
    checkpoints.make_checkpoint()
    Witness().cosign_latest()
    path = home / "auditor" / "trust.json"
    path.parent.mkdir()
    call_command("trust", "export", str(path))
    return path


def grow(count: int = 5, who: str = "alice", *, witnessed: bool = True) -> Checkpoint:
    ledger.append_many([ledger.Event("trace.viewed", {"n": i, "who": who}) for i in range(count)])
    checkpoint = checkpoints.make_checkpoint()
    if witnessed:
        witness = Witness()
        witness.trust(checkpoints.ledger_vkey())  # its operator follows a rotation, as the README says
        witness.cosign_latest()
    return checkpoint


def check(path, capsys) -> tuple[int, str]:
    """Run `verify_ledger --trust FILE`: (exit status, the line it printed)."""
    try:
        call_command("verify_ledger", "--trust", str(path))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, (out.out + out.err).strip()


# ---------------------------------------------------------------- legitimate


def test_it_exports_a_documented_versioned_file(trusted):
    doc = json.loads(trusted.read_text())
    assert doc["format"] == "traceledger-trust/v1" and doc["origin"] == checkpoints.origin()
    assert {k["purpose"] for k in doc["keys"]} == {"ledger", "build", "witness"}
    assert doc["witness_policy"] == {"quorum": 1}
    assert "\u2014 " + Witness().name in doc["checkpoint"]["note"]  # with its cosignature
    parsed = trustfile.read(str(trusted))
    assert parsed.size == doc["checkpoint"]["size"] == checkpoints.latest().size


def test_a_grown_log_verifies(trusted, capsys):
    grow()
    code, line = check(trusted, capsys)
    assert code == 0 and "extends the trusted checkpoint" in line, line


def test_a_rotated_and_a_revoked_key_still_verify(trusted, capsys):
    old = keys.get_signer("ledger").key_id
    keys.rotate("ledger")
    grow()
    build = keys.get_signer("build").key_id
    keys.revoke(build, reason="build host reimaged")
    grow()
    code, line = check(trusted, capsys)
    assert code == 0, line
    # the new ledger key's registration is endorsed by the key it replaced
    new = keyevents.load().get(keys.get_signer("ledger").key_id)
    assert new.replaces == old and new.endorsed


def test_trust_update_moves_forward_after_a_consistency_proof(trusted, capsys):
    before = trustfile.read(str(trusted)).size
    keys.rotate("ledger")
    newest = grow()
    call_command("trust", "update", str(trusted))
    assert f"from size {before} to {newest.size}" in capsys.readouterr().out
    updated = trustfile.read(str(trusted))
    assert updated.size == newest.size and updated.written_by == "trust update"
    assert keys.get_signer("ledger").key_id in updated.pinned_ids("ledger")  # chained, so pinned now
    assert check(trusted, capsys)[0] == 0


def test_trust_update_refuses_a_forked_log(trusted):
    before = trusted.read_bytes()
    wipe(new_keys=False)
    for _ in range(4):
        grow(20, who="mallory", witnessed=False)
    with pytest.raises(CommandError, match="refusing to update: .*forked"):
        call_command("trust", "update", str(trusted))
    assert trusted.read_bytes() == before


# ---------------------------------------------------------------- attacks


def test_rollback_to_an_older_backup_is_detected(home, capsys):
    seed_ledger()
    keys.get_signer("build")
    grow()
    backup = snapshot()
    grow()
    path = home / "trust.json"
    call_command("trust", "export", str(path))
    restore(backup)
    assert verify_ledger().ok  # the older copy agrees with itself
    code, line = check(path, capsys)
    assert code == 1 and "TRUST CHECK FAILED (rolled back)" in line, line


def test_a_witness_state_catches_what_happened_after_the_trust_file(trusted, home, capsys):
    state = str(home / "witness")  # the witness's own directory (or a copy of it)
    assert call_command("verify_ledger", "--trust", str(trusted), "--witness-state", state) is None
    capsys.readouterr()
    grow()  # the witness cosigned more than the auditor's file holds
    backup_size = trustfile.read(str(trusted)).size
    with attack():
        delete_checkpoints_after(backup_size)
        truncate_log(backup_size + 3)  # keeps the witness's registration and its first cosignature
        sql("DELETE FROM compliance_verificationrun")
    # the trust file alone still passes (the ledger still extends it) ...
    assert trustcheck.verify(str(trusted)).ok
    # ... the witness's memory does not
    try:
        call_command("verify_ledger", "--trust", str(trusted), "--witness-state", state)
    except SystemExit as exc:
        assert exc.code == 1
    line = capsys.readouterr().err
    assert "(rolled back)" in line and "witness state" in line, line


def test_a_truncated_tail_with_its_checkpoints_is_detected(trusted, capsys):
    with attack():
        delete_checkpoints_after(29)
        truncate_log(33)
        # the build and witness keys were registered after entry 33: their rows go too
        sql("DELETE FROM compliance_signingkey WHERE purpose IN ('build', 'witness')")
    code, line = check(trusted, capsys)
    assert code == 1 and "(truncated)" in line, line


def test_history_rebuilt_with_the_same_keys_is_detected(trusted, capsys):
    size = trustfile.read(str(trusted)).size
    wipe(new_keys=False)
    while ledger.size() <= size + 10:
        grow(20, who="mallory", witnessed=False)
    assert verify_ledger().ok  # consistent with itself, signed with the real key
    code, line = check(trusted, capsys)
    assert code == 1 and "(forked)" in line and "consistency proof" in line, line


def test_history_rebuilt_with_new_keys_is_detected(trusted, capsys):
    size = trustfile.read(str(trusted)).size
    wipe(new_keys=True)
    while ledger.size() <= size + 10:
        grow(20, who="mallory", witnessed=False)
    assert verify_ledger().ok
    code, line = check(trusted, capsys)
    assert code == 1 and "(unknown key)" in line and "does not pin" in line, line


def test_an_inserted_key_row_is_detected_and_never_believed(trusted, capsys):
    rogue = Ed25519PrivateKey.generate()
    raw = keys.public_raw(rogue.public_key())
    SigningKey.objects.create(key_id=keys.key_id_for(raw), purpose="build", public_key=base64.b64encode(raw).decode())
    code, line = check(trusted, capsys)
    assert code == 1 and "(key table differs from the ledger)" in line and "inserted" in line, line
    # the loader does not take the row's word for it, and says so; so does the keys API
    assert key_lookup()(keys.key_id_for(raw)) is None
    assert [d["kind"] for d in proofs.key_table_differences()] == ["inserted"]
    assert keys.key_id_for(raw) not in {k["key_id"] for k in proofs.public_keys()}
    assert Alert.objects.filter(kind="keys.table_differs", severity="critical").exists()


def test_an_edited_public_key_is_detected_and_never_believed(trusted, capsys):
    build = keys.get_signer("build")
    rogue = Ed25519PrivateKey.generate()
    with attack():
        sql("UPDATE compliance_signingkey SET public_key = %s WHERE key_id = %s",
            [base64.b64encode(keys.public_raw(rogue.public_key())).decode(), build.key_id])
    code, line = check(trusted, capsys)
    assert code == 1 and "(key table differs from the ledger)" in line and "edited" in line, line
    # a manifest the rogue key signed under the build key's id does not verify
    envelope = dsse.sign_envelope(b"{}", build.key_id, rogue.sign)
    with pytest.raises(dsse.EnvelopeError):
        dsse.verify_envelope(envelope, key_lookup())


def test_a_cleared_revocation_is_detected_and_never_believed(trusted, capsys):
    build = keys.get_signer("build").key_id
    keys.revoke(build, reason="key leaked")
    with attack():
        sql("UPDATE compliance_signingkey SET revoked_at = NULL, revocation_reason = '' WHERE key_id = %s", [build])
    code, line = check(trusted, capsys)
    assert code == 1 and "(revocation erased)" in line and "key leaked" in line, line
    with pytest.raises(dsse.EnvelopeError, match="revoked"):
        key_lookup()(build)


def test_deleted_checkpoints_are_detected(trusted, capsys):
    size = trustfile.read(str(trusted)).size
    assert verify_ledger(since_last=True).ok
    with attack():
        delete_checkpoints_after(size - 1)
        sql("DELETE FROM compliance_verificationrun")  # and the runs that remember them
    assert verify_ledger().ok  # the entries alone still agree with the older checkpoints
    code, line = check(trusted, capsys)
    assert code == 1 and "(checkpoints deleted)" in line, line


def test_since_last_fails_when_its_checkpoint_is_missing(trusted):
    size = trustfile.read(str(trusted)).size
    assert verify_ledger(since_last=True).ok
    with attack():
        delete_checkpoints_after(size - 1)
    since = verify_ledger(since_last=True)
    assert not since.ok and since.message.startswith("checkpoints deleted"), since.message
    assert not verify_ledger().ok  # a full run remembers it too


def test_a_trust_file_that_is_not_one_is_refused(home, capsys):
    bad = home / "trust.json"
    bad.write_text('{"format": "traceledger-trust/v1", "keys": []}')
    with pytest.raises(CommandError, match="keys, witness_policy and checkpoint are required"):
        call_command("verify_ledger", "--trust", str(bad))
    with pytest.raises(CommandError, match="cannot read the trust file"):
        call_command("trust", "update", str(home / "missing.json"))
    bad.write_bytes(b"[" * 100000 + b"\xff")
    with pytest.raises(CommandError, match="not a JSON trust file"):
        call_command("verify_ledger", "--trust", str(bad))
    with pytest.raises(CommandError, match="No such file"):
        call_command("trust", "export", str(home / "no-such-dir" / "trust.json"))


def test_a_trust_file_with_an_unpinned_checkpoint_is_refused(trusted):
    doc = json.loads(trusted.read_text())
    doc["keys"] = [k for k in doc["keys"] if k["purpose"] != "ledger"] + [
        {"purpose": "ledger", "key_id": keys.key_id_for(b"\x01" * 32), "public_key": base64.b64encode(b"\x01" * 32).decode(),
         "vkey": None}]
    trusted.write_text(json.dumps(doc))
    with pytest.raises(trustfile.TrustFileError):
        trustcheck.verify(str(trusted))
