"""Load benchmark of every reader page, at 100, 10,000 and 100,000 posts, against bare WSGI.

    .venv/bin/python bench/run.py                     # the full matrix (make bench), ~16 min
    .venv/bin/python bench/run.py --sizes 100 --duration 3 --configs sync --pages home,post
    .venv/bin/python bench/run.py --longtail          # only the long-tail runs (and ceiling)
    .venv/bin/python bench/run.py --postgres          # only PostgreSQL: load and in process
    .venv/bin/python bench/run.py --in-process-only   # no server: renders, CPU, saves

For each configuration (2 sync workers; 2 gthread workers of 4 threads) it starts
`gunicorn main:app` on a generated blog of each size (bench/generate.py, kept in
bench/data/) and, with the same settings, the bare "Hello" WSGI callable: the ceiling,
since every figure is a ratio to it measured in the same run. wrk loads the ceiling and
each reader page for --duration seconds, in two rounds: ceiling, then every page of every
size (after a warm-up); then the same in reverse, the ceiling last. Reported per page, as
the median of the rounds: requests/s, p50 and p99 latency, errors, the ratio to the
ceiling, the server's CPU time per request (steadier than requests/s on a shared machine)
and the ratio of p50 and of CPU time to the same page at 100 posts.

With the first configuration it also runs, at the largest size, the long-tail runs: a
second site on the same blog with PAGE_CACHE_MB=0, and wrk asking for a random one of
2,000 posts (then of the tags) on every request, then the posts again as a signed-in
author (signed in once through /login, the session cookie sent on every request). And
PostgreSQL's rows (the blog generated in a database of its own, `pyproject_bench`):
home and post with the page cache, the long-tail posts without; skipped, with the reason
printed, when the server cannot be reached.

In process, it also times the render of each page with the page cache bypassed (a
session cookie, as a signed-in author has), a save of a 2,000-word post through the
editor's form, and reads a gunicorn worker's resident memory after every page kind at the
largest size; and the CPU time (time.thread_time, median) of home, post, tag, author,
archive page 500, search and the editor of a 2,000-word post with the page cache off, at
the largest size, on SQLite and on PostgreSQL, against CPU_TARGETS_MS. The table is
printed and saved as JSON in bench/results/. Exits 1 if any request failed (a socket
error, a status of 400 or more, any status but 2xx in a long-tail run, or a page that did
not answer as expected), 2 if a server could not be started.

The full matrix is 74 runs of 10 s; to stay near 15 minutes, gthread runs at the largest
size only (`--gthread-at all` for every size, about 20 minutes), the ceiling is shared by
a configuration's sizes, and the second round has no warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import framework
import generate
import load
from framework import RESULTS, ROOT, ensure_wrk, git_commit

SIZES = (100, 10_000, 100_000)
BASELINE = 100  # the size every p50 is compared with
# The least requests/s each page should reach, as a share of the ceiling's.
RATIO_TARGETS = {
    "home": 0.5,
    "home-p50": 0.5,
    "post": 0.5,
    "tag": 0.4,
    "author": 0.4,
    "archive": 0.4,
    "post-304": 0.8,
    "static": 0.8,
    # Page cache off (PAGE_CACHE_MB=0), a random page of 2,000 for every request.
    "longtail-post": 0.25,
    "longtail-tag": 0.2,
    "longtail-signed-in": 0.2,
}
P99_TARGET_MS = 25.0
SIZE_RATIO_TARGET = 1.3
SAVE_TARGET_MS = 60.0
MEMORY_TARGET_MB = 80.0
# Pages loaded with a header (or that never render) are timed in process as they are.
NO_COOKIE = ("static", "post-304")
# CPU per request in process (time.thread_time, median), page cache off, largest size.
CPU_TARGETS_MS = {
    "post": 1.5,
    "home": 2.0,
    "tag": 2.5,
    "author": 2.5,
    "archive-p500": 2.5,
    "editor": 3.0,
    "search": 15.0,
}
EDITOR_WORDS = 2_000  # the editor page is timed on the post nearest this length
# A database of its own on the local server (never `test`, which the test suite uses).
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/pyproject_bench"
POSTGRES_POSTS = 100_000
POSTGRES_PAGES = ("home", "post")  # reader pages loaded on PostgreSQL (with the page cache)


# --- databases -------------------------------------------------------------------------


def database_path(posts: int) -> Path:
    return generate.DATA / f"blog-{posts}.sqlite3"


def ensure_database(posts: int) -> Path:
    """Give the generated blog of `posts` posts, made now unless one is there already."""
    path = database_path(posts)
    url = generate.sqlite_url(path)
    if generate.count_posts(url) == posts:
        # A blog made by an older checkout: bring its schema up to this one's.
        from pyproject.blog.db import make_engine
        from pyproject.blog.migrate import upgrade

        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return path
    print(f"generating {path.relative_to(ROOT)} ...", flush=True)
    generate.generate(url, posts, force=True, progress=lambda line: print("  " + line))
    return path


def ensure_postgres(url: str, posts: int) -> str | None:
    """Make the PostgreSQL blog of `posts` posts at `url` if need be; give why not, or None.

    The database is created (CREATE DATABASE, through psycopg on the server's `postgres`
    database) when missing, and filled by generate.py unless it holds `posts` posts already.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    name = target.database or ""
    if not name or name in ("test", "postgres", "template0", "template1") or "test" in name:
        return f"refusing to benchmark on database {name!r}: the test suite's, or the server's"
    try:
        admin = psycopg.connect(
            host=target.host or "127.0.0.1",
            port=target.port or 5432,
            user=target.username,
            password=target.password,
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        )
    except psycopg.Error as error:
        reason = " ".join(str(error).split())
        return f"PostgreSQL unreachable at {target.host}:{target.port or 5432}: {reason}"
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            print(f"creating PostgreSQL database {name} ...", flush=True)
            try:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as error:
                return f"could not create database {name}: {' '.join(str(error).split())}"
    if generate.count_posts(url) == posts:
        from pyproject.blog.db import make_engine
        from pyproject.blog.migrate import upgrade

        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return None
    print(f"generating {posts:,} posts in PostgreSQL database {name} ...", flush=True)
    generate.generate(url, posts, force=True, progress=lambda line: print("  " + line))
    return None


