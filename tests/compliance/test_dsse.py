"""DSSE as the protocol specifies it (secure-systems-lab/dsse, protocol.md), with vectors
taken from its text: the PAE example, keys from RFC 8032 §7.1 (tests 1 and 2), standard
and URL-safe base64, and several signatures where a failing one is skipped (finding 8
of issue 21: [bad A, good B] was refused while [good B, bad A] passed)."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compliance.ledger import dsse

pytestmark = pytest.mark.embedded

# RFC 8032 §7.1, TEST 1 and TEST 2: secret keys and their public keys
A = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
B = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"))
A_PUB = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
B_PUB = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'


def lookup(*trusted: str):
    keys = {"A": A.public_key(), "B": B.public_key()}
    return lambda key_id: keys[key_id] if key_id in trusted else None


def envelope(*signers: tuple[str, Ed25519PrivateKey, bool], payload: bytes = PAYLOAD, urlsafe: bool = False) -> dict:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    message = dsse.pae(dsse.PAYLOAD_TYPE, payload)
    sigs = []
    for key_id, key, good in signers:
        sig = key.sign(message if good else message + b"x")
        sigs.append({"keyid": key_id, "sig": encode(sig).decode()})
    return {"payloadType": dsse.PAYLOAD_TYPE, "payload": encode(payload).decode(), "signatures": sigs}


def test_it_follows_the_protocols_pae_example_and_rfc_8032_keys():
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert A.public_key().public_bytes_raw().hex() == A_PUB and B.public_key().public_bytes_raw().hex() == B_PUB
    # RFC 8032 TEST 1: the empty message's signature
    assert A.sign(b"").hex().startswith("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb88215")


def test_it_accepts_standard_and_url_safe_base64():
    # a payload whose base64 differs between the two alphabets (bytes fb ff bf 3e 3f)
    odd = bytes.fromhex("fbffbf3e3f")
    for urlsafe in (False, True):
        env = envelope(("A", A, True), payload=odd, urlsafe=urlsafe)
        assert ("-" in env["payload"] or "_" in env["payload"]) == urlsafe
        assert dsse.verify_envelope(env, lookup("A")) == (odd, "A")
    unpadded = envelope(("A", A, True), payload=odd, urlsafe=True)
    unpadded["signatures"][0]["sig"] = unpadded["signatures"][0]["sig"].rstrip("=")
    assert dsse.verify_envelope(unpadded, lookup("A"))[1] == "A"
    mixed = envelope(("A", A, True), payload=odd)
    mixed["payload"] = mixed["payload"].replace("/", "_", 1) if "/" in mixed["payload"] else mixed["payload"] + "-+"
    with pytest.raises(dsse.EnvelopeError):
        dsse.verify_envelope(mixed, lookup("A"))


@pytest.mark.parametrize("order", ["bad first", "good first"])
def test_a_failing_signature_is_skipped_whatever_the_order(order):
    signers = [("A", A, False), ("B", B, True)]
    if order == "good first":
        signers.reverse()
    assert dsse.verify_envelope(envelope(*signers), lookup("A", "B")) == (PAYLOAD, "B")


def test_it_refuses_when_no_trusted_signature_verifies():
    with pytest.raises(dsse.EnvelopeError) as bad:
        dsse.verify_envelope(envelope(("A", A, False), ("B", B, False)), lookup("A", "B"))
    assert bad.value.verdict == "bad_signature"
    with pytest.raises(dsse.EnvelopeError) as unknown:
        dsse.verify_envelope(envelope(("B", B, True)), lookup("A"))
    assert unknown.value.verdict == "unknown_key"
    # a good signature by an untrusted key does not make up for a bad trusted one
    with pytest.raises(dsse.EnvelopeError, match="does not verify"):
        dsse.verify_envelope(envelope(("A", A, False), ("B", B, True)), lookup("A"))
    other_type = envelope(("A", A, True))
    other_type["payloadType"] = "application/vnd.example.other+json"
    with pytest.raises(dsse.EnvelopeError, match="unexpected payload type"):
        dsse.verify_envelope(other_type, lookup("A"))
    for broken in ({}, {"payloadType": dsse.PAYLOAD_TYPE, "payload": "e30=", "signatures": "x"},
                   {"payloadType": dsse.PAYLOAD_TYPE, "payload": "e30=", "signatures": []},
                   json.loads('{"payloadType": "application/vnd.in-toto+json", "payload": 5, "signatures": []}')):
        with pytest.raises(dsse.EnvelopeError):
            dsse.verify_envelope(broken, lookup("A"))


def test_a_revoked_key_is_skipped_too():
    def revoking(key_id):
        if key_id == "A":
            raise dsse.EnvelopeError("revoked", "signing key A was revoked")
        return B.public_key() if key_id == "B" else None

    assert dsse.verify_envelope(envelope(("A", A, True), ("B", B, True)), revoking)[1] == "B"
    with pytest.raises(dsse.EnvelopeError) as refused:
        dsse.verify_envelope(envelope(("A", A, True)), revoking)
    assert refused.value.verdict == "revoked"
