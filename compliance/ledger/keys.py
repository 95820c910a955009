"""Ed25519 signing keys: private halves in files (0600), public halves registered.

The current key of a purpose is PKCS#8 PEM at TRACELEDGER_KEYS_DIR/<purpose>.pem.
`rotate` makes a new one and destroys the old private key (overwritten, then unlinked):
a retired key must not be able to sign again, and whatever it signs after the ledger
recorded its retirement is refused (compliance.ledger.keystate).  Its public key stays
registered, so what it signed before stays verifiable.  `purge` destroys the
<purpose>-<keyid16>.retired.pem / .revoked.pem files that earlier versions kept.  `revoke` marks a
key compromised: what it signed from then on no longer counts.  A key id is the hex
SHA-256 of the raw 32-byte public key.  The database holds only public keys
(SigningKey); HMAC is never used, so anyone with the public keys can verify.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction

PURPOSES = ("build", "ledger", "witness", "webhook")
_lock = threading.Lock()
_cache: dict[tuple, "Signer"] = {}


class KeyFileError(RuntimeError):
    pass


def key_id_for(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Signer:
    purpose: str
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    public_raw: bytes
    key_id: str

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()


def keys_dir() -> Path:
    return Path(settings.TRACELEDGER_KEYS_DIR)


def key_path(purpose: str) -> Path:
    if purpose not in PURPOSES:
        raise KeyFileError(f"unknown key purpose {purpose!r}")
    return keys_dir() / f"{purpose}.pem"


def set_aside_path(purpose: str, key_id: str, state: str) -> Path:
    """Where earlier versions kept a key that was no longer current:
    <purpose>-<keyid16>.<state>.pem (now destroyed on rotation, see `purge`)."""
    return keys_dir() / f"{purpose}-{key_id[:16]}.{state}.pem"


def destroy_key_file(path: Path) -> None:
    """Overwrite a private key file with zeros, flush it, and unlink it.  (On flash
    storage and copy-on-write file systems the old blocks may survive the overwrite:
    keep key directories on encrypted storage, see the README.)"""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def purge(*, actor: str = "system") -> list[str]:
    """Destroy every set-aside private key file (<purpose>-<keyid16>.retired.pem or
    .revoked.pem) left by earlier versions; each is a `key.private_destroyed` entry.
    Returns the file names destroyed."""
    from compliance.ledger import ledger

    destroyed = []
    for path in sorted(keys_dir().glob("*-*.*.pem")):
        purpose, _, rest = path.name.partition("-")
        prefix, _, state = rest.removesuffix(".pem").partition(".")
        if purpose not in PURPOSES or state not in ("retired", "revoked"):
            continue
        with transaction.atomic():
            ledger.append("key.private_destroyed", {"key_id_prefix": prefix, "purpose": purpose, "file": path.name},
                          subject=f"key:{prefix}", actor=actor)
            destroy_key_file(path)
        destroyed.append(path.name)
    return destroyed


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Create the key file with 0600 from the start (never world-readable, not even
    briefly) and refuse to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def read_private_key(path: Path) -> Ed25519PrivateKey:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def signer_from_private(purpose: str, key: Ed25519PrivateKey) -> Signer:
    pub = key.public_key()
    raw = public_raw(pub)
    return Signer(purpose, key, pub, raw, key_id_for(raw))


def get_signer(purpose: str) -> Signer:
    """The current signer of `purpose`, generating its key on first use where allowed
    and registering its public key.  The cache follows the file, so a rotation made by
    another process is picked up on the next call."""
    path = key_path(purpose)
    with _lock:
        if not path.exists():
            if not settings.TRACELEDGER_GENERATE_KEYS:
                raise KeyFileError(f"no {purpose} key at {path} and key generation is off")
            try:
                write_private_key(path, Ed25519PrivateKey.generate())
            except FileExistsError:
                pass  # another process made it first: use theirs
        st = path.stat()
        cache_key = (purpose, str(path), st.st_ino, st.st_mtime_ns)
        signer = _cache.get(cache_key)
        if signer is None:
            signer = signer_from_private(purpose, read_private_key(path))
            _cache[cache_key] = signer
    registered = register_public_key(signer)
    # the ledger decides, not the row: a revocation cleared in the table still counts
    from compliance.ledger import keyevents

    state = keyevents.state_of(signer.key_id)
    difference = keyevents.compare_row(registered, state)
    if difference is not None:
        keyevents.report([difference], f"loading the {purpose} key")
    if (state is not None and state.revoked_index is not None) or registered.revoked_at is not None:
        raise KeyFileError(f"the current {purpose} key {signer.key_id[:16]} is revoked; "
                           f"run `manage.py keys rotate --purpose {purpose}`")
    if state is not None and state.purpose != purpose:
        raise KeyFileError(f"key {signer.key_id[:16]} is registered in the ledger for {state.purpose}, not {purpose}")
    return signer


def init(purpose: str) -> tuple[Signer, bool]:
    """Make the key of `purpose` if its file is missing (a production host's first
    start, where TRACELEDGER_GENERATE_KEYS is off) and register it; (signer, made)."""
    path = key_path(purpose)
    made = False
    if not path.exists():
        try:
            write_private_key(path, Ed25519PrivateKey.generate())
            made = True
        except FileExistsError:
            pass
    return get_signer(purpose), made


def current_key_id(purpose: str) -> str | None:
    """Key id of the current key file of `purpose`, or None when there is none."""
    path = key_path(purpose)
    if not path.exists():
        return None
    return signer_from_private(purpose, read_private_key(path)).key_id


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def registration_payload(signer: Signer, replaces: Signer | None = None) -> dict:
    """A key.registered payload; a successor's carries the replaced key's endorsement."""
    from compliance.ledger import keylog

    payload = {"key_id": signer.key_id, "purpose": signer.purpose, "algorithm": "ed25519",
               "public_key": signer.public_b64}
    if replaces is not None:
        message = keylog.endorsement_message(signer.purpose, signer.key_id, signer.public_b64, replaces.key_id)
        payload |= {"replaces": replaces.key_id, "endorsement": base64.b64encode(replaces.sign(message)).decode()}
    return payload


def register_public_key(signer: Signer, *, replaces: Signer | None = None):
    """Register `signer`'s public key: a key.registered ledger entry (the truth) and
    its key-table row (a cache).  A key the ledger already registered is left alone;
    the row is only created when it is missing."""
    from compliance.ledger import keyevents, ledger
    from compliance.models import SigningKey

    existing = SigningKey.objects.filter(key_id=signer.key_id).first()
    if existing and keyevents.state_of(signer.key_id) is not None:
        return existing
    with transaction.atomic():
        ledger.hold_head()
        if keyevents.state_of(signer.key_id) is None:
            ledger.append("key.registered", registration_payload(signer, replaces),
                          subject=f"key:{signer.key_id[:16]}")
        key, _ = SigningKey.objects.get_or_create(
            key_id=signer.key_id,
            defaults={"purpose": signer.purpose, "public_key": signer.public_b64},
        )
    return key


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def find_key(ref: str):
    """A registered key by its id or an unambiguous prefix of it (at least 8 hex digits)."""
    from compliance.models import SigningKey

    ref = (ref or "").strip().lower()
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
        raise KeyFileError(f"key id {ref!r} must be at least 8 hex digits")
    found = list(SigningKey.objects.filter(key_id__startswith=ref)[:2])
    if not found:
        raise KeyFileError(f"no registered key {ref}")
    if len(found) > 1:
        raise KeyFileError(f"key id prefix {ref} is ambiguous")
    return found[0]


def rotate(purpose: str, *, actor: str = "system"):
    """Make a new current key for `purpose`, retire the old one and destroy its
    private key.

    The old public key stays registered with `retired_at` set, so its past signatures
    verify; the `key.retired` entry is the time after which nothing it signs counts.
    Returns (new key, old key or None).  A ledger rotation holds the ledger head lock,
    so no checkpoint is signed halfway.
    """
    from compliance.ledger import ledger
    from compliance.models import LedgerHead

    path = key_path(purpose)
    with transaction.atomic():
        if purpose == "ledger":
            LedgerHead.objects.select_for_update().get_or_create(pk=1)
        old = old_signer = None
        if path.exists():
            old_signer = signer_from_private(purpose, read_private_key(path))
            old = register_public_key(old_signer)
        new_private = Ed25519PrivateKey.generate()
        new_signer = signer_from_private(purpose, new_private)
        staged = keys_dir() / f".{purpose}.pem.new-{os.getpid()}"
        if staged.exists():
            staged.unlink()
        write_private_key(staged, new_private)
        new = register_public_key(new_signer, replaces=old_signer)
        if old is not None:
            old.retired_at = old.retired_at or _now()
            old.save(update_fields=["retired_at"])
            ledger.append("key.retired",
                          {"key_id": old.key_id, "purpose": purpose, "replaced_by": new.key_id,
                           "private_key": "destroyed"}, subject=f"key:{old.key_id[:16]}", actor=actor)
            # the new key takes the old one's place first, so a crash leaves a current key
            retiring = keys_dir() / f".{purpose}.pem.retiring-{os.getpid()}"
            os.link(path, retiring)
            os.replace(staged, path)
            destroy_key_file(retiring)
        else:
            os.replace(staged, path)
    clear_cache()
    return new, old


def revoke(ref: str, *, reason: str, actor: str = "system"):
    """Mark a key compromised from now on: what it signed at or after this moment no
    longer verifies.  A current key is rotated first, so signing goes on with a new one.
    Returns (revoked key, replacement key or None)."""
    from compliance.ledger import ledger

    reason = (reason or "").strip()
    if not reason:
        raise KeyFileError("a revocation needs a reason")
    with transaction.atomic():
        key = find_key(ref)
        key = type(key).objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            raise KeyFileError(f"key {key.key_id[:16]} was already revoked at {key.revoked_at.isoformat()}")
        replacement = None
        if current_key_id(key.purpose) == key.key_id:
            replacement, _ = rotate(key.purpose, actor=actor)
            key.refresh_from_db()
        key.revoked_at = _now()
        key.revocation_reason = reason[:500]
        key.save(update_fields=["revoked_at", "revocation_reason"])
        ledger.append("key.revoked",
                      {"key_id": key.key_id, "purpose": key.purpose, "reason": key.revocation_reason,
                       "revoked_at": key.revoked_at.isoformat(),
                       "replaced_by": replacement.key_id if replacement else None},
                      subject=f"key:{key.key_id[:16]}", actor=actor)
        for state in ("retired", "revoked"):  # a file an earlier version set aside
            aside = set_aside_path(key.purpose, key.key_id, state)
            if aside.exists():
                destroy_key_file(aside)
    clear_cache()
    return key, replacement


def list_keys() -> list[dict]:
    """Keys as the ledger's key entries register them, with whether their key-table
    row (a cache) agrees."""
    from compliance.ledger import keyevents
    from compliance.models import SigningKey

    current = {p: current_key_id(p) for p in PURPOSES}
    rows = {k.key_id: k for k in SigningKey.objects.all()}
    listed = []
    for key in sorted(keyevents.load().keys.values(), key=lambda k: (k.purpose, k.registered_index)):
        row = rows.get(key.key_id)
        difference = keyevents.compare_row(row, key) if row is not None else None
        listed.append(key.to_dict() | {
            "current": current.get(key.purpose) == key.key_id,
            "created_at": row.created_at.isoformat() if row else None,
            "key_table": "agrees" if row is not None and difference is None else (
                difference.message if difference else "no key table row")})
    return listed