def shown_url(url: str) -> str:
    """Give a database URL without its password, for output and the JSON."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- in process ------------------------------------------------------------------------


def make_site(database_url: str, instance: str, **settings: Any) -> Any:
    from pyproject.app import create_app

    return create_app(
        {
            "SECRET_KEY": "bench-in-process",
            "DEBUG": False,
            "BASE_URL": "http://localhost",
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": instance,
            "LOG_LEVEL": "WARNING",
            **settings,
        }
    )


def time_renders(database: Path, posts: int, kinds: list[str], repeat: int) -> dict[str, float]:
    """Give the median ms of rendering each page in process, past the page cache.

    A session cookie (any value) keeps a request out of the page cache, as a signed-in
    author's is: this is what a reader pays on a URL no one asked for since the last
    change. The 304 and the stylesheet are timed as they are. The pages (and the ETag of
    the 304) are found again here, from this app.
    """
    from pyproject.blog.db import get_database

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        site = make_site(generate.sqlite_url(database), tmp)
        try:
            plain = site.test_client()

            def get(target: str, headers: dict[str, str] | None = None) -> tuple:
                response = plain.get(target, headers=headers)
                names = {k.lower(): v for k, v in response.headers.items()}
                return response.status_code, names, response.data

            for page in load.discover_pages(get, database, posts, kinds):
                client = site.test_client()
                if page.name not in NO_COOKIE:
                    client.cookies["session"] = "bench-bypasses-the-page-cache"
                samples = []
                for _ in range(repeat):  # the median leaves out the first (templates compile)
                    started = time.perf_counter()
                    response = client.get(page.target, headers=page.headers)
                    samples.append(time.perf_counter() - started)
                    if response.status_code != page.expect:
                        raise RuntimeError(f"{page.target} answered {response.status} in process")
                timings[page.name] = statistics.median(samples) * 1000
        finally:
            get_database(site).dispose()
    return timings


def editor_subject(database_url: str, words: int) -> tuple[str, str, int]:
    """Give the slug, author and words of a visible post about `words` long (among the newest)."""
    from sqlalchemy import func, select

    from pyproject.blog.db import make_engine
    from pyproject.blog.models import Post, User, utcnow, visible

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            newest = connection.execute(select(func.max(Post.id))).scalar_one()
            found = connection.execute(
                select(Post.slug, User.username, Post.word_count)
                .join(User, User.id == Post.author_id)
                .where(*visible(utcnow()), Post.id > newest - 2_000)
                .order_by(func.abs(Post.word_count - words), Post.id.desc())
                .limit(1)
            ).first()
    finally:
        engine.dispose()
    if found is None:
        raise SystemExit(f"{shown_url(database_url)}: no post to open in the editor")
    return found[0], found[1], found[2]


def time_cpu(database_url: str, posts: int, calls: int) -> dict[str, Any]:
    """Give the median CPU ms (time.thread_time) of each CPU_TARGETS_MS page, page cache off.

    The site runs with PAGE_CACHE_MB=0, so every call renders: what a reader pays on a
    URL nobody asked for since the last change. Reader pages are asked anonymously; the
    editor page (GET /posts/<slug>/edit of a post of about EDITOR_WORDS words) by its
    author, signed in through /login. The first call of each page is left out (templates
    compile); the archive's page 500 is skipped on a blog too small to have one.
    """
    from pyproject.blog.db import get_database

    pages: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        site = make_site(database_url, tmp, PAGE_CACHE_MB=0)
        try:
            reader = site.test_client()

            def get(target: str, headers: dict[str, str] | None = None) -> tuple:
                response = reader.get(target, headers=headers)
                names = {k.lower(): v for k, v in response.headers.items()}
                return response.status_code, names, response.data

            source = database_url
            if database_url.startswith("sqlite:///"):
                source = Path(database_url.removeprefix("sqlite:///"))
            kinds = ["home", "post", "tag", "author", "search"]
            found = {page.name: page for page in load.discover_pages(get, source, posts, kinds)}
            targets = {name: (reader, found[name].target) for name in kinds}
            if reader.get("/posts?page=500").status_code == 200:
                targets["archive-p500"] = (reader, "/posts?page=500")
            slug, username, words = editor_subject(database_url, EDITOR_WORDS)
            author = site.test_client()
            form = author.get("/login").form_values('form[action="/login"]')
            form.update(login=username, password=generate.PASSWORD)
            signed_in = author.post("/login", data=form)
            if signed_in.status_code != 303:
                raise RuntimeError(f"signing in as {username} answered {signed_in.status}")
            targets["editor"] = (author, f"/posts/{slug}/edit")
            for name in CPU_TARGETS_MS:
                if name not in targets:
                    continue
                client, target = targets[name]
                cpu, wall = [], []
                for number in range(calls + 1):
                    started, started_cpu = time.perf_counter(), time.thread_time()
                    response = client.get(target)
                    elapsed_cpu = time.thread_time() - started_cpu
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"{target} answered {response.status} in process")
                    if number:
                        cpu.append(elapsed_cpu * 1000)
                        wall.append(elapsed * 1000)
                pages[name] = {
                    "target": target,
                    "cpu_ms": statistics.median(cpu),
                    "wall_ms": statistics.median(wall),
                    "target_ms": CPU_TARGETS_MS[name],
                    "met": statistics.median(cpu) <= CPU_TARGETS_MS[name],
                }
            pages["editor"]["words"] = words
            # Sign out: the session's row leaves the store of the generated blog.
            signed_out = author.get("/account").form_values('form[action="/logout"]')
            author.post("/logout", data=signed_out)
        finally:
            get_database(site).dispose()
    return {"posts": posts, "calls": calls, "pages": pages}


def source_state() -> dict[str, Any]:
    """Give the commit, and the app's files changed from it (others work in this tree)."""
    import subprocess

    done = subprocess.run(
        ["git", "status", "--porcelain", "--", "pyproject", "templates", "static", "main.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return {"commit": git_commit(), "changed": sorted(done.stdout.split("\n"))[1:]}


def time_saves(saves: int, words: int) -> dict[str, Any]:
    """Give the median time to save a post of about `words` words through the editor.

    A signed-in author submits the form of /posts/new to POST /posts, as a browser would:
    CSRF check, validation, Markdown rendering and sanitising, storing the post, its tags
    and a revision, and the redirect. Each post has a body of its own.
    """
    from pyproject.blog.db import get_database
    from pyproject.blog.migrate import upgrade

    vocabulary = generate.Vocabulary(random.Random(2026))
    bodies = [generate.markdown_body(vocabulary, words) for _ in range(saves + 1)]
    wall, cpu = [], []
    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        site = make_site(f"sqlite:///{Path(tmp) / 'editor.sqlite3'}", tmp)
        try:
            upgrade(get_database(site).engine)
            client = site.test_client()
            account = client.get("/setup").form_values('form[action="/setup"]')
            account.update(
                username="writer",
                email="writer@example.com",
                password="benchmark passphrase",
                confirm="benchmark passphrase",
            )
            if client.post("/setup", data=account).status_code != 303:
                raise SystemExit("could not create the author through /setup")
            form = client.get("/posts/new").form_values("#post-form")
            for number, body in enumerate(bodies):
                values = {
                    **form,
                    "title": f"{vocabulary.title()} {number}",
                    "body": body,
                    "tags": "Python, Performance, Benchmarks",
                    "status": "published",
                }
                started, started_cpu = time.perf_counter(), time.thread_time()
                response = client.post("/posts", data=values)
                elapsed, elapsed_cpu = (
                    time.perf_counter() - started,
                    time.thread_time() - started_cpu,
                )
                if response.status_code != 303:
                    raise SystemExit(f"saving a post answered {response.status}")
                if number:  # the first save warms imports, lexers and templates
                    wall.append(elapsed * 1000)
                    cpu.append(elapsed_cpu * 1000)
        finally:
            get_database(site).dispose()
    return {
        "saves": saves,
        "words": round(statistics.mean(generate.count_words(b) for b in bodies)),
        "median_ms": statistics.median(wall),
        "median_cpu_ms": statistics.median(cpu),
        "min_ms": min(wall),
        "max_ms": max(wall),
    }


# --- the matrix ------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[str, list[int]]]:
    """Give each configuration to run and the SQLite sizes its reader pages run at, in order."""
    if "pages" not in args.parts:
        return [(config, []) for config in args.configs[:1]]
    return [
        (config, args.sizes if config == "sync" or args.gthread_at == "all" else args.sizes[-1:])
        for config in args.configs
    ]


def site_specs(
    args: argparse.Namespace, config: str, sizes: list[int], first: bool, postgres: str | None
) -> list[load.SiteSpec]:
    """Give the blogs one configuration serves, each with its pages and long-tail runs.

    Reader pages at `sizes`; with the first configuration only, the long-tail runs at the
    largest size and PostgreSQL's rows.
    """
    specs = [
        load.SiteSpec("sqlite", size, generate.sqlite_url(database_path(size)), list(args.pages))
        for size in sizes
    ]
    if first and "longtail" in args.parts and "sqlite" in args.databases:
        largest = args.sizes[-1]
        spec = next((s for s in specs if s.posts == largest), None)
        if spec is None:
            spec = load.SiteSpec("sqlite", largest, generate.sqlite_url(database_path(largest)), [])
            specs.append(spec)
        spec.longtail = list(load.LONGTAIL_KINDS)
    if first and postgres:
        pages = [p for p in POSTGRES_PAGES if p in args.pages] if "pages" in args.parts else []
        longtail = ["longtail-post"] if "longtail" in args.parts else []
        if pages or longtail:
            specs.append(load.SiteSpec("postgres", args.postgres_posts, postgres, pages, longtail))
    return specs


def estimate_seconds(args: argparse.Namespace, planned: list[list[load.SiteSpec]]) -> float:
    """Give about how long the load runs take (wrk's own durations and a little more)."""
    total = 0.0
    for specs in planned:
        runs = 1 + sum(
            len(spec.longtail) + sum(1 for k in spec.pages if k != "home-p50" or spec.posts >= 500)
            for spec in specs
        )
        total += runs * (args.duration + args.warmup + 0.3)
        total += (args.rounds - 1) * runs * (args.duration + 0.3) + 5 * len(specs)
    return total


def run_config(
    wrk: str,
    config: str,
    specs: list[load.SiteSpec],
    args: argparse.Namespace,
    folder: Path,
    memory_at: int | None,
) -> list[dict[str, Any]]:
    """Load the ceiling and every page of each blog, in rounds; give one block per blog.

    The sites of every blog and the ceiling are up together. Round 1 runs the ceiling,
    then each blog's pages; round 2 runs them all in the reverse order, the ceiling last,
    without a warm-up (every page was loaded a moment ago). `memory_at` names the SQLite
    size whose workers' memory is read at the end, after they served every page. The
    long-tail pages of a blog go to its second site, the one without a page cache; the
    signed-in run signs in there once, and out at the end.
    """
    secret = secrets.token_hex(32)
    source = source_state()
    started = time.monotonic()
    loadavg = [os.getloadavg()]
    runs: list[dict[str, Any]] = []
    memory = None
    signed_in: list[tuple[int, str]] = []
    with load.serving(config, specs, folder, secret) as (cached, uncached, ceiling):
        pages: dict[tuple[str, int], list[tuple[framework.Server, load.Page]]] = {}
        for spec in specs:
            mine = pages[spec.key] = []
            if spec.key in cached:
                server = cached[spec.key]
                fetch = functools.partial(load.fetch, server.port)
                found = load.discover_pages(fetch, spec.subjects_from, spec.posts, spec.pages)
                mine.extend((server, page) for page in found)
            if spec.key in uncached:
                server = uncached[spec.key]
                cookie = None
                if "longtail-signed-in" in spec.longtail:
                    username = generate.AUTHORS[0][0]
                    cookie = load.sign_in(server.port, username, generate.PASSWORD)
                    signed_in.append((server.port, cookie))
                found = load.longtail_pages(
                    spec.database_url, spec.longtail, cookie, args.longtail_urls
                )
                mine.extend((server, page) for page in found)
        order = [(("", 0), ceiling, load.Page("ceiling", "/"))] + [
            (key, server, page) for key, listed in pages.items() for server, page in listed
        ]
        for round_number in range(args.rounds):
            for key, server, page in order if round_number % 2 == 0 else order[::-1]:
                figures = load.load(
                    wrk,
                    server,
                    page,
                    folder,
                    duration=args.duration,
                    warmup=args.warmup if round_number == 0 else 0,
                    connections=args.connections,
                    seed=2026 + round_number,
                )
                figures.update(round=round_number + 1, db=key[0], posts=key[1])
                runs.append(figures)
                answered = (
                    "" if figures["status_ok"] else f" (answered {figures['checked_status']})"
                )
                where = f"{'pg ' if key[0] == 'postgres' else ''}{key[1] or ''}"
                print(
                    f"  {config} {where:>10} r{round_number + 1} {page.name:<18} "
                    f"{figures['requests_per_second']:7.0f} req/s  "
                    f"p50 {figures['p50_us'] / 1000:6.2f} ms  "
                    f"p99 {figures['p99_us'] / 1000:7.2f} ms  "
                    f"CPU {framework.format_cpu(figures['cpu_us_per_request'])}  "
                    f"errors {figures['errors'] + figures['warmup_errors']}{answered}",
                    flush=True,
                )
            loadavg.append(os.getloadavg())
        for port, cookie in signed_in:
            load.sign_out(port, cookie)
        if ("sqlite", memory_at) in cached:
            workers = cached[("sqlite", memory_at)].worker_pids()
            memory = {str(pid): load.resident_mb(pid) for pid in workers}
        logs = {
            f"site-{key[0]}-{key[1]}{suffix}": site.log()[-4000:]
            for suffix, sites in (("", cached), ("-uncached", uncached))
            for key, site in sites.items()
        }
        logs["ceiling"] = ceiling.log()[-4000:]
    ceiling_figures = load.median_figures([r for r in runs if r["page"] == "ceiling"])
    blocks = []
    for spec in specs:
        summary = {"ceiling": ceiling_figures}
        for _server, page in pages[spec.key]:
            mine = [r for r in runs if (r["db"], r["posts"]) == spec.key and r["page"] == page.name]
            summary[page.name] = load.median_figures(mine)
        blocks.append(
            {
                "config": config,
                "db": spec.db,
                "posts": spec.posts,
                "pages": [
                    {**dataclasses.asdict(page), "urls": len(page.urls)}
                    for _server, page in pages[spec.key]
                ],
                "targets": {page.name: page.target for _server, page in pages[spec.key]},
                "summary": summary,
                "worker_rss_mb": memory if spec.key == ("sqlite", memory_at) else None,
            }
        )
    blocks[0].update(
        runs=runs,
        loadavg=loadavg,
        source=source,
        seconds=round(time.monotonic() - started, 1),
        server_logs=logs,
    )
    return blocks


def table_rows(blocks: list[dict[str, Any]], renders: dict[int, dict[str, float]]) -> list[dict]:
    """Give one row per (configuration, size, page) with its ratios and targets."""
    baselines: dict[tuple[str, str, str], dict[str, Any]] = {}
    for block in blocks:
        if block["posts"] == BASELINE:
            for name, figures in block["summary"].items():
                baselines[(block["db"], block["config"], name)] = figures
    largest = max(block["posts"] for block in blocks)
    rows = []
    shown_ceilings = set()
    for block in blocks:
        ceiling = block["summary"]["ceiling"]
        for name, figures in block["summary"].items():
            if name == "ceiling":  # one ceiling per configuration, shared by its sizes
                if block["config"] in shown_ceilings:
                    continue
                shown_ceilings.add(block["config"])
            ratio = figures["requests_per_second"] / ceiling["requests_per_second"]
            cpu, ceiling_cpu = figures["cpu_us_per_request"], ceiling["cpu_us_per_request"]
            cpu_ratio = ceiling_cpu / cpu if cpu and ceiling_cpu else None
            # The deep page has no 100-post twin: it is compared with the first page there.
            base = baselines.get(
                (block["db"], block["config"], "home" if name == "home-p50" else name)
            )
            size_ratio = cpu_growth = None
            if base and name != "ceiling":
                size_ratio = figures["p50_ms"] / base["p50_ms"]
                if cpu and base["cpu_us_per_request"]:
                    cpu_growth = cpu / base["cpu_us_per_request"]
            checks = {}
            if name != "ceiling":
                if name in RATIO_TARGETS:
                    checks["ratio"] = ratio >= RATIO_TARGETS[name]
                checks["p99"] = figures["p99_ms"] < P99_TARGET_MS
                if size_ratio is not None and block["posts"] == largest > BASELINE:
                    checks["size"] = size_ratio <= SIZE_RATIO_TARGET
            rows.append(
                {
                    "config": block["config"],
                    "db": block["db"] if name != "ceiling" else None,
                    "posts": block["posts"] if name != "ceiling" else None,
                    "page": name,
                    "target": block["targets"].get(name, "/"),
                    **figures,
                    "ratio": ratio,
                    "ratio_target": RATIO_TARGETS.get(name),
                    "cpu_ratio": cpu_ratio,
                    "p50_vs_baseline": size_ratio,
                    "cpu_vs_baseline": cpu_growth,
                    "render_ms": renders.get(block["posts"], {}).get(name)
                    if block["db"] == "sqlite"
                    else None,
                    "checks": checks,
                }
            )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| config | db | posts | page | req/s | p50 ms | p99 ms | × ceiling | target "
        "| CPU µs/req | CPU × ceiling | p50 ÷ 100 posts | CPU ÷ 100 posts | render ms | errors |"
    )
    lines = [head, "|" + "|".join(["---"] * 4 + ["---:"] * 11) + "|"]
    for row in rows:
        checks = row["checks"]

        def mark(key: str, checks: dict[str, bool] = checks) -> str:
            return "" if checks.get(key, True) else " ✗"

        posts = "all" if row["posts"] is None else f"{row['posts']:,}"
        target = f"≥ {row['ratio_target']:g}" if row["ratio_target"] else ""
        lines.append(
            f"| {row['config']} | {row['db'] or ''} | {posts} | {row['page']} "
            f"| {row['requests_per_second']:,.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.1f}{mark('p99')} | {row['ratio']:.2f}{mark('ratio')} "
            f"| {target} | {_num(row['cpu_us_per_request'], '.0f')} "
            f"| {_num(row['cpu_ratio'], '.2f')} "
            f"| {_num(row['p50_vs_baseline'], '.2f')}{mark('size')} "
            f"| {_num(row['cpu_vs_baseline'], '.2f')} | {_num(row['render_ms'], '.1f')} "
            f"| {row['errors']} |"
        )
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def shortfall(key: str, row: dict[str, Any]) -> str:
    if key == "ratio":
        return f"{row['ratio']:.2f} < {row['ratio_target']}"
    if key == "p99":
        return f"{row['p99_ms']:.1f} ms"
    return f"{row['p50_vs_baseline']:.2f}×"


def verdicts(
    rows: list[dict[str, Any]],
    saving: dict[str, Any] | None,
    memory: dict[str, Any] | None,
    cpu: dict[str, dict[str, Any]] | None = None,
    skipped: dict[str, str] | None = None,
) -> list[str]:
    """Give one line per target: met or missed, and by how much."""
    lines = []
    names = {
        "ratio": "requests/s ≥ target share of the ceiling",
        "p99": f"p99 < {P99_TARGET_MS:.0f} ms",
        "size": f"p50 at the largest size ≤ {SIZE_RATIO_TARGET}× p50 at {BASELINE} posts",
    }
    for key, title in names.items():
        checked = [row for row in rows if key in row["checks"]]
        missed = [row for row in checked if not row["checks"][key]]
        detail = ", ".join(
            f"{row['config']}/{'pg/' if row['db'] == 'postgres' else ''}{row['posts']:,}/"
            f"{row['page']} {shortfall(key, row)}"
            for row in missed
        )
        state = "met" if not missed else f"MISSED {len(missed)} of {len(checked)}: {detail}"
        lines.append(f"{title}: {state}" if checked else f"{title}: not measured")
    if saving:
        state = "met" if saving["median_ms"] < SAVE_TARGET_MS else "MISSED"
        lines.append(
            f"saving a {saving['words']:,}-word post: {saving['median_ms']:.1f} ms median "
            f"({saving['median_cpu_ms']:.1f} ms CPU; target < {SAVE_TARGET_MS:.0f} ms): {state}"
        )
    if memory and memory["rss_mb"]:
        peak = max(memory["rss_mb"].values())
        state = "met" if peak < MEMORY_TARGET_MB else "MISSED"
        lines.append(
            f"worker memory at {memory['posts']:,} posts: {peak:.1f} MB "
            f"(target < {MEMORY_TARGET_MB:.0f} MB): {state}"
        )
    for db, timed in (cpu or {}).items():
        missed = [name for name, page in timed["pages"].items() if not page["met"]]
        state = "met" if not missed else f"MISSED {len(missed)} of {len(timed['pages'])}"
        lines.append(
            f"CPU per request in process, {db}, {timed['posts']:,} posts, page cache off: {state}"
        )
        for name, page in timed["pages"].items():
            words = f", {page['words']:,} words" if "words" in page else ""
            lines.append(
                f"  {name:<13} {page['cpu_ms']:6.2f} ms (≤ {page['target_ms']:g} ms{words}): "
                f"{'met' if page['met'] else 'MISSED'}"
            )
    for part, reason in (skipped or {}).items():
        lines.append(f"{part}: skipped: {reason}")
    return lines


def benchmark(args: argparse.Namespace) -> int:
    started = time.monotonic()
    problems: list[str] = []
    skipped: dict[str, str] = {}
    loading = bool({"pages", "longtail"} & args.parts)
    wrk = ensure_wrk() if loading else ""
    sqlite = "sqlite" in args.databases
    databases = {size: ensure_database(size) for size in args.sizes} if sqlite else {}
    postgres = None
    if "postgres" in args.databases:
        reason = ensure_postgres(args.postgres_url, args.postgres_posts)
        if reason is None:
            postgres = args.postgres_url
        else:
            skipped["PostgreSQL"] = reason
            print(f"PostgreSQL: skipped: {reason}", flush=True)
    planned = []
    if loading:
        for number, (config, sizes) in enumerate(plan(args)):
            specs = site_specs(args, config, sizes if sqlite else [], number == 0, postgres)
            if specs:
                planned.append((config, specs))
    if planned:
        print(
            "; ".join(
                f"{config}: "
                + ", ".join(
                    f"{spec.db} {spec.posts:,} ({', '.join(spec.pages + spec.longtail)})"
                    for spec in specs
                )
                for config, specs in planned
            )
            + f": about {estimate_seconds(args, [s for _c, s in planned]) / 60:.1f} min of "
            f"load; load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
            flush=True,
        )
    blocks = []
    memory = None
    configs = []
    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        folder = Path(tmp)
        for config, specs in planned:
            average = " ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"{config} (load average {average}):", flush=True)
            memory_at = args.sizes[-1] if memory is None and "pages" in args.parts else None
            made = run_config(wrk, config, specs, args, folder, memory_at)
            blocks.extend(made)
            configs.append(made[0])
            print(
                f"  ({made[0]['seconds']:.0f} s; commit {str(made[0]['source']['commit'])[:7]}, "
                f"{len(made[0]['source']['changed'])} app files changed from it)",
                flush=True,
            )
            for block in made:
                if block["worker_rss_mb"]:
                    memory = {"config": config, "posts": block["posts"]}
                    memory["rss_mb"] = block["worker_rss_mb"]
    sources = {json.dumps(made["source"], sort_keys=True) for made in configs}
    if len(sources) > 1:
        problems.append(
            "the app's code changed during the run (another engineer's commit or edit): "
            "blocks measured different code; see each block's source in the JSON"
        )
        print(problems[-1], file=sys.stderr)
    in_process = "in-process" in args.parts
    renders: dict[int, dict[str, float]] = {}
    if in_process and sqlite and args.renders:
        for size in args.sizes:
            try:
                renders[size] = time_renders(databases[size], size, args.pages, args.renders)
            except Exception as error:  # the load figures are worth keeping anyway
                problems.append(f"in-process renders at {size:,} posts: {error!r}")
                print(problems[-1], file=sys.stderr)
                continue
            print(
                f"render in process, {size:,} posts (ms): "
                + "  ".join(f"{k} {v:.1f}" for k, v in renders[size].items()),
                flush=True,
            )
    cpu: dict[str, dict[str, Any]] = {}
    if in_process and args.cpu_calls:
        sources_cpu = []
        if sqlite:
            largest = args.sizes[-1]
            sources_cpu.append(("sqlite", generate.sqlite_url(databases[largest]), largest))
        if postgres:
            sources_cpu.append(("postgres", postgres, args.postgres_posts))
        for db, url, posts in sources_cpu:
            try:
                cpu[db] = time_cpu(url, posts, args.cpu_calls)
            except Exception as error:
                problems.append(f"in-process CPU on {db} at {posts:,} posts: {error!r}")
                print(problems[-1], file=sys.stderr)
                continue
            print(
                f"CPU in process, {db}, {posts:,} posts, page cache off (ms): "
                + "  ".join(f"{k} {v['cpu_ms']:.2f}" for k, v in cpu[db]["pages"].items()),
                flush=True,
            )
    saving = None
    if in_process and args.saves and sqlite:
        try:
            saving = time_saves(args.saves, args.save_words)
        except Exception as error:
            problems.append(f"timing saves: {error!r}")
            print(problems[-1], file=sys.stderr)

    rows = table_rows(blocks, renders) if blocks else []
    table = markdown_table(rows)
    loads = [v[0] for made in configs for v in made["loadavg"]] or [os.getloadavg()[0]]
    lines = verdicts(rows, saving, memory, cpu, skipped)
    elapsed = time.monotonic() - started
    report = {
        "benchmark": "load",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_1min": {"min": min(loads), "max": max(loads), "samples": loads},
        },
        "settings": {
            "sizes": args.sizes,
            "configs": args.configs,
            "gthread_at": args.gthread_at,
            "threads": load.THREADS,
            "workers": framework.WORKERS,
            "pages": args.pages,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "rounds": args.rounds,
            "parts": sorted(args.parts),
            "databases": sorted(args.databases),
            "longtail_urls": args.longtail_urls,
            "postgres_url": shown_url(args.postgres_url),
            "postgres_posts": args.postgres_posts,
            "cpu_calls": args.cpu_calls,
        },
        "targets": {
            "ratio": RATIO_TARGETS,
            "p99_ms": P99_TARGET_MS,
            "size_ratio": SIZE_RATIO_TARGET,
            "save_ms": SAVE_TARGET_MS,
            "memory_mb": MEMORY_TARGET_MB,
            "cpu_ms": CPU_TARGETS_MS,
        },
        "table": rows,
        "save": saving,
        "memory": memory,
        "renders_ms": renders,
        "cpu_ms": cpu,
        "skipped": skipped,
        "verdicts": lines,
        "problems": problems,
        "blocks": blocks,
    }
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    saved.write_text(_json(report))

    print()
    if rows:
        print(table)
        print()
        print(
            f"{os.cpu_count()} cores, load average (1 min) {min(loads):.2f} to {max(loads):.2f} "
            f"during the run; {args.duration} s per run after {args.warmup} s of warm-up, "
            f"{args.connections} connections, median of {args.rounds} rounds; "
            f"{elapsed / 60:.1f} min in all."
        )
    else:
        print(f"{os.cpu_count()} cores; {elapsed / 60:.1f} min in all.")
    if renders:
        print("render ms: in process, page cache bypassed (first view of a URL since a change).")
    if any(row["page"].startswith("longtail") for row in rows):
        print(
            f"longtail-*: page cache off (PAGE_CACHE_MB=0), a random one of up to "
            f"{args.longtail_urls:,} URLs per request (posts, or tags)"
            + (
                f"; longtail-signed-in: the posts' run with the session cookie of "
                f"{generate.AUTHORS[0][0]}, signed in through /login."
                if any(row["page"] == "longtail-signed-in" for row in rows)
                else "."
            )
        )
    for line in lines:
        print(line)
    for problem in problems:
        print(f"NOTE: {problem}")
    print(f"saved {saved.relative_to(ROOT)}")
    failed = [row for row in rows if row["errors"]]
    if failed:
        for row in failed:
            print(
                f"FAILED: {row['config']}/{row['db']}/{row['posts']}/{row['page']} "
                f"{row['target']}: {row['status_errors']} statuses of 400 or more (any but 2xx "
                f"in a long-tail run), {row['socket_errors']} socket errors, answered "
                f"{row['checked_status']}",
                file=sys.stderr,
            )
        return 1
    return 0


