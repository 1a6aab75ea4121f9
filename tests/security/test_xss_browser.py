"""XSS in a real browser: pages full of corpus payloads, served by gunicorn, run no script.

Chromium loads about thirty posts (600 payloads in bodies, titles, summaries and tags, by an
author with a hostile name), the lists, search, sign-in and the editor, twice: once with the
site's Content-Security-Policy, where any script-src violation means markup got through,
and once with CSP bypassed, so that the escaping is shown to hold without CSP behind it.
Any alert, confirm or prompt fails the test, whether it opens a dialog or is caught by the
init script that records calls (in case dialogs are suppressed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import pytest
from blog.conftest import create_author, login, slug_of, write_post

from pyproject.blog.posts import tag_slug

from .checks import CORPUS_FILE, CORPUS_MISSING, chunked, load_corpus, pack
from .live import Live

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
POSTS = 30
PER_POST = 20
PASSWORD = "xavier passphrase 1"
# Records every call of the dialog functions, and every CSP violation that is not a
# resource load (those come from images in posts and mean nothing).
RECORDER = """
(() => {
  const calls = [];
  Object.defineProperty(window, "__xss", { value: calls });
  for (const name of ["alert", "confirm", "prompt", "print"]) {
    const record = function (...args) {
      calls.push(name + "(" + args.map(String).join(", ").slice(0, 80) + ")");
      return name === "confirm" ? false : null;
    };
    Object.defineProperty(window, name, { value: record, writable: false, configurable: false });
  }
  const quiet = /^(img|media|font|connect|manifest)-src/;
  document.addEventListener("securitypolicyviolation", (event) => {
    if (!quiet.test(event.violatedDirective)) {
      calls.push("CSP " + event.violatedDirective + ": " + (event.sample || event.blockedURI));
    }
  });
})();
"""


@dataclass
class HostileSite:
    live: Live
    slugs: list[str]
    queries: list[str]
    session: str


@pytest.fixture(scope="module")
def hostile(live: Live) -> HostileSite:
    """Thirty payload posts on the live blog, by an author whose name is a payload too."""
    payloads = load_corpus()
    sample = payloads[:: max(1, len(payloads) // (POSTS * PER_POST))][: POSTS * PER_POST]
    app, admin = live.world.app, live.world.clients["admin"]
    name = pack(payloads[3:], 80)
    assert create_author(admin, "xavier", password=PASSWORD, display_name=name).status_code == 303
    xavier = app.test_client()
    assert login(xavier, "xavier", PASSWORD).status_code == 303
    slugs = []
    for chunk in chunked(sample, PER_POST):
        tags = [" ".join(p.replace(",", " ").split())[:40] for p in chunk[-3:]]
        tags = [t for t in tags if tag_slug(t)]
        response = write_post(
            xavier,
            title=pack(chunk, 200).strip(),
            summary=pack(chunk[5:], 300).strip(),
            tags=", ".join([*tags, "hostile"]),
            body="\n\n".join(chunk),
        )
        slugs.append(slug_of(response))
    xavier.get("/")
    queries = [pack(chunk, 300) for chunk in chunked(sample, 100)]
    return HostileSite(live, slugs, queries, xavier.cookies["session"])


def visit_all(browser: Any, site: HostileSite, *, bypass_csp: bool) -> list[str]:
    """Load every page in a fresh context; give what ran (or tried to)."""
    base = site.live.base_url
    context = browser.new_context(bypass_csp=bypass_csp, java_script_enabled=True)
    problems: list[str] = []
    try:
        context.add_init_script(RECORDER)
        context.route(
            re.compile(r"^(?!" + re.escape(base) + r"/)"),
            lambda route: route.abort(),
        )
        page = context.new_page()

        def on_dialog(dialog: Any) -> None:
            problems.append(f"{page.url[:100]}: a {dialog.type} dialog: {dialog.message[:80]}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: problems.append(f"uncaught: {str(error)[:120]}"))
        anonymous = [
            "/",
            "/posts",
            "/tags",
            "/tags/hostile",
            "/authors/xavier",
            *(f"/posts/{slug}" for slug in site.slugs),
            *("/search?" + urlencode({"q": q}) for q in site.queries),
            *("/login?" + urlencode({"next": "/" + q}) for q in site.queries[:2]),
            "/" + quote(site.queries[0], safe=""),
        ]
        for path in anonymous:
            problems.extend(load(page, base + path))
        context.add_cookies([{"name": "session", "value": site.session, "url": base}])
        signed_in = [
            "/drafts",
            "/account",
            *(f"/posts/{slug}/edit" for slug in site.slugs[::3]),
            *(f"/posts/{slug}/revisions/1" for slug in site.slugs[::5]),
        ]
        for path in signed_in:
            problems.extend(load(page, base + path))
    finally:
        context.close()
    return problems


def load(page: Any, url: str) -> list[str]:
    response = page.goto(url, wait_until="load", timeout=15_000)
    page.wait_for_timeout(20)  # handlers queued by the load (onerror, onfocus) run now
    problems = [f"{url[:100]}: {call}" for call in page.evaluate("window.__xss")]
    if unquote(urlsplit(page.url).path) != unquote(urlsplit(url).path):
        problems.append(f"{url[:100]}: the page went to {page.url[:100]}")
    if response is None or response.status >= 500:
        problems.append(f"{url[:100]}: status {response.status if response else None}")
    return problems


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["CSP enforced", "CSP bypassed"])
def test_chromium_runs_no_payload(browser: Any, hostile: HostileSite, bypass_csp: bool) -> None:
    problems = visit_all(browser, hostile, bypass_csp=bypass_csp)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["CSP enforced", "CSP bypassed"])
def test_the_detectors_see_injected_script(browser: Any, live: Live, bypass_csp: bool) -> None:
    """The control: markup with a handler, injected by hand, is caught in either context."""
    context = browser.new_context(bypass_csp=bypass_csp)
    dialogs: list[str] = []
    try:
        context.add_init_script(RECORDER)
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
        page.goto(live.base_url + "/", wait_until="load")
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=alert(1)>')"
        )
        page.wait_for_timeout(300)
        calls = page.evaluate("window.__xss")
    finally:
        context.close()
    if bypass_csp:
        assert calls == ["alert(1)"]
    else:
        assert any(call.startswith("CSP script-src") for call in calls), calls
