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

import hmac

OUTPUT_COMMITMENT = b"traceledger/output-commitment/v2"
OUTPUT_ENCRYPTION = b"traceledger/output-encryption/v1"
SALT_BYTES = 32


def subkey(salt: bytes, label: bytes) -> bytes:
    """HKDF-Expand(salt, label, 32): one HMAC-SHA256 block (T(1) = HMAC(PRK, info ‖ 0x01))."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes")
    return hmac.digest(salt, label + b"\x01", "sha256")


def output_mac(salt: bytes):
    """A fresh HMAC-SHA256 under the output-commitment key, to feed the encoded outputs."""
    return hmac.new(subkey(salt, OUTPUT_COMMITMENT), digestmod="sha256")
