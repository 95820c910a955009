"""Provenance records and the recorder that makes them durable: Prediction rows, their
salts (outside the ledger) and one `prediction.recorded` ledger leaf each, written
together; ingestion is idempotent by inference id."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from compliance import ledger
from lineage.models import Prediction, PredictionSalt


@dataclass
class ProvenanceRecord:
    inference_id: uuid.UUID
    deployment_id: int
    engine_sha256: str
    timestamp: datetime
    input_digest: str
    output_digest: str
    latency_us: int | None = None
    salt: str = ""

    def metadata(self, service: str) -> dict:
        return {
            "inference_id": str(self.inference_id),
            "deployment": {"id": self.deployment_id, "service": service},
            "engine_sha256": self.engine_sha256,
            "timestamp": self.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
            "latency_ms": f"{(self.latency_us or 0) / 1000:.3f}",
        }


def write_records(records: list[ProvenanceRecord]) -> int:
    """Make records durable in one transaction; records already stored (same inference
    id) are skipped. Returns how many were new."""
    if not records:
        return 0
    unique: dict[uuid.UUID, ProvenanceRecord] = {}
    for r in records:
        unique.setdefault(r.inference_id, r)
    with transaction.atomic():
        existing = set(
            Prediction.objects.filter(inference_id__in=list(unique)).values_list("inference_id", flat=True))
        fresh = [r for r in unique.values() if r.inference_id not in existing]
        if not fresh:
            return 0
        rows = [
            Prediction(inference_id=r.inference_id, deployment_id=r.deployment_id, engine_sha256=r.engine_sha256,
                       timestamp=r.timestamp, input_digest=r.input_digest, output_digest=r.output_digest,
                       latency_us=r.latency_us)
            for r in fresh
        ]
        entries = ledger.append_many([
            ledger.Event("prediction.recorded", row.ledger_payload(), subject=f"prediction:{row.inference_id}",
                         actor="inference", time=row.timestamp)
            for row in rows
        ])
        for row, entry in zip(rows, entries):
            row.ledger_index = entry.index
        Prediction.objects.bulk_create(rows, batch_size=2000)
        PredictionSalt.objects.bulk_create(
            [PredictionSalt(inference_id=r.inference_id, salt=r.salt) for r in fresh if r.salt], batch_size=2000)
    return len(fresh)


class SyncRecorder:
    """Writes each record before the call returns."""

    def record(self, record: ProvenanceRecord) -> None:
        write_records([record])


class ListRecorder:
    """Collects records for one bulk write (`flush`), e.g. for batch scoring jobs."""

    def __init__(self):
        self.records: list[ProvenanceRecord] = []

    def record(self, record: ProvenanceRecord) -> None:
        self.records.append(record)

    def flush(self) -> int:
        written = write_records(self.records)
        self.records = []
        return written
