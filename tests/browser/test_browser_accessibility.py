"""Accessibility: axe-core finds no WCAG 2.1 A or AA violation, in light and in dark.

axe-core (node_modules/axe-core, pinned in package.json) is evaluated in each page
through the DevTools protocol, so the page's Content-Security-Policy stays as it is, and
runs with only the WCAG 2.0/2.1 A and AA rules. The pages are those of a blog with a
published post (code, table, footnote, image, two revisions), a post whose table and code
blocks are wider than the column, a draft and a post in the trash: what readers see, the
sign-in page, the editor and the author's list of posts, and a 404. On a phone, no page may
scroll sideways (reflow, WCAG 1.4.10); a wide table or code block scrolls inside itself, as
a region the keyboard reaches and scrolls, outlined when it has focus.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import (
    POST_BODY,
    SCHEMES,
    VIEWPORTS,
    Blog,
    Browsing,
    fill_post,
    publish_post,
    save,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
POST_TITLE = "Accessible Python"
# name: (path, signed in, expected status)
PAGES: dict[str, tuple[str, bool, int]] = {
    "home": ("/", False, 200),
    "post": ("/posts/accessible-python", False, 200),
    "wide-post": ("/posts/wide-tables-and-code", False, 200),
    "tag": ("/tags/python", False, 200),
    "search": ("/search?q=python", False, 200),
    "login": ("/login", False, 200),
    "editor": ("/posts/new", True, 200),
    "drafts": ("/drafts", True, 200),
    "not-found": ("/posts/no-such-post", False, 404),
}
# Known violations, as (page, scheme): xfail(strict) with what is wrong, until fixed.
KNOWN: dict[tuple[str, str], str] = {}
# Pages of the author's tools, checked for reflow too.
TOOL_PAGES: dict[str, str] = {
    "trash": "/trash",
    "revisions": "/posts/accessible-python/revisions",
    "users": "/admin/users",
}
WIDE_TABLE = (
    "BUG: on a 390 px phone the page scrolls sideways: static/css/site.css gives "
    "`.post-table, .user-table {{ display: table; width: 100% }}`, which undoes the "
    "`table {{ display: block; overflow-x: auto }}` that lets a wide table scroll inside "
    "itself, so the {table} widens the whole page (document {width} px wide)"
)
SIDEWAYS: dict[str, str] = {}

WIDE_TITLE = "Wide tables and code"
WIDE_COLUMNS = (
    "Setting", "Environment variable", "Default", "Allowed values", "Read at", "Changed by",
    "Restart needed", "Documented in", "Since version", "Meaning",
)  # fmt: skip
WIDE_ROW = (
    "Workers", "PYPROJECT_GUNICORN_WORKERS", "0", "0_TO_SIXTY_FOUR", "start-up",
    "operator", "yes", "README_DEPLOYMENT", "0.1.0", "processes serving requests",
)  # fmt: skip
# Wider than the column on any screen: ten columns of words that cannot be broken, a line of
# code 150 characters long (highlighted, and with line numbers), and a plain <pre> typed as
# raw HTML, which is how code looks when it is too long to highlight.
WIDE_BODY = f"""A table and code wider than the column scroll inside themselves.

| {" | ".join(WIDE_COLUMNS)} |
| {" | ".join("---" for _ in WIDE_COLUMNS)} |
| {" | ".join(WIDE_ROW)} |

```python
SETTINGS = dict(zip({tuple(name.lower() for name in WIDE_COLUMNS)}, {WIDE_ROW}))
```

```{{.python linenums="1"}}
def describe():
    return ", ".join(f"{{name}}={{value}}" for name, value in SETTINGS.items())  # {WIDE_ROW}
```

<pre>{"plain-text-that-goes-on-" * 8}end</pre>

