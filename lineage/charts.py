"""Dashboard charts: pure functions from aggregated rows to plotly figures."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import plotly.graph_objects as go

INK, MUTED, GRID = "#1f2328", "#656d76", "#eaeef2"
OK, BAD, WARN, ACCENT = "#1a7f37", "#cf222e", "#9a6700", "#0b3d91"
SERIES = ["#0b3d91", "#1f77b4", "#6f42c1", "#0e7490", "#9a6700", "#b35900", "#57606a"]
STATUS_COLOURS = {"queued": "#8c959f", "building": "#0969da", "verifying": "#0969da", "signing": "#0969da",
                  "succeeded": OK, "failed": BAD, "cancelled": "#57606a"}
SEVERITY_COLOURS = {"info": "#0969da", "warning": WARN, "critical": BAD}


def _layout(fig: go.Figure, height: int = 260, **extra) -> go.Figure:
    fig.update_layout(**({
        "height": height, "margin": {"l": 44, "r": 12, "t": 8, "b": 36}, "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff", "font": {"family": "DejaVu Sans, Segoe UI, sans-serif", "size": 12, "color": INK},
        "legend": {"orientation": "h", "y": -0.22, "x": 0}, "hovermode": "x unified"} | extra))
    fig.update_xaxes(gridcolor=GRID, linecolor=GRID, zeroline=False)
    fig.update_yaxes(gridcolor=GRID, linecolor=GRID, zeroline=False, rangemode="tozero")
    return fig


def _days(end: datetime, days: int) -> list[datetime]:
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def predictions_per_hour_figure(rows: list[tuple[datetime, str, int]]) -> go.Figure:
    by_service: dict[str, dict[datetime, int]] = defaultdict(dict)
    for hour, service, n in rows:
        by_service[service][hour] = n
    fig = go.Figure()
    for i, (service, points) in enumerate(sorted(by_service.items())):
        hours = sorted(points)
        fig.add_trace(go.Bar(x=hours, y=[points[h] for h in hours], name=service,
                             marker_color=SERIES[i % len(SERIES)]))
    return _layout(fig, barmode="stack", yaxis_title="predictions / hour")


def refused_loads_figure(rows: list[tuple[datetime, str, int]], *, days: int = 30,
                         now: datetime | None = None) -> go.Figure:
    """Refused engine loads per day, stacked by verdict, with every day on the axis
    (a day with none is a zero, which is the point of the chart)."""
    axis = _days(now or datetime.now(timezone.utc), days)
    by_verdict: dict[str, dict] = defaultdict(dict)
    for day, verdict, n in rows:
        by_verdict[verdict][day.date()] = n
    fig = go.Figure()
    for i, (verdict, points) in enumerate(sorted(by_verdict.items())):
        fig.add_trace(go.Bar(x=[d.date().isoformat() for d in axis], y=[points.get(d.date(), 0) for d in axis],
                             name=verdict.replace("_", " "), marker_color=[BAD, WARN, "#b35900", "#6f42c1"][i % 4]))
    return _layout(fig, barmode="stack", yaxis_title="refused loads / day")


def builds_by_status_figure(counts: dict[str, int]) -> go.Figure:
    statuses = [s for s in STATUS_COLOURS if counts.get(s)]
    fig = go.Figure(go.Bar(x=statuses, y=[counts[s] for s in statuses],
                           marker_color=[STATUS_COLOURS[s] for s in statuses], text=[counts[s] for s in statuses],
                           textposition="outside", cliponaxis=False))
    return _layout(fig, hovermode="closest", yaxis_title="builds", showlegend=False)


def alerts_trend_figure(rows: list[tuple[datetime, str, int]], *, days: int = 30,
                        now: datetime | None = None) -> go.Figure:
    axis = _days(now or datetime.now(timezone.utc), days)
    by_severity: dict[str, dict] = defaultdict(dict)
    for day, severity, n in rows:
        by_severity[severity][day.date()] = n
    fig = go.Figure()
    for severity in ("critical", "warning", "info"):
        if severity in by_severity:
            points = by_severity[severity]
            fig.add_trace(go.Bar(x=[d.date().isoformat() for d in axis], y=[points.get(d.date(), 0) for d in axis],
                                 name=severity, marker_color=SEVERITY_COLOURS[severity]))
    return _layout(fig, barmode="stack", yaxis_title="alerts / day")


def deployment_timeline_figure(deployments: list, now: datetime) -> go.Figure:
    """One bar per deployment from creation to retirement (or now): which engine was
    live when, per service and environment."""
    fig = go.Figure()
    engines = sorted({d.engine_id for d in deployments})
    colour = {e: SERIES[i % len(SERIES)] for i, e in enumerate(engines)}
    shown = set()
    for d in sorted(deployments, key=lambda d: d.created_at):
        end = d.retired_at or now
        lane = f"{d.service} / {d.environment}"
        fig.add_trace(go.Bar(
            base=[d.created_at.isoformat()], x=[max((end - d.created_at).total_seconds() * 1000, 60_000)], y=[lane],
            orientation="h", name=f"engine {d.engine_id} ({d.engine.precision})", legendgroup=str(d.engine_id),
            showlegend=d.engine_id not in shown, marker_color=colour[d.engine_id],
            hovertext=(f"deployment {d.id}: engine {d.engine_id} {d.engine_sha256[:12]}…<br>"
                       f"{d.created_at:%Y-%m-%d %H:%M} → {'now (live)' if d.retired_at is None else f'{end:%Y-%m-%d %H:%M}'}"
                       f"<br>by {d.created_by}"),
            hoverinfo="text",
        ))
        shown.add(d.engine_id)
    lanes = len({(d.service, d.environment) for d in deployments}) or 1
    fig = _layout(fig, height=120 + 46 * lanes, hovermode="closest", barmode="overlay")
    fig.update_xaxes(type="date")
    fig.update_yaxes(rangemode="normal", autorange="reversed")
    return fig
