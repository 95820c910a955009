"""Read-side questions about predictions and deployments.

- `predictions_page`: predictions by deployment / service / time window / input
  digest, newest first, with keyset pagination (the cursor is the last row's
  timestamp and inference id, so a page costs the same at row 10 or row 10 million
  and rows inserted meanwhile never shift a page).  The cursor is signed
  (django.core.signing), so a client passes it back but cannot forge one.
- `engine_at`: which engine served a service at a moment — the deployment that was
  live then, and the last verified load of it at or before that moment.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.db.models import Q

from compliance.lib.ids import datetime_from_us, is_hex64, us_from_datetime
from lineage.models import Deployment, EngineLoad, Prediction

MAX_LIMIT = 500


class QueryError(ValueError):
    """Bad query parameters: one line."""


def parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise QueryError(f"{name} must be an ISO 8601 time such as 2026-11-26T10:00:00Z, got {value!r}") from None
    if moment.tzinfo is None:
        raise QueryError(f"{name} must include a time zone (e.g. a trailing Z), got {value!r}")
    return moment


_CURSOR = signing.Signer(salt="lineage.queries.predictions_page")


def encode_cursor(prediction: Prediction) -> str:
    return _CURSOR.sign(f"{us_from_datetime(prediction.timestamp)}:{prediction.inference_id}")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, iid = _CURSOR.unsign(cursor).split(":", 1)
        return datetime_from_us(int(ts)), uuid.UUID(iid)
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        raise QueryError("after is not a cursor returned by this API: pass `next` of the previous page unchanged") from None


@dataclass
class Page:
    results: list[Prediction]
    next: str | None


def predictions_page(*, deployment: int | None = None, service: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, input_digest: str | None = None, after: str | None = None,
                     limit: int = 50) -> Page:
    """Predictions matching every given filter, newest first; `since` is inclusive,
    `until` exclusive; `after` is the `next` cursor of the previous page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    query = Prediction.objects.select_related("batch")
    if deployment is not None:
        query = query.filter(deployment_id=deployment)
    if service:
        query = query.filter(deployment__service=service)
    if since is not None:
        query = query.filter(timestamp__gte=since)
    if until is not None:
        query = query.filter(timestamp__lt=until)
    if input_digest:
        if not is_hex64(input_digest):
            raise QueryError("input_digest must be 64 lowercase hex characters")
        query = query.filter(input_digest=input_digest)
    if after:
        ts, iid = decode_cursor(after)
        query = query.filter(Q(timestamp__lt=ts) | Q(timestamp=ts, inference_id__lt=iid))
    rows = list(query.order_by("-timestamp", "-inference_id")[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more else None)


@dataclass
class ServedBy:
    deployment: Deployment
    last_verified_load: EngineLoad | None

    def to_dict(self) -> dict:
        d = self.deployment
        engine = d.engine
        return {
            "service": d.service,
            "environment": d.environment,
            "deployment": d.to_dict(),
            "engine": engine.to_dict() | {"build_id": engine.build_id, "model_sha256": engine.build.model.sha256},
            "last_verified_load": self.last_verified_load.to_dict() if self.last_verified_load else None,
        }


def engine_at(service: str, moment: datetime, environment: str | None = None) -> list[ServedBy]:
    """The deployment(s) of `service` live at `moment` (one per environment unless
    `environment` is given): deployed at or before it and not yet retired."""
    if moment.tzinfo is None:
        raise QueryError("the time must include a time zone")
    query = (Deployment.objects.filter(service=service, created_at__lte=moment)
             .filter(Q(retired_at__isnull=True) | Q(retired_at__gt=moment))
             .select_related("engine__build__model").order_by("environment", "-created_at"))
    if environment:
        query = query.filter(environment=environment)
    served, seen = [], set()
    for deployment in query:
        if deployment.environment in seen:
            continue
        seen.add(deployment.environment)
        load = (EngineLoad.objects.filter(deployment=deployment, verdict=EngineLoad.VERIFIED, created_at__lte=moment)
                .order_by("-created_at").first())
        served.append(ServedBy(deployment, load))
    return served
