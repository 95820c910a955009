"""DSSE envelopes around in-toto Statement v1, signed with Ed25519.

Standard library and `cryptography` only: the offline verifier imports this module.
PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body.
"""
from __future__ import annotations

import base64
import json
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://traceledger.dev/engine-build/v1"


class EnvelopeError(ValueError):
    """Raised with a `verdict` attribute naming what is wrong."""

    def __init__(self, verdict: str, message: str):
        super().__init__(message)
        self.verdict = verdict


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(payload: bytes, key_id: str, sign: Callable[[bytes], bytes],
                  payload_type: str = PAYLOAD_TYPE) -> dict:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id, "sig": base64.b64encode(sign(pae(payload_type, payload))).decode()}],
    }


def verify_envelope(envelope: dict, lookup: Callable[[str], Ed25519PublicKey | None]) -> tuple[bytes, str]:
    """Verify the envelope's signature; return (payload, key id that verified).

    `lookup(key_id)` returns the trusted public key or None.  Raises EnvelopeError with
    verdict "unsigned", "unknown_key" or "bad_signature".
    """
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope.get("signatures") or []
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError("unsigned", f"malformed DSSE envelope: {exc}") from None
    if payload_type != PAYLOAD_TYPE:
        raise EnvelopeError("unsigned", f"unexpected payload type {payload_type!r}")
    if not signatures:
        raise EnvelopeError("unsigned", "envelope carries no signature")
    message = pae(payload_type, payload)
    unknown = []
    for signature in signatures:
        key_id = str(signature.get("keyid", ""))
        public_key = lookup(key_id)
        if public_key is None:
            unknown.append(key_id)
            continue
        try:
            public_key.verify(base64.b64decode(signature.get("sig", ""), validate=True), message)
        except (InvalidSignature, ValueError):
            raise EnvelopeError("bad_signature", f"signature by key {key_id[:16]} does not verify") from None
        return payload, key_id
    raise EnvelopeError("unknown_key", f"signed by unregistered key {', '.join(k[:16] for k in unknown)}")


def make_statement(subject_name: str, sha256: str, predicate: dict) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def statement_subject_digest(payload: bytes) -> str:
    """The sha256 of the single subject of an in-toto Statement v1 payload."""
    try:
        statement = json.loads(payload)
        if statement.get("_type") != STATEMENT_TYPE:
            raise ValueError("not an in-toto Statement v1")
        (subject,) = statement["subject"]
        return subject["digest"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError("unsigned", f"manifest is not a single-subject Statement: {exc}") from None
