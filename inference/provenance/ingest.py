"""Ingestion from external inference servers: strict validation of posted provenance
records and engine-load reports, then the same writers the local runtime uses
(`recorder.write_records`, `loader.record_load`).

A service token reports for the service it is named after (`create_service_token
NAME`): its records must point at deployments of that service, pinned to the engine
they name.  A batch is validated whole before anything is written, and written in one
transaction, so a bad batch stores nothing; ids already stored are reported as
duplicates (a retried batch is harmless).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from django.db import IntegrityError, transaction

from compliance.lib.ids import is_hex64, us_from_datetime
from inference.digests import OUTPUT_V2
from inference.loader import record_load
from inference.provenance.stamp import ProvenanceRecord
from lineage.models import Deployment, EngineLoad

RECORD_FIELDS = ("inference_id", "deployment_id", "engine_sha256", "timestamp", "input_digest", "output_digest",
                 "latency_us", "salt")
REQUIRED_RECORD_FIELDS = frozenset(RECORD_FIELDS) - {"latency_us", "salt"}
LOAD_FIELDS = ("attempt_id", "service", "deployment_id", "verdict", "expected_sha256", "actual_sha256", "detail",
               "host")
REQUIRED_LOAD_FIELDS = frozenset({"attempt_id", "service", "verdict"})
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_LATENCY_US = 2**31 - 1


class IngestError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _uuid(value, where: str, *, v7: bool) -> str:
    if type(value) is not str:
        raise IngestError(f"{where} must be a string (a UUID)")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise IngestError(f"{where} is not a UUID: {value[:60]!r}") from None
    text = str(parsed)
    if value.lower() != text:
        raise IngestError(f"{where} must be written as a hyphenated UUID like 0190f2c4-…, got {value[:60]!r}")
    if v7 and parsed.version != 7:
        raise IngestError(f"{where} must be a UUIDv7 (time-ordered), got version {parsed.version}")
    return text


def _int(value, where: str, *, low: int, high: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if type(value) is not int:
        raise IngestError(f"{where} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise IngestError(f"{where} must be between {low} and {high}, got {value}")
    return value


def _output_commitment(value, where: str) -> str:
    """A new record's output digest must be the salted commitment (inference.digests):
    an unsalted one would let anyone with the engine link guessed inputs to it forever."""
    if type(value) is not str or not value.startswith(OUTPUT_V2) or not is_hex64(value[len(OUTPUT_V2):]):
        raise IngestError(f"{where} must be a salted output commitment: '{OUTPUT_V2}' and 64 lowercase hex digits "
                          "(inference.digests.output_commitment)")
    return value


def _hex64(value, where: str, *, optional: bool = False) -> str:
    if optional and value in ("", None):
        return ""
    if not is_hex64(value):
        raise IngestError(f"{where} must be 64 lowercase hex characters (a sha256)")
    return value


def _timestamp(value, where: str, now: datetime) -> int:
    if type(value) is not str:
        raise IngestError(f"{where} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise IngestError(f"{where} is not an ISO 8601 time: {value[:60]!r}") from None
    if moment.tzinfo is None:
        raise IngestError(f"{where} must include a time zone (e.g. a trailing Z)")
    if moment < EARLIEST or moment > now + CLOCK_SKEW:
        raise IngestError(f"{where} is out of range ({value}): a prediction cannot come from the future or before 2000")
    return us_from_datetime(moment)


def _fields(item, where: str, allowed: tuple, required: frozenset) -> dict:
    if not isinstance(item, dict):
        raise IngestError(f"{where} must be an object")
    missing = sorted(required - item.keys())
    if missing:
        raise IngestError(f"{where} is missing {', '.join(missing)}")
    unknown = sorted(set(item) - set(allowed))
    if unknown:
        raise IngestError(f"{where} has unknown field(s) {', '.join(unknown)}")
    return item


def _may_report_for(user, service: str) -> None:
    if user.get_username() != service:
        raise IngestError(f"the token of service {user.get_username()!r} cannot report for service {service!r}", 403)


def parse_records(body, *, user, max_batch: int) -> list[ProvenanceRecord]:
    """Validate a posted batch {"records": [...]} completely; IngestError (with the
    HTTP status and the first bad record named) otherwise."""
    if not isinstance(body, dict) or "records" not in body:
        raise IngestError('the body must be a JSON object {"records": [...]}')
    if set(body) != {"records"}:
        raise IngestError(f"unknown top-level field(s) {', '.join(sorted(set(body) - {'records'}))}")
    items = body["records"]
    if not isinstance(items, list):
        raise IngestError("records must be a list")
    if not items:
        raise IngestError("records is empty")
    if len(items) > max_batch:
        raise IngestError(f"a batch may carry at most {max_batch} records, this one has {len(items)}: split it", 413)
    now = datetime.now(timezone.utc)
    records: list[ProvenanceRecord] = []
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"records[{i}]"
        _fields(item, where, RECORD_FIELDS, REQUIRED_RECORD_FIELDS)
        iid = _uuid(item["inference_id"], f"{where}.inference_id", v7=True)
        if iid in first_seen:
            raise IngestError(f"{where}.inference_id {iid} appears twice in this batch (also records[{first_seen[iid]}])")
        first_seen[iid] = i
        records.append(ProvenanceRecord(
            iid,
            _int(item["deployment_id"], f"{where}.deployment_id", low=1, high=2**63 - 1),
            _hex64(item["engine_sha256"], f"{where}.engine_sha256"),
            None,
            _hex64(item["input_digest"], f"{where}.input_digest"),
            _output_commitment(item["output_digest"], f"{where}.output_digest"),
            _int(item.get("latency_us"), f"{where}.latency_us", low=0, high=MAX_LATENCY_US, optional=True),
            _hex64(item.get("salt", ""), f"{where}.salt", optional=True),
            ts_us=_timestamp(item["timestamp"], f"{where}.timestamp", now),
        ))
    deployments = Deployment.objects.in_bulk({r.deployment_id for r in records})
    for i, r in enumerate(records):
        deployment = deployments.get(r.deployment_id)
        if deployment is None:
            raise IngestError(f"records[{i}].deployment_id: unknown deployment {r.deployment_id}")
        _may_report_for(user, deployment.service)
        if r.engine_sha256 != deployment.engine_sha256:
            raise IngestError(f"records[{i}].engine_sha256 is not the engine deployment {deployment.id} pins "
                              f"({deployment.engine_sha256[:16]}…)")
        _within_lifetime(r.ts_us, deployment, f"records[{i}].timestamp", now)
    return records


def _within_lifetime(ts_us: int, deployment: Deployment, where: str, now: datetime) -> None:
    """A prediction was made while its deployment was live: after it was created and
    before it was retired (or now), give or take CLOCK_SKEW."""
    start = us_from_datetime(deployment.created_at - CLOCK_SKEW)
    end = us_from_datetime((deployment.retired_at or now) + CLOCK_SKEW)
    if not start <= ts_us <= end:
        until = deployment.retired_at.isoformat() if deployment.retired_at else "now"
        raise IngestError(f"{where} lies outside the lifetime of deployment {deployment.id} "
                          f"({deployment.created_at.isoformat()} to {until}, give or take {CLOCK_SKEW})")


def report_load(body, *, user) -> tuple[EngineLoad, bool]:
    """Record an engine-load attempt reported by an external runtime; returns (load,
    created). A report with an attempt_id already recorded returns that load."""
    item = _fields(body, "the body", LOAD_FIELDS, REQUIRED_LOAD_FIELDS)
    attempt_id = _uuid(item["attempt_id"], "attempt_id", v7=False)
    service = item["service"]
    if type(service) is not str or not service or len(service) > 100:
        raise IngestError("service must be a non-empty string of at most 100 characters")
    _may_report_for(user, service)
    verdict = item["verdict"]
    verdicts = [v for v, _ in EngineLoad.VERDICTS]
    if verdict not in verdicts:
        raise IngestError(f"verdict must be one of {', '.join(verdicts)}")
    detail, host = item.get("detail", ""), item.get("host", "")
    if type(detail) is not str or len(detail) > 500:
        raise IngestError("detail must be a string of at most 500 characters")
    if type(host) is not str or len(host) > 200:
        raise IngestError("host must be a string of at most 200 characters")
    expected = _hex64(item.get("expected_sha256", ""), "expected_sha256", optional=True)
    actual = _hex64(item.get("actual_sha256", ""), "actual_sha256", optional=True)
    deployment = None
    if item.get("deployment_id") is not None:
        dep_id = _int(item["deployment_id"], "deployment_id", low=1, high=2**63 - 1)
        deployment = Deployment.objects.filter(pk=dep_id).first()
        if deployment is None:
            raise IngestError(f"deployment_id: unknown deployment {dep_id}")
        if deployment.service != service:
            raise IngestError(f"deployment {dep_id} belongs to service {deployment.service!r}, not {service!r}")
        if expected and expected != deployment.engine_sha256:
            raise IngestError(f"expected_sha256 is not the engine deployment {dep_id} pins")
    if verdict == EngineLoad.VERIFIED:
        if deployment is None:
            raise IngestError("a verified load must name its deployment_id")
        if actual != deployment.engine_sha256:
            raise IngestError("a verified load must report actual_sha256 equal to the deployment's pinned engine")
    existing = EngineLoad.objects.filter(attempt_id=attempt_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            load = record_load(deployment, service, verdict, detail or verdict, actual, host,
                               attempt_id=uuid.UUID(attempt_id), actor=f"service:{user.get_username()}")
    except IntegrityError:  # the same attempt reported twice at once: the first one won
        return EngineLoad.objects.get(attempt_id=attempt_id), False
    return load, True
