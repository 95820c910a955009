"""Dashboard charts: pure functions from aggregated rows to plotly figure
specifications (plain dicts, served to plotly.js as JSON).  `figure(spec)` wraps one
in a plotly Figure, which validates every property: the tests do that for each chart,
while pages send the specification as is — validating on every request costs more
than the queries behind the chart."""
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
VERDICT_COLOURS = [BAD, WARN, "#b35900", "#6f42c1"]


def figure(spec: dict) -> go.Figure:
    return go.Figure(spec)


def _layout(height: int = 260, peak: int | None = None, **extra) -> dict:
    layout = {
        "height": height, "margin": {"l": 44, "r": 12, "t": 8, "b": 36}, "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff", "font": {"family": "DejaVu Sans, Segoe UI, sans-serif", "size": 12, "color": INK},
        "legend": {"orientation": "h", "y": -0.22, "x": 0}, "hovermode": "x unified",
        "xaxis": {"gridcolor": GRID, "linecolor": GRID, "zeroline": False},
        "yaxis": {"gridcolor": GRID, "linecolor": GRID, "zeroline": False, "rangemode": "tozero"},
    }
    if peak is not None and peak <= 8:  # counts are whole: no 0.2-steps on a small axis
        layout["yaxis"] |= {"dtick": 1, "range": [0, max(peak, 1) * 1.15]}
    for key, value in extra.items():
        if key in ("xaxis", "yaxis"):
            layout[key] = layout[key] | value
        else:
            layout[key] = value
    return layout


def _days(end: datetime, days: int) -> list[datetime]:
    last = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def _per_day(rows, days: int, now: datetime | None):
    axis = _days(now or datetime.now(timezone.utc), days)
    by_series: dict[str, dict] = defaultdict(dict)
    totals: dict = defaultdict(int)
    for day, series, n in rows:
        by_series[series][day.date()] = n
        totals[day.date()] += n
    return axis, by_series, max(totals.values(), default=0)


def predictions_per_hour_spec(rows: list[tuple[datetime, str, int]], *, hours: int = 24,
                              now: datetime | None = None) -> dict:
    """Stacked by service, with every hour of the window on the axis."""
    current = (now or datetime.now(timezone.utc)).replace(minute=0, second=0, microsecond=0)
    axis = [current - timedelta(hours=hours - 1 - i) for i in range(hours)]
    by_service: dict[str, dict[datetime, int]] = defaultdict(dict)
    totals: dict[datetime, int] = defaultdict(int)
    for hour, service, n in rows:
        by_service[service][hour] = n
        totals[hour] += n
    data = [{"type": "bar", "x": [h.isoformat() for h in axis], "y": [points.get(h, 0) for h in axis],
             "name": service, "marker": {"color": SERIES[i % len(SERIES)]}}
            for i, (service, points) in enumerate(sorted(by_service.items()))]
    return {"data": data, "layout": _layout(peak=max(totals.values(), default=0), barmode="stack",
                                            yaxis={"title": {"text": "predictions / hour"}},
                                            xaxis={"type": "date", "tickformat": "%H:%M\n%b %d"})}


def refused_loads_spec(rows: list[tuple[datetime, str, int]], *, days: int = 30, now: datetime | None = None) -> dict:
    """Refused engine loads per day, stacked by verdict, with every day on the axis
    (a day with none is a zero, which is the point of the chart)."""
    axis, by_verdict, peak = _per_day(rows, days, now)
    data = [{"type": "bar", "x": [d.date().isoformat() for d in axis], "y": [points.get(d.date(), 0) for d in axis],
             "name": verdict.replace("_", " "), "marker": {"color": VERDICT_COLOURS[i % len(VERDICT_COLOURS)]}}
            for i, (verdict, points) in enumerate(sorted(by_verdict.items()))]
    return {"data": data, "layout": _layout(peak=peak, barmode="stack", yaxis={"title": {"text": "refused loads / day"}})}


def builds_by_status_spec(counts: dict[str, int]) -> dict:
    statuses = [s for s in STATUS_COLOURS if counts.get(s)]
    data = [{"type": "bar", "x": statuses, "y": [counts[s] for s in statuses], "width": 0.4,
             "marker": {"color": [STATUS_COLOURS[s] for s in statuses]}, "text": [counts[s] for s in statuses],
             "textposition": "outside", "cliponaxis": False}] if statuses else []
    return {"data": data, "layout": _layout(peak=max(counts.values(), default=0), hovermode="closest",
                                            showlegend=False, yaxis={"title": {"text": "builds"}})}


def alerts_trend_spec(rows: list[tuple[datetime, str, int]], *, days: int = 30, now: datetime | None = None) -> dict:
    axis, by_severity, peak = _per_day(rows, days, now)
    data = [{"type": "bar", "x": [d.date().isoformat() for d in axis],
             "y": [by_severity[s].get(d.date(), 0) for d in axis], "name": s,
             "marker": {"color": SEVERITY_COLOURS[s]}} for s in ("critical", "warning", "info") if s in by_severity]
    return {"data": data, "layout": _layout(peak=peak, barmode="stack", yaxis={"title": {"text": "alerts / day"}})}


def deployment_timeline_spec(deployments: list, now: datetime) -> dict:
    """One bar per deployment from creation to retirement (or now): which engine was
    live when, per service and environment."""
    engines = sorted({d.engine_id for d in deployments})
    colour = {e: SERIES[i % len(SERIES)] for i, e in enumerate(engines)}
    data, shown = [], set()
    for d in sorted(deployments, key=lambda d: d.created_at):
        end = d.retired_at or now
        until = "now (live)" if d.retired_at is None else f"{end:%Y-%m-%d %H:%M}"
        data.append({
            "type": "bar", "orientation": "h", "base": [d.created_at.isoformat()],
            "x": [max((end - d.created_at).total_seconds() * 1000, 60_000)], "y": [f"{d.service} / {d.environment}"],
            "name": f"engine {d.engine_id} ({d.engine.precision})", "legendgroup": str(d.engine_id),
            "showlegend": d.engine_id not in shown, "marker": {"color": colour[d.engine_id]}, "hoverinfo": "text",
            "hovertext": (f"deployment {d.id}: engine {d.engine_id} {d.engine_sha256[:12]}…<br>"
                          f"{d.created_at:%Y-%m-%d %H:%M} → {until}<br>by {d.created_by}"),
        })
        shown.add(d.engine_id)
    lanes = len({(d.service, d.environment) for d in deployments}) or 1
    return {"data": data, "layout": _layout(height=130 + 46 * lanes, hovermode="closest", barmode="overlay",
                                            legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
                                            margin={"l": 44, "r": 12, "t": 30, "b": 36},
                                            xaxis={"type": "date"},
                                            yaxis={"rangemode": "normal", "autorange": "reversed", "automargin": True})}


def predictions_per_hour_figure(rows, **kwargs) -> go.Figure:
    return figure(predictions_per_hour_spec(rows, **kwargs))


def refused_loads_figure(rows, **kwargs) -> go.Figure:
    return figure(refused_loads_spec(rows, **kwargs))


def builds_by_status_figure(counts) -> go.Figure:
    return figure(builds_by_status_spec(counts))


def alerts_trend_figure(rows, **kwargs) -> go.Figure:
    return figure(alerts_trend_spec(rows, **kwargs))


def deployment_timeline_figure(deployments, now) -> go.Figure:
    return figure(deployment_timeline_spec(deployments, now))
