"""Error pages: an exception inside a view (here, the database turning read-only) gives a
plain 500 that shows nothing of the traceback, the query, the files or the versions, in its
body or its headers; the traceback goes to the log instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from blog.conftest import csrf_token, make_blog_app, signup_admin, slug_of, write_post

from pyproject.blog.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient
from tests.e2e.conftest import LogWatch

from .faults import captured_errors, hidden_table, leaks, read_only_database
from .live import Live


@dataclass
class Blog:
    app: App
    admin: TestClient
    slug: str


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[Blog]:
    app = make_blog_app(tmp_path)
    admin = app.test_client()
    signup_admin(admin)
    slug = slug_of(write_post(admin, title="Fragile"))
    admin.get("/")
    yield Blog(app, admin, slug)
    get_database(app).dispose()


def writes(blog: Blog) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Give requests that must write: (path, form data, headers)."""
    edit = blog.admin.get(f"/posts/{blog.slug}/edit").form_values("#post-form")
    token = csrf_token(blog.admin)
    return {
        "save an edit": (f"/posts/{blog.slug}/edit", {**edit, "title": "Changed"}, {}),
        "write a post": ("/posts", {**edit, "title": "New", "slug": ""}, {}),
        "save the profile": ("/account", {"csrf_token": token, "display_name": "A", "bio": ""}, {}),
        "autosave (JSON)": (
            f"/posts/{blog.slug}/autosave",
            {"csrf_token": token, "title": "T", "body": "B"},
            {"Accept": "application/json"},
        ),
    }


CASES = ("save an edit", "write a post", "save the profile", "autosave (JSON)")


@pytest.mark.parametrize("case", CASES)
def test_a_failing_view_gives_a_plain_500(blog: Blog, case: str) -> None:
    path, data, headers = writes(blog)[case]
    with captured_errors() as logged, read_only_database(blog.app):
        response = blog.admin.post(path, data=data, headers=headers)
    assert response.status_code == 500
    text = response.data.decode()
    assert leaks(text) == [], text[-800:]
    for name, value in response.headers.items():
        assert leaks(f"{name}: {value}") == [], (name, value)
        assert name.lower() not in ("server", "x-powered-by"), name
    assert response.headers.get("Cache-Control") == "no-store"
    assert any(record.exc_info for record in logged), "the traceback was not logged"


@pytest.mark.slow
def test_gunicorn_gives_a_plain_500_when_a_view_fails(live: Live) -> None:
    watch = LogWatch(live.server)
    client = live.client("admin")
    token = live.world.token("admin")
    data = {"csrf_token": token, "title": "T", "body": "B"}
    path = f"/posts/{live.world.slugs['autosave']}/autosave"
    database = Path(live.server.env["DATABASE_URL"].removeprefix("sqlite:///"))
    with hidden_table(database, "revisions"):
        answers = [
            client.post(path, data=data),
            client.post(path, data=data, headers={"Accept": "text/html"}),
            client.get(f"/posts/{live.world.slugs['autosave']}/revisions"),
        ]
    for response in answers:
        assert response.status == 500, response.status
        assert leaks(response.text) == [], response.text[-800:]
        for name, value in response.headers:
            assert leaks(f"{name}: {value}") == [], (name, value)
            if name.lower() == "server":
                assert value == "gunicorn", value  # the name only: no version
    assert "Traceback" in watch.take(), "the traceback was not logged"
