"""C2SP signed notes, tlog checkpoints and Ed25519 cosignatures (cosignature/v1).

Pure module: standard library and ``cryptography`` only (also used by the offline
verifier).  Follows c2sp.org/signed-note, c2sp.org/tlog-checkpoint and
c2sp.org/tlog-cosignature, with golang.org/x/mod/sumdb/note as the reference for
parsing limits and the verifier-key ("vkey") format ``name+hex8(key id)+base64(type || key)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
MAX_TIMESTAMP = 2**63 - 1
SIG_PREFIX = "\u2014 "  # em dash, space
COSIGNATURE_HEADER = "cosignature/v1\n"

PublicKeyLike = Union[Ed25519PublicKey, bytes]


class NoteError(ValueError):
    """A malformed note, checkpoint or key, or a note that fails verification."""


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key id and the signature bytes after it."""

    name: str
    key_id: bytes
    sig: bytes


@dataclass(frozen=True)
class VerifierKey:
    """A parsed vkey: name, 4-byte key id, signature type and 32-byte Ed25519 key."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


# --------------------------------------------------------------------- keys


def _raw_public(key: PublicKeyLike | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    raise NoteError("public key must be an Ed25519PublicKey or 32 raw bytes")


def is_valid_name(name: object) -> bool:
    """Non-empty, no Unicode spaces, no '+', no control characters."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() or ord(c) < 0x20 for c in name)
        and _utf8_ok(name)
    )


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, public_key: PublicKeyLike, sig_type: int = SIG_ED25519) -> bytes:
    """SHA-256(name || 0x0A || sig_type || 32-byte public key)[:4]."""
    if not is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}")
    if sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise NoteError(f"unsupported signature type {sig_type:#04x}")
    raw = _raw_public(public_key)
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + raw).digest()[:4]


def format_vkey(name: str, public_key: PublicKeyLike, sig_type: int = SIG_ED25519) -> str:
    """Verifier key string ``name+hex8+base64(sig_type || public key)``."""
    kid = key_id(name, public_key, sig_type)
    material = base64.b64encode(bytes([sig_type]) + _raw_public(public_key)).decode()
    return f"{name}+{kid.hex()}+{material}"


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse a vkey; the key id must match the name, type and key."""
    if not isinstance(vkey, str):
        raise NoteError("vkey must be a string")
    name, _, rest = vkey.partition("+")
    hex8, _, material = rest.partition("+")
    if not is_valid_name(name) or not re.fullmatch(r"[0-9a-fA-F]{8}", hex8):
        raise NoteError("malformed vkey")
    raw = _b64decode(material)
    if raw is None or len(raw) != 33:
        raise NoteError("malformed vkey")
    sig_type, pub = raw[0], raw[1:]
    if sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
        raise NoteError(f"unsupported vkey signature type {sig_type:#04x}")
    kid = key_id(name, pub, sig_type)
    if kid != bytes.fromhex(hex8):
        raise NoteError("vkey key id does not match its key")
    return VerifierKey(name, kid, sig_type, pub)


def _b64decode(s: str) -> bytes | None:
    """Strict, canonical standard base64 (RFC 4648 §4); None if invalid."""
    if not s or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s):
        return None
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == s else None


# ------------------------------------------------------------ checkpoints


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str) or not _utf8_ok(text):
        raise NoteError(f"{what} is not valid UTF-8 text")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError(f"{what} contains a control character")


def format_checkpoint(
    origin: str, size: int, root_hash: bytes, extensions: Iterable[str] = ()
) -> str:
    """Checkpoint note text: origin, decimal size, base64 root hash, extension lines."""
    exts = list(extensions)
    for line, what in [(origin, "origin"), *((e, "extension line") for e in exts)]:
        if not isinstance(line, str) or line == "" or "\n" in line:
            raise NoteError(f"{what} must be a non-empty single line")
        _check_text(line, what)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**64:
        raise NoteError("size must be an integer in [0, 2**64)")
    if not isinstance(root_hash, (bytes, bytearray)) or len(root_hash) != 32:
        raise NoteError("root hash must be 32 bytes")
    lines = [origin, str(size), base64.b64encode(bytes(root_hash)).decode(), *exts]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Strictly parse checkpoint note text (as returned by :func:`parse_note`)."""
    _check_text(body, "checkpoint")
    if not body.endswith("\n"):
        raise NoteError("checkpoint must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(line == "" for line in lines):
        raise NoteError("checkpoint needs at least three non-empty lines")
    origin, size_s, root_s, *exts = lines
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_s) or int(size_s) >= 2**64:
        raise NoteError("malformed tree size")
    root_hash = _b64decode(root_s)
    if root_hash is None or len(root_hash) != 32:
        raise NoteError("malformed root hash")
    return Checkpoint(origin, int(size_s), root_hash, tuple(exts))


