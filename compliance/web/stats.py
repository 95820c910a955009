"""The numbers behind the overview, aggregated in the database (TruncDay and COUNT …
GROUP BY over indexed columns), never by loading rows into Python.

Predictions per hour and per deployment come from PredictionHour, which the
provenance writer keeps in the same transaction as the rows it counts: the overview
reads a few hundred counters however many predictions there are (at 10,000,000
predictions, counting the day's 1.4 million rows took a second), and a record
ingested late from a spool shows up at once.  Hours are UTC hours."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from compliance.investigation.ledger_checks import last_verification
from compliance.ledger import ledger
from compliance.models import Alert, Case
from compliance.web.ledger_status import latest_checkpoint
from lineage.models import Build, Deployment, Engine, EngineLoad, ModelSource, PredictionHour


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def overview_counts(now: datetime | None = None, hourly: list[tuple[datetime, str, int]] | None = None) -> dict:
    """Counts for the overview; `hourly` (from predictions_per_hour) saves recounting
    today's predictions."""
    now = now or timezone.now()
    midnight = _midnight(now)
    if hourly is not None:  # its 24 hours always reach back past midnight
        today = sum(n for hour, _, n in hourly if hour >= midnight)
    else:
        today = PredictionHour.objects.filter(hour__gte=midnight).aggregate(n=Sum("n"))["n"] or 0
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


def predictions_per_hour(hours: int = 24, now: datetime | None = None) -> list[tuple[datetime, str, int]]:
    """(hour, service, count) for the last `hours` hours, oldest first."""
    now = now or timezone.now()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    rows = PredictionHour.objects.filter(hour__gte=since, hour__lte=now, n__gt=0).values_list("hour", "deployment_id", "n")
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
    return dict(PredictionHour.objects.filter(deployment_id__in=deployment_ids).order_by().values("deployment_id")
                .annotate(total=Sum("n")).values_list("deployment_id", "total"))
