"""Lighthouse audit: performance, accessibility, best practices and SEO of the reader pages.

Starts `gunicorn main:app` (as `make run` does, through the end-to-end tests' helper) on
a fresh SQLite file, seeds it through the real forms (the setup page, three posts sent
from the editor's form: headings, code, a table, a footnote, tags; an About page from
/pages/new; a series of the three posts from the series forms), runs Lighthouse
(node_modules/.bin/lighthouse, pinned in package.json) with Debian's Chromium on the
home page, the first post, the page and the series page, with the mobile and the
desktop presets, prints the four scores and, for every category below its target, the
audits that cost it points. Each report is saved as JSON in bench/results/.

    .venv/bin/python bench/audit.py [--form mobile] [--form desktop]   (or: make audit)

Targets: 100 in accessibility, best practices and SEO; 95 or more in performance.
Exits 1 if a score is below its target, 2 if the tools or the server are missing or
Lighthouse fails on a page three times running.
"""

from __future__ import annotations

import argparse
import html
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CHROME = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
TARGETS = {"performance": 95, "accessibility": 100, "best-practices": 100, "seo": 100}
ATTEMPTS = 3

ADMIN = {
    "username": "ada",
    "email": "ada@example.com",
    "display_name": "Ada Lovelace",
    "password": "correct horse battery staple",
    "confirm": "correct horse battery staple",
}
PARAGRAPH = (
    "Every page is rendered on the server, so it works before any script arrives. "
    "The stylesheet is the same for phones and wide screens, in light and in dark."
)
POST_BODY = f"""Rendering happens once, when a post is saved.[^once] {PARAGRAPH}

## Install

{PARAGRAPH}

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```

## Configure

| Setting | Default | Meaning |
| --- | --- | --- |
| WORKERS | 0 | two per core, plus one |
| TIMEZONE | UTC | for entering and showing times |

{PARAGRAPH}

## Run

{PARAGRAPH} Read the [archive](/posts) for more.

[^once]: Reading a post then costs one query and no Markdown.
"""
POSTS = (
    ("Serving Python from a small WSGI framework", "Python, Web"),
    ("Highlighting code once, at save time", "Python, Markdown"),
    ("Pages that work before their script", "Web, Accessibility"),
)
PAGE_TITLE = "About this blog"
PAGE_BODY = f"""This blog is written by one person, about Python and the web. {PARAGRAPH}

## Why it exists

{PARAGRAPH} The [archive](/posts) lists every post.

## Contact

Write to ada@example.com; answers come within a week.
"""
SERIES = {
    "title": "Building a blog engine",
    "description": "How this blog serves, highlights and renders its pages, in three parts.",
}
# Lighthouse's own form factors: its default is a throttled phone; `--preset=desktop` a
# wide screen on a fast line. Both are audited, as readers come on both.
FORMS = {"mobile": None, "desktop": "desktop"}


# --- the server ----------------------------------------------------------------------------


def start_server(data_dir: Path) -> Any:
    """Start gunicorn on a fresh, migrated SQLite file; give its ServerHandle."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # The browser tests' way: migrate, then `main.py prepare` and gunicorn as `make run` does.
    from tests.browser.support import start_site

    return start_site(data_dir, {"SITE_DESCRIPTION": "Notes on Python and the web."})


class Browser:
    """Just enough of a browser for the forms: cookies, CSRF tokens, redirects followed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return response.read().decode()

    def submit(
        self, form_path: str, action: str, fields: dict[str, str], page: str | None = None
    ) -> str:
        """Open the page with the form (or use `page`, its HTML), send it with its CSRF
        token; give the final URL."""
        page = page if page is not None else self.get(form_path)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, f"no CSRF token on {form_path}"
        data = urllib.parse.urlencode({"csrf_token": token.group(1), **fields}).encode()
        request = urllib.request.Request(self.base_url + action, data=data, method="POST")
        with self.opener.open(request, timeout=10) as response:
            return response.geturl()


def seed(base_url: str) -> dict[str, str]:
    """Make the admin, then publish the posts, a page and a series through the forms.

    Give the URL of each page audited: the home page, the first post, the page and the
    series page.
    """
    browser = Browser(base_url)
    browser.submit("/setup", "/setup", ADMIN)
    posts = []
    for title, tags in POSTS:
        fields = {"title": title, "body": POST_BODY, "tags": tags, "status": "published"}
        posts.append(browser.submit("/posts/new", "/posts", fields))
    page_fields = {"title": PAGE_TITLE, "body": PAGE_BODY, "status": "published", "kind": "page"}
    page = browser.submit("/pages/new", "/posts", page_fields)
    # Start the series, then add the posts from its edit page's form, one at a time, in
    # the order they were written (the form offers them by title, valued by their id).
    edit = browser.submit("/series", "/series", SERIES)
    edit_path = urllib.parse.urlsplit(edit).path
    for title, _ in POSTS:
        form = browser.get(edit_path)
        option = re.search(rf'<option value="(\d+)"[^>]*>{re.escape(html.escape(title))}<', form)
        assert option, f"{title!r} is not offered on {edit_path}"
        browser.submit(edit_path, edit_path, {"action": "add", "post": option.group(1)}, form)
    series = base_url + edit_path.removesuffix("/edit")
    return {"home": base_url + "/", "post": posts[0], "page": page, "series": series}


