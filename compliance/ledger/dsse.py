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
MAX_SIGNATURES = 16


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


def b64decode(value) -> bytes:
    """Standard or URL-safe base64, padded or not, as the DSSE protocol allows."""
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    if ("-" in value or "_" in value) and ("+" in value or "/" in value):
        raise ValueError("base64 mixes the standard and URL-safe alphabets")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def verify_envelope(envelope: dict, lookup: Callable[[str], Ed25519PublicKey | None]) -> tuple[bytes, str]:
    """Verify the envelope; return (payload, key id of a trusted signature that verified).

    `lookup(key_id)` returns the trusted public key or None (or raises EnvelopeError,
    e.g. "revoked").  As the DSSE protocol says, a signature that does not verify, by a
    key that is unknown or no longer trusted, is skipped, so the order of signatures
    never matters: the envelope verifies when one trusted signature does.  Otherwise
    EnvelopeError with verdict "unsigned", "unknown_key", "revoked" or "bad_signature".
    """
    try:
        payload_type = envelope["payloadType"]
        payload = b64decode(envelope["payload"])
        signatures = envelope.get("signatures") or []
        if not isinstance(signatures, list) or not all(isinstance(s, dict) for s in signatures):
            raise TypeError("signatures must be a list of objects")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvelopeError("unsigned", f"malformed DSSE envelope: {exc}") from None
    if payload_type != PAYLOAD_TYPE:
        raise EnvelopeError("unsigned", f"unexpected payload type {payload_type!r}")
    if not signatures:
        raise EnvelopeError("unsigned", "envelope carries no signature")
    if len(signatures) > MAX_SIGNATURES:
        raise EnvelopeError("unsigned", f"envelope carries more than {MAX_SIGNATURES} signatures")
    message = pae(payload_type, payload)
    unknown, failed, refused = [], [], None
    for signature in signatures:
        key_id = str(signature.get("keyid", ""))
        try:
            public_key = lookup(key_id)
        except EnvelopeError as exc:
            refused = refused or exc
            continue
        if public_key is None:
            unknown.append(key_id)
            continue
        try:
            public_key.verify(b64decode(signature.get("sig", "")), message)
        except (InvalidSignature, ValueError):
            failed.append(key_id)
            continue
        return payload, key_id
    if failed:
        raise EnvelopeError("bad_signature", f"signature by key {failed[0][:16]} does not verify")
    if refused is not None:
        raise refused
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
