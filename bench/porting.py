"""Export and import at size (#16): the export of a 10,000-post blog, and the import of a
generated 10,000-post WordPress file.

    .venv/bin/python bench/porting.py                 # 10,000 posts (make bench)
    .venv/bin/python bench/porting.py --posts 1000

The blog is bench/generate.py's (kept in bench/data/, made on first use). The export runs
in process into a temporary file, as `python main.py export` does: reported are the wall
time (target: under 20 s), the zip's size and entries, and the process's peak resident
memory. A second export checks the zip is byte-identical.

The WXR import: a WordPress export of the same number of posts is generated (block-editor
HTML, 5 authors, 50 tags, 10 categories, a few drafts and scheduled posts) and imported
into a fresh SQLite site by `importing.run_import`, in a child process started for it as
the job worker would run it: reported are the import's wall time (target: under 60 s) and
the child's peak resident memory (target: under 300 MB).

Results are printed and saved as JSON in bench/results/. Exits 1 if a target is missed.
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


# --- WordPress import (helper G) ---------------------------------------------------------------

WXR_IMPORT_TARGET_S = 60.0
WXR_MEMORY_TARGET_MB = 300.0
_WXR_TEXT = (
    "harbour light morning river stone garden window letter paper coffee winter summer "
    "market bridge station music silence forest mountain village story evening season "
    "kitchen journey answer question machine lantern"
)


def write_wxr(path: Path, posts: int, seed: int = 16) -> None:
    """Write a WXR file of `posts` posts as WordPress exports them (block editor HTML, 5
    authors, 50 tags and 10 categories, a few drafts and scheduled posts, one <!--more-->
    in four), streaming so the generator itself stays small."""
    import random
    from xml.sax.saxutils import escape

    rng = random.Random(seed)
    vocabulary = _WXR_TEXT.split()

    def words(n: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(n))

    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8" ?>\n<rss version="2.0" '
            'xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:wp="http://wordpress.org/export/1.2/">\n<channel>\n'
            "<title>Bench</title><link>https://old.example.com</link>\n"
            "<wp:wxr_version>1.2</wp:wxr_version>\n"
            "<wp:base_site_url>https://old.example.com</wp:base_site_url>\n"
        )
        for a in range(5):
            out.write(
                f"<wp:author><wp:author_login><![CDATA[writer{a}]]></wp:author_login>"
                f"<wp:author_email><![CDATA[writer{a}@old.example.com]]></wp:author_email>"
                f"<wp:author_display_name><![CDATA[Writer {a}]]></wp:author_display_name>"
                "</wp:author>\n"
            )
        for n in range(1, posts + 1):
            status = rng.choices(["publish", "draft", "future"], [96, 3, 1])[0]
            year = 2015 + n * 10 // posts
            gmt = (
                f"{year if status != 'future' else 2040}-{1 + n % 12:02d}-{1 + n % 28:02d} 10:00:00"
            )
            slug = f"{words(3).replace(' ', '-')}-{n}"
            blocks = []
            for p in range(rng.randint(4, 12)):
                if p == 2 and n % 4 == 0:
                    blocks.append("<!-- wp:more -->\n<!--more-->\n<!-- /wp:more -->")
                if p == 3:
                    blocks.append(
                        f'<!-- wp:heading -->\n<h2 class="wp-block-heading">{words(4)}</h2>'
                        "\n<!-- /wp:heading -->"
                    )
                elif p == 5:
                    items = "".join(f"<li>{words(6)}</li>" for _ in range(4))
                    blocks.append(f"<!-- wp:list -->\n<ul>{items}</ul>\n<!-- /wp:list -->")
                else:
                    text = escape(words(rng.randint(40, 90)))
                    link = f' <a href="https://example.org/{n}/{p}">{words(2)}</a>'
                    blocks.append(
                        f"<!-- wp:paragraph -->\n<p><strong>{words(2)}</strong> {text}{link}.</p>"
                        "\n<!-- /wp:paragraph -->"
                    )
            tags = "".join(
                f'<category domain="post_tag" nicename="tag-{t}"><![CDATA[Tag {t}]]></category>'
                for t in rng.sample(range(50), rng.randint(1, 4))
            )
            category = rng.randrange(10)
            out.write(
                f"<item><title><![CDATA[{words(5).title()} {n}]]></title>"
                f"<link>https://old.example.com/{year}/05/{slug}/</link>"
                f"<dc:creator><![CDATA[writer{n % 5}]]></dc:creator>"
                f'<guid isPermaLink="false">https://old.example.com/?p={n}</guid>'
                f"<content:encoded><![CDATA[{chr(10).join(blocks)}]]></content:encoded>"
                "<excerpt:encoded><![CDATA[]]></excerpt:encoded>"
                f"<wp:post_id>{n}</wp:post_id><wp:post_date><![CDATA[{gmt}]]></wp:post_date>"
                f"<wp:post_date_gmt><![CDATA[{gmt}]]></wp:post_date_gmt>"
                f"<wp:post_name><![CDATA[{slug}]]></wp:post_name>"
                f"<wp:status><![CDATA[{status}]]></wp:status>"
                "<wp:post_type><![CDATA[post]]></wp:post_type>"
                f'<category domain="category" nicename="cat-{category}"><![CDATA[Category '
                f"{category}]]></category>{tags}</item>\n"
            )
        out.write("</channel>\n</rss>\n")


def _wxr_import_child(folder: str, wxr: str) -> None:
    """In a fresh process, as the job worker would be: import the file; print the figures."""
    import json
    import resource

    from pyproject.app import create_app
    from pyproject.blog.auth import create_user
    from pyproject.blog.db import get_database
    from pyproject.blog.importing import Options, run_import
    from pyproject.blog.migrate import upgrade

    app = create_app(
        {
            "SECRET_KEY": "bench",
            "DATABASE_URL": f"sqlite:///{folder}/blog.sqlite3",
            "INSTANCE_PATH": folder,
            "LOG_LEVEL": "WARNING",
        }
    )
    upgrade(get_database(app).engine)
    with get_database(app).write() as db:
        create_user(db, username="admin", email="admin@example.com",
                    password="bench passphrase 1", role="admin")  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = run_import(app, Path(wxr), Options())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "created": report.count("created"),
                "skipped": report.count("skipped"),
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_before_import_mb": round(before / 1024, 1),
            }
        )
    )


def bench_wxr_import(posts: int = 10_000) -> dict[str, Any]:
    """Import a generated `posts`-post WXR file into a fresh SQLite site in a child process;
    give its seconds and peak memory (the import job's worker would hold the same)."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-wxr-") as folder:
        wxr = Path(folder) / "export.xml"
        started = time.perf_counter()
        write_wxr(wxr, posts)
        generated = time.perf_counter() - started
        code = (
            "import sys; sys.path.insert(0, 'bench'); import porting; "
            f"porting._wxr_import_child({folder!r}, {str(wxr)!r})"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"the WXR import failed:\n{result.stderr[-3000:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        figures.update(
            posts=posts,
            file_mb=round(wxr.stat().st_size / 1e6, 1),
            generate_seconds=round(generated, 2),
            target_seconds=WXR_IMPORT_TARGET_S,
            target_memory_mb=WXR_MEMORY_TARGET_MB,
        )
    figures["ok"] = (
        figures["seconds"] < WXR_IMPORT_TARGET_S and figures["peak_rss_mb"] < WXR_MEMORY_TARGET_MB
    )
    print(
        f"WXR import of {posts} posts ({figures['file_mb']} MB): {figures['seconds']} s "
        f"(target < {WXR_IMPORT_TARGET_S:.0f} s), peak memory {figures['peak_rss_mb']} MB "
        f"(target < {WXR_MEMORY_TARGET_MB:.0f} MB){'' if figures['ok'] else '  MISSED'}",
        flush=True,
    )
    return figures


EXTRA_BENCHES.append(("wxr_import", bench_wxr_import))


if __name__ == "__main__":
    sys.exit(main())
