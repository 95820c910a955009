"""The lineage graph of a trace as a plotly figure: nodes coloured by verdict."""
from __future__ import annotations

import plotly.graph_objects as go

from .trace import Trace

COLOURS = {True: "#1a7f37", False: "#cf222e"}


def trace_figure(result: Trace) -> go.Figure:
    links = list(reversed(result.links))  # submitter on the left, prediction on the right
    xs = list(range(len(links)))
    ys = [0] * len(links)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#8c959f", "width": 2},
                             hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers+text",
        marker={"size": 34, "color": [COLOURS[l.ok] for l in links], "line": {"width": 2, "color": "#ffffff"},
                "symbol": "circle"},
        text=[l.kind.replace("_", " ") for l in links], textposition="bottom center",
        hovertext=[f"<b>{l.label}</b><br>{l.verdict}: {l.detail}" for l in links], hoverinfo="text",
        showlegend=False,
    ))
    fig.update_layout(
        height=220, margin={"l": 20, "r": 20, "t": 10, "b": 10}, plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
        xaxis={"visible": False, "range": [-0.6, len(links) - 0.4]}, yaxis={"visible": False, "range": [-1, 0.6]},
    )
    return fig
