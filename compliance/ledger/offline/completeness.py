"""What makes a v2 bundle complete and whole, and what the trust file adds.

- The bundle is signed as a whole at export: `signature` = {key_id, sig}, an Ed25519
  signature by a ledger key of the bundle over `signing_message(bundle)` (the
  canonical encoding of everything else).  Removing any record and re-encoding
  breaks it; the verifier requires it.
- `key_events` holds every key entry (registered, retired, revoked) below the
  checkpoint's size.  The checkpoint commits to them (its `traceledger-key-registry`
  extension line, compliance.ledger.keylog): leaving one out, or adding one, no
  longer reproduces the signed digest.  Every key the bundle carries must be
  registered there for its purpose.
- `--trust FILE`: the trust file's keys are the pinned keys, a key whose
  registration chains back to a pinned one of its purpose (endorsements checked
  here) counts as pinned, and the checkpoint must carry the file's witness quorum.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compliance.ledger import keylog, merkle, notes, purposes, trustfile
from compliance.ledger.offline.parse import Malformed, _b64, _keys, _list, _str, encode_bundle
from compliance.ledger.offline.pinned import PinnedKey
from compliance.ledger.offline.results import Check, _Link

SIGNATURE_DOMAIN = b"traceledger/evidence-bundle/v2\n"


def signing_message(bundle: dict) -> bytes:
    return SIGNATURE_DOMAIN + encode_bundle({k: v for k, v in bundle.items() if k != "signature"})


def sign(bundle: dict, key_id: str, sign_bytes) -> dict:
    """The bundle with its whole-bundle signature (`sign_bytes` is the ledger key's sign)."""
    return bundle | {"signature": {"key_id": key_id, "sig": base64.b64encode(sign_bytes(signing_message(bundle))).decode()}}


def check_signature(verifier) -> None:
    """The whole-bundle signature, under a ledger key of the bundle (pinned, when keys
    are pinned)."""
    link = _Link("signature")
    sig = _keys(verifier.bundle["signature"], {"key_id", "sig"}, "signature")
    key_id = _str(sig["key_id"], "signature.key_id")
    raw_sig = _b64(sig["sig"], "signature.sig", 64)
    ledger = [notes.parse_vkey(v) for v in _list(verifier.bundle["keys"]["ledger"], "keys.ledger")]
    key = next((v for v in ledger if hashlib.sha256(v.public_key).hexdigest() == key_id), None)
    if link.need(key is not None, f"bundle signed by key {key_id[:16]}, which is not a ledger key of the bundle"):
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw_sig, signing_message(verifier.bundle))
        except InvalidSignature:
            link.need(False, "the bundle's signature does not verify: a record was removed, added or changed "
                             "after export")
        if verifier.pinned:
            link.need(verifier.is_pinned(key.public_key, key.name, purposes.LEDGER),
                      f"bundle signed by ledger key {key_id[:16]}, which is not pinned")
    verifier.checks.append(link.check(f"the whole bundle is signed by ledger key {key_id[:16]}"))


def _bodies(bundle: dict):
    import json

    for i, ar in enumerate(_list(bundle.get("key_events", []), "key_events")):
        try:
            body = json.loads(ar["entry"]["body"])
            yield body["index"], body["kind"], body["payload"], body["time"]
        except (KeyError, TypeError, ValueError):
            raise Malformed(f"key_events[{i}] has no readable entry body") from None


def check_key_events(verifier) -> None:
    """Every key entry is included, and together they are the registry the checkpoint
    commits to; every key the bundle carries is registered there for its purpose."""
    link = _Link("keys")
    items = _list(verifier.bundle["key_events"], "key_events")
    leaves = []
    for i, ar in enumerate(items):
        _, e = verifier.entry(ar, f"key_events[{i}]", "key.", link)
        if e is not None:
            leaves.append((e.index, merkle.leaf_hash(ar["entry"]["body"].encode("utf-8"))))
    indexes = [i for i, _ in leaves]
    link.need(indexes == sorted(set(indexes)), "key_events are not in index order, each once")
    committed = keylog.parse_registry_line(verifier.extensions)
    if link.need(committed is not None, "the checkpoint does not commit to the key registry"):
        count, digest = keylog.registry_digest(h for _, h in leaves)
        link.need(count == committed[0] and keylog.same_digest(digest, committed[1]),
                  f"key_events ({count}) are not the complete key registry the checkpoint commits to "
                  f"({committed[0]} key entries): a key event was removed or added")
    log = keylog.derive(_bodies(verifier.bundle))
    for purpose, raws in verifier.bundle_keys().items():
        if purpose == "witness":
            continue  # a witness's key is its own: pinned by the auditor, registered after what it cosigns
        for raw in raws:
            key = log.get(hashlib.sha256(raw).hexdigest())
            link.need(key is not None and key.purpose == purpose,
                      f"{purpose} key {hashlib.sha256(raw).hexdigest()[:16]} is not registered for {purpose} in "
                      "the ledger")
    how = "pinned" if verifier.pinned else "taken from the bundle itself — pin them with --key or --trust"
    verifier.checks.append(link.check(f"{len(items)} key event(s), the complete registry the checkpoint commits to; "
                                      f"keys {how}"))


def trust_pins(trust: trustfile.TrustFile, bundle: dict | None = None) -> list[PinnedKey]:
    """The trust file's keys as pinned keys, plus the bundle's keys whose registration
    chains back to a pinned key of the same purpose."""
    source = "trust file"
    pins = [PinnedKey(k.raw, k.name if k.purpose != "build" else None, source, k.purpose) for k in trust.keys]
    if bundle is None:
        return pins
    try:
        log = keylog.derive(_bodies(bundle))
    except Malformed:
        return pins
    for purpose in trustfile.PURPOSES:
        anchor = trust.pinned_ids(purpose)
        for key in log.of_purpose(purpose):
            if key.key_id not in anchor and key.revoked_index is None and log.chains_to(key.key_id, anchor):
                pins.append(PinnedKey(key.raw, None, f"chained to the trust file through entry #{key.registered_index}",
                                      purpose))
    return pins


def check_quorum(verifier, trust: trustfile.TrustFile) -> None:
    names = trustfile.witness_count(verifier.note, trust.witness_verifiers())
    link = _Link("witnesses")
    link.need(len(names) >= trust.quorum, f"the checkpoint carries {len(names)} cosignature(s) by witnesses the trust "
                                          f"file pins; its policy needs {trust.quorum}")
    verifier.checks.append(link.check(f"cosigned by {len(names)} pinned witness(es) ({', '.join(names) or 'none'}); "
                                      f"the trust file's policy needs {trust.quorum}"))


def unsigned(bundle_format: str) -> Check:
    return Check("bundle", False, f"{bundle_format} bundles are not signed as a whole and cannot be proven complete: "
                                  "export it again")
