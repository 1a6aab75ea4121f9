"""Statistics benchmark (#22): /stats on a big blog with years of day buckets, and what
counting costs the post page.

    .venv/bin/python bench/stats.py                         # 100,000 posts, 3 years (make bench)
    .venv/bin/python bench/stats.py --posts 10000 --days 400 --calls 10

The blog is bench/generate.py's, in bench/data/blog-N.sqlite3 (built, or reused as
bench/search.py does). The statistics go to a counters' file of this run's own in a
temporary folder (the blog's own `-views` file is left alone): --days days of day buckets
ending today, --per-day posts read each day (most reads on a few posts, as in life), the
home page, 50 tag pages and search, 40 referring domains a day, 60 search terms a day and
3 feed readers.

/stats: signed in through /login in process (the test client), as the admin `ada` (the
whole site) and as the author `grace` (her posts), for 7, 30 and 365 days, in two rounds,
each in a new app (a worker with nothing in its memory): first with no window kept
(stats_windows empty: the first render sums the past days and keeps them, what the first
visit of a day pays when the job has not run), then after the periodic job
(stats.keep_windows, timed) kept the site's windows. For each: the first render (in a
worker whose templates are compiled: the day is new, not the process), and the median
and p95 of --calls renders after it. Target: every render under 100 ms (the
author's first render of a day sums her own windows: the job keeps the site's only).
The kept rows' JSON sizes and decoding times are printed too.

The post page, with the page cache warm, called as gunicorn calls it (prebuilt environs)
--post-calls times with a browser's User-Agent and a new address each time (every call a
counted view: the slowest case), with STATS_ENABLED on and off, against bench/hello.py's
bare WSGI app called the same way: the ratio to that ceiling, in CPU time per call, with
counting on and off. Prints a table and saves JSON in bench/results/. Exits 1 if a
median misses its target.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for folder in (ROOT, BENCH):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import framework  # noqa: E402
import generate  # noqa: E402
import hello  # noqa: E402
from saving import save_results  # noqa: E402
from search import ensure_database, sqlite_path  # noqa: E402

from pyproject.app import create_app  # noqa: E402
from pyproject.blog.db import get_view_counts  # noqa: E402
from pyproject.blog.stats import Kept, get_statistics, keep_windows  # noqa: E402
from pyproject.lib import App  # noqa: E402

TARGET_MS = 100.0
WINDOWS = (7, 30, 365)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
DOMAINS = [f"site{n}.example.org" for n in range(200)] + ["search engines"]
WORDS = [w.lower() for w in generate.TECH_WORDS]


def make_app(database: Path, folder: Path, *, counting: bool) -> App:
    app = create_app(
        {
            "SECRET_KEY": "bench-secret-key",
            "DEBUG": False,
            "BASE_URL": "http://localhost",
            "DATABASE_URL": generate.sqlite_url(database),
            "INSTANCE_PATH": str(folder),
            "LOG_LEVEL": "WARNING",
            "STATS_ENABLED": counting,
        }
    )
    # This run's own counters' file: the blog's `-views` file stays as other benches left it.
    get_view_counts(app).path = str(folder / ("views.sqlite3" if counting else "views-off.sqlite3"))
    return app


def fill(app: App, database: Path, days: int, per_day: int, seed: int = 2026) -> dict[str, Any]:
    """Write `days` days of day buckets (ending today) into the app's counters' file."""
    started = time.perf_counter()
    stats = get_statistics(app)
    stats.salt()  # makes the tables in the counters' file
    with sqlite3.connect(database) as site:
        posts = site.execute(
            "SELECT id, author_id FROM posts WHERE status = 'published' AND deleted_at IS NULL"
        ).fetchall()
        tags = [row[0] for row in site.execute("SELECT slug FROM tags LIMIT 50")]
    authors = dict(posts)
    ids = [post_id for post_id, _ in posts]
    rng = random.Random(seed)
    today = stats.day()
    views_rows, referrer_rows, search_rows, reader_rows = [], [], [], []
    for back in range(days):
        day = (today - timedelta(days=back)).isoformat()
        read: dict[int, int] = {}
        while len(read) < min(per_day, len(ids)):
            # Most reads on a few posts: a rank drawn from a long-tailed distribution.
            rank = int(rng.paretovariate(1.1) * 20) % len(ids)
            post_id = ids[-1 - rank] if rng.random() < 0.7 else rng.choice(ids)
            read[post_id] = read.get(post_id, 0) + rng.randint(1, 40)
        for post_id, count in read.items():
            page = f"post:{post_id}"
            views_rows.append((day, page, post_id, authors[post_id], count))
        for page in ("home", "search", *(f"tag:{slug}" for slug in tags)):
            views_rows.append((day, page, None, None, rng.randint(1, 500)))
        for post_id in rng.sample(list(read), min(40, len(read))):
            domain = rng.choice(DOMAINS)
            referrer_rows.append((day, f"post:{post_id}", domain, post_id, authors[post_id], 3))
        for term in {" ".join(rng.sample(WORDS, rng.randint(1, 2))) for _ in range(60)}:
            search_rows.append((day, term, rng.randint(1, 30), rng.choice((0, 3, 10))))
        for reader in ("Feedly", "Inoreader", "NewsBlur Feed Fetcher"):
            reader_rows.append((day, reader, "/feed.atom", rng.randint(10, 900)))
    with sqlite3.connect(get_view_counts(app).path) as counters:
        counters.executemany(
            "INSERT OR IGNORE INTO stats_views (day, page, period, post_id, author_id, views)"
            " VALUES (?, ?, 'day', ?, ?, ?)",
            views_rows,
        )
        counters.executemany(
            "INSERT OR IGNORE INTO stats_referrers"
            " (day, page, referrer, period, post_id, author_id, views)"
            " VALUES (?, ?, ?, 'day', ?, ?, ?)",
            referrer_rows,
        )
        counters.executemany(
            "INSERT OR IGNORE INTO stats_searches (day, term, searches, found) VALUES (?, ?, ?, ?)",
            search_rows,
        )
        counters.executemany(
            "INSERT OR IGNORE INTO stats_feed_readers (day, reader, feed, subscribers)"
            " VALUES (?, ?, ?, ?)",
            reader_rows,
        )
        counters.execute("ANALYZE")
    stats.changed_past()  # past days written behind the app's back: kept windows are stale
    return {
        "days": days,
        "view_rows": len(views_rows),
        "referrer_rows": len(referrer_rows),
        "search_rows": len(search_rows),
        "seconds": round(time.perf_counter() - started, 1),
    }


def time_stats(app: App, username: str, calls: int) -> dict[str, Any]:
    """Give the first and the median render time of /stats for each window, in ms."""
    client = app.test_client()
    form = client.get("/login").html.select_one("form input[name=csrf_token]")
    signed = client.post(
        "/login",
        data={"csrf_token": form["value"], "login": username, "password": generate.PASSWORD},
    )
    assert signed.status_code == 303, f"{username} could not sign in: {signed.status_code}"
    figures: dict[str, Any] = {}
    for days in WINDOWS:
        path = f"/stats?days={days}"
        started = time.perf_counter()
        first = client.get(path)
        cold = (time.perf_counter() - started) * 1000
        assert first.status_code == 200, f"{path}: {first.status_code}"
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
        figures[str(days)] = {
            "first_ms": round(cold, 1),
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(sorted(times)[int(len(times) * 0.95) - 1], 1),
            "posts_shown": first.text.count('class="trend"'),
        }
    return figures


def running_worker(app: App) -> App:
    """Give the app as a worker that has served /stats on earlier days: its templates
    compiled, so a first render times the new day (its sums), not the process's start."""
    app.jinja_env.get_template("stats/index.html")
    return app


