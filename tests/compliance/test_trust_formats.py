"""The pure formats behind the trust features, without a database: key-log derivation
and endorsement chains, the key-registry commitment, the trust file, and the receipt
(C2SP tlog-proof) with a checkpoint taken from the C2SP documents' own example."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from compliance.ledger import keylog, merkle, notes, trustfile
from compliance.ledger.offline.receipt import HEADER, ReceiptError, format_receipt, parse_receipt, verify_receipt

pytestmark = pytest.mark.embedded

# c2sp.org/tlog-checkpoint's example checkpoint (C2SP/C2SP @ 5ba5ee8, tlog-checkpoint.md)
C2SP_CHECKPOINT = ("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
                   "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gG"
                   "zGku9nTo+zyWE+xeMcTOAYQ8=\n")


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def registration(index: int, key: Ed25519PrivateKey, purpose: str, replaces: Ed25519PrivateKey | None = None):
    public = base64.b64encode(raw(key)).decode()
    key_id = hashlib.sha256(raw(key)).hexdigest()
    payload = {"key_id": key_id, "purpose": purpose, "algorithm": "ed25519", "public_key": public}
    if replaces is not None:
        old_id = hashlib.sha256(raw(replaces)).hexdigest()
        message = keylog.endorsement_message(purpose, key_id, public, old_id)
        payload |= {"replaces": old_id, "endorsement": base64.b64encode(replaces.sign(message)).decode()}
    return index, "key.registered", payload, "2026-12-06T12:00:00Z"


def test_it_follows_endorsed_rotations_back_to_a_pinned_key():
    first, second, third, stranger = (Ed25519PrivateKey.generate() for _ in range(4))
    log = keylog.derive([registration(0, first, "ledger"), registration(5, second, "ledger", replaces=first),
                         registration(9, third, "ledger", replaces=second)])
    ids = [hashlib.sha256(raw(k)).hexdigest() for k in (first, second, third)]
    assert not log.problems and log.get(ids[2]).endorsed
    assert log.chains_to(ids[2], {ids[0]}) and not log.chains_to(ids[0], {ids[2]})
    # a registration claiming to replace the pinned key, signed by someone else, does not chain
    forged = registration(12, stranger, "ledger", replaces=stranger)
    forged[2]["replaces"] = ids[0]
    log = keylog.derive([registration(0, first, "ledger"), forged])
    assert not log.chains_to(forged[2]["key_id"], {ids[0]}) and "not endorsed" in log.problems[0][1]


def test_it_derives_revocation_and_refuses_a_key_id_that_is_not_its_key():
    key = Ed25519PrivateKey.generate()
    index, kind, payload, when = registration(0, key, "build")
    revoked = (3, "key.revoked", {"key_id": payload["key_id"], "reason": "leaked",
                                  "revoked_at": "2026-12-06T13:00:00+00:00"}, when)
    state = keylog.derive([(index, kind, payload, when), revoked]).get(payload["key_id"])
    assert state.state == "revoked" and state.revocation_reason == "leaked" and state.revoked_index == 3
    lying = keylog.derive([(0, kind, payload | {"key_id": "0" * 64}, when)])
    assert not lying.keys and "not the SHA-256" in lying.problems[0][1]


def test_the_registry_commitment_changes_when_one_key_entry_is_left_out():
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(4)]
    whole = keylog.registry_digest(leaves)
    line = keylog.registry_line(*whole)
    assert keylog.parse_registry_line(["other extension", line]) == whole
    assert keylog.registry_digest(leaves[:2] + leaves[3:]) != whole
    # the extension line is a valid C2SP checkpoint extension
    body = notes.format_checkpoint("example.org/log", 10, bytes(32), [line])
    assert notes.parse_checkpoint(body).extensions == (line,)


def trust_doc(ledger_key: Ed25519PrivateKey, origin: str = "example.org/log") -> dict:
    note = notes.sign_note(notes.format_checkpoint(origin, 7, bytes(range(32))), origin, ledger_key)
    public = base64.b64encode(raw(ledger_key)).decode()
    return {"format": trustfile.FORMAT, "origin": origin, "witness_policy": {"quorum": 0},
            "keys": [{"purpose": "ledger", "key_id": hashlib.sha256(raw(ledger_key)).hexdigest(), "public_key": public,
                      "vkey": notes.format_vkey(origin, raw(ledger_key))}],
            "checkpoint": {"size": 7, "root_hash": base64.b64encode(bytes(range(32))).decode(), "note": note},
            "written_at": "2026-12-06T12:00:00Z", "written_by": "trust export"}


def test_the_trust_file_round_trips_and_binds_every_key_to_its_purpose():
    key = Ed25519PrivateKey.generate()
    trust = trustfile.parse(json.dumps(trust_doc(key)).encode())
    assert trust.size == 7 and trust.pinned_ids("ledger") == {hashlib.sha256(raw(key)).hexdigest()}
    assert trustfile.parse(trustfile.dumps(trust)).to_dict() == trust.to_dict()
    no_purpose = trust_doc(key)
    no_purpose["keys"][0]["purpose"] = "any"
    with pytest.raises(trustfile.TrustFileError, match="needs a purpose"):
        trustfile.parse(json.dumps(no_purpose).encode())
    as_witness = trust_doc(key)
    as_witness["keys"][0]["purpose"] = "witness"  # a ledger (0x01) vkey is no witness key
    with pytest.raises(trustfile.TrustFileError, match="not this witness key"):
        trustfile.parse(json.dumps(as_witness).encode())
    other = trust_doc(key)
    other["checkpoint"]["note"] = trust_doc(Ed25519PrivateKey.generate())["checkpoint"]["note"]
    with pytest.raises(trustfile.TrustFileError, match="not signed by a ledger key it pins"):
        trustfile.parse(json.dumps(other).encode())


def test_a_receipt_is_a_c2sp_tlog_proof():
    body = b'{"index":3,"kind":"prediction.recorded"}'
    proof = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    text = format_receipt(body, 3, proof, C2SP_CHECKPOINT)
    lines = text.split("\n")
    assert lines[0] == HEADER and lines[1].startswith("extra ") and lines[2] == "index 3"
    assert text.endswith("\n\n" + C2SP_CHECKPOINT)  # the checkpoint verbatim after an empty line
    assert parse_receipt(text) == (body, 3, proof, C2SP_CHECKPOINT)
    with pytest.raises(ReceiptError, match="leading zeroes"):
        parse_receipt(text.replace("index 3", "index 03"))
    # the example checkpoint is no checkpoint of ours: refused against our trust file
    trust = trustfile.parse(json.dumps(trust_doc(Ed25519PrivateKey.generate())).encode())
    result = verify_receipt(text.encode(), trust)
    assert not result.ok and "not signed by a ledger key the trust file pins" in str(result.to_dict())
