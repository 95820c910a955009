"""Pinned keys: what the auditor trusts, read from key files (vkey lines, a PEM public
key, or raw Ed25519 keys)."""
from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from compliance.ledger import notes


@dataclass(frozen=True)
class PinnedKey:
    raw: bytes
    name: str | None = None
    source: str = ""

    def matches(self, raw: bytes, name: str | None = None) -> bool:
        return hmac.compare_digest(self.raw, raw) and (self.name is None or name is None or self.name == name)


def _raw_from_public(key) -> bytes:
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_key_file(path: str) -> list[PinnedKey]:
    """Keys from a PUBKEY file: vkey lines, a PEM public key, or raw base64/hex keys."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "replace")
    if "-----BEGIN PUBLIC KEY-----" in text:
        try:
            return [PinnedKey(_raw_from_public(load_pem_public_key(data)), None, path)]
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.fullmatch(r"[^+\s]+\+[0-9a-fA-F]{8}\+\S+", line):
            try:
                vk = notes.parse_vkey(line)
            except notes.NoteError as exc:
                raise ValueError(f"{path}: {exc}") from None
            found.append(PinnedKey(vk.public_key, vk.name, path))
        elif re.fullmatch(r"[0-9a-fA-F]{64}", line):
            found.append(PinnedKey(bytes.fromhex(line), None, path))
        else:
            try:
                raw = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"{path}: not a vkey, PEM public key or raw Ed25519 key")
            found.append(PinnedKey(raw, None, path))
    if not found:
        raise ValueError(f"{path}: no key in the file")
    return found
