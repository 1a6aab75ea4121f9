"""The site-structure pages in Chromium (#17): axe-core's WCAG 2.1 A and AA rules pass on
/admin/settings, /admin/navigation, a page, a series page and a post in a series, in light
and dark, on a phone and on a desktop. The page, the series page and the post in it are
also saved as screenshots (test-artifacts/screenshots/, light and dark, phone and desktop),
as the flows save the home page and a post.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    SCHEMES,
    VIEWPORTS,
    Blog,
    Browsing,
    Screens,
    fill_post,
    publish_post,
    save,
)
from tests.browser.test_browser_accessibility import describe, run_axe

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

# A page with the parts an About page has: headings, paragraphs, a list, a link, a quote.
PAGE_BODY = """Who writes here, and why: notes on Python and the web, from someone who builds
small servers for a living and reads the standards for fun.

## What you will find

- Posts on the framework this blog runs on, and what it costs per request.
- Series that follow one piece of work from start to end.
- The occasional note, when something small is worth keeping.

> Make it work, make it right, make it fast, in that order.

## Elsewhere

Every post is in the [archive](/posts); new ones arrive by feed or by email.
"""
SERIES_DESCRIPTION = "Two short posts that follow one idea from its start to its end."


@pytest.fixture(scope="module")
def structured(blog: Blog, browser: Browser) -> dict[str, str]:
    """An About page in the header menu, and a series of two posts; give the paths."""
    browsing = Browsing(browser, blog.server, blog.author_state)
    try:
        admin = browsing.context("admin", signed_in=True).new_page()
        admin.goto("/pages/new")
        fill_post(admin, title="About this site", body=PAGE_BODY, tags="", status="published")
        save(admin)
        admin.wait_for_url("**/about-this-site")
        admin.goto("/admin/navigation")
        admin.locator("#f-label").fill("About")
        admin.locator("#f-target_kind").select_option("page")
        admin.locator("#f-page").select_option(label="About this site")
        admin.get_by_role("button", name="Add the link").click()
        admin.wait_for_url("**/admin/navigation")
        first = publish_post(admin, title="Series part one", body="The start.")
        publish_post(admin, title="Series part two", body="The end.")
        admin.goto("/series")
        admin.locator("#f-title").fill("A short series")
        admin.locator("#f-description").fill(SERIES_DESCRIPTION)
        admin.get_by_role("button", name="Start the series").click()
        admin.wait_for_url("**/series/a-short-series/edit")
        for title in ("Series part one", "Series part two"):
            admin.locator("#f-post").select_option(label=title)
            admin.get_by_role("button", name="Add it as the last part").click()
            admin.wait_for_url("**/series/a-short-series/edit")
        browsing.assert_clean()
    finally:
        browsing.close()
    return {
        "settings": "/admin/settings",
        "navigation": "/admin/navigation",
        "page": "/about-this-site",
        "series": "/series/a-short-series",
        "part": first,
    }


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", ["settings", "navigation", "page", "series", "part"])
def test_site_structure_pages_have_no_wcag_21_aa_violations(
    browse: Browsing, structured: dict[str, str], axe_source: str, name: str, scheme: str
) -> None:
    signed_in = name in ("settings", "navigation")
    page = browse.context(name, signed_in=signed_in, color_scheme=scheme).new_page()
    response = page.goto(structured[name])
    assert response is not None and response.status == 200
    # The layout changes at the phone's width (menus, columns), so axe looks at both.
    for device, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        violations = run_axe(page, axe_source)["violations"]
        where = f"{structured[name]} ({scheme}, {device})"
        assert not violations, f"axe-core on {where}:\n{describe(violations)}"
    browse.assert_clean()


def test_a_page_and_a_series_are_photographed_as_readers_see_them(
    browse: Browsing, structured: dict[str, str], screens: Screens
) -> None:
    page = browse.context("reader").new_page()
    for name in ("page", "series", "part"):
        response = page.goto(structured[name])
        assert response is not None and response.status == 200
        screens.shoot(page, name)
    assert page.get_by_text("Part 1 of 2").count() > 0
    assert len(screens.saved) == 12
    assert all(path.stat().st_size > 0 for path in screens.saved)
    browse.assert_clean()