def _json(report: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)

    return json.dumps(report, indent=2, default=plain) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    def numbers(text: str) -> list[int]:
        return sorted({int(part.replace("_", "")) for part in text.split(",") if part})

    def names(allowed: tuple[str, ...]) -> Any:
        def parse(text: str) -> list[str]:
            chosen = list(allowed) if text == "all" else [p for p in text.split(",") if p]
            unknown = set(chosen) - set(allowed)
            if unknown or not chosen:
                raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (or all)")
            return [name for name in allowed if name in chosen]

        return parse

    parser.add_argument(
        "--sizes", type=numbers, default=list(SIZES), help="posts per blog [100,10000,100000]"
    )
    parser.add_argument(
        "--configs",
        type=names(tuple(load.CONFIGS)),
        default=list(load.CONFIGS),
        help="gunicorn worker configurations [sync,gthread]",
    )
    parser.add_argument(
        "--gthread-at",
        choices=("largest", "all"),
        default="largest",
        help="sizes gthread runs at: the largest only (the default: it keeps the full "
        "matrix under 15 minutes) or all",
    )
    parser.add_argument(
        "--pages",
        type=names(load.PAGE_KINDS),
        default=list(load.DEFAULT_PAGES),
        help=f"page kinds to load [{','.join(load.DEFAULT_PAGES)}]; also archive, or all",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run [10]")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run [1]")
    parser.add_argument("--connections", type=int, default=32, help="open connections [32]")
    parser.add_argument("--rounds", type=int, default=2, help="rounds [2]")
    parser.add_argument("--renders", type=int, default=3, help="in-process renders per page [3]")
    parser.add_argument("--saves", type=int, default=20, help="posts saved through the editor [20]")
    parser.add_argument("--save-words", type=int, default=2000, help="words per saved post [2000]")
    parser.add_argument(
        "--cpu-calls",
        type=int,
        default=20,
        help="in-process calls per page for the CPU targets, page cache off; 0: none [20]",
    )
    parts = parser.add_argument_group(
        "parts (by default all of them run; the sizes' SQLite blogs and PostgreSQL's)"
    )
    parts.add_argument(
        "--longtail",
        action="store_true",
        help="only the long-tail runs (page cache off, random URLs) and the ceiling",
    )
    parts.add_argument("--no-longtail", action="store_true", help="leave the long-tail runs out")
    parts.add_argument(
        "--postgres",
        action="store_true",
        help="only PostgreSQL: its reader pages, long-tail run and in-process CPU",
    )
    parts.add_argument("--no-postgres", action="store_true", help="leave PostgreSQL out")
    parts.add_argument(
        "--in-process-only",
        action="store_true",
        help="no server and no wrk: renders, CPU per request and saves, in process",
    )
    parts.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL),
        help=f"database of its own, created if missing [{POSTGRES_URL}]",
    )
    parts.add_argument(
        "--postgres-posts",
        type=int,
        default=POSTGRES_POSTS,
        help=f"posts of the PostgreSQL blog [{POSTGRES_POSTS}]",
    )
    parts.add_argument(
        "--longtail-urls",
        type=int,
        default=load.LONGTAIL_URLS,
        help=f"URLs a long-tail run picks from [{load.LONGTAIL_URLS}]",
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.connections, args.rounds) < 1 or not args.sizes:
        parser.error("--duration, --warmup, --connections and --rounds must be at least 1")
    if args.longtail and (args.no_longtail or args.in_process_only):
        parser.error("--longtail goes with neither --no-longtail nor --in-process-only")
    if args.postgres and args.no_postgres:
        parser.error("--postgres and --no-postgres: choose one")
    if min(args.longtail_urls, args.postgres_posts) < 1:
        parser.error("--longtail-urls and --postgres-posts must be at least 1")
    # Two axes: what runs (reader pages, long-tail runs, in process) and on which database.
    args.parts = {"pages", "longtail", "in-process"}
    if args.longtail:
        args.parts = {"longtail"}
    elif args.in_process_only:
        args.parts = {"in-process"}
    if args.no_longtail:
        args.parts.discard("longtail")
    args.databases = {"postgres"} if args.postgres else {"sqlite", "postgres"}
    if args.no_postgres:
        args.databases.discard("postgres")
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
