"""Export and import at size (#16): the export of a 10,000-post blog, and (helper G's part,
added below) the import of a generated 10,000-post WordPress file.

    .venv/bin/python bench/porting.py                 # 10,000 posts (make bench)
    .venv/bin/python bench/porting.py --posts 1000

The blog is bench/generate.py's (kept in bench/data/, made on first use). The export runs
in process into a temporary file, as `python main.py export` does: reported are the wall
time (target: under 20 s), the zip's size and entries, and the process's peak resident
memory. A second export checks the zip is byte-identical. Results are printed and saved as
JSON in bench/results/. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import generate  # noqa: E402

from pyproject.app import create_app  # noqa: E402
from pyproject.blog.exporting import write_export  # noqa: E402

EXPORT_TARGET_S = 20.0
RESULTS = ROOT / "bench" / "results"


def blog_database(posts: int) -> str:
    """Give the URL of a generated blog of `posts` posts (made once, kept in bench/data/)."""
    generate.DATA.mkdir(parents=True, exist_ok=True)
    url = generate.sqlite_url(generate.DATA / f"blog-{posts}.sqlite3")
    if generate.count_posts(url) != posts:
        print(f"generating a blog of {posts} posts ...", flush=True)
        generate.generate(url, posts)
    return url


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_export(posts: int) -> dict[str, Any]:
    url = blog_database(posts)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "SECRET_KEY": "bench",
                "DATABASE_URL": url,
                "INSTANCE_PATH": folder,
                "LOG_LEVEL": "WARNING",
            }
        )
        digests = []
        timings = []
        for run in range(2):
            target = Path(folder) / f"export-{run}.zip"
            started = time.perf_counter()
            with target.open("w+b") as out:
                summary = write_export(app, out, with_revisions=False)
            timings.append(time.perf_counter() - started)
            digests.append(target.read_bytes())
        with zipfile.ZipFile(Path(folder) / "export-0.zip") as archive:
            entries = len(archive.namelist())
        size = len(digests[0])
    return {
        "posts": posts,
        "exported_posts": summary.posts,
        "seconds": round(min(timings), 2),
        "seconds_each": [round(t, 2) for t in timings],
        "zip_mb": round(size / 1e6, 1),
        "entries": entries,
        "identical": digests[0] == digests[1],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "target_s": EXPORT_TARGET_S,
        "ok": min(timings) < EXPORT_TARGET_S and digests[0] == digests[1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    results["export"] = export = bench_export(args.posts)
    print(
        f"export of {export['posts']:,} posts: {export['seconds']} s "
        f"(target < {EXPORT_TARGET_S:.0f} s), {export['zip_mb']} MB in {export['entries']:,} "
        f"entries, byte-identical twice: {export['identical']}, "
        f"peak memory {export['peak_rss_mb']} MB"
    )
    for name, bench in EXTRA_BENCHES:  # helper G's WXR import, when present
        results[name] = bench(args.posts)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = results["when"].replace(":", "").replace("-", "")
    (RESULTS / f"porting-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r.get("ok", True) for r in results.values() if isinstance(r, dict)) else 1


# Further benches, (name, function(posts) -> dict with "ok"): the WXR import goes here.
EXTRA_BENCHES: list[tuple[str, Any]] = []


if __name__ == "__main__":
    sys.exit(main())
