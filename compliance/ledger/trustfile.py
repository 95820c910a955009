"""The auditor's trust file: what is kept outside the operator's reach.

Pure (standard library and `cryptography`), so the offline verifier reads it too.
One JSON document, format "traceledger-trust/v1":

  format          "traceledger-trust/v1"
  origin          the log origin the checkpoints name
  keys            [{purpose, key_id, public_key, vkey}]: pinned verifier keys, each bound
                  to its purpose: "ledger" (signs checkpoints and bundles), "build" (signs
                  engine manifests), "witness" (cosigns checkpoints).  key_id is the hex
                  SHA-256 of the raw Ed25519 key, public_key its base64; vkey is the C2SP
                  verifier key (ledger: origin name, type 0x01; witness: its own name,
                  type 0x04; build: null)
  witness_policy  {quorum}: how many pinned witnesses must cosign a checkpoint for it
                  to count as witnessed
  checkpoint      {size, root_hash (base64), note}: the newest checkpoint the file has
                  accepted, the signed note with its cosignature lines
  written_at      ISO 8601 UTC; written_by: "trust export" or "trust update"

`manage.py trust export FILE` writes it; `trust update FILE` moves the checkpoint
forward only after a consistency proof from the size it holds (as a witness does)
and pins keys whose registration chains back to a pinned key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field

from compliance.ledger import notes

FORMAT = "traceledger-trust/v1"
PURPOSES = ("ledger", "build", "witness")


class TrustFileError(ValueError):
    """The trust file cannot be read or is not a valid traceledger-trust/v1 file."""


@dataclass(frozen=True)
class TrustedKey:
    purpose: str
    key_id: str
    public_key: str
    vkey: str | None = None

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.public_key)

    @property
    def name(self) -> str | None:
        return self.vkey.partition("+")[0] if self.vkey else None

    def to_dict(self) -> dict:
        return {"purpose": self.purpose, "key_id": self.key_id, "public_key": self.public_key, "vkey": self.vkey}


@dataclass
class TrustFile:
    origin: str
    keys: list[TrustedKey]
    note: str
    quorum: int = 0
    written_at: str = ""
    written_by: str = ""
    checkpoint: notes.Checkpoint = field(init=False)

    def __post_init__(self):
        try:
            body, _ = notes.parse_note(self.note)
            self.checkpoint = notes.parse_checkpoint(body)
        except notes.NoteError as exc:
            raise TrustFileError(f"the trust file's checkpoint is malformed ({exc})") from None
        if self.checkpoint.origin != self.origin:
            raise TrustFileError(f"the trust file's checkpoint is for {self.checkpoint.origin!r}, not {self.origin!r}")

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root_hash

    def pinned(self, purpose: str) -> list[TrustedKey]:
        return [k for k in self.keys if k.purpose == purpose]

    def pinned_ids(self, purpose: str) -> set[str]:
        return {k.key_id for k in self.pinned(purpose)}

    def ledger_verifiers(self) -> list[notes.VerifierKey]:
        return [notes.parse_vkey(k.vkey) for k in self.pinned("ledger") if k.vkey]

    def witness_verifiers(self) -> list[notes.VerifierKey]:
        return [notes.parse_vkey(k.vkey) for k in self.pinned("witness") if k.vkey]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "origin": self.origin,
                "keys": [k.to_dict() for k in sorted(self.keys, key=lambda k: (k.purpose, k.key_id))],
                "witness_policy": {"quorum": self.quorum},
                "checkpoint": {"size": self.size, "root_hash": base64.b64encode(self.root).decode(), "note": self.note},
                "written_at": self.written_at, "written_by": self.written_by}


def _key(item, i: int) -> TrustedKey:
    where = f"keys[{i}]"
    if not isinstance(item, dict) or set(item) != {"purpose", "key_id", "public_key", "vkey"}:
        raise TrustFileError(f"{where} must hold purpose, key_id, public_key and vkey")
    purpose, key_id, public, vkey = item["purpose"], item["key_id"], item["public_key"], item["vkey"]
    if purpose not in PURPOSES:
        raise TrustFileError(f"{where}: a pinned key needs a purpose (ledger, build or witness), not {purpose!r}")
    try:
        raw = base64.b64decode(str(public), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or hashlib.sha256(raw).hexdigest() != key_id:
        raise TrustFileError(f"{where}: key_id is not the SHA-256 of a 32-byte public key")
    if purpose == "build":
        if vkey is not None:
            raise TrustFileError(f"{where}: a build key has no vkey")
    else:
        try:
            parsed = notes.parse_vkey(str(vkey))
        except notes.NoteError as exc:
            raise TrustFileError(f"{where}: {exc}") from None
        want = notes.SIG_ED25519 if purpose == "ledger" else notes.SIG_COSIGNATURE_V1
        if parsed.public_key != raw or parsed.sig_type != want:
            raise TrustFileError(f"{where}: vkey is not this {purpose} key")
    return TrustedKey(purpose, key_id, public, vkey)


def parse(data: bytes) -> TrustFile:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TrustFileError(f"not a JSON trust file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TrustFileError(f"not a {FORMAT} file")
    keys = doc.get("keys")
    checkpoint = doc.get("checkpoint")
    policy = doc.get("witness_policy")
    if not isinstance(keys, list) or not isinstance(checkpoint, dict) or not isinstance(policy, dict):
        raise TrustFileError("keys, witness_policy and checkpoint are required")
    quorum = policy.get("quorum")
    if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 0:
        raise TrustFileError("witness_policy.quorum must be a non-negative integer")
    origin = doc.get("origin")
    if not notes.is_valid_name(origin):
        raise TrustFileError("origin must be a valid log name")
    trust = TrustFile(origin, [_key(k, i) for i, k in enumerate(keys)], str(checkpoint.get("note")), quorum,
                      str(doc.get("written_at", "")), str(doc.get("written_by", "")))
    if checkpoint.get("size") != trust.size or checkpoint.get("root_hash") != base64.b64encode(trust.root).decode():
        raise TrustFileError("checkpoint size or root_hash differs from its signed note")
    if not trust.pinned("ledger"):
        raise TrustFileError("the trust file pins no ledger key")
    check_signed(trust)
    return trust


def read(path: str) -> TrustFile:
    try:
        with open(path, "rb") as f:
            return parse(f.read())
    except OSError as exc:
        raise TrustFileError(f"cannot read the trust file {path}: {exc.strerror}") from None


def dumps(trust: TrustFile) -> bytes:
    return (json.dumps(trust.to_dict(), indent=1, sort_keys=True) + "\n").encode()


def write(path: str, trust: TrustFile) -> None:
    """Write atomically, so an interrupted update never leaves half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(dumps(trust))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_signed(trust: TrustFile) -> None:
    """The file's own checkpoint must be signed by a ledger key it pins."""
    try:
        notes.verify_note(trust.note, trust.ledger_verifiers())  # cosignature lines by others are ignored
    except notes.NoteError as exc:
        raise TrustFileError(f"the trust file's checkpoint is not signed by a ledger key it pins ({exc})") from None


def witness_count(note: str, witnesses: list[notes.VerifierKey]) -> list[str]:
    """Names of the given witnesses whose cosignature on `note` verifies."""
    names = []
    for vk in witnesses:
        try:
            notes.verify_cosignature(note, vk.name, vk.public_key)
        except (notes.NoteError, ValueError):
            continue
        names.append(vk.name)
    return names
