"""Provenance records and the per-call stamp, with no Django import: an inference server
that never touches our database (it reports through `inference.provenance.client`) uses this
module as is.

The stamp is on every inference's path, so it is kept to a few microseconds: one
`os.urandom` call gives both the commitments' salt and the UUIDv7's random bits, the
time is read once as integer nanoseconds (no datetime objects), tensor headers are
cached per (name, dtype, shape) in `digests`, and the ISO timestamp reuses its
seconds prefix within the same second.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from datetime import datetime, timezone

import numpy as np

from compliance.lib.ids import datetime_from_us, us_from_datetime
from compliance.lib.salts import output_mac
from inference.digests import OUTPUT_V2, SALT_BYTES, update_with_tensors

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX = frozenset("0123456789abcdef")


def iso_from_us(ts_us: int) -> str:
    """`2026-11-26T10:04:05.123456Z` for integer microseconds since the epoch (the
    exact text `datetime.isoformat(timespec="microseconds")` gives, with Z)."""
    global _last_second
    seconds, micros = divmod(ts_us, 1_000_000)
    cached = _last_second
    if cached[0] == seconds:
        prefix = cached[1]
    else:
        prefix = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")[:19]
        _last_second = (seconds, prefix)
    return f"{prefix}.{micros:06d}Z"


_last_second: tuple[int | None, str] = (None, "")


def uuid7_text(ms: int, rand: bytes) -> str:
    """UUIDv7 (RFC 9562) text from Unix milliseconds and 10 random bytes: 48 bits of
    time, the version nibble 7 over the first random nibble, the variant bits 10
    over the top of the third random byte, the other 74 random bits as they are."""
    h = ((ms & 0xFFFFFFFFFFFF).to_bytes(6, "big") + rand).hex()
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{_VARIANT[(rand[2] >> 4) & 3]}{h[17:20]}-{h[20:32]}"


_VARIANT = "89ab"


class _RandomPool(threading.local):
    """os.urandom bytes drawn 4 KiB at a time and handed out in slices: one system
    call per ~100 predictions instead of one each.  Per thread (no lock), and emptied
    in a forked child so that parent and child never hand out the same bytes."""

    CHUNK = 4096

    def __init__(self):
        self.data = b""
        self.offset = 0

    def take(self, n: int) -> bytes:
        offset = self.offset
        if offset + n > len(self.data):
            self.data = os.urandom(self.CHUNK)
            offset = 0
        self.offset = offset + n
        return self.data[offset:offset + n]


_random = _RandomPool()


def _forget_random_in_child() -> None:
    global _random
    _random = _RandomPool()


os.register_at_fork(after_in_child=_forget_random_in_child)


def random_bytes(n: int) -> bytes:
    """Cryptographically secure random bytes (from os.urandom) for salts and ids."""
    return _random.take(n)


class ProvenanceRecord:
    """One prediction's provenance, in the plain forms it is sent and stored in:
    inference id as lowercase UUID text, time as integer microseconds (UTC), digests
    and salt as lowercase hex."""

    __slots__ = ("id", "deployment_id", "engine_sha256", "ts_us", "input_digest", "output_digest",
                 "latency_us", "salt")

    def __init__(self, inference_id, deployment_id: int, engine_sha256: str, timestamp=None, input_digest: str = "",
                 output_digest: str = "", latency_us: int | None = None, salt: str = "", *, ts_us: int | None = None):
        self.id = inference_id if type(inference_id) is str else str(inference_id)
        self.deployment_id = deployment_id
        self.engine_sha256 = engine_sha256
        self.ts_us = ts_us if ts_us is not None else us_from_datetime(timestamp)
        self.input_digest = input_digest
        self.output_digest = output_digest
        self.latency_us = latency_us
        self.salt = salt

    # datetime / UUID views for code that is not on the hot path
    @property
    def inference_id(self) -> uuid.UUID:
        return uuid.UUID(self.id)

    @inference_id.setter
    def inference_id(self, value) -> None:
        self.id = str(value)

    @property
    def timestamp(self) -> datetime:
        return datetime_from_us(self.ts_us)

    @timestamp.setter
    def timestamp(self, value: datetime) -> None:
        self.ts_us = us_from_datetime(value)

    def __eq__(self, other) -> bool:
        return isinstance(other, ProvenanceRecord) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return f"ProvenanceRecord({self.id}, deployment {self.deployment_id})"

    def metadata(self, service: str) -> dict:
        return {
            "inference_id": self.id,
            "deployment": {"id": self.deployment_id, "service": service},
            "engine_sha256": self.engine_sha256,
            "timestamp": iso_from_us(self.ts_us),
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "latency_ms": f"{(self.latency_us or 0) / 1000:.3f}",
        }

    def ledger_payload(self) -> dict:
        """The `prediction.recorded` payload; equal to Prediction.ledger_payload() of
        the stored row."""
        return {
            "inference_id": self.id,
            "deployment_id": self.deployment_id,
            "engine_sha256": self.engine_sha256,
            "timestamp": iso_from_us(self.ts_us),
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
        }

    def to_json(self) -> dict:
        """The ingestion API's shape of a record: the ledger payload plus latency and salt."""
        return self.ledger_payload() | {"latency_us": self.latency_us, "salt": self.salt}

    # Spool form: one line of comma-separated fields (every field is digits, hex,
    # UUID text or empty, so no quoting is ever needed).
    def encode(self) -> bytes:
        latency = "" if self.latency_us is None else str(self.latency_us)
        return (f"1,{self.id},{self.deployment_id},{self.engine_sha256},{self.ts_us},{self.input_digest},"
                f"{self.output_digest},{latency},{self.salt}").encode()

    @classmethod
    def decode(cls, data: bytes) -> "ProvenanceRecord":
        fields = data.decode("ascii").split(",")
        if len(fields) != 9 or fields[0] != "1":
            raise ValueError("not a version-1 provenance record")
        _, iid, dep, engine, ts, inp, out, latency, salt = fields
        return cls(iid, int(dep), engine, None, inp, out, int(latency) if latency else None, salt, ts_us=int(ts))


