"""The load side of bench/run.py: the site and the bare Hello under gunicorn, driven by wrk.

Everything that starts a server or runs wrk comes from bench/framework.py: its `Server`
(one gunicorn command line for both apps, `--no-control-socket`, log level warning), its
`run_wrk` and the Lua hook that reports wrk's figures as JSON. What differs between the
configurations goes in the config file `framework.Server` passes to gunicorn with
`--config`, and applies to the site and to the ceiling alike:

- `raw_env`: DATABASE_URL, SECRET_KEY and LOG_LEVEL=WARNING for the site (and
  PAGE_CACHE_MB=0 for the second site of a blog, the one the long-tail runs load);
- `pythonpath`: the project, so `main:app` imports (framework.Server runs from bench/);
- `threads = 4` for gthread: gunicorn runs the gthread worker whenever the sync worker
  class (framework.Server's `--worker-class sync`) is given more than one thread.
"""

from __future__ import annotations

import http.client
import random
import re
import sqlite3
import statistics
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import framework
from framework import ROOT, Server, run_wrk

START_TIMEOUT = 60.0  # the site's first answer at 100,000 posts, on a busy machine
THREADS = 4
# Worker settings of each configuration, as gunicorn config-file lines.
CONFIGS: dict[str, list[str]] = {
    "sync": [],
    "gthread": [f"threads = {THREADS}"],
}
SEARCH_WORD = "server"  # a common word in generated posts: the most matches to rank
LONGTAIL_URLS = 2_000  # URLs a long-tail run picks from at random
CHECKED_URLS = 20  # of those, checked one by one before wrk runs


# --- servers ---------------------------------------------------------------------------