def forget_windows(app: App) -> None:
    """Empty stats_windows (no worker or job has kept a window yet)."""
    with sqlite3.connect(get_view_counts(app).path) as counters:
        counters.execute("DELETE FROM stats_windows")


def kept_rows(app: App) -> dict[str, Any]:
    """Give the kept rows' sizes and what decoding them costs (ms, each row once)."""
    with sqlite3.connect(get_view_counts(app).path) as counters:
        rows = counters.execute("SELECT kind, sums FROM stats_windows").fetchall()
    started = time.perf_counter()
    for kind, text in rows:
        Kept.decode(kind, text)
    decode_ms = (time.perf_counter() - started) * 1000
    sizes = [len(text) for _, text in rows]
    return {
        "rows": len(rows),
        "bytes_total": sum(sizes),
        "bytes_largest": max(sizes, default=0),
        "decode_all_ms": round(decode_ms, 2),
    }


def cpu_per_call(app: Any, path: str, calls: int, *, vary_address: bool) -> float:
    """Call a WSGI app `calls` times as gunicorn would; give CPU microseconds per call."""
    base = framework.prebuilt_environ(path)
    base["HTTP_USER_AGENT"] = BROWSER

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise AssertionError(f"{path} answered {status}")

    started = time.thread_time()
    for number in range(calls):
        environ = dict(base)
        if vary_address:
            environ["REMOTE_ADDR"] = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.thread_time() - started) / calls * 1e6


