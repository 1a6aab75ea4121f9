"""The load side of bench/run.py: the site and the bare Hello under gunicorn, driven by wrk.

Everything that starts a server or runs wrk comes from bench/framework.py: its `Server`
(one gunicorn command line for both apps, `--no-control-socket`, log level warning), its
`run_wrk` and the Lua hook that reports wrk's figures as JSON. What differs between the
configurations goes in the config file `framework.Server` passes to gunicorn with
`--config`, and applies to the site and to the ceiling alike:

- `raw_env`: DATABASE_URL, SECRET_KEY and LOG_LEVEL=WARNING for the site;
- `pythonpath`: the project, so `main:app` imports (framework.Server runs from bench/);
- `threads = 4` for gthread: gunicorn runs the gthread worker whenever the sync worker
  class (framework.Server's `--worker-class sync`) is given more than one thread.
"""

from __future__ import annotations

import http.client
import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
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


def write_config(path: Path, config: str, database: Path, secret: str) -> Path:
    env = [
        f"DATABASE_URL=sqlite:///{database.resolve()}",
        f"SECRET_KEY={secret}",
        "LOG_LEVEL=WARNING",
        "DEBUG=false",
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
    config: str, databases: dict[int, Path], data_dir: Path, secret: str
) -> Iterator[tuple[dict[int, SiteServer], Server]]:
    """Start the site on each database and the bare Hello with the same settings; stop all.

    The ceiling reads the first site's config file: the gunicorn settings are the same in
    each, only the site's DATABASE_URL differs.
    """
    with ExitStack() as stack:
        sites: dict[int, SiteServer] = {}
        for size, database in databases.items():
            name = f"{config}-{size}"
            settings = write_config(data_dir / f"{name}.gunicorn.conf.py", config, database, secret)
            sites[size] = SiteServer(f"site-{name}", "main:app", "/", data_dir, settings)
            stack.callback(sites[size].stop)
        ceiling = Server(f"hello-{config}", "hello:app", "/", data_dir, settings)
        stack.callback(ceiling.stop)
        ceiling.wait_until_ready()
        for site in sites.values():
            site.wait_until_ready()
        yield sites, ceiling


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


def choose_subjects(database: Path) -> dict[str, str]:
    """Give the busiest tag and author (most posts) and a word posts contain.

    Counted on the indexes alone (drafts and the trash included: 5% of generated posts),
    so that choosing takes milliseconds at any size.
    """
    uri = f"file:{database.resolve()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as connection:
        tag = connection.execute(
            "SELECT t.slug FROM tags t JOIN (SELECT tag_id, count(*) AS n FROM post_tags "
            "GROUP BY tag_id) c ON c.tag_id = t.id ORDER BY c.n DESC, t.slug LIMIT 1"
        ).fetchone()
        author = connection.execute(
            "SELECT u.username FROM users u JOIN (SELECT author_id, count(*) AS n FROM posts "
            "WHERE status = 'published' GROUP BY author_id) c ON c.author_id = u.id "
            "ORDER BY c.n DESC, u.username LIMIT 1"
        ).fetchone()
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
    database: Path,
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
    post = re.search(r'<a href="(/posts/[^"/?]+)">', html)
    if stylesheet is None or post is None:
        raise SystemExit("the home page links to no fingerprinted stylesheet or no post")
    subjects = choose_subjects(database)
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


# --- wrk -------------------------------------------------------------------------------


def wrk_script(folder: Path, page: Page) -> Path:
    """Give the Lua script for `page`: framework's report, plus its request headers."""
    path = folder / f"wrk-{page.name}.lua"
    lines = [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in page.headers.items()]
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
) -> dict[str, Any]:
    """Check the page answers as it should, warm it up (if `warmup`), give wrk's figures.

    With them, the server's CPU time per request (master and workers, from /proc): other
    processes on a busy machine change it much less than they change requests/s.
    """
    status, _headers, _body = fetch(server.port, page.target, page.headers)
    script = wrk_script(folder, page)
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
