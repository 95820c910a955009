"""Lineage graphs as plotly figures: node-link drawings with nodes coloured by verdict
(a trace) or by state (the lineage explorer).  Pure functions of their inputs."""
from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from lineage.trace import Trace

OK, BAD, MUTED, EDGE = "#1a7f37", "#cf222e", "#8c959f", "#afb8c1"
COLOURS = {True: OK, False: BAD}
STATUS = {"succeeded": OK, "failed": BAD, "cancelled": MUTED, "queued": MUTED}


@dataclass
class Node:
    id: str
    label: str
    x: float
    y: float
    colour: str
    hover: str
    size: int = 30
    symbol: str = "circle"


def graph_spec(nodes: list[Node], edges: list[tuple[str, str]], *, height: int = 280,
               legend: dict[str, str] | None = None) -> dict:
    """The figure as a plain plotly specification (see compliance.web.charts for why)."""
    at = {n.id: n for n in nodes}
    drawn = [(at[a], at[b]) for a, b in edges if a in at and b in at]
    xs, ys = [], []
    for a, b in drawn:
        xs += [a.x, b.x, None]
        ys += [a.y, b.y, None]
    data = [
        {"type": "scatter", "x": xs, "y": ys, "mode": "lines", "line": {"color": EDGE, "width": 2},
         "hoverinfo": "skip", "showlegend": False},
        {"type": "scatter", "x": [n.x for n in nodes], "y": [n.y for n in nodes], "mode": "markers+text",
         "customdata": [n.id for n in nodes],
         "marker": {"size": [n.size for n in nodes], "color": [n.colour for n in nodes],
                    "symbol": [n.symbol for n in nodes], "line": {"width": 2, "color": "#ffffff"}},
         "text": [n.label for n in nodes], "textposition": "bottom center", "textfont": {"size": 11},
         "hovertext": [n.hover for n in nodes], "hoverinfo": "text", "showlegend": False},
    ]
    data += [{"type": "scatter", "x": [None], "y": [None], "mode": "markers", "marker": {"size": 12, "color": colour},
              "name": name, "showlegend": True} for name, colour in (legend or {}).items()]
    # an arrowhead part-way along each edge shows its direction
    arrows = [{"x": a.x + 0.72 * (b.x - a.x), "y": a.y + 0.72 * (b.y - a.y), "ax": a.x + 0.6 * (b.x - a.x),
               "ay": a.y + 0.6 * (b.y - a.y), "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
               "showarrow": True, "arrowhead": 2, "arrowsize": 1.2, "arrowwidth": 1.5, "arrowcolor": EDGE, "text": ""}
              for a, b in drawn]
    x_values = [n.x for n in nodes] or [0]
    y_values = [n.y for n in nodes] or [0]
    layout = {
        "height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff", "font": {"family": "DejaVu Sans, Segoe UI, sans-serif", "size": 12, "color": "#1f2328"},
        "xaxis": {"visible": False, "range": [min(x_values) - 0.6, max(x_values) + 0.6], "fixedrange": True},
        "yaxis": {"visible": False, "range": [min(y_values) - 0.55, max(y_values) + 0.45], "fixedrange": True},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"}, "hoverlabel": {"align": "left"},
        "dragmode": False, "annotations": arrows,
    }
    return {"data": data, "layout": layout}


# Where each link of a trace sits: the chain runs left to right from the ONNX model to
# the prediction; commit, submitter and training data hang off the node they feed.
TRACE_LAYOUT = {
    "training_data": (0, 0), "model": (1, 0), "commit": (1, -1), "submitter": (2, -1), "build": (2, 0),
    "engine": (3, 0), "deployment": (4, 0), "prediction": (5, 0),
}
TRACE_EDGES = [("training_data", "model"), ("model", "build"), ("commit", "build"), ("submitter", "build"),
               ("build", "engine"), ("engine", "deployment"), ("deployment", "prediction")]


def trace_spec(result: Trace) -> dict:
    nodes = []
    for link in result.links:
        x, y = TRACE_LAYOUT.get(link.kind, (len(nodes), 1))
        nodes.append(Node(link.kind, f"{link.kind.replace('_', ' ')}<br>{'✓' if link.ok else '✗'} {link.verdict}",
                          x, y, COLOURS[link.ok], f"<b>{link.label}</b><br>{link.verdict}: {link.detail}",
                          size=38 if link.kind == "prediction" else 30))
    return graph_spec(nodes, TRACE_EDGES, height=280, legend={"verified": OK, "failed": BAD})


def lineage_spec(model, builds: list, deployments: list, counts: dict[int, int]) -> dict:
    """model → builds → engines → deployments, nodes sized by predictions served."""
    nodes = [Node("model", f"{model.name}", 0, 0, "#0b3d91",
                  f"<b>ONNX {model.name}</b><br>sha256 {model.sha256[:16]}…<br>{model.repo} @ {model.commit[:12]}",
                  size=36, symbol="square")]
    edges = []
    spread = max(len(builds), 1)
    for i, build in enumerate(builds):
        y = (spread - 1) / 2 - i
        nodes.append(Node(f"b{build.id}", f"build {build.id}<br>{build.precision}", 1, y,
                          STATUS.get(build.status, "#0969da"),
                          f"<b>build {build.id}</b> {build.backend}/{build.precision}<br>{build.status}; by {build.submitter}"))
        edges.append(("model", f"b{build.id}"))
        engine = getattr(build, "engine", None) if build.status == "succeeded" else None
        if engine is not None:
            nodes.append(Node(f"e{engine.id}", f"engine {engine.id}<br>{engine.sha256[:8]}…", 2, y,
                              OK if engine.usable else BAD,
                              f"<b>engine {engine.id}</b><br>sha256 {engine.sha256[:16]}…<br>"
                              f"{'usable' if engine.usable else 'marked unusable'}", symbol="diamond"))
            edges.append((f"b{build.id}", f"e{engine.id}"))
    by_engine: dict[int, list] = {}
    for d in deployments:
        by_engine.setdefault(d.engine_id, []).append(d)
    engine_y = {n.id: n.y for n in nodes if n.id.startswith("e")}
    for engine_id, group in by_engine.items():
        base = engine_y.get(f"e{engine_id}", 0)
        for j, d in enumerate(group):
            served = counts.get(d.id, 0)
            nodes.append(Node(f"d{d.id}", f"{d.service}<br>{served:,} predictions", 3, base - 0.45 * j,
                              "#0969da" if d.retired_at is None else MUTED,
                              f"<b>{d.service}/{d.environment}</b> (deployment {d.id})<br>"
                              f"{'live' if d.retired_at is None else 'retired'}; {served:,} predictions",
                              size=min(24 + int(served ** 0.25), 48)))
            edges.append((f"e{engine_id}", f"d{d.id}"))
    return graph_spec(nodes, edges, height=max(260, 90 * spread),
                        legend={"succeeded / verified": OK, "failed": BAD, "live deployment": "#0969da",
                                "retired": MUTED})


def trace_figure(result: Trace) -> go.Figure:
    return go.Figure(trace_spec(result))


def lineage_figure(model, builds: list, deployments: list, counts: dict[int, int]) -> go.Figure:
    return go.Figure(lineage_spec(model, builds, deployments, counts))
