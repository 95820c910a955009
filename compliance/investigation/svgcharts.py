"""Small charts as inline SVG for the PDF report: drawn by hand, so the report needs no
browser or image renderer (WeasyPrint draws SVG itself).  Pure functions: data in,
SVG text out; every label is escaped."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

INK = "#1b2a41"
MUTED = "#6b7785"
GRID = "#dfe3e8"
BAR = "#2f5d8a"
HIGHLIGHT = "#b3261e"
OK = "#2e7d4f"
RETIRED = "#9aa5b1"
FONT = 'font-family="DejaVu Sans, sans-serif"'


def _nice_max(value: int) -> int:
    """The smallest top of the y axis >= value that splits into four round ticks."""
    step = 1
    while 4 * step < value:
        for factor in (2, 2.5, 2):
            step = int(step * factor)
            if 4 * step >= value:
                break
    return 4 * step


def bar_chart(bars: list[tuple[str, int]], *, width: int = 680, height: int = 190, highlight: int | None = None,
              y_label: str = "", label_every: int | None = None) -> str:
    """Vertical bars with a y grid; `highlight` is the index of a bar drawn in red."""
    left, right, top, bottom = 44, 10, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((v for _, v in bars), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end" font-size="8" fill="{MUTED}" {FONT}>'
                     f'{value:.0f}</text>')
    if y_label:
        parts.append(f'<text x="10" y="{top + plot_h / 2:.1f}" font-size="8" fill="{MUTED}" {FONT} text-anchor="middle" '
                     f'transform="rotate(-90 10 {top + plot_h / 2:.1f})">{escape(y_label)}</text>')
    n = max(len(bars), 1)
    slot = plot_w / n
    every = label_every or max(1, round(n / 12))
    for i, (label, value) in enumerate(bars):
        h = plot_h * value / top_value if top_value else 0
        x = left + i * slot + slot * 0.12
        color = HIGHLIGHT if i == highlight else BAR
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.76:.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{escape(label)}: {value}</title></rect>')
        if i % every == 0 or i == highlight:
            parts.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - bottom + 13}" text-anchor="middle" '
                         f'font-size="7.5" fill="{HIGHLIGHT if i == highlight else MUTED}" {FONT}>{escape(label)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{INK}" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class Span:
    label: str
    start: datetime
    end: datetime | None  # None: still live
    live: bool = True
    note: str = ""


def timeline_chart(spans: list[Span], start: datetime, end: datetime, *, marker: datetime | None = None,
                   marker_label: str = "", width: int = 680) -> str:
    """One horizontal bar per span between `start` and `end`, with an optional marker."""
    left, right, top, row_h = 190, 40, 22, 24
    height = top + row_h * max(len(spans), 1) + 30
    plot_w = width - left - right
    total = max((end - start).total_seconds(), 1.0)

    def x_of(when: datetime) -> float:
        seconds = min(max((when - start).total_seconds(), 0.0), total)
        return left + plot_w * seconds / total

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i in range(6):
        when = start + timedelta(seconds=total * i / 5)
        x = left + plot_w * i / 5
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="7.5" fill="{MUTED}" {FONT}>'
                     f'{when:%Y-%m-%d %H:%M}</text>')
    for row, span in enumerate(spans):
        y = top + row * row_h
        x1, x2 = x_of(span.start), x_of(span.end or end)
        color = OK if span.live else RETIRED
        parts.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end" font-size="8" fill="{INK}" {FONT}>'
                     f'{escape(span.label)}</text>')
        parts.append(f'<rect x="{x1:.1f}" y="{y + 3}" width="{max(x2 - x1, 2):.1f}" height="{row_h - 10}" rx="2" '
                     f'fill="{color}"><title>{escape(span.note or span.label)}</title></rect>')
    if marker is not None and start <= marker <= end:
        x = x_of(marker)
        parts.append(f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{height - 24}" stroke="{HIGHLIGHT}" '
                     f'stroke-width="1.5" stroke-dasharray="4 2"/>')
        anchor = "end" if x > left + plot_w * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(f'<text x="{x + dx:.1f}" y="{top - 10}" text-anchor="{anchor}" font-size="8" fill="{HIGHLIGHT}" {FONT}>'
                     f'{escape(marker_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hourly_buckets(times: list[datetime], start: datetime, end: datetime, *, max_bars: int = 48
                   ) -> tuple[list[tuple[str, int]], timedelta]:
    """Counts of `times` per bucket between start and end (hours, or days for long windows)."""
    span = end - start
    bucket = timedelta(hours=1) if span <= timedelta(hours=max_bars) else timedelta(days=1)
    if span > bucket * max_bars:
        bucket = span / max_bars
    n = max(1, int(-(-span // bucket)))
    counts = [0] * n
    for when in times:
        if start <= when < end:
            counts[min(int((when - start) / bucket), n - 1)] += 1
    fmt = "%H:%M" if bucket < timedelta(days=1) else "%m-%d"
    return [((start + bucket * i).strftime(fmt), counts[i]) for i in range(n)], bucket
