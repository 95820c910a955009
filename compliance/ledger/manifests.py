"""Engine manifests: a DSSE envelope around an in-toto Statement whose subject is the
engine's digest, signed by a registered build key. One rule for every caller (the
verified loader, re-verification, trace, build pages and reports): the signature must
verify under a key registered for the purpose that may sign manifests (`build`, see
compliance.ledger.purposes) that the ledger had not retired or revoked when it signed
(compliance.ledger.keystate), and the statement's subject must be the digest of the
bytes at hand.
"""
from __future__ import annotations

import json
from datetime import datetime

from compliance.ledger import dsse, keyevents, keys, keystate, purposes
from compliance.models import SigningKey

VERIFIED = "verified"


def key_lookup(purpose: str | None = None, signed_at: datetime | None = None):
    """key id → public key for keys the ledger registered for `purpose` (by default the
    purpose that may sign engine manifests, compliance.ledger.purposes); a key the ledger
    retired or revoked at or before `signed_at` (or at all, with no signing time known)
    is reported as revoked.  The state comes from the key entries; a key-table row that
    disagrees with them is reported (and never believed)."""
    purpose = purpose or purposes.signer_of(purposes.ENGINE_MANIFEST)

    def lookup(key_id: str):
        key = keyevents.state_of(key_id)
        row = SigningKey.objects.filter(key_id=key_id).first()
        difference = keyevents.compare_row(row, key) if row is not None else None
        if difference is not None:
            keyevents.report([difference], "verifying an engine manifest")
        if key is None or key.purpose != purpose:
            return None
        problem = keystate.signature_problem(key.key_id, signed_at)
        if problem:
            raise dsse.EnvelopeError("revoked", f"signing {problem}")
        return keys.public_key_from_b64(key.public_key)

    return lookup


def verify_manifest(manifest: str, actual_sha256: str, *, signed_at: datetime | None) -> tuple[str, str]:
    """(verdict, detail) for a manifest against the digest of the engine bytes."""
    try:
        envelope = json.loads(manifest)
        payload, _ = dsse.verify_envelope(envelope, key_lookup(signed_at=signed_at))
        subject = dsse.statement_subject_digest(payload)
    except dsse.EnvelopeError as exc:
        return exc.verdict, str(exc)
    except ValueError:
        return "unsigned", "manifest is not JSON"
    if subject != actual_sha256:
        return "digest_mismatch", f"manifest signs {subject[:16]}…, engine bytes are {actual_sha256[:16]}…"
    return VERIFIED, "digest and signature verified"