def time_post_page(database: Path, folder: Path, calls: int) -> dict[str, Any]:
    """Give the post page's CPU per call and ratio to the ceiling, counting on and off."""
    with sqlite3.connect(database) as site:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
        slug = site.execute(
            "SELECT slug FROM posts WHERE status = 'published' AND deleted_at IS NULL"
            " AND published_at <= ? ORDER BY published_at DESC LIMIT 1 OFFSET 3",
            (now,),
        ).fetchone()[0]
    path = f"/posts/{slug}"
    figures: dict[str, Any] = {"path": path}
    apps = {"on": make_app(database, folder, counting=True)}
    apps["off"] = make_app(database, folder, counting=False)
    for app in apps.values():
        cpu_per_call(app, path, 50, vary_address=True)  # warm: the page cache holds it
    rounds: dict[str, list[float]] = {"ceiling": [], "on": [], "off": []}
    for _ in range(3):  # alternating, so a busy moment of the machine hits all alike
        rounds["ceiling"].append(cpu_per_call(hello.app, "/", calls, vary_address=True))
        for name, app in apps.items():
            rounds[name].append(cpu_per_call(app, path, calls, vary_address=True))
    ceiling = statistics.median(rounds["ceiling"])
    for name in ("on", "off"):
        cpu = statistics.median(rounds[name])
        figures[name] = {"cpu_us": round(cpu, 1), "ratio_to_ceiling": round(ceiling / cpu, 3)}
    figures["ceiling_cpu_us"] = round(ceiling, 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3 * 365)
    parser.add_argument("--per-day", type=int, default=400, help="posts read each day")
    parser.add_argument("--calls", type=int, default=20, help="renders of /stats per window")
    parser.add_argument("--post-calls", type=int, default=3000, help="post page calls a round")
    args = parser.parse_args(argv)

    database = sqlite_path(args.posts)
    built = ensure_database(generate.sqlite_url(database), args.posts)
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        folder = Path(tmp)
        app = make_app(database, folder, counting=True)
        filled = fill(app, database, args.days, args.per_day)
        print(
            f"{filled['view_rows']:,} view rows, {filled['referrer_rows']:,} referrer rows,"
            f" {filled['search_rows']:,} search rows over {args.days} days"
            f" in {filled['seconds']} s"
        )
        rounds: dict[str, dict[str, Any]] = {}
        # No window kept: each first render sums its past days (and keeps them).
        forget_windows(app)
        cold = running_worker(make_app(database, folder, counting=True))
        rounds["no job"] = {
            "admin (ada)": time_stats(cold, "ada", args.calls),
            "author (grace)": time_stats(cold, "grace", args.calls),
        }
        # The job has run (just after midnight): a new worker finds the site's windows kept.
        forget_windows(app)
        worker = make_app(database, folder, counting=True)
        started = time.perf_counter()
        made = keep_windows(worker)
        job = {"windows": made, "seconds": round(time.perf_counter() - started, 2)}
        kept = kept_rows(worker)
        warm = running_worker(make_app(database, folder, counting=True))
        rounds["job run"] = {
            "admin (ada)": time_stats(warm, "ada", args.calls),
            "author (grace)": time_stats(warm, "grace", args.calls),
        }
        post = time_post_page(database, folder, args.post_calls)
    print(
        f"\n/stats, {args.posts:,} posts, {args.days} days of day buckets"
        f" (ms; target: under {TARGET_MS:.0f})"
    )
    print(f"{'round':<8} {'who':<16} {'days':>5} {'first':>8} {'median':>8} {'p95':>8}")
    missed = []
    for name, pages in rounds.items():
        for who, windows in pages.items():
            for days, row in windows.items():
                print(
                    f"{name:<8} {who:<16} {days:>5} {row['first_ms']:>8.1f}"
                    f" {row['median_ms']:>8.1f} {row['p95_ms']:>8.1f}"
                )
                if row["median_ms"] >= TARGET_MS:
                    missed.append(f"/stats?days={days} as {who}: {row['median_ms']} ms")
                if name == "job run" and who.startswith("admin") and row["first_ms"] >= TARGET_MS:
                    missed.append(f"first /stats?days={days} after the job: {row['first_ms']} ms")
    print(
        f"\nthe job: {job['windows']} site-wide windows summed in {job['seconds']} s;"
        f" {kept['rows']} kept rows, {kept['bytes_total']:,} bytes of JSON"
        f" (largest {kept['bytes_largest']:,}), all decoded in {kept['decode_all_ms']} ms"
    )
    print(f"\npost page {post['path']}, page cache warm, a counted view every call (CPU µs/call)")
    print(f"ceiling (bare WSGI): {post['ceiling_cpu_us']} µs")
    for name in ("off", "on"):
        row = post[name]
        print(
            f"counting {name:<3}: {row['cpu_us']:>8.1f} µs,"
            f" ratio to the ceiling {row['ratio_to_ceiling']}"
        )
    saved = save_results(
        "stats",
        {
            "args": vars(args),
            "built": built,
            "filled": filled,
            "stats": rounds,
            "job": job,
            "kept": kept,
            "post": post,
        },
    )
    print(f"\nsaved {saved}")
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
