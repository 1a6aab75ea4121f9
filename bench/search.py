"""Search benchmark: how long pyproject.blog.search.search() takes on blogs of 100 to 100,000 posts.

    .venv/bin/python bench/search.py [--sizes 100 10000 100000] [--repeat 25]
    .venv/bin/python bench/search.py --sizes 10000 --postgres-url postgresql+psycopg://...

For each size it builds a SQLite blog with bench/generate.py under bench/data/ (or reuses
the one there if it holds exactly that many posts and is migrated to head), then times
search() in process, first page of results, a fresh session per call as a request has,
after one warm-up call per query. The queries are chosen from the blog's own FTS5
vocabulary so that each category means the same thing at every size:

    common   the 5 topic words found in the most posts (most are in 70-85% of them)
    mid      the 5 words found in the nearest to 5% of posts (a typical topic word)
    rare     the 5 words found in the fewest posts
    two      5 two-word queries: common+common, common+rare, mid+mid, rare+rare
    none     3 words no post contains

It prints the median and p95 per category and overall, says whether the target (median
under 20 ms at 100,000 posts on SQLite) is met, and saves everything as JSON in
bench/results/. With --postgres-url the same sizes are also loaded into that database
(it is cleared first) and timed with the words chosen on SQLite (the generator is
seeded, so both hold the same posts). Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for folder in (ROOT, BENCH):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import generate  # noqa: E402
from saving import save_results  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from pyproject.blog.db import make_engine  # noqa: E402
from pyproject.blog.migrate import current_revision, head_revision  # noqa: E402
from pyproject.blog.search import search  # noqa: E402

SIZES = (100, 10_000, 100_000)
TARGET_SIZE, TARGET_MS = 100_000, 20.0
NO_MATCH = ("zyzzogeton", "qwxplortic", "frobnicatorium")
CATEGORIES = ("common", "mid", "rare", "two", "none")
MID_SHARE = 0.05


# --- databases ---------------------------------------------------------------------------


def sqlite_path(posts: int) -> Path:
    return generate.DATA / f"blog-{posts}.sqlite3"


def is_ready(database_url: str, posts: int) -> bool:
    """Give whether the database holds exactly `posts` posts and is migrated to head."""
    if generate.count_posts(database_url) != posts:
        return False
    engine = make_engine(database_url)
    try:
        return current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


def ensure_database(database_url: str, posts: int) -> dict[str, Any] | None:
    """Build the blog unless a right one is there; give the generator's summary if built."""
    if is_ready(database_url, posts):
        print(f"reusing {database_url} ({posts:,} posts)")
        return None
    print(f"building {database_url} ({posts:,} posts)")
    return generate.generate(database_url, posts, force=True)


# --- queries -----------------------------------------------------------------------------


def choose_queries(sqlite_url: str) -> dict[str, list[dict[str, Any]]]:
    """Give the queries of each category, with how many posts hold each word."""
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.bench_vocab "
                "USING fts5vocab(main, posts_fts, row)"
            )
            counts = dict(connection.exec_driver_sql("SELECT term, doc FROM bench_vocab").all())
    finally:
        engine.dispose()
    topic = sorted((w for w in set(generate.TECH_WORDS) if w in counts), key=counts.get)
    common = topic[::-1][:5]
    words = sorted((t for t in counts if t.isalpha() and len(t) >= 4), key=lambda t: (counts[t], t))
    rare = words[:5]
    total = max(counts.values())
    mid = sorted(words, key=lambda t: (abs(counts[t] - MID_SHARE * total), t))[:5]
    pairs = [
        (common[0], common[1]),
        (common[2], rare[0]),
        (common[4], rare[1]),
        (mid[0], mid[1]),
        (rare[2], rare[3]),
    ]

    def entry(query: str) -> dict[str, Any]:
        return {"q": query, "docs": [counts.get(w, 0) for w in query.split()]}

    return {
        "common": [entry(w) for w in common],
        "mid": [entry(w) for w in mid],
        "rare": [entry(w) for w in rare],
        "two": [entry(" ".join(pair)) for pair in pairs],
        "none": [entry(w) for w in NO_MATCH],
    }


