"""The numbers behind the overview, aggregated in the database (TruncHour/TruncDay and
COUNT … GROUP BY over indexed columns), never by loading rows into Python.

Predictions per hour: the hours that are over are counted once and kept in the cache
for CLOSED_HOURS_TTL seconds (records ingested late from a spool show up within that
time); only the current hour is counted on every request.  That keeps the overview's
cost flat however many predictions a day brings."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from compliance.investigation.ledger_checks import last_verification
from compliance.ledger import ledger
from compliance.models import Alert, Case
from compliance.web.ledger_status import latest_checkpoint
from lineage.models import Build, Deployment, Engine, EngineLoad, ModelSource, Prediction


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


CLOSED_HOURS_TTL = 300


def overview_counts(now: datetime | None = None, hourly: list[tuple[datetime, str, int]] | None = None) -> dict:
    """Counts for the overview; `hourly` (from predictions_per_hour) saves recounting
    today's predictions."""
    now = now or timezone.now()
    midnight = _midnight(now)
    if hourly is not None:  # its 24 hours always reach back past midnight
        today = sum(n for hour, _, n in hourly if hour >= midnight)
    else:
        today = Prediction.objects.filter(timestamp__gte=midnight).count()
    builds = dict(Build.objects.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "models": ModelSource.objects.count(),
        "builds": sum(builds.values()),
        "builds_by_status": {s: builds.get(s, 0) for s, _ in Build.STATUSES if builds.get(s)},
        "engines": Engine.objects.count(),
        "live_deployments": Deployment.objects.filter(retired_at=None).count(),
        "predictions_today": today,
        "open_alerts": Alert.objects.filter(acknowledged_at=None).count(),
        "open_cases": Case.objects.filter(status__in=(Case.OPEN, Case.UNDER_REVIEW)).count(),
        "ledger_size": ledger.size(),
    }


def ledger_health() -> dict:
    checkpoint = latest_checkpoint()
    return {"checkpoint": checkpoint, "verification": last_verification()}


def _hourly(since: datetime, until: datetime | None) -> list[tuple[datetime, int, int]]:
    query = Prediction.objects.filter(timestamp__gte=since)
    if until is not None:
        query = query.filter(timestamp__lt=until)
    return list(query.order_by().annotate(hour=TruncHour("timestamp")).values("hour", "deployment_id")
                .annotate(n=Count("inference_id")).values_list("hour", "deployment_id", "n"))


def predictions_per_hour(hours: int = 24, now: datetime | None = None) -> list[tuple[datetime, str, int]]:
    """(hour, service, count) for the last `hours` hours, oldest first."""
    now = now or timezone.now()
    current = now.replace(minute=0, second=0, microsecond=0)
    since = current - timedelta(hours=hours - 1)
    closed = cache.get_or_set(f"traceledger:predictions-per-hour:{since.isoformat()}:{current.isoformat()}",
                              lambda: _hourly(since, current), CLOSED_HOURS_TTL)
    rows = closed + _hourly(current, None)
    services = dict(Deployment.objects.values_list("id", "service"))
    merged: dict[tuple[datetime, str], int] = {}
    for hour, deployment_id, n in rows:
        key = (hour, services.get(deployment_id, f"deployment {deployment_id}"))
        merged[key] = merged.get(key, 0) + n
    return sorted((h, s, n) for (h, s), n in merged.items())


def refused_loads_per_day(days: int = 30, now: datetime | None = None) -> list[tuple[datetime, str, int]]:
    """(day, verdict, count) of refused engine loads: the unauthenticated-load trend."""
    now = now or timezone.now()
    since = _midnight(now) - timedelta(days=days - 1)
    return sorted(EngineLoad.objects.filter(created_at__gte=since).exclude(verdict=EngineLoad.VERIFIED).order_by()
                  .annotate(day=TruncDay("created_at")).values("day", "verdict").annotate(n=Count("id"))
                  .values_list("day", "verdict", "n"))


def alerts_per_day(days: int = 30, now: datetime | None = None) -> list[tuple[datetime, str, int]]:
    """(day, severity, count) of raised alerts."""
    now = now or timezone.now()
    since = _midnight(now) - timedelta(days=days - 1)
    return sorted(Alert.objects.filter(created_at__gte=since).order_by().annotate(day=TruncDay("created_at"))
                  .values("day", "severity").annotate(n=Count("id")).values_list("day", "severity", "n"))


def prediction_counts(deployment_ids: list[int]) -> dict[int, int]:
    if not deployment_ids:
        return {}
    return dict(Prediction.objects.filter(deployment_id__in=deployment_ids).order_by().values("deployment_id")
                .annotate(n=Count("inference_id")).values_list("deployment_id", "n"))
