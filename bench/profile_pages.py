"""Where a reader page's time goes, in process: cProfile over many calls of one page.

    .venv/bin/python bench/profile_pages.py --posts 100000 --pages post,static,post-304
    .venv/bin/python bench/profile_pages.py --posts 100000 --pages tag,search --uncached --calls 3

The site is built on bench/data/blog-N.sqlite3 (made by bench/run.py or bench/generate.py)
and called as gunicorn calls it, with a prebuilt environ (framework.prebuilt_environ).
By default an anonymous reader asks, with the page cache warm: what bench/run.py loads.
`--uncached` sends a session cookie, which keeps the page cache out: what a reader pays
on a URL no one asked for since the last change. `--signed-in` sends the session of an
author who signed in through /login: what a signed-in author pays every time.
Prints the SQL statements one call runs (the app's engine and the page cache's validators
connection, counted as tests/perf/test_query_counts.py counts them), CPU and wall time per
call, then cProfile's top functions for each page. `--no-profile` leaves cProfile out.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import framework
import generate
import load
import run


def environ_for(page: load.Page, cookie: str | None) -> dict[str, Any]:
    path, _, query = page.target.partition("?")
    environ = framework.prebuilt_environ(path)
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = page.target
    environ["HTTP_HOST"] = "localhost"
    for name, value in page.headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    if cookie:
        environ["HTTP_COOKIE"] = f"session={cookie}"
    return environ


def call(app: Any, page: load.Page, cookie: str | None) -> str:
    """Call the app once as a server would; give the status line."""
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        seen["status"] = status

    body = app(environ_for(page, cookie), start_response)
    for _chunk in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return seen["status"]


def count_statements(site: Any, page: load.Page, cookie: str | None) -> int:
    """Call the app once; give how many SQL statements that call ran, on every connection."""
    from sqlalchemy import event

    from pyproject.blog.db import get_database

    seen: list[str] = []

    def on_engine(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = get_database(site).engine
    state = getattr(site.extensions["content_state"]._local, "connection", None)
    if not hasattr(state, "set_trace_callback"):  # PostgreSQL: counted on the engine... not
        state = None  # its validators' own connection (one small query a request)
    event.listen(engine, "before_cursor_execute", on_engine)
    if state is not None:
        state.set_trace_callback(seen.append)
    try:
        call(site, page, cookie)
    finally:
        event.remove(engine, "before_cursor_execute", on_engine)
        if state is not None:
            state.set_trace_callback(None)
    return len(seen)


def signed_in_session(site: Any) -> str:
    """Sign the first generated author in through /login; give the session cookie's value."""
    author = site.test_client()
    form = author.get("/login").form_values('form[action="/login"]')
    form.update(login=generate.AUTHORS[0][0], password=generate.PASSWORD)
    answer = author.post("/login", data=form)
    if answer.status_code != 303:
        raise SystemExit(f"signing in answered {answer.status}")
    return author.cookies["session"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000, help="blog size [100000]")
    parser.add_argument("--pages", default="post", help="page kinds, comma-separated [post]")
    parser.add_argument("--uncached", action="store_true", help="keep the page cache out")
    parser.add_argument(
        "--no-page-cache",
        action="store_true",
        help="PAGE_CACHE_MB=0 and no cookie, as the long-tail load runs ask",
    )
    parser.add_argument(
        "--signed-in", action="store_true", help="as an author signed in through /login"
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per page [2000]")
    parser.add_argument(
        "--post", default="", help="slug of the post page to ask for [the home page's first]"
    )
    parser.add_argument(
        "--target",
        default="",
        help="URL to ask for instead, e.g. '/posts?page=500' with --pages archive",
    )
    parser.add_argument("--no-profile", action="store_true", help="CPU time only, no cProfile")
    parser.add_argument("--top", type=int, default=20, help="rows of profile [20]")
    parser.add_argument(
        "--sort", default="tottime", help="pstats order: tottime, cumulative... [tottime]"
    )
    parser.add_argument(
        "--longtail",
        type=int,
        default=0,
        help="post and tag pages: a different one of this many random URLs each call [0]",
    )
    parser.add_argument(
        "--callees",
        default="",
        help="also print what the functions matching this regex call, e.g. 'section.html'",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="another generated blog, e.g. PostgreSQL's "
        "(postgresql+psycopg://postgres@127.0.0.1:5432/pyproject_bench)",
    )
    parser.add_argument(
        "--callers",
        default="",
        help="also print what calls the functions matching this regex, e.g. 'execute'",
    )
    args = parser.parse_args(argv)
    kinds = args.pages.split(",")
    database: Path | str = run.database_path(args.posts)
    url = run.generate.sqlite_url(database)
    if args.database_url:  # PostgreSQL's generated blog, as bench/run.py --postgres makes it
        database = url = args.database_url
    elif not database.exists():
        raise SystemExit(f"{database} is missing: run bench/run.py --sizes {args.posts} first")

    from pyproject.blog.db import get_database

    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        settings = {"PAGE_CACHE_MB": 0} if args.no_page_cache else {}
        site = run.make_site(url, tmp, **settings)
        client = site.test_client()

        def get(target: str, headers: dict[str, str] | None = None) -> tuple:
            response = client.get(target, headers=headers)
            return (
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                (response.data),
            )

        pages = load.discover_pages(get, database, args.posts, kinds)
        if args.post:  # the same post every run: the home page's first changes with views
            pages = [
                dataclasses.replace(page, target=f"/posts/{args.post}")
                if page.name == "post"
                else page
                for page in pages
            ]
        if args.target:  # e.g. the archive's page 500, as bench/run.py's in-process row
            pages = [dataclasses.replace(page, target=args.target) for page in pages]
        session = signed_in_session(site) if args.signed_in else "bench"
        for page in pages:
            keep_out = args.uncached or args.signed_in
            cookie = session if keep_out and page.name not in run.NO_COOKIE else None
            for _ in range(2):  # compile templates, fill the page cache
                status = call(site, page, cookie)
            if int(status[:3]) != page.expect:
                raise SystemExit(f"{page.target} answered {status}")
            statements = count_statements(site, page, cookie)
            # The long tail: each call another of N random posts (or tags), as the
            # long-tail load runs ask; SQLite's page cache meets most rows for the first time.
            turns = [page]
            if args.longtail and page.name in ("post", "tag"):
                urls = load.longtail_urls(url, page.name, args.longtail)
                turns = [dataclasses.replace(page, target=url) for url in urls]
            started_cpu = time.thread_time()
            for number in range(args.calls):
                call(site, turns[number % len(turns)], cookie)
            plain = (time.thread_time() - started_cpu) / args.calls
            mode = ("signed in" if args.signed_in else "uncached") if cookie else "as loaded"
            if args.no_page_cache and not cookie:
                mode = "no page cache"
            target = f"{len(turns):,} random URLs" if len(turns) > 1 else page.target
            print(f"== {page.name} {target} ({mode}), {args.posts:,} posts, {args.calls} calls")
            print(f"   {statements} SQL statements per call")
            print(f"   {plain * 1e6:.1f} us CPU per call without the profiler")
            if args.no_profile:
                continue
            started, started_cpu = time.perf_counter(), time.thread_time()
            profiler = cProfile.Profile()
            profiler.enable()
            for number in range(args.calls):
                call(site, turns[-1 - number % len(turns)], cookie)
            profiler.disable()
            wall = (time.perf_counter() - started) / args.calls
            cpu = (time.thread_time() - started_cpu) / args.calls
            print(f"   {wall * 1e3:.3f} ms wall, {cpu * 1e3:.3f} ms CPU per call (with cProfile)")
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats(args.sort).print_stats(args.top)
            if args.callees:
                stats.print_callees(args.callees)
            if args.callers:
                stats.print_callers(args.callers)
        get_database(site).dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
