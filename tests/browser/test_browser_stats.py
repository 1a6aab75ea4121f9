"""Statistics in Chromium (#22): the server-drawn SVG charts parse as SVG, are painted in
the text's colour of each scheme, and /stats and a post's statistics have no WCAG 2.1 AA
violation (axe-core) in light or in dark.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import SCHEMES, Blog, Browsing, publish_post
from tests.browser.test_browser_accessibility import describe, run_axe

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

TITLE = "Charted reading"
PAGES = {"stats": "/stats?days=30", "stats-year": "/stats?days=365", "post": None}
# Parses the outer HTML of every chart as an SVG document: the names of those that fail.
UNPARSABLE = (
    "svgs => svgs.filter(svg => new DOMParser()"
    ".parseFromString(svg.outerHTML, 'image/svg+xml')"
    ".getElementsByTagName('parsererror').length > 0).map(svg => svg.outerHTML.slice(0, 120))"
)


def get(base: str, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(base + path, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
        return answer.status


@pytest.fixture(scope="module")
def charted(blog: Blog, browser: Browser) -> str:
    """Give the path of a post that readers read, found, searched for and subscribed to."""
    browsing = Browsing(browser, blog.server, blog.author_state)
    try:
        page = browsing.context("author", signed_in=True).new_page()
        path = publish_post(page, title=TITLE)
        browsing.assert_clean()
    finally:
        browsing.close()
    base = blog.server.url
    for number in range(12):  # twelve readers' browsers (told apart by their User-Agent)
        agent = f"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/{number}.0"
        referrer = ("https://news.example.org/", "https://www.google.com/", "")[number % 3]
        assert get(base, path, {"User-Agent": agent, "Referer": referrer}) == 200
        assert get(base, "/search?q=charted", {"User-Agent": agent}) == 200
        assert get(base, "/search?q=nothing+at+all", {"User-Agent": agent}) == 200
    feedly = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers; )"
    assert get(base, "/feed.atom", {"User-Agent": feedly}) == 200
    return path


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", list(PAGES))
def test_stats_pages_draw_valid_svg_and_pass_axe(
    browse: Browsing, charted: str, axe_source: str, name: str, scheme: str
) -> None:
    path = PAGES[name] or f"{charted}/stats"
    page = browse.context(name, signed_in=True, color_scheme=scheme).new_page()
    response = page.goto(path)
    assert response is not None and response.status == 200
    charts = page.locator("svg.chart, svg.sparkline")
    assert charts.count() >= (2 if name != "post" else 1)
    assert charts.evaluate_all(UNPARSABLE) == []
    chart = page.locator("figure svg.chart")
    assert chart.locator("rect").count() >= 1, "the chart drew no bar"
    assert chart.get_attribute("role") == "img"
    assert chart.locator("title").first.text_content()
    # Bars are painted in the figure's colour, which differs from the page's background.
    bar, background = page.evaluate(
        "() => [getComputedStyle(document.querySelector('figure svg.chart rect')).fill,"
        " getComputedStyle(document.body).backgroundColor]"
    )
    assert bar != background and bar.startswith("rgb"), (bar, background)
    result = run_axe(page, axe_source)
    checked = {rule["id"] for rule in result["passes"] + result["incomplete"]}
    assert {"color-contrast", "svg-img-alt"} <= checked, "axe did not look at the charts"
    assert not result["violations"], (
        f"axe-core on {path} ({scheme}):\n{describe(result['violations'])}"
    )
    browse.assert_clean()