class Stamper:
    """Makes the provenance record and metadata of one call on one deployment."""

    def __init__(self, deployment_id: int, service: str, engine_sha256: str):
        self.deployment_id = deployment_id
        self.service = service
        self.engine_sha256 = engine_sha256

    def commit(self, feeds: dict[str, np.ndarray]) -> tuple[bytes, str]:
        """Draw this call's randomness (the salt, then 10 bytes for the UUIDv7) and
        commit to the inputs; done before the engine runs, while the inputs are hot."""
        random = _random.take(SALT_BYTES + 10)
        h = hashlib.sha256(random[:SALT_BYTES])
        update_with_tensors(h, feeds)
        return random, h.hexdigest()

    def finish(self, random: bytes, input_digest: str, outputs: dict[str, np.ndarray],
               latency_us: int) -> tuple[ProvenanceRecord, dict]:
        now_ns = time.time_ns()
        # salted like the input, under a key of its own: after the salt's erasure the
        # engine cannot link a guessed input to these outputs (inference.digests)
        mac = output_mac(random[:SALT_BYTES])
        update_with_tensors(mac, outputs)
        output_digest = OUTPUT_V2 + mac.hexdigest()
        ts_us = now_ns // 1000
        inference_id = uuid7_text(now_ns // 1_000_000, random[SALT_BYTES:])
        record = ProvenanceRecord(inference_id, self.deployment_id, self.engine_sha256, None, input_digest,
                                  output_digest, latency_us, random[:SALT_BYTES].hex(), ts_us=ts_us)
        return record, {
            "inference_id": inference_id,
            "deployment": {"id": self.deployment_id, "service": self.service},
            "engine_sha256": self.engine_sha256,
            "timestamp": iso_from_us(ts_us),
            "input_digest": input_digest,
            "output_digest": output_digest,
            "latency_ms": f"{latency_us / 1000:.3f}",
        }

    def __call__(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                 latency_us: int) -> tuple[ProvenanceRecord, dict]:
        """The record and metadata of one call whose inputs, outputs and engine time
        are known."""
        random, input_digest = self.commit(feeds)
        return self.finish(random, input_digest, outputs, latency_us)