class SiteServer(Server):
    """framework.Server serving `main:app`, ready once `/` answers 200 (not "Hello")."""

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                status, _headers, _body = fetch(self.port, self.path)
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as error:
                last = str(error)
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name}: the site is not serving ({last}); its log:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """Give the pids of the master's worker processes (Linux)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return sorted(pids)


def resident_mb(pid: int) -> float | None:
    """Give a process's resident memory (VmRSS) in MB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class SiteSpec:
    """One blog to serve: its database, the reader pages to load and the long-tail runs.

    `pages` are loaded on a site with the page cache (as readers get it); `longtail` on a
    second site on the same database with PAGE_CACHE_MB=0, so every request renders.
    """

    db: str  # "sqlite" or "postgres"
    posts: int
    database_url: str
    pages: list[str]
    longtail: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return (self.db, self.posts)

    @property
    def subjects_from(self) -> Path | str:
        """Give where choose_subjects reads: the SQLite file, or the database URL."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.database_url


def write_config(
    path: Path, config: str, database_url: str, secret: str, extra: tuple[str, ...] = ()
) -> Path:
    env = [
        f"DATABASE_URL={database_url}",
        f"SECRET_KEY={secret}",
        "LOG_LEVEL=WARNING",
        "DEBUG=false",
        *extra,
    ]
    lines = [
        f"# bench/run.py, configuration {config!r}: the site and the ceiling both read this.",
        f"pythonpath = {str(ROOT)!r}",
        f"raw_env = {env!r}",
        *CONFIGS[config],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def serving(
    config: str, specs: list[SiteSpec], data_dir: Path, secret: str
) -> Iterator[tuple[dict[tuple[str, int], SiteServer], dict[tuple[str, int], SiteServer], Server]]:
    """Start the sites of each spec and the bare Hello with the same settings; stop all.

    Gives the sites with the page cache and those without (PAGE_CACHE_MB=0, for the
    long-tail runs), each keyed by (db, posts), and the ceiling. The ceiling reads the first
    site's config file: the gunicorn settings are the same in each, only the site's
    environment differs.
    """
    with ExitStack() as stack:
        cached: dict[tuple[str, int], SiteServer] = {}
        uncached: dict[tuple[str, int], SiteServer] = {}
        first = None
        for spec in specs:
            for chosen, extra, suffix in (
                (spec.pages, (), ""),
                (spec.longtail, ("PAGE_CACHE_MB=0",), "-uncached"),
            ):
                if not chosen:
                    continue
                name = f"{config}-{spec.db}-{spec.posts}{suffix}"
                settings = write_config(
                    data_dir / f"{name}.gunicorn.conf.py", config, spec.database_url, secret, extra
                )
                first = first or settings
                site = SiteServer(f"site-{name}", "main:app", "/", data_dir, settings)
                stack.callback(site.stop)
                (uncached if suffix else cached)[spec.key] = site
        if first is None:
            raise ValueError("no site to serve")
        ceiling = Server(f"hello-{config}", "hello:app", "/", data_dir, first)
        stack.callback(ceiling.stop)
        ceiling.wait_until_ready()
        for site in [*cached.values(), *uncached.values()]:
            site.wait_until_ready()
        yield cached, uncached, ceiling


def fetch(
    port: int, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET `target` from 127.0.0.1:`port`; give status, headers (lower-cased names), body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


# --- the pages -------------------------------------------------------------------------


@dataclass
class Page:
    """One page kind to load: where it is, what it must answer, and any request header."""

    name: str
    target: str
    expect: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # When given, wrk asks for a random one of these on every request (`target` is the first).
    urls: list[str] = field(default_factory=list)


# Page kinds in the order they are loaded, and the ones `--pages` takes by default.
PAGE_KINDS = (
    "home",
    "home-p50",
    "post",
    "tag",
    "author",
    "search",
    "feed",
    "static",
    "post-304",
    "archive",
)
DEFAULT_PAGES = PAGE_KINDS[:-1]


# Plain SQL that SQLite and PostgreSQL both run.
BUSIEST_TAG = (
    "SELECT t.slug FROM tags t JOIN (SELECT tag_id, count(*) AS n FROM post_tags "
    "GROUP BY tag_id) c ON c.tag_id = t.id ORDER BY c.n DESC, t.slug LIMIT 1"
)
BUSIEST_AUTHOR = (
    "SELECT u.username FROM users u JOIN (SELECT author_id, count(*) AS n FROM posts "
    "WHERE status = 'published' GROUP BY author_id) c ON c.author_id = u.id "
    "ORDER BY c.n DESC, u.username LIMIT 1"
)


def choose_subjects(database: Path | str) -> dict[str, str]:
    """Give the busiest tag and author (most posts) and a word posts contain.

    Counted on the indexes alone (drafts and the trash included: 5% of generated posts),
    so that choosing takes milliseconds at any size. `database` is a SQLite file, or a
    database URL (PostgreSQL: the generator's SEARCH_WORD is taken as it is).
    """
    if isinstance(database, str):
        from sqlalchemy import text

        from pyproject.blog.db import make_engine

        engine = make_engine(database)
        try:
            with engine.connect() as connection:
                tag = connection.execute(text(BUSIEST_TAG)).first()
                author = connection.execute(text(BUSIEST_AUTHOR)).first()
        finally:
            engine.dispose()
        if tag is None or author is None:
            raise SystemExit(f"{database}: no post with a tag and an author")
        return {"tag": tag[0], "author": author[0], "word": SEARCH_WORD}
    uri = f"file:{database.resolve()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as connection:
        tag = connection.execute(BUSIEST_TAG).fetchone()
        author = connection.execute(BUSIEST_AUTHOR).fetchone()
        found = connection.execute(
            "SELECT 1 FROM posts_fts WHERE posts_fts MATCH ? LIMIT 1", (f'"{SEARCH_WORD}"',)
        ).fetchone()
        word = SEARCH_WORD
        if not found:  # a generator that writes other words: take one from the newest title
            title = connection.execute("SELECT title FROM posts ORDER BY id DESC").fetchone()
            word = re.findall(r"\w{4,}", title[0] if title else "")[0]
    if tag is None or author is None:
        raise SystemExit(f"{database}: no post with a tag and an author")
    return {"tag": tag[0], "author": author[0], "word": word}


def discover_pages(
    get: Callable[..., tuple[int, dict[str, str], bytes]],
    database: Path | str,
    posts: int,
    kinds: list[str],
) -> list[Page]:
    """Give the pages to load, read from the home page and the database.

    `get(target)` gives the status, headers (lower-case names) and body of a GET: `fetch`
    on a server's port, or a test client's.
    """
    status, _headers, body = get("/")
    if status != 200:
        raise SystemExit(f"the home page answered {status}")
    html = body.decode()
    stylesheet = re.search(r'<link rel="stylesheet" href="(/static/css/site\.css\?v=[^"]+)"', html)
    post = re.search(r'<a (?:class="[^"]*" )?href="(/posts/[^"/?]+)">', html)
    if stylesheet is None or post is None:
        raise SystemExit("the home page links to no fingerprinted stylesheet or no post")
    wanted = {"tag", "author", "search"} & set(kinds)
    subjects = choose_subjects(database) if wanted else {"tag": "", "author": "", "word": ""}
    _status, post_headers, _body = get(post.group(1))
    etag = post_headers.get("etag")
    if not etag:
        raise SystemExit(f"{post.group(1)} sends no ETag: no 304 to measure")
    every = {
        "home": Page("home", "/"),
        "home-p50": Page("home-p50", "/?page=50"),
        "post": Page("post", post.group(1)),
        "tag": Page("tag", f"/tags/{subjects['tag']}"),
        "author": Page("author", f"/authors/{subjects['author']}"),
        "search": Page("search", f"/search?q={subjects['word']}"),
        "feed": Page("feed", "/feed.atom"),
        "static": Page("static", stylesheet.group(1)),
        "post-304": Page("post-304", post.group(1), 304, {"If-None-Match": etag}),
        "archive": Page("archive", "/posts"),
    }
    return [every[kind] for kind in kinds if kind != "home-p50" or posts >= 500]


# Long-tail runs: a random page of many, with the page cache off, for each request.
LONGTAIL_KINDS = ("longtail-post", "longtail-tag", "longtail-signed-in")


def longtail_urls(database_url: str, kind: str, count: int, seed: int = 2026) -> list[str]:
    """Give `count` URLs (all of them if fewer) of posts or of tags readers can see, shuffled.

    Posts: published, due and out of the trash. Tags: those such a post carries (readers
    have no page for the others). Sampled with a seeded generator, so every run loads
    the same pages.
    """
    from datetime import UTC, datetime

    from sqlalchemy import select

    from pyproject.blog.db import make_engine
    from pyproject.blog.listing import carried_by_visible_posts
    from pyproject.blog.models import Post, Tag, visible

    now = datetime.now(UTC)
    if kind == "tag":
        query, prefix = select(Tag.slug).where(carried_by_visible_posts(now)), "/tags/"
    else:
        query, prefix = select(Post.slug).where(*visible(now)), "/posts/"
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            slugs = sorted(connection.execute(query).scalars())
    finally:
        engine.dispose()
    if not slugs:
        raise SystemExit(f"{database_url}: no {kind} readers can see")
    chosen = random.Random(seed).sample(slugs, min(count, len(slugs)))
    return [prefix + urllib.parse.quote(slug) for slug in chosen]


def longtail_pages(
    database_url: str, kinds: list[str], session_cookie: str | None, count: int
) -> list[Page]:
    """Give the long-tail pages of `kinds` (LONGTAIL_KINDS); the signed-in run sends the cookie."""
    pages = []
    posts = longtail_urls(database_url, "post", count) if set(kinds) - {"longtail-tag"} else []
    for kind in kinds:
        if kind == "longtail-tag":
            urls = longtail_urls(database_url, "tag", count)
            pages.append(Page(kind, urls[0], urls=urls))
        elif kind == "longtail-post":
            pages.append(Page(kind, posts[0], urls=posts))
        elif kind == "longtail-signed-in":
            if session_cookie is None:
                raise ValueError("the signed-in run needs a session cookie")
            pages.append(Page(kind, posts[0], headers={"Cookie": session_cookie}, urls=posts))
    return pages


def _request(
    port: int, method: str, target: str, headers: dict[str, str], body: str | None = None
) -> tuple[int, list[str], str]:
    """Give the status, Set-Cookie headers and body of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, response.headers.get_all("Set-Cookie") or [], text
    finally:
        connection.close()


def _cookie(set_cookies: list[str], name: str) -> str | None:
    for header in set_cookies:
        jar = SimpleCookie()
        jar.load(header)
        if name in jar and jar[name].value:
            return jar[name].value
    return None


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(port: int, username: str, password: str) -> str:
    """Sign in over HTTP as a browser does; give the `Cookie` header value of the session.

    GET /login (its form's CSRF token lives in the anonymous session it starts), then POST
    the form. Once: only failed sign-ins count towards the throttle (5 per account or per
    account and address, 20 per address, in 15 minutes), so one wrong password stops
    here with the page's answer rather than being retried into a lockout.
    """
    status, cookies, html = _request(port, "GET", "/login", {})
    session = _cookie(cookies, "session")
    token = CSRF_INPUT.search(html)
    if status != 200 or session is None or token is None:
        raise SystemExit(f"GET /login answered {status} with no session cookie or CSRF token")
    form = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "next": "/", "login": username, "password": password}
    )
    headers = {
        "Cookie": f"session={session}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, cookies, _html = _request(port, "POST", "/login", headers, form)
    signed_in = _cookie(cookies, "session")
    if status != 303 or signed_in is None:
        raise SystemExit(f"signing in as {username} answered {status} (not 303 with a session)")
    cookie = f"session={signed_in}"
    status, _cookies, _html = _request(port, "GET", "/drafts", {"Cookie": cookie})
    if status != 200:  # /drafts is for signed-in authors only: anyone else is redirected
        raise SystemExit(f"signed in as {username}, but /drafts answered {status}")
    return cookie


def sign_out(port: int, cookie: str) -> None:
    """End the session made by sign_in (its row in the store goes), as the account page would."""
    status, _cookies, html = _request(port, "GET", "/account", {"Cookie": cookie})
    token = CSRF_INPUT.search(html)
    if status == 200 and token is not None:
        body = urllib.parse.urlencode({"csrf_token": token.group(1)})
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        _request(port, "POST", "/logout", headers, body)


# --- wrk -------------------------------------------------------------------------------


# A random URL of a list for every request, and a count of the answers that are not 2xx
# (wrk's own count is of statuses of 400 or more: a redirect would pass unseen).
# `setup` runs in the main Lua state, once per thread, before that thread's `init`; the
# `threads` table is how framework.WRK_SCRIPT's `done` reads each thread's count.
RANDOM_URLS_LUA = """
local urls = {}
local count = 0
threads = {}
non2xx = 0

setup = function(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

init = function(args)
  for line in io.lines(%(file)s) do
    if #line > 0 then urls[#urls + 1] = line end
  end
  math.randomseed(%(seed)d + 7919 * id)
end

request = function()
  return wrk.format(nil, urls[math.random(#urls)])
end

response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
"""


def wrk_script(folder: Path, page: Page, seed: int = 2026) -> Path:
    """Give the Lua script for `page`: framework's report, plus its request headers.

    A page with `urls` gets RANDOM_URLS_LUA too, reading them from a file beside it.
    """
    path = folder / f"wrk-{page.name}.lua"
    lines = [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in page.headers.items()]
    if page.urls:
        listed = folder / f"wrk-{page.name}.urls"
        listed.write_text("\n".join(page.urls) + "\n")
        lines.append(RANDOM_URLS_LUA % {"file": lua_string(str(listed)), "seed": seed})
    path.write_text("\n".join([*lines, framework.WRK_SCRIPT]))
    return path


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load(
    wrk: str,
    server: Server,
    page: Page,
    folder: Path,
    *,
    duration: int,
    warmup: int,
    connections: int,
    seed: int = 2026,
) -> dict[str, Any]:
    """Check the page answers as it should, warm it up (if `warmup`), give wrk's figures.

    With them, the server's CPU time per request (master and workers, from /proc): other
    processes on a busy machine change it much less than they change requests/s.
    """
    # A list of URLs is checked on a sample spread over it; wrk counts the rest.
    checked = page.urls[:: max(1, len(page.urls) // CHECKED_URLS)] or [page.target]
    statuses = [fetch(server.port, target, page.headers)[0] for target in checked]
    status = next((found for found in statuses if found != page.expect), page.expect)
    script = wrk_script(folder, page, seed)
    url = f"http://127.0.0.1:{server.port}{page.target}"
    warm = run_wrk(wrk, script, url, warmup, connections) if warmup else {"errors": 0}
    cpu_before = server.cpu_seconds()
    figures = run_wrk(wrk, script, url, duration, connections)
    cpu_after = server.cpu_seconds()
    figures.update(
        cpu_us_per_request=(cpu_after - cpu_before) * 1e6 / figures["requests"]
        if cpu_before is not None and cpu_after is not None and figures["requests"]
        else None,
        page=page.name,
        target=page.target,
        urls=len(page.urls),
        checked_status=status,
        status_ok=status == page.expect,
        warmup_errors=warm["errors"],
    )
    return figures


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Give the median rate and latencies of runs of one page, and every error they had."""
    return {
        "requests_per_second": statistics.median(r["requests_per_second"] for r in runs),
        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
        "cpu_us_per_request": framework.median_or_none([r["cpu_us_per_request"] for r in runs]),
        "errors": sum(r["errors"] + r["warmup_errors"] for r in runs)
        + sum(not r["status_ok"] for r in runs),
        "status_errors": sum(r["status_errors"] for r in runs),
        "socket_errors": sum(r["errors"] - r["status_errors"] for r in runs),
        "checked_status": sorted({r["checked_status"] for r in runs}),
        "rounds": len(runs),
    }
