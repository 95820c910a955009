"""The report's hand-drawn SVG charts: well-formed, escaped, drawing what they are given."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from compliance.investigation import svgcharts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_it_draws_one_bar_per_bucket_with_the_highlight_in_red():
    svg = svgcharts.bar_chart([("00:00", 3), ("01:00", 0), ("<b>&", 11)], highlight=2, y_label="predictions")
    root = ET.fromstring(svg)  # well-formed XML, labels escaped
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 3
    assert [b.get("fill") for b in bars] == [svgcharts.BAR, svgcharts.BAR, svgcharts.HIGHLIGHT]
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == 0 and heights[2] > heights[0] > 0
    assert "<b>&" in "".join(root.itertext()) and "&lt;b&gt;&amp;" in svg
    assert [t.text for t in root.findall(f"{SVG}text")][:5] == ["0", "5", "10", "15", "20"]  # a round axis


def test_it_draws_a_timeline_with_a_marker():
    spans = [svgcharts.Span("#1 production", T0, T0 + timedelta(hours=5), live=False),
             svgcharts.Span("#2 production", T0 + timedelta(hours=5), None)]
    svg = svgcharts.timeline_chart(spans, T0, T0 + timedelta(hours=10), marker=T0 + timedelta(hours=7),
                                   marker_label="disputed decision")
    root = ET.fromstring(svg)
    bars = root.findall(f"{SVG}rect")
    assert [b.get("fill") for b in bars] == [svgcharts.RETIRED, svgcharts.OK]
    assert abs(float(bars[0].get("width")) - float(bars[1].get("width"))) < 1  # 5 hours each
    assert "disputed decision" in svg and svg.count('stroke-dasharray') == 1
    outside = svgcharts.timeline_chart(spans, T0, T0 + timedelta(hours=10), marker=T0 - timedelta(hours=1))
    assert "stroke-dasharray" not in outside


def test_it_buckets_times_by_hour_or_by_day():
    times = [T0 + timedelta(minutes=m) for m in (1, 59, 61, 179)]
    buckets, size = svgcharts.hourly_buckets(times + [T0 - timedelta(seconds=1)], T0, T0 + timedelta(hours=3))
    assert size == timedelta(hours=1) and [n for _, n in buckets] == [2, 1, 1]
    assert buckets[0][0] == "00:00"
    buckets, size = svgcharts.hourly_buckets(times, T0, T0 + timedelta(days=10))
    assert size == timedelta(days=1) and len(buckets) == 10 and buckets[0] == ("03-01", 4)