# --- timing ------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_queries(
    database_url: str, queries: dict[str, list[dict[str, Any]]], repeat: int
) -> dict[str, Any]:
    """Give per-category and overall timings (ms) of search() on one database."""
    engine = make_engine(database_url)
    timings: dict[str, list[float]] = {category: [] for category in CATEGORIES}
    per_query = []
    try:
        for category in CATEGORIES:
            for query in queries[category]:
                with Session(engine) as db:
                    search(db, query["q"])  # warm-up: page cache, statement cache
                samples = []
                hits = 0
                for _ in range(repeat):
                    with Session(engine) as db:
                        started = time.perf_counter()
                        page = search(db, query["q"])
                        samples.append((time.perf_counter() - started) * 1000)
                    hits = len(page.hits)
                timings[category] += samples
                per_query.append(
                    {
                        **query,
                        "category": category,
                        "hits_on_page": hits,
                        "median_ms": round(statistics.median(samples), 3),
                        "p95_ms": round(percentile(samples, 0.95), 3),
                    }
                )
    finally:
        engine.dispose()
    everything = [t for category in CATEGORIES for t in timings[category]]
    summary = {
        category: {
            "median_ms": round(statistics.median(values), 3),
            "p95_ms": round(percentile(values, 0.95), 3),
        }
        for category, values in {**timings, "all": everything}.items()
    }
    return {"summary": summary, "queries": per_query}


# --- report ------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'engine':<10} {'posts':>8}  {'queries':<8} {'median ms':>10} {'p95 ms':>9}"
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        for category in (*CATEGORIES, "all"):
            stats = row["timings"]["summary"][category]
            print(
                f"{row['engine']:<10} {row['posts']:>8,}  {category:<8} "
                f"{stats['median_ms']:>10.2f} {stats['p95_ms']:>9.2f}"
            )
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=25, help="timed calls per query")
    parser.add_argument("--postgres-url", help="also load and time this PostgreSQL database")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    built: dict[str, Any] = {}
    for posts in args.sizes:
        url = generate.sqlite_url(sqlite_path(posts))
        summary = ensure_database(url, posts)
        if summary:
            built[f"sqlite-{posts}"] = summary
        queries = choose_queries(url)
        print(f"timing SQLite, {posts:,} posts")
        timings = time_queries(url, queries, args.repeat)
        rows.append({"engine": "sqlite", "posts": posts, "timings": timings})
        if args.postgres_url:
            summary = ensure_database(args.postgres_url, posts)
            if summary:
                built[f"postgresql-{posts}"] = summary
            print(f"timing PostgreSQL, {posts:,} posts")
            timings = time_queries(args.postgres_url, queries, args.repeat)
            rows.append({"engine": "postgresql", "posts": posts, "timings": timings})

    print_table(rows)
    target = next((r for r in rows if r["engine"] == "sqlite" and r["posts"] == TARGET_SIZE), None)
    met = None
    if target is None:
        print(f"Target not measured: run with {TARGET_SIZE:,} among --sizes.")
    else:
        median = target["timings"]["summary"]["all"]["median_ms"]
        met = median < TARGET_MS
        verdict = "MET" if met else "NOT MET"
        print(
            f"Target (median under {TARGET_MS:.0f} ms at {TARGET_SIZE:,} posts on SQLite): "
            f"{verdict}, median {median:.2f} ms"
        )

    out = save_results(
        "search",
        {
            "repeat": args.repeat,
            "target": {"posts": TARGET_SIZE, "median_ms": TARGET_MS, "met": met},
            "built": built,
            "results": rows,
        },
    )
    print(f"saved {out.relative_to(ROOT)}")
    return 0 if met in (True, None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
