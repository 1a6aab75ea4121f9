"""XSS (#17): the corpus through the site settings, pages, series and menu labels runs no script.

The settings' title, description, home intro and footer (Markdown) carry the whole corpus
over a few dozen saves and are checked on the pages that show them (home, a post, the
archive, the settings page with its change log, the feeds); every page's title and body
carry a chunk of it (the Markdown places the posts' corpus test uses); series titles and
descriptions are checked on the series page, its feed, the list and a post's "Part 1 of"
banner; menu labels on every page's header and footer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blog.conftest import Cast, form_of, make_blog_app, make_cast, slug_of, write_post
from blog.test_navigation import add_link
from blog.test_pages import write_page
from blog.test_series import add_part, start_series

from pyproject.blog.db import get_database
from pyproject.lib.testing import TestClient, TestResponse

from .checks import (
    CORPUS_FILE,
    CORPUS_MISSING,
    chunked,
    feed_problems,
    load_corpus,
    pack,
    parse_html,
    script_problems,
)
from .test_xss import in_markdown

pytestmark = pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING)


@pytest.fixture(scope="module")
def cast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    app = make_blog_app(tmp_path_factory.mktemp("xss-site"))
    yield make_cast(app)
    get_database(app).dispose()


@pytest.fixture(scope="module")
def payloads() -> list[str]:
    return load_corpus()


class Problems:
    def __init__(self, cast: Cast) -> None:
        self.cast = cast
        self.found: list[str] = []

    def routable(self, path: str) -> bool:
        return bool(self.cast.app.router.allowed_methods(path))

    def page(self, label: str, response: TestResponse, statuses: tuple[int, ...] = (200,)) -> None:
        if response.status_code not in statuses:
            self.found.append(f"{label}: status {response.status_code}")
            return
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("text/html"):
            for problem in script_problems(parse_html(response.data), routable=self.routable):
                self.found.append(f"{label}: {problem}")
        elif "xml" in kind:
            self.found.extend(f"{label}: {p}" for p in feed_problems(response.data))

    def get(self, client: TestClient, path: str) -> None:
        self.page(path, client.get(path))

    def check(self) -> None:
        assert not self.found, f"{len(self.found)} problems, the first:\n" + "\n".join(
            self.found[:15]
        )


def test_settings_fields_run_no_script(cast: Cast, payloads: list[str]) -> None:
    problems = Problems(cast)
    slug = slug_of(write_post(cast.author, title="A post under hostile settings"))
    form = form_of(cast.admin.get("/admin/settings"), "#settings-form")
    for number, chunk in enumerate(chunked(payloads, 250)):
        fields = {
            **form,
            "title": pack(chunk, 100),
            "description": pack(chunk, 300),
            "intro": pack(chunk, 20_000, "\n\n"),
            "footer": pack(reversed(chunk), 5_000, "\n\n"),
        }
        answer = cast.admin.post("/admin/settings", data=fields)
        problems.page(f"save {number}", answer, statuses=(303, 422))
        if answer.status_code == 422:
            continue
        for path in ("/", f"/posts/{slug}", "/posts", "/feed.atom", "/feed.rss"):
            problems.get(cast.anonymous, path)
        problems.get(cast.admin, "/admin/settings")  # the change log shows before and after
    problems.check()


def test_pages_run_no_script(cast: Cast, payloads: list[str]) -> None:
    problems = Problems(cast)
    for number, chunk in enumerate(chunked(payloads, 40)):
        answer = write_page(cast.author, title=pack(chunk, 200), body=in_markdown(chunk))
        problems.page(f"page {number}", answer, statuses=(303, 422))
        if answer.status_code == 303:
            problems.get(cast.anonymous, answer.location)
            problems.get(cast.author, answer.location)
    problems.get(cast.anonymous, "/sitemaps/1.xml")
    problems.check()


TITLE = "Part of hostile series"


def test_series_run_no_script(cast: Cast, payloads: list[str]) -> None:
    problems = Problems(cast)
    post = slug_of(write_post(cast.author, title=TITLE))
    for number, chunk in enumerate(chunked(payloads, 200)):
        answer = start_series(
            cast.author, title=pack(chunk, 200), description=pack(chunk, 2000, "\n")
        )
        problems.page(f"series {number}", answer, statuses=(303, 422))
        if answer.status_code != 303:
            continue
        edit = answer.location
        series = edit.removesuffix("/edit")
        for path in (series, f"{series}/feed.atom"):
            problems.get(cast.anonymous, path)
        problems.get(cast.author, edit)
        if number == 0:
            assert add_part(cast.author, series.removeprefix("/series/"), TITLE).status_code == 303
    problems.get(cast.anonymous, f"/posts/{post}")
    problems.get(cast.author, "/series")
    problems.check()


def test_menu_labels_run_no_script(cast: Cast, payloads: list[str]) -> None:
    problems = Problems(cast)
    labels = [pack(chunk, 80) for chunk in chunked(payloads, len(payloads) // 36 + 1)]
    for number, label in enumerate(labels):
        menu = "header" if number % 2 else "footer"
        answer = add_link(cast.admin, menu=menu, label=label, target_kind="url", url="/x")
        problems.page(f"link {number}", answer, statuses=(303, 422))
    for path in ("/", "/posts", "/admin/navigation"):
        problems.get(cast.admin, path)
    problems.get(cast.anonymous, "/")
    problems.check()
