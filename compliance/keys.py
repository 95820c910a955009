"""Ed25519 signing keys: private halves in files (0600), public halves registered.

A key file is PKCS#8 PEM at TRACELEDGER_KEYS_DIR/<purpose>.pem (the current key of
that purpose).  Its key id is the hex SHA-256 of the raw 32-byte public key.
The database holds only public keys (SigningKey); HMAC is never used, so anyone with
the public keys can verify what we signed.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction

PURPOSES = ("build", "ledger", "witness", "webhook")
_lock = threading.Lock()
_cache: dict[tuple[str, str], "Signer"] = {}


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
    and registering its public key."""
    path = key_path(purpose)
    cache_key = (purpose, str(path))
    with _lock:
        signer = _cache.get(cache_key)
        if signer is None:
            if not path.exists():
                if not settings.TRACELEDGER_GENERATE_KEYS:
                    raise KeyFileError(f"no {purpose} key at {path} and key generation is off")
                write_private_key(path, Ed25519PrivateKey.generate())
            signer = signer_from_private(purpose, read_private_key(path))
            _cache[cache_key] = signer
    register_public_key(signer)
    return signer


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def register_public_key(signer: Signer):
    from . import ledger
    from .models import SigningKey

    existing = SigningKey.objects.filter(key_id=signer.key_id).first()
    if existing:
        return existing
    with transaction.atomic():
        key, created = SigningKey.objects.get_or_create(
            key_id=signer.key_id,
            defaults={"purpose": signer.purpose, "public_key": signer.public_b64},
        )
        if created:
            ledger.append(
                "key.registered",
                {"key_id": key.key_id, "purpose": key.purpose, "algorithm": "ed25519",
                 "public_key": key.public_key},
                subject=f"key:{key.key_id[:16]}",
            )
    return key


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value))
