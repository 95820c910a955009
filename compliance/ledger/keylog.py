"""Key transparency, pure: a key's state derived from the ledger's key entries alone.

Standard library and `cryptography` only, so the offline verifier derives exactly
what the server does.  The entries:

  key.registered  {key_id, purpose, algorithm, public_key[, replaces, endorsement]}
  key.retired     {key_id, purpose, replaced_by, file}
  key.revoked     {key_id, purpose, reason, revoked_at, replaced_by}

A rotation is a `key.registered` whose `replaces` names the key it succeeds and whose
`endorsement` is that key's Ed25519 signature over `endorsement_message(...)`, then a
`key.retired` of the old key.  A registration without `replaces` is a root: it is
trusted only where an auditor pinned it (the trust file).  A key *chains back* to a
pinned key when following `replaces` through valid endorsements reaches it.

The key registry's state at a tree size is committed in every checkpoint (an
extension line, see `registry_line`): SHA-256 over the leaf hashes of all key entries
below that size, in index order.  A bundle that leaves out one key entry no longer
reproduces it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEY_KINDS = ("key.registered", "key.retired", "key.revoked")
PURPOSES = ("build", "ledger", "witness", "webhook")
REGISTRY_TAG = "traceledger-key-registry"
_REGISTRY_DOMAIN = b"traceledger/key-registry/v1\n"


def endorsement_message(purpose: str, key_id: str, public_key: str, replaces: str) -> bytes:
    """What the replaced key signs to hand its purpose on to a new key."""
    return (f"traceledger/key-endorsement/v1\npurpose {purpose}\nkey {key_id}\npublic {public_key}\n"
            f"replaces {replaces}\n").encode()


def key_id_of(public_b64: str) -> str:
    try:
        return hashlib.sha256(base64.b64decode(public_b64, validate=True)).hexdigest()
    except (binascii.Error, ValueError, TypeError):
        return ""


def _time(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class KeyState:
    """One key as the ledger says it is.  Duck-types the SigningKey row where the
    checkpoint keyrings need it (key_id, public_key, revoked_at, valid_at)."""

    key_id: str
    purpose: str
    algorithm: str
    public_key: str
    registered_index: int
    registered_time: datetime | None = None
    replaces: str | None = None
    endorsed: bool | None = None  # None: a root (no predecessor)
    retired_index: int | None = None
    retired_time: datetime | None = None
    revoked_index: int | None = None
    revoked_at: datetime | None = None
    revocation_reason: str = ""
    replaced_by: str | None = None
    name: str | None = None  # a witness's key name, when registered with one

    @property
    def state(self) -> str:
        if self.revoked_index is not None:
            return "revoked"
        return "retired" if self.retired_index is not None else "current"

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.public_key)

    def valid_at(self, when) -> bool:
        return self.revoked_at is None or (when is not None and when < self.revoked_at)

    def to_dict(self) -> dict:
        return {"key_id": self.key_id, "purpose": self.purpose, "algorithm": self.algorithm,
                "public_key": self.public_key, "registered_index": self.registered_index,
                "replaces": self.replaces, "endorsed": self.endorsed, "state": self.state,
                "retired_index": self.retired_index, "revoked_index": self.revoked_index,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "revocation_reason": self.revocation_reason, "replaced_by": self.replaced_by}


@dataclass
class KeyLog:
    keys: dict[str, KeyState] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (entry index, what is wrong)

    def of_purpose(self, purpose: str) -> list[KeyState]:
        return [k for k in self.keys.values() if k.purpose == purpose]

    def get(self, key_id: str) -> KeyState | None:
        return self.keys.get(key_id)

    def chains_to(self, key_id: str, pinned: Iterable[str]) -> bool:
        """Whether `key_id` is pinned or reaches a pinned key through endorsed
        registrations of the same purpose."""
        pinned = set(pinned)
        seen = set()
        key = self.keys.get(key_id)
        while key is not None and key.key_id not in seen:
            if key.key_id in pinned:
                return True
            seen.add(key.key_id)
            if not key.endorsed or not key.replaces:
                return False
            previous = self.keys.get(key.replaces)
            if previous is None or previous.purpose != key.purpose:
                return False
            key = previous
        return False


def derive(entries: Iterable[tuple[int, str, dict, str]]) -> KeyLog:
    """The key log from (index, kind, payload, time) of key entries in index order."""
    log = KeyLog()
    for index, kind, payload, when in entries:
        if kind not in KEY_KINDS or not isinstance(payload, dict):
            continue
        key_id = payload.get("key_id")
        if kind == "key.registered":
            _register(log, index, payload, when)
            continue
        key = log.keys.get(key_id)
        if key is None:
            log.problems.append((index, f"{kind} of key {str(key_id)[:16]}, which the ledger never registered"))
            continue
        if kind == "key.retired" and key.retired_index is None:
            key.retired_index, key.retired_time = index, _time(when)
            key.replaced_by = payload.get("replaced_by") or key.replaced_by
        elif kind == "key.revoked":
            if key.revoked_index is not None:
                log.problems.append((index, f"key {key_id[:16]} revoked twice"))
                continue
            key.revoked_index = index
            key.revoked_at = _time(payload.get("revoked_at")) or _time(when)
            key.revocation_reason = str(payload.get("reason") or "")
            key.replaced_by = payload.get("replaced_by") or key.replaced_by
    return log


def _register(log: KeyLog, index: int, payload: dict, when: str) -> None:
    key_id, public = payload.get("key_id"), payload.get("public_key")
    if not isinstance(key_id, str) or key_id_of(public) != key_id:
        log.problems.append((index, f"registration of key {str(key_id)[:16]}: the key id is not the SHA-256 "
                                    "of its public key"))
        return
    if key_id in log.keys:
        log.problems.append((index, f"key {key_id[:16]} registered twice"))
        return
    purpose = payload.get("purpose")
    key = KeyState(key_id, str(purpose), str(payload.get("algorithm") or "ed25519"), public, index, _time(when),
                   name=payload.get("name") if isinstance(payload.get("name"), str) else None)
    replaces = payload.get("replaces")
    if replaces:
        key.replaces = replaces
        previous = log.keys.get(replaces)
        key.endorsed = previous is not None and previous.purpose == purpose and verify_endorsement(
            previous.public_key, purpose, key_id, public, replaces, payload.get("endorsement"))
        if not key.endorsed:
            log.problems.append((index, f"registration of {purpose} key {key_id[:16]} is not endorsed by key "
                                        f"{str(replaces)[:16]} it claims to replace"))
    log.keys[key_id] = key


def verify_endorsement(signer_public_b64: str, purpose: str, key_id: str, public: str, replaces: str,
                       endorsement) -> bool:
    try:
        signer = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer_public_b64))
        signer.verify(base64.b64decode(str(endorsement), validate=True),
                      endorsement_message(purpose, key_id, public, replaces))
        return True
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False


def registry_digest(leaf_hashes: Iterable[bytes]) -> tuple[int, bytes]:
    """(count, SHA-256 over the key entries' leaf hashes in index order)."""
    h = hashlib.sha256(_REGISTRY_DOMAIN)
    count = 0
    for leaf in leaf_hashes:
        h.update(leaf)
        count += 1
    return count, h.digest()


def registry_line(count: int, digest: bytes) -> str:
    """The checkpoint extension line committing to the key registry."""
    return f"{REGISTRY_TAG} {count} {base64.b64encode(digest).decode()}"


def parse_registry_line(extensions: Iterable[str]) -> tuple[int, bytes] | None:
    for line in extensions:
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == REGISTRY_TAG and parts[1].isdigit():
            try:
                digest = base64.b64decode(parts[2], validate=True)
            except (binascii.Error, ValueError):
                return None
            if len(digest) == 32:
                return int(parts[1]), digest
    return None


def same_digest(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