The end.
"""
# The regions WIDE_BODY makes, in order, by the name markup.py gives each.
WIDE_REGIONS = (
    "Table: Setting, Environment variable, Default, Allowed…",
    "Code: python",
    "Code: python",
    "Code",
)
# Gives the names of the regions that scroll sideways.
SCROLLING = (
    "regions => regions.filter(r => r.scrollWidth > r.clientWidth)"
    ".map(r => r.getAttribute('aria-label'))"
)
# static/css/site.css: --focus, the outline of whatever has keyboard focus.
FOCUS_COLOURS = {"light": "rgb(217, 119, 6)", "dark": "rgb(251, 191, 36)"}
TABS_TO_THE_END = 40


def cases() -> list[Any]:
    params = []
    for name in PAGES:
        for scheme in SCHEMES:
            marks = []
            if (name, scheme) in KNOWN:
                marks.append(pytest.mark.xfail(reason=KNOWN[name, scheme], strict=True))
            params.append(pytest.param(name, scheme, marks=marks, id=f"{name}-{scheme}"))
    return params


@pytest.fixture(scope="module")
def seeded(blog: Blog, browser: Browser) -> Blog:
    """Give the module's blog with a published post and a draft, written in the editor."""
    browsing = Browsing(browser, blog.server, blog.author_state)
    try:
        page = browsing.context("author", signed_in=True).new_page()
        path = publish_post(page, title=POST_TITLE)
        assert path == PAGES["post"][0]
        assert publish_post(page, title=WIDE_TITLE, body=WIDE_BODY) == PAGES["wide-post"][0]
        page.goto(path + "/edit")
        page.locator("#f-body").fill(POST_BODY.replace("happens once", "happens exactly once"))
        save(page)
        page.goto("/posts/new")
        fill_post(page, title="An unfinished draft", body="Not ready yet.")
        save(page)
        publish_post(page, title="A post in the trash")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(".author-tools summary").click()  # delete sits behind a menu (#23)
        page.get_by_role("button", name="Delete").click()
        page.wait_for_url("**/trash")
        browsing.assert_clean()
    finally:
        browsing.close()
    return blog


def run_axe(page: Page, source: str) -> dict[str, Any]:
    """Give axe-core's results for the WCAG 2.1 A/AA rules on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    return page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{violation['helpUrl']}]"
        )
        for node in violation["nodes"][:5]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    {json.dumps(node['target'])} {node['html'][:160]}\n      {summary}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    ... and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


@pytest.mark.parametrize(("name", "scheme"), cases())
def test_the_page_has_no_wcag_21_aa_violations(
    browse: Browsing, seeded: Blog, axe_source: str, name: str, scheme: str
) -> None:
    path, signed_in, status = PAGES[name]
    page = browse.context(name, signed_in=signed_in, color_scheme=scheme).new_page()
    response = page.goto(path)
    assert response is not None and response.status == status
    if name == "search":
        assert page.locator(".search-hit").count() >= 1, "the search found nothing to check"
    if name == "post":
        page.locator(".post-body img").evaluate("img => img.decode()")
    if name == "wide-post":
        scrolling = page.locator(".post-body [role=region]").evaluate_all(SCROLLING)
        assert scrolling == list(WIDE_REGIONS), "the wide post has no region that scrolls"
    result = run_axe(page, axe_source)
    checked = {rule["id"] for rule in result["passes"] + result["incomplete"]}
    assert {"color-contrast", "document-title", "html-has-lang"} <= checked, "axe did not run"
    if name == "wide-post":
        assert "scrollable-region-focusable" in checked, "axe found no scrolling region"
    violations = result["violations"]
    assert not violations, f"axe-core on {path} ({scheme}):\n{describe(violations)}"
    browse.assert_clean()


def reflow_cases() -> list[Any]:
    params = []
    for name, path in [*((n, p) for n, (p, _, _) in PAGES.items()), *TOOL_PAGES.items()]:
        marks = [pytest.mark.xfail(reason=SIDEWAYS[name], strict=True)] if name in SIDEWAYS else []
        params.append(pytest.param(path, marks=marks, id=name))
    return params


@pytest.mark.parametrize("path", reflow_cases())
def test_the_page_does_not_scroll_sideways_on_a_phone(
    browse: Browsing, seeded: Blog, path: str
) -> None:
    page = browse.context("phone", signed_in=True, viewport=VIEWPORTS["phone"]).new_page()
    page.goto(path)
    width, visible = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width <= visible, f"{path} is {width} px wide on a {visible} px screen"
    browse.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wide_tables_and_code_scroll_from_the_keyboard(
    browse: Browsing, seeded: Blog, scheme: str
) -> None:
    """Tab reaches each region that scrolls, outlines it, and the arrow keys scroll it."""
    page = browse.context("keyboard", color_scheme=scheme).new_page()
    page.goto(PAGES["wide-post"][0])
    reached = []
    for _ in range(TABS_TO_THE_END):
        if len(reached) == len(WIDE_REGIONS):
            break
        page.keyboard.press("Tab")
        focused = page.evaluate_handle("document.activeElement").as_element()
        if focused is None or focused.get_attribute("role") != "region":
            continue
        label = focused.get_attribute("aria-label")
        reached.append(label)
        outline = focused.evaluate(
            "e => { const s = getComputedStyle(e);"
            " return [s.outlineStyle, s.outlineWidth, s.outlineColor]; }"
        )
        assert outline == ["solid", "3px", FOCUS_COLOURS[scheme]], f"{label}: outline {outline}"
        assert focused.evaluate("e => e.scrollLeft") == 0
        page.keyboard.press("ArrowRight")
        page.wait_for_function("e => e.scrollLeft > 0", arg=focused, timeout=2_000)
    assert reached == list(WIDE_REGIONS)
    browse.assert_clean()