# --- Lighthouse ------------------------------------------------------------------------------


def ensure_lighthouse() -> str | None:
    """Install node_modules from package-lock.json if Lighthouse is missing; give why not."""
    if LIGHTHOUSE.exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "Lighthouse needs Node.js and npm: install them, then run `npm ci`"
    print("Installing Lighthouse (npm ci) ...", file=sys.stderr)
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=False)
    return None if done.returncode == 0 and LIGHTHOUSE.exists() else "`npm ci` failed"


class LighthouseFailed(Exception):
    """Lighthouse could not audit a page, however many times it was asked."""


def run_lighthouse(url: str, output: Path, preset: str | None) -> dict[str, Any]:
    """Run Lighthouse on `url`, save its JSON report at `output` and give it parsed."""
    command = [
        str(LIGHTHOUSE),
        url,
        "--output=json",
        f"--output-path={output}",
        f"--chrome-flags={CHROME_FLAGS}",
        f"--only-categories={','.join(CATEGORIES)}",
        "--quiet",
    ]
    if preset:
        command.append(f"--preset={preset}")
    # On a busy machine Chromium's trace sometimes misses the navigation's start and
    # Lighthouse gives up (NO_NAVSTART, "please run Lighthouse again"): a page that fails
    # is audited again, up to ATTEMPTS times, before the run is called broken.
    for attempt in range(1, ATTEMPTS + 1):
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "CHROME_PATH": CHROME})
        if done.returncode == 0:
            return json.loads(output.read_text())
        print(f"Lighthouse failed on {url} (attempt {attempt} of {ATTEMPTS})", file=sys.stderr)
    raise LighthouseFailed(f"Lighthouse failed {ATTEMPTS} times on {url}")


def scores(report: dict[str, Any]) -> dict[str, int | None]:
    """Give each category's score out of 100 (None where Lighthouse could not score it)."""
    found = {}
    for name in CATEGORIES:
        score = report["categories"][name]["score"]
        found[name] = None if score is None else round(score * 100)
    return found


def what_costs_points(report: dict[str, Any], category: str) -> list[str]:
    """Give one line per scored audit of `category` that did not pass fully."""
    lines = []
    for ref in report["categories"][category]["auditRefs"]:
        audit = report["audits"][ref["id"]]
        if ref.get("weight", 0) == 0 or audit.get("score") is None or audit["score"] >= 1:
            continue
        shown = f" ({audit['displayValue']})" if audit.get("displayValue") else ""
        lines.append(f"{audit['id']}: {audit['title']}{shown}, score {audit['score']:.2f}")
        for item in (audit.get("details") or {}).get("items", [])[:3]:
            described = item.get("description") or item.get("url") or ""
            where = (item.get("sourceLocation") or {}).get("url")
            text = f"{described} [at {where}]" if where else str(described)
            if text:
                lines.append(f"    {text[:200]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--form",
        action="append",
        choices=list(FORMS),
        help="Lighthouse form factor (repeatable; default: mobile and desktop)",
    )
    args = parser.parse_args(argv)
    forms = args.form or list(FORMS)
    if not Path(CHROME).exists():
        print(f"Chromium is needed at {CHROME} (apt-get install chromium)", file=sys.stderr)
        return 2
    problem = ensure_lighthouse()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir = Path(tempfile.mkdtemp(prefix="pyproject-audit-"))
    try:
        server = start_server(data_dir)
    except (Exception, pytest.fail.Exception) as error:  # the helper fails as tests do
        print(f"The server did not start: {error}", file=sys.stderr)
        return 2
    reports: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        pages = seed(server.url)
        for form in forms:
            for name, url in pages.items():
                output = RESULTS / f"lighthouse-{name}-{form}-{stamp}.json"
                reports[name, form] = run_lighthouse(url, output, FORMS[form])
                print(f"Saved {output.relative_to(ROOT)}", file=sys.stderr)
    except LighthouseFailed as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    version = next(iter(reports.values()))["lighthouseVersion"]
    print(f"\nLighthouse {version}, Chromium at {CHROME}")
    print(f"{'page':<16}" + "".join(f"{name:>16}" for name in CATEGORIES))
    below = []
    for (name, form), report in reports.items():
        found = scores(report)
        label = f"{name} ({form})"
        print(f"{label:<16}" + "".join(f"{found[c]!s:>16}" for c in CATEGORIES))
        below += [(name, form, c) for c in CATEGORIES if found[c] is None or found[c] < TARGETS[c]]
    print(f"{'target':<16}" + "".join(f"{TARGETS[c]:>16}" for c in CATEGORIES))
    for name, form, category in below:
        print(f"\n{name} ({form}): {category} is below {TARGETS[category]}:")
        lines = what_costs_points(reports[name, form], category)
        for line in lines or ["(no single audit shown)"]:
            print(f"  {line}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
