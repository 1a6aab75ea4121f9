"""Charts drawn on the server as SVG: no JavaScript, no chart library in the browser.

Every mark is painted with `currentColor`, so a chart takes the text colour of the page
around it and reads in a light or a dark scheme alike. A chart names itself (`<title>`)
and says what it shows (`<desc>`); the page puts the same numbers in a table beside it.
Every piece of text is escaped here: the result is marked safe for the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

MAX_POINTS = 60  # of a trend line
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_label(day: date) -> str:
    """Give a day as "4 Dec 2026" (quicker than strftime, for a year of rows)."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _number(value: float) -> str:
    """Give a coordinate with at most one decimal (short, and exact enough on screen)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_ceiling(value: int) -> int:
    """Give a round number at or above `value` for the top of an axis (1, 2, 5 x 10^n)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(
    points: Sequence[tuple[date, int]],
    *,
    title: str,
    summary: str,
    ident: str,
    width: int = 720,
    height: int = 220,
) -> Markup:
    """Give an SVG bar chart of (day, count) points, one bar a day, with its axes."""
    left, right, top, bottom = 44, 8, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = nice_ceiling(max((count for _, count in points), default=0))
    slot = plot_w / max(len(points), 1)
    bar = max(slot * 0.8, 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"'
        f' viewBox="0 0 {width} {height}" width="100%"'
        f' aria-labelledby="{escape(ident)}-title {escape(ident)}-desc">',
        f'<title id="{escape(ident)}-title">{escape(title)}</title>',
        f'<desc id="{escape(ident)}-desc">{escape(summary)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h - plot_h * fraction
        label = _number(ceiling * fraction)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_number(y)}" y2="{_number(y)}"'
            f' stroke="currentColor" stroke-opacity="{0.6 if fraction == 0 else 0.2}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{_number(y + 4)}" text-anchor="end" font-size="12"'
            f' fill="currentColor">{escape(label)}</text>'
        )
    for number, (day, count) in enumerate(points):
        if count <= 0:
            continue
        h = plot_h * count / ceiling
        x = left + slot * number + (slot - bar) / 2
        parts.append(
            f'<rect x="{_number(x)}" y="{_number(top + plot_h - h)}" width="{_number(bar)}"'
            f' height="{_number(h)}" fill="currentColor" fill-opacity="0.75">'
            f"<title>{day.isoformat()}: {int(count)}</title></rect>"  # digits only
        )
    if points:
        first, last = points[0][0], points[-1][0]
        baseline = height - bottom + 18
        parts.append(
            f'<text x="{left}" y="{baseline}" font-size="12" fill="currentColor">'
            f"{escape(f'{first:%-d %b %Y}')}</text>"
        )
        parts.append(
            f'<text x="{width - right}" y="{baseline}" font-size="12" text-anchor="end"'
            f' fill="currentColor">{escape(f"{last:%-d %b %Y}")}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # nosec B704: every text above is escaped


def sparkline(values: Sequence[int], *, label: str, width: int = 120, height: int = 28) -> Markup:
    """Give a small SVG trend line of counts, named by `label`.

    More counts than the line has room for are summed in equal runs (a year: by week).
    """
    run = max(1, -(-len(values) // MAX_POINTS))
    line = [sum(values[n : n + run]) for n in range(0, len(values), run)] or [0]
    ceiling = max(max(line), 1)
    step = (width - 2) / max(len(line) - 1, 1)
    points = " ".join(
        f"{_number(1 + step * n)},{_number(height - 2 - (height - 4) * v / ceiling)}"
        for n, v in enumerate(line)
    )
    summary = f"{label}: {sum(values)} in all, at most {max(values, default=0)} a day"
    return Markup(  # noqa: S704  # nosec B704: the label is escaped
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" role="img"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        f'<polyline points="{points}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        f"</svg>"
    )
