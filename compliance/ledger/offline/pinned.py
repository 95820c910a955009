"""Pinned keys: what the auditor trusts, read from key files (vkey lines, a PEM public
key, or raw Ed25519 keys), each bound to the one purpose it is trusted for.

A key's purpose comes from, in this order: the command line (`--key build=FILE`), a
`purpose: build` line in the file, or the name `export_report --keys DIR` gives the file
(ledger.vkey, build.pub, witness.vkey); a cosignature/v1 vkey is a witness key by its
type.  A key whose purpose is none of these is refused: a bare key would otherwise be
trusted for everything (see compliance.ledger.purposes)."""
from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from compliance.ledger import notes, purposes

MAX_KEY_FILE_BYTES = 64 * 1024
_PURPOSE_LINE = re.compile(r"purpose:\s*(\S+)")


@dataclass(frozen=True)
class PinnedKey:
    raw: bytes
    name: str | None = None
    source: str = ""
    purpose: str = ""

    def matches(self, raw: bytes, name: str | None = None, purpose: str | None = None) -> bool:
        """The same key, trusted for `purpose`, under the same name where both have one."""
        return (hmac.compare_digest(self.raw, raw) and (purpose is None or self.purpose == purpose)
                and (self.name is None or name is None or self.name == name))


def _raw_from_public(key) -> bytes:
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def parse_key_argument(argument: str) -> tuple[str | None, str]:
    """`--key PURPOSE=FILE` or `--key FILE` → (purpose or None, path)."""
    head, sep, tail = argument.partition("=")
    if sep and head in purposes.PURPOSES:
        return head, tail
    return None, argument


def _bind(keys: list[PinnedKey], path: str, stated: str | None) -> list[PinnedKey]:
    bound = []
    for key in keys:
        purpose = stated or key.purpose
        if not purpose:
            raise ValueError(f"{path}: the key's purpose is not stated: pin it as --key ledger={path}, "
                             f"--key build={path} or --key witness={path}, or add a line 'purpose: build'")
        bound.append(PinnedKey(key.raw, key.name, path, purpose))
    return bound


def load_key_file(path: str | os.PathLike, purpose: str | None = None) -> list[PinnedKey]:
    """Keys from a PUBKEY file, each bound to its purpose (see the module's docstring)."""
    path = str(path)
    if purpose is not None:
        purpose = purposes.check_purpose(purpose)
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    text = data.decode("utf-8", "replace")
    declared = None
    for line in text.splitlines():
        m = _PURPOSE_LINE.fullmatch(line.strip())
        if m:
            if m.group(1) not in purposes.PURPOSES or (declared and declared != m.group(1)):
                raise ValueError(f"{path}: purpose {m.group(1)!r} is not one of {', '.join(purposes.PURPOSES)}")
            declared = m.group(1)
    if purpose and declared and purpose != declared:
        raise ValueError(f"{path}: pinned as a {purpose} key, but the file says it holds {declared} keys")
    by_name = purposes.KEY_FILE_PURPOSES.get(os.path.basename(path))
    stated = purpose or declared or by_name
    if "-----BEGIN PUBLIC KEY-----" in text:
        try:
            return _bind([PinnedKey(_raw_from_public(load_pem_public_key(data)), None, path)], path, stated)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or _PURPOSE_LINE.fullmatch(line):
            continue
        if re.fullmatch(r"[^+\s]+\+[0-9a-fA-F]{8}\+\S+", line):
            try:
                vk = notes.parse_vkey(line)
            except notes.NoteError as exc:
                raise ValueError(f"{path}: {exc}") from None
            typed = purposes.WITNESS if vk.sig_type == notes.SIG_COSIGNATURE_V1 else ""
            if typed and stated and stated != typed:
                raise ValueError(f"{path}: a cosignature/v1 vkey is a witness key, not a {stated} key")
            found.append(PinnedKey(vk.public_key, vk.name, path, typed))
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
    return _bind(found, path, stated)
