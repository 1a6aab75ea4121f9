"""What comments cost a post page, in process: a post with none against one with 10,000.

    .venv/bin/python bench/comments.py [--comments 10000] [--calls 500] [--profile]

Builds a blog of 2,000 generated posts (bench/data/blog-2000.sqlite3, made by bench/run.py
or now), copies it, gives one post `--comments` approved comments (every tenth answered
by a reply) and asks for that post and for one without comments as a reader whom the page
cache does not serve (a session cookie keeps it out: what the first reader after a change
pays). Prints CPU per page and the ratio of the two, measured in the same run; the issue's
target (#18) is that the page with comments stays within the post page's own target
(1.5 ms at 100,000 posts, bench/README.md).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import generate
import load
import profile_pages
import run
from sqlalchemy import insert, select


def add_comments(site: Any, post_id: int, count: int) -> None:
    from pyproject.blog.comments import recount
    from pyproject.blog.db import get_database
    from pyproject.blog.models import Comment, utcnow

    now = utcnow()
    rows = [
        {
            "post_id": post_id,
            "name": f"Reader {i}",
            "website": f"https://reader{i}.example/" if i % 3 == 0 else "",
            "body_md": f"Comment number {i}, with *a little* emphasis.",
            "body_html": f"<p>Comment number {i}, with <em>a little</em> emphasis.</p>",
            "state": "approved",
            "created_at": now,
        }
        for i in range(count)
    ]
    with get_database(site).write() as db:
        db.execute(insert(Comment), rows)
        tops = list(db.scalars(select(Comment.id).where(Comment.post_id == post_id)))
        replies = [
            {
                "post_id": post_id,
                "parent_id": parent,
                "name": "The author",
                "body_md": "Thank you.",
                "body_html": "<p>Thank you.</p>",
                "state": "approved",
                "created_at": now,
            }
            for parent in tops[::10]
        ]
        db.execute(insert(Comment), replies)
        recount(db, [post_id])  # bulk rows pass the ORM's change tracking by


def cpu_per_call(site: Any, page: load.Page, calls: int, *, profile: bool = False) -> float:
    for _ in range(3):  # compile templates
        status = profile_pages.call(site, page, "bench")
    if not status.startswith("200"):
        raise SystemExit(f"{page.target} answered {status}")
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.thread_time()
    for _ in range(calls):
        profile_pages.call(site, page, "bench")
    spent = (time.thread_time() - started) / calls
    if profiler:
        profiler.disable()
        print(f"== {page.target}")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top rows")
    args = parser.parse_args(argv)
    source = run.ensure_database(2000)

    from pyproject.blog.db import get_database
    from pyproject.blog.models import Post

    with tempfile.TemporaryDirectory(prefix="pyproject-bench-comments-") as tmp:
        copy = Path(tmp) / "blog.sqlite3"
        shutil.copy(source, copy)
        site = run.make_site(generate.sqlite_url(copy), tmp)
        with get_database(site).read() as db:
            quiet, busy = db.execute(
                select(Post.id, Post.slug)
                .where(Post.status == "published")
                .order_by(Post.id.desc())
                .limit(2)
            ).all()
        add_comments(site, busy.id, args.comments)
        pages = {
            "without comments": load.Page("post", f"/posts/{quiet.slug}"),
            f"with {args.comments:,} comments": load.Page("post", f"/posts/{busy.slug}"),
        }
        spent = {
            name: cpu_per_call(site, page, args.calls, profile=args.profile)
            for name, page in pages.items()
        }
        get_database(site).dispose()
    for name, seconds in spent.items():
        print(f"post page {name:>24}: {seconds * 1e6:8.0f} us CPU per uncached call")
    plain, busy_cost = spent.values()
    print(f"ratio (with / without): {busy_cost / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
