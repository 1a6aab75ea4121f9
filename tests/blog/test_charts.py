"""Server-drawn SVG charts (#22): well-formed SVG, escaped text, round axes, currentColor."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

from pyproject.blog import charts

SVG = "{http://www.w3.org/2000/svg}"


def days(*counts: int) -> list[tuple[date, int]]:
    return [(date(2026, 1, 1) + timedelta(days=n), count) for n, count in enumerate(counts)]


def test_a_bar_chart_is_well_formed_svg_with_a_title_and_a_description() -> None:
    svg = ET.fromstring(
        str(charts.bar_chart(days(1, 0, 7), title="Views", summary="8 in all", ident="c"))
    )
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.find(f"{SVG}title").text == "Views" and svg.find(f"{SVG}desc").text == "8 in all"
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 2  # a day with no views draws no bar
    assert {bar.get("fill") for bar in bars} == {"currentColor"}
    assert [bar.find(f"{SVG}title").text for bar in bars] == ["2026-01-01: 1", "2026-01-03: 7"]
    assert float(bars[1].get("height")) > float(bars[0].get("height"))


def test_charts_escape_their_text() -> None:
    svg = str(charts.bar_chart(days(3), title="<b>&", summary='x"y', ident="c1"))
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "x&#34;y" in svg
    ET.fromstring(svg)
    line = str(charts.sparkline([0, 5, 2], label="</svg><script>"))
    assert "<script>" not in line and "7 in all" in line
    ET.fromstring(line)


def test_an_empty_chart_still_draws_its_axes() -> None:
    svg = ET.fromstring(str(charts.bar_chart([], title="None", summary="No days.", ident="e")))
    assert svg.findall(f"{SVG}rect") == [] and len(svg.findall(f"{SVG}line")) == 3


def test_the_axis_ends_at_a_round_number() -> None:
    assert [charts.nice_ceiling(n) for n in (0, 1, 3, 7, 11, 99, 101)] == [
        1,
        1,
        5,
        10,
        20,
        100,
        200,
    ]
    svg = str(charts.bar_chart(days(*range(0, 30, 3)), title="t", summary="s", ident="r"))
    assert ">50<" in svg and ">25<" in svg


def test_a_year_of_trend_points_is_summed_into_at_most_60() -> None:
    line = ET.fromstring(str(charts.sparkline([1] * 365, label="A year")))
    points = line.find(f"{SVG}polyline").get("points").split()
    assert len(points) <= charts.MAX_POINTS
    assert "365 in all" in line.get("aria-label")
    assert charts.day_label(date(2026, 12, 4)) == "4 Dec 2026"
