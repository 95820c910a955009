"""/metrics through prometheus_client, correct under several gunicorn workers.

Two kinds of series. Counters that each process counts for itself (requests served, by
view and status, and their durations) are prometheus_client metrics; with
PROMETHEUS_MULTIPROC_DIR set (production: deploy/gunicorn.conf.py sets it up and cleans
it) every worker writes them to files there and a scrape sums them across the workers,
whichever worker answers. Series read from the database or the spool (engine loads,
builds, alerts, the ledger, checkpoints) are the same from any process, so they are
computed at scrape time by custom collectors: plain functions returning Metric objects.
The built-in ones cover what exists; other parts add theirs with `register(fn)` (from
their AppConfig.ready) or by naming them in the TRACELEDGER_METRICS_COLLECTORS setting
(dotted paths; a path whose module is not installed yet is skipped). A later collector's
metric replaces an earlier one of the same name, so a precise source can take over a
generic one.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from compliance.web.ledger_status import latest_checkpoint, optional_function

# This process's own counters; in multiprocess mode their values live in files.
PROCESS_REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter("traceledger_http_requests", "HTTP requests served, by view and status.",
                        ["method", "view", "status"], registry=PROCESS_REGISTRY)
HTTP_DURATION = Histogram("traceledger_http_request_duration_seconds", "Time to answer a request, by view.",
                          ["view"], registry=PROCESS_REGISTRY,
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


def observe_request(method: str, view: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, view, str(status)).inc()
    HTTP_DURATION.labels(view).observe(seconds)


@dataclass
class Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def family(self):
        """This metric as a prometheus_client metric family."""
        label_names = sorted({k for labels, _ in self.samples for k in labels})
        kind = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = kind(self.name, self.help, labels=label_names)
        for labels, value in self.samples:
            family.add_metric([str(labels.get(k, "")) for k in label_names], float(value))
        return family


Collector = Callable[[], Iterable[Metric]]
_collectors: list[Collector] = []


def register(collector: Collector) -> Collector:
    if collector not in _collectors:
        _collectors.append(collector)
    return collector


def _configured() -> list[Collector]:
    found = []
    for path in getattr(settings, "TRACELEDGER_METRICS_COLLECTORS", []):
        module, _, name = path.rpartition(".")
        function = optional_function(module, name)
        if function is not None:
            found.append(function)
    return found


def collect() -> list[Metric]:
    by_name: dict[str, Metric] = {}
    for collector in [*_collectors, *_configured()]:
        for metric in collector():
            by_name[metric.name] = metric
    return list(by_name.values())


class TraceLedgerCollector:
    """Our collector functions as one prometheus_client custom collector."""

    def collect(self):
        for metric in collect():
            yield metric.family()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # every worker's counters, summed
    else:
        registry.register(_ProcessMetrics())
    registry.register(TraceLedgerCollector())
    return registry


class _ProcessMetrics:
    def collect(self):
        return PROCESS_REGISTRY.collect()


def render(accept: str = "") -> tuple[bytes, str]:
    """The exposition the scraper asked for (Accept header): body and content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry()), content_type


@register
def lineage_metrics() -> list[Metric]:
    from lineage.models import Build, EngineLoad

    refused = Metric("traceledger_engine_load_refusals_total", "counter",
                     "Engine loads refused by the verified loader, by verdict.")
    loads = dict(EngineLoad.objects.values_list("verdict").annotate(n=Count("id")).values_list("verdict", "n"))
    for verdict, _ in EngineLoad.VERDICTS:
        if verdict != EngineLoad.VERIFIED:
            refused.samples.append(({"verdict": verdict}, loads.get(verdict, 0)))
    verified = Metric("traceledger_engine_loads_verified_total", "counter", "Engine loads that verified.",
                      [({}, loads.get(EngineLoad.VERIFIED, 0))])
    statuses = dict(Build.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    builds = Metric("traceledger_builds", "gauge", "Engine builds by status.",
                    [({"status": s}, statuses.get(s, 0)) for s, _ in Build.STATUSES])
    return [refused, verified, builds]


@register
def compliance_metrics() -> list[Metric]:
    from compliance.investigation.ledger_checks import last_verification
    from compliance.ledger import ledger
    from compliance.models import Alert

    open_alerts = dict(Alert.objects.filter(acknowledged_at=None).values_list("severity")
                       .annotate(n=Count("id")).values_list("severity", "n"))
    metrics = [
        Metric("traceledger_alerts_open", "gauge", "Alerts not yet acknowledged, by severity.",
               [({"severity": s}, open_alerts.get(s, 0)) for s, _ in Alert.SEVERITIES]),
        Metric("traceledger_ledger_entries", "gauge", "Entries in the ledger.", [({}, ledger.size())]),
    ]
    checkpoint = latest_checkpoint()
    if checkpoint is not None and checkpoint["age_s"] is not None:
        metrics.append(Metric("traceledger_checkpoint_age_seconds", "gauge",
                              "Seconds since the latest signed checkpoint.", [({}, checkpoint["age_s"])]))
    verification = last_verification()
    if verification is not None:
        metrics.append(Metric("traceledger_ledger_verification_ok", "gauge",
                              "1 when the last ledger verification passed.", [({}, bool(verification["ok"]))]))
        metrics.append(Metric("traceledger_ledger_verification_timestamp_seconds", "gauge",
                              "When the ledger was last verified.", [({}, verification["time"].timestamp())]))
    return metrics


@register
def spool_metrics() -> list[Metric]:
    """Provenance records waiting on local disk for the database: how many, and how
    long the oldest has waited (the ingest lag)."""
    spool = Path(settings.TRACELEDGER_SPOOL_DIR)
    depth, oldest = 0, None
    if spool.is_dir():
        for root, _, files in os.walk(spool):
            for name in files:
                if name.startswith("."):
                    continue  # files being written
                depth += 1
                try:
                    mtime = os.stat(os.path.join(root, name)).st_mtime
                except FileNotFoundError:
                    continue  # ingested meanwhile
                oldest = mtime if oldest is None else min(oldest, mtime)
    lag = max(0.0, time.time() - oldest) if oldest is not None else 0.0
    return [Metric("traceledger_spool_depth", "gauge", "Provenance spool files not yet ingested.", [({}, depth)]),
            Metric("traceledger_ingest_lag_seconds", "gauge", "Age of the oldest record waiting in the spool.",
                   [({}, lag)])]