# ------------------------------------------------------------------ notes


def _sig_line(name: str, kid: bytes, sig: bytes) -> str:
    return f"{SIG_PREFIX}{name} {base64.b64encode(kid + sig).decode()}\n"


def _check_body(body: str) -> None:
    _check_text(body, "note text")
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """A signed note: body, blank line, one Ed25519 (type 0x01) signature line."""
    _check_body(body)
    return body + "\n" + _ed25519_line(body, name, private_key)


def _ed25519_line(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    if not isinstance(private_key, Ed25519PrivateKey):
        raise NoteError("private key must be an Ed25519PrivateKey")
    kid = key_id(name, private_key.public_key(), SIG_ED25519)
    return _sig_line(name, kid, private_key.sign(body.encode()))


def _append_line(note: str, line: str, name: str, kid: bytes) -> str:
    body, sigs = parse_note(note)
    kept = [s for s in sigs if (s.name, s.key_id) != (name, kid)]
    if len(kept) + 1 > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    return body + "\n" + "".join(_sig_line(s.name, s.key_id, s.sig) for s in kept) + line


def add_signature(note: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Append an Ed25519 signature line (replacing an earlier one by the same key)."""
    body, _ = parse_note(note)
    line = _ed25519_line(body, name, private_key)
    return _append_line(note, line, name, key_id(name, private_key.public_key()))


def parse_note(text: str | bytes) -> tuple[str, list[Signature]]:
    """Strictly split a signed note into its text and signature lines (not verified)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    _check_text(text, "note")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed signature line")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        raw = _b64decode(b64) if sep else None
        if not is_valid_name(name) or raw is None or len(raw) < 5:
            raise NoteError("malformed signature line")
        sigs.append(Signature(name, raw[:4], raw[4:]))
    return body, sigs


# ----------------------------------------------------------- cosignatures


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature/v1 signs for checkpoint ``body`` at ``timestamp``."""
    _check_timestamp(timestamp)
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise NoteError("timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("timestamp out of range [0, 2**63)")


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """A cosignature/v1 signature line (type 0x04) for checkpoint ``body``."""
    parse_checkpoint(body)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise NoteError("private key must be an Ed25519PrivateKey")
    kid = key_id(name, private_key.public_key(), SIG_COSIGNATURE_V1)
    sig = private_key.sign(cosignature_message(body, timestamp))
    return _sig_line(name, kid, timestamp.to_bytes(8, "big") + sig)


def add_cosignature(note: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """Append a cosignature/v1 line to a signed checkpoint note."""
    body, _ = parse_note(note)
    line = cosign(body, name, private_key, timestamp)
    kid = key_id(name, private_key.public_key(), SIG_COSIGNATURE_V1)
    return _append_line(note, line, name, kid)


def cosignature_timestamp(sig: Signature) -> int:
    """The timestamp inside a cosignature/v1 signature (structure only, not verified)."""
    if len(sig.sig) != 8 + 64:
        raise NoteError("not a cosignature/v1 signature")
    ts = int.from_bytes(sig.sig[:8], "big")
    _check_timestamp(ts)
    return ts


# ------------------------------------------------------------- verifying


Verifiers = Union[Iterable[Union[VerifierKey, str]], Mapping[Union[str, tuple[str, bytes]], PublicKeyLike]]


def _verifier_table(verifiers: Verifiers) -> dict[tuple[str, bytes], VerifierKey]:
    """Normalise verifiers to {(name, key id): VerifierKey}; a bare name means type 0x01."""
    table: dict[tuple[str, bytes], VerifierKey] = {}
    if isinstance(verifiers, Mapping):
        items: list[VerifierKey] = []
        for k, pub in verifiers.items():
            if isinstance(k, tuple):
                name, kid = k
                raw = _raw_public(pub)
                matches = [t for t in (SIG_ED25519, SIG_COSIGNATURE_V1) if key_id(name, raw, t) == kid]
                if not matches:
                    raise NoteError(f"key id {bytes(kid).hex()} does not match the key for {name!r}")
                items.append(VerifierKey(name, bytes(kid), matches[0], raw))
            else:
                raw = _raw_public(pub)
                items.append(VerifierKey(k, key_id(k, raw), SIG_ED25519, raw))
    else:
        items = [parse_vkey(v) if isinstance(v, str) else v for v in verifiers]
    for v in items:
        if not isinstance(v, VerifierKey):
            raise NoteError("verifiers must be vkeys, VerifierKeys or a name/key mapping")
        if (v.name, v.key_id) in table and table[(v.name, v.key_id)] != v:
            raise NoteError(f"ambiguous verifier {v.name}+{v.key_id.hex()}")
        table[(v.name, v.key_id)] = v
    return table


def _verify_one(v: VerifierKey, body: str, sig: bytes) -> int | None:
    """Check one signature; the cosignature timestamp (0 for type 0x01), or None if invalid."""
    pub = Ed25519PublicKey.from_public_bytes(v.public_key)
    if v.sig_type == SIG_ED25519:
        if len(sig) != 64:
            return None
        msg, raw, ts = body.encode(), sig, 0
    else:
        if len(sig) != 72:
            return None
        ts = int.from_bytes(sig[:8], "big")
        try:
            parse_checkpoint(body)
            msg, raw = cosignature_message(body, ts), sig[8:]
        except NoteError:
            return None
    try:
        pub.verify(raw, msg)
    except InvalidSignature:
        return None
    return ts


def verify_note(text: str | bytes, verifiers: Verifiers) -> list[str]:
    """Verify a note; return the names of known keys whose signatures verified.

    Unknown (name, key id) pairs are ignored.  Raises NoteError when the note is
    malformed, when any signature by a known key fails, or when none verifies.
    """
    return list(dict.fromkeys(v.name for v, _ in _verify(text, verifiers)))


def _verify(text: str | bytes, verifiers: Verifiers) -> list[tuple[VerifierKey, int]]:
    body, sigs = parse_note(text)
    table = _verifier_table(verifiers)
    good: dict[tuple[str, bytes], tuple[VerifierKey, int]] = {}
    for s in sigs:
        v = table.get((s.name, s.key_id))
        if v is None:
            continue
        ts = _verify_one(v, body, s.sig)
        if ts is None:
            raise NoteError(f"invalid signature for key {s.name}+{s.key_id.hex()}")
        good.setdefault((s.name, s.key_id), (v, ts))
    if not good:
        raise NoteError("note has no verifiable signature from a known key")
    return list(good.values())


def verify_cosignature(
    text: str | bytes, name: str, public_key: PublicKeyLike, *, not_after: int | None = None
) -> int:
    """Verify the cosignature/v1 of witness ``name`` on a checkpoint note; return its timestamp.

    ``not_after`` rejects timestamps later than it (e.g. now plus allowed skew).
    """
    raw = _raw_public(public_key)
    v = VerifierKey(name, key_id(name, raw, SIG_COSIGNATURE_V1), SIG_COSIGNATURE_V1, raw)
    body, _ = parse_note(text)
    parse_checkpoint(body)
    ((_, ts),) = _verify(text, [v])
    if not_after is not None and ts > not_after:
        raise NoteError("cosignature timestamp is in the future")
    return ts
