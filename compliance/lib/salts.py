"""Keys derived from a prediction's secret salt, one per use, so that erasing the salt
unlinks everything made from it at once.

The salt is 32 random bytes, uniformly distributed, so it serves directly as the
pseudorandom key of HKDF-Expand (RFC 5869 §3.3: the extract step is optional for such
a key); each use gets its own `info` label, so no two uses share a key:

    output commitment   HKDF-Expand(salt, "traceledger/output-commitment/v2", 32)
    output encryption   HKDF-Expand(salt, "traceledger/output-encryption/v1", 32)
                        (reserved: retained outputs, when they come, are encrypted
                        under this key and become unreadable with the salt's erasure)

The input commitment, SHA-256(salt ‖ encoding(inputs)), predates this module and is
kept as it is: it is a different construction from an HMAC under a derived key, so the
two never collide.  One HMAC-SHA256 block: a microsecond on the prediction path.
"""
from __future__ import annotations

import hashlib

OUTPUT_COMMITMENT = b"traceledger/output-commitment/v2"
OUTPUT_ENCRYPTION = b"traceledger/output-encryption/v1"
SALT_BYTES = 32

# HMAC-SHA256 (RFC 2104) written out over hashlib: every prediction makes a fresh key,
# and OpenSSL 3's HMAC (behind `hmac.digest` and `hmac.new`) looks the digest up by
# name on each new key, which cost 2.9 µs of the stamp's budget here; the same two
# SHA-256 passes from hashlib take 1.2 µs.  tests/inference/test_commitment.py checks
# these against the standard library's hmac on random keys and messages.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_PAD = bytes(_BLOCK - SALT_BYTES)
_sha256 = hashlib.sha256


class HmacSha256:
    """HMAC-SHA256 under a 32-byte key, with the update/digest/hexdigest of `hmac.HMAC`."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) != SALT_BYTES:
            raise ValueError(f"a key here is {SALT_BYTES} bytes")
        padded = key + _PAD
        self._inner = _sha256(padded.translate(_IPAD))
        self._outer = padded.translate(_OPAD)

    def update(self, data) -> None:
        self._inner.update(data)

    def digest(self) -> bytes:
        return _sha256(self._outer + self._inner.digest()).digest()

    def hexdigest(self) -> str:
        return _sha256(self._outer + self._inner.digest()).hexdigest()


def subkey(salt: bytes, label: bytes) -> bytes:
    """HKDF-Expand(salt, label, 32): one HMAC-SHA256 block (T(1) = HMAC(PRK, info ‖ 0x01))."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes")
    padded = salt + _PAD
    return _sha256(padded.translate(_OPAD) + _sha256(padded.translate(_IPAD) + label + b"\x01").digest()).digest()


def output_mac(salt: bytes) -> HmacSha256:
    """A fresh HMAC-SHA256 under the output-commitment key, to feed the encoded outputs."""
    return HmacSha256(subkey(salt, OUTPUT_COMMITMENT))
