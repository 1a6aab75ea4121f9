"""What the browser tests share: sites, watched browser contexts, screenshots, page steps.

`start_site` starts gunicorn on a new blog. `Browsing` opens browser contexts on it, each
with a `ContextWatch` that records every request, console error and uncaught exception
of its pages; `Browsing.assert_clean()` fails if a request went to another host, anything
was logged as an error (a Content-Security-Policy violation is a console error) or the
server logged a traceback. `Screens` saves each step in light and dark colours at a
phone and a desktop size. The functions at the end are the steps the flows are made of,
done as a person would: by label, by button name, through the real forms.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pyproject.blog.db import make_engine
from pyproject.blog.migrate import upgrade
from tests.e2e.conftest import ServerHandle, start_gunicorn

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Request,
        Response,
        Route,
    )

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE_SOURCE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCHEMES = ("light", "dark")
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
DESKTOP = VIEWPORTS["desktop"]
AUTOSAVE_TIMEOUT_MS = 15_000

ADMIN_USERNAME = "ada"
ADMIN_EMAIL = "ada@example.com"
ADMIN_NAME = "Ada Lovelace"
ADMIN_PASSWORD = "correct horse battery staple"

# Schemes that never leave the machine.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome-error"})
# Chromium asks a site for /favicon.ico by itself; the site has none, so the console logs
# a 404. test_the_browser_finds_the_sites_icon keeps that in view; the flows leave it out.
FAVICON_PATH = "/favicon.ico"
_STATUS_LINE = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Give a PNG image of one colour, with a darker band, made here (no files needed)."""
    dark = tuple(c // 2 for c in rgb)
    rows = b"".join(
        b"\x00" + bytes(dark if height // 3 <= y < 2 * height // 3 else rgb) * width
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


IMAGE_PATH = "/images/flow-diagram.png"
IMAGE_PNG = png(320, 120, (26, 86, 184))


def answer_images(route: Route) -> None:
    """Answer the image a post refers to (the blog has no uploads; an operator serves them)."""
    route.fulfill(status=200, content_type="image/png", body=IMAGE_PNG)


# --- watching a context ------------------------------------------------------------------


@dataclass
class ContextWatch:
    """Every request, console error and page error of one browser context's pages."""

    name: str
    netloc: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    error_pages: set[tuple[str, int]] = field(default_factory=set)

    def attach(self, context: BrowserContext) -> None:
        context.on("page", self.watch_page)

    def watch_page(self, page: Page) -> None:
        page.on("request", self.on_request)
        page.on("response", self.on_response)
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def on_request(self, request: Request) -> None:
        url = request.url
        self.requests.append(f"{request.method} {url}")
        parts = urlsplit(url)
        if parts.scheme not in LOCAL_SCHEMES and parts.netloc != self.netloc:
            self.foreign.append(f"{request.method} {url} (from {request.frame.url})")

    def on_response(self, response: Response) -> None:
        request = response.request
        if request.resource_type == "document" and 400 <= response.status < 500:
            self.error_pages.add((response.url, response.status))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def is_page_status(self, text: str, url: str) -> bool:
        """Give whether a console error only reports the status of a page the test asked for.

        Chromium logs "Failed to load resource: ... status of 422" for a page answered
        with 4xx, which is how the site says "fix the form" (422), "the post changed"
        (409) or "not here" (404, 410): those pages are the flows' business, not errors.
        """
        found = _STATUS_LINE.match(text)
        return found is not None and (url, int(found.group(1))) in self.error_pages

    def favicon_errors(self) -> list[str]:
        return [
            f"{text} [at {url}]"
            for text, url in self.console_errors
            if urlsplit(url).path == FAVICON_PATH
        ]

    def problems(self) -> list[str]:
        """Give one line per request to another host, console error and page error."""
        console = [
            f"console error: {text} [at {url or 'unknown'}]"
            for text, url in self.console_errors
            if urlsplit(url).path != FAVICON_PATH and not self.is_page_status(text, url)
        ]
        return (
            [f"request to another host: {line}" for line in self.foreign]
            + console
            + [f"uncaught error: {line}" for line in self.page_errors]
        )


# --- sites and contexts --------------------------------------------------------------------


def start_site(
    data_dir: Path, settings: dict[str, Any] | None = None, *, port: int | None = None
) -> ServerHandle:
    """Start gunicorn on a fresh, migrated SQLite file in `data_dir` (with `settings`).

    `port`: the one to listen on, for settings that name it (a BASE_URL); else a free one.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data_dir / 'site.sqlite3'}"
    # Migrate before `main.py prepare`: on an empty file prepare runs the trash purge before
    # the migrations and fails with "no such table: posts" (reported as a bug).
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return start_gunicorn({"DATABASE_URL": url, **(settings or {})}, data_dir=data_dir, port=port)


@dataclass
class Blog:
    """A blog shared by a module's tests: its server and its admin's signed-in state."""

    server: ServerHandle
    author_state: dict[str, Any]


class Browsing:
    """Opens watched browser contexts on one site and checks them all at the end."""

    def __init__(
        self, browser: Browser, server: ServerHandle, author_state: dict[str, Any] | None = None
    ) -> None:
        self.browser = browser
        self.server = server
        self.author_state = author_state
        self.watches: list[ContextWatch] = []
        self.contexts: list[BrowserContext] = []
        self.log_start = len(server.stderr_text())

    def context(
        self,
        name: str,
        *,
        javascript: bool = True,
        signed_in: bool = False,
        images: bool = True,
        **options: Any,
    ) -> BrowserContext:
        """Give a new context whose pages are watched: a visitor's, or the admin's.

        With `images`, the context answers the image posts refer to (support.IMAGE_PATH);
        Chromium then does not ask for /favicon.ico.
        """
        options.setdefault("viewport", DESKTOP)
        if signed_in:
            assert self.author_state is not None, "this site has no admin yet"
            options["storage_state"] = self.author_state
        context = self.browser.new_context(
            base_url=self.server.url, java_script_enabled=javascript, **options
        )
        context.set_default_timeout(10_000)
        if images:
            context.route(f"**{IMAGE_PATH}", answer_images)
        watch = ContextWatch(name=name, netloc=f"127.0.0.1:{self.server.port}")
        watch.attach(context)
        self.watches.append(watch)
        self.contexts.append(context)
        return context

    def favicon_errors(self) -> list[str]:
        return [line for watch in self.watches for line in watch.favicon_errors()]

    def assert_clean(self) -> None:
        """Fail if any page asked another host, logged an error, or the server a traceback."""
        problems = [f"[{w.name}] {line}" for w in self.watches for line in w.problems()]
        log = self.server.stderr_text()[self.log_start :]
        if "Traceback" in log:
            problems.append(f"the server logged a traceback:\n{log}")
        assert not problems, "\n".join(problems)
        assert sum(len(w.requests) for w in self.watches) > 0, "no request was recorded"

    def close(self) -> None:
        for context in self.contexts:
            context.close()


# --- screenshots ---------------------------------------------------------------------------

# A smooth scroll still running (the preview scrolls itself into view) leaves parts of a
# full-page screenshot blank: an instant scroll stops it. (No await in here: in a page
# without script, a promise waiting on the page's timers or frames never settles.)
_SETTLE = '() => window.scrollTo({top: 0, left: 0, behavior: "instant"})'


@dataclass
class Screens:
    """Saves screenshots of one flow under test-artifacts/screenshots/<flow>/."""

    folder: Path
    saved: list[Path] = field(default_factory=list)

    def shoot(self, page: Page, step: str) -> None:
        """Save `step` in light and dark, phone (390x844) and desktop (1280x900), full page."""
        size = page.viewport_size or DESKTOP
        self.folder.mkdir(parents=True, exist_ok=True)
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            for device, viewport in VIEWPORTS.items():
                page.set_viewport_size(viewport)
                page.evaluate(_SETTLE)
                page.wait_for_timeout(50)
                path = self.folder / f"{len(self.saved) // 4 + 1:02d}-{step}-{scheme}-{device}.png"
                page.screenshot(path=path, full_page=True, animations="disabled")
                self.saved.append(path)
        page.set_viewport_size(size)
        page.emulate_media(color_scheme="light")


# --- steps ---------------------------------------------------------------------------------

POST_TAGS = "Python, Web Dev"
FILLER = (
    "Every page is rendered on the server, so it works before any script arrives. "
    "The stylesheet is the same for phones and wide screens, light and dark. " * 4
).strip()
POST_BODY = f"""Start with the [tag list](/tags) or jump to [the install step](#install).
Rendering happens once, at save time.[^why]

## Install

{FILLER}

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```

## Configure

| Setting | Default | Meaning |
| --- | --- | --- |
| WORKERS | 0 | two per core, plus one |
| TIMEZONE | UTC | for entering and showing times |

![A blue diagram of the request flow][diagram]

{FILLER}

## Run

{FILLER}

Read more on [the Python Package Index](https://pypi.org/).

{FILLER}

[diagram]: {IMAGE_PATH} "The request flow"
[^why]: Reading a post then costs one query and no Markdown.
"""


def days_ago_local(days: int) -> str:
    """Give a datetime-local value `days` days ago in UTC (the test server's TIMEZONE)."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def labelled(text: str) -> re.Pattern[str]:
    """Give a pattern for a field's label: exactly `text`, with the required mark or not."""
    return re.compile(rf"^{re.escape(text)}( \*)?$")


def create_admin(page: Page, base_url: str) -> None:
    """Go from the home page of a new site to its setup form and make the admin account."""
    page.goto(base_url + "/")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(re.compile(r"/setup$"))
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Display name").fill(ADMIN_NAME)
    page.get_by_label(labelled("Password")).fill(ADMIN_PASSWORD)
    page.get_by_label(labelled("Password again")).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/posts/new$"))


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def fill_post(
    page: Page,
    *,
    title: str,
    body: str = POST_BODY,
    tags: str = POST_TAGS,
    slug: str | None = None,
    status: str | None = None,
    publish_at: str | None = None,
) -> None:
    """Fill the editor's fields (the page is on /posts/new or an edit page)."""
    page.get_by_label("Title").fill(title)
    page.locator("#f-body").fill(body)
    page.get_by_label("Tags").fill(tags)
    if slug is not None:
        page.get_by_label("Slug").fill(slug)
    if status is not None:
        page.get_by_role("radio", name=status.capitalize()).check()
    if publish_at is not None:
        page.get_by_label("Publish at").fill(publish_at)


def save(page: Page) -> None:
    page.get_by_role("button", name="Save", exact=True).click()


def publish_post(
    page: Page,
    *,
    title: str,
    body: str = POST_BODY,
    tags: str = POST_TAGS,
    days_ago: int | None = None,
) -> str:
    """Write and publish a post (dated `days_ago` days back, if given); give its path."""
    page.goto("/posts/new")
    publish_at = days_ago_local(days_ago) if days_ago is not None else None
    fill_post(page, title=title, body=body, tags=tags, status="published", publish_at=publish_at)
    save(page)
    page.wait_for_url(re.compile(r"/posts/[a-z0-9-]+$"))
    return urlsplit(page.url).path
