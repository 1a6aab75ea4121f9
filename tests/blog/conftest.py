"""Fixtures for the blog's tests: people who sign up, sign in and write through the real forms.

Every helper drives the pages as a browser would: it loads the page, reads the form (with
its CSRF token) from the HTML, changes the fields it was given and submits it. Nothing is
written to the database behind the app's back, except where a test must move time (sign-in
attempts made older, posts published days ago) or needs many readers (view counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from pyproject.app import create_app
from pyproject.blog.db import get_database, get_view_counts
from pyproject.blog.migrate import upgrade
from pyproject.blog.models import LoginAttempt, Post, set_clock, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

BASE_URL = "http://localhost"


@dataclass(frozen=True)
class Person:
    """Who someone is and how they sign in."""

    username: str
    email: str
    password: str
    display_name: str = ""


ADMIN = Person("admin", "admin@example.com", "admin passphrase 1", "Ada Admin")
AUTHOR = Person("alice", "alice@example.com", "alice passphrase 1", "Alice Author")
OTHER = Person("bob", "bob@example.com", "bob passphrase 1", "Bob Other")


# --- driving the forms -------------------------------------------------------------------


def form_of(page: TestResponse, selector: str) -> dict[str, str]:
    """Give a form's fields as the page shows them, failing clearly if the page has none."""
    assert page.status_code == 200, f"{page.request_path} answered {page.status_code}"
    return page.form_values(selector)


def csrf_token(client: TestClient, path: str | None = None) -> str:
    """Give the CSRF token the client's pages put in their forms (the session's token).

    Signed-in pages carry it in the "Sign out" form; anonymous visitors find it on /login.
    """
    for candidate in [path] if path else ["/", "/login"]:
        field = client.get(candidate).html.select_one('input[name="csrf_token"]')
        if field is not None:
            return field["value"]
    raise AssertionError(f"no CSRF token on {path or '/ or /login'}")


def signup_admin(client: TestClient, person: Person = ADMIN, **fields: str) -> TestResponse:
    """Create the first account through /setup (the client is signed in afterwards)."""
    values = form_of(client.get("/setup"), 'form[action="/setup"]')
    values.update(
        username=person.username,
        email=person.email,
        display_name=person.display_name,
        password=person.password,
        confirm=person.password,
    )
    values.update(fields)
    return client.post("/setup", data=values)


def login(client: TestClient, login: str, password: str, *, next: str | None = None):
    """Sign in through the /login form (with `next` typed into the URL, as a redirect would)."""
    path = "/login" if next is None else f"/login?next={next}"
    values = form_of(client.get(path), 'form[action="/login"]')
    values.update(login=login, password=password)
    return client.post("/login", data=values)


def logout(client: TestClient) -> TestResponse:
    """Press "Sign out" in the page header."""
    values = form_of(client.get("/"), 'form[action="/logout"]')
    return client.post("/logout", data=values)


def create_author(
    admin_client: TestClient,
    username: str,
    email: str | None = None,
    password: str = "author passphrase 1",
    *,
    role: str = "author",
    display_name: str = "",
    **fields: str,
) -> TestResponse:
    """Add an account through the form on /admin/users."""
    values = form_of(admin_client.get("/admin/users"), 'form[action="/admin/users"]')
    values.update(
        username=username,
        email=email or f"{username}@example.com",
        display_name=display_name,
        password=password,
        confirm=password,
        role=role,
    )
    values.update(fields)
    return admin_client.post("/admin/users", data=values)


def write_post(client: TestClient, **fields: str) -> TestResponse:
    """Fill in /posts/new and save; published unless `status` says otherwise."""
    values = form_of(client.get("/posts/new"), "#post-form")
    values.update(title="A post", body="Some words about things.", status="published")
    values.update(fields)
    return client.post("/posts", data=values)


def edit_post(client: TestClient, slug: str, /, **fields: str) -> TestResponse:
    """Change fields of a post through its editor and save."""
    values = form_of(client.get(f"/posts/{slug}/edit"), "#post-form")
    values.update(fields)
    return client.post(f"/posts/{slug}/edit", data=values)


def local_input(app: App, when: datetime) -> str:
    """Give a time as the editor's datetime-local field takes it (the site's time zone)."""
    return when.astimezone(app.extensions["timezone"]).strftime("%Y-%m-%dT%H:%M")


def delete_post(client: TestClient, slug: str) -> TestResponse:
    """Press "Delete" on a post's page."""
    values = form_of(client.get(f"/posts/{slug}"), f'form[action="/posts/{slug}/delete"]')
    return client.post(f"/posts/{slug}/delete", data=values)


def slug_of(response: TestResponse) -> str:
    """Give the slug a successful save redirected to."""
    assert response.status_code == 303, f"save answered {response.status_code}"
    location = response.location or ""
    assert location.startswith("/posts/"), location
    return location.removeprefix("/posts/")


def field_error(page: TestResponse, field: str) -> str | None:
    """Give the error text shown beside a field (`#e-<field>`), or None."""
    element = page.html.select_one(f"#e-{field}")
    return element.get_text(strip=True) if element is not None else None


# --- moving time -------------------------------------------------------------------------


def add_login_attempts(
    app: App, account: str, count: int, at: datetime, *, address: str = "127.0.0.1"
) -> None:
    """Record `count` failed sign-ins as if they had happened at `at`."""
    with get_database(app).write() as db:
        for _ in range(count):
            db.add(
                LoginAttempt(account=account, remote_addr=address, succeeded=False, attempted_at=at)
            )


def move_login_attempts_back(app: App, **delta: float) -> None:
    """Make every recorded sign-in attempt older by `delta` (timedelta keywords)."""
    with get_database(app).write() as db:
        for attempt in db.scalars(select(LoginAttempt)):
            attempt.attempted_at -= timedelta(**delta)


def set_post(app: App, slug: str, **values: Any) -> None:
    """Change a post's columns directly (to publish it in the past, give it views...)."""
    views = values.pop("view_count", None)
    with get_database(app).write() as db:
        if values:
            db.execute(update(Post).where(Post.slug == slug).values(**values))
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
    if views is not None:
        get_view_counts(app).set_views({post_id: views})


def get_post(app: App, slug: str) -> Post | None:
    with get_database(app).read() as db:
        return db.scalar(select(Post).where(Post.slug == slug))


def views_of(app: App, slug: str) -> int:
    """Give a post's view count, as the app's counter store holds it."""
    with get_database(app).read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
    return get_view_counts(app).views([post_id]).get(post_id, 0)


# --- apps and people ---------------------------------------------------------------------


def make_blog_app(
    folder: Path, database_url: str | None = None, overrides: dict[str, Any] | None = None
) -> App:
    """Give a migrated app on its own SQLite file in `folder` (the settings tests use)."""
    app = create_app(
        {
            "SECRET_KEY": "test-secret-key",
            "DEBUG": False,
            "BASE_URL": BASE_URL,
            "DATABASE_URL": database_url or f"sqlite:///{folder / 'blog.sqlite3'}",
            "INSTANCE_PATH": str(folder),
            "LOG_LEVEL": "WARNING",
            **(overrides or {}),
        }
    )
    upgrade(get_database(app).engine)
    return app


@dataclass
class Cast:
    """One app and a signed-in client for each kind of visitor."""

    app: App
    anonymous: TestClient
    author: TestClient
    other: TestClient
    admin: TestClient

    def client(self, who: str) -> TestClient:
        return getattr(self, who)


VISITORS = ("anonymous", "author", "other", "admin")


def make_cast(app: App) -> Cast:
    """Set up the blog with an admin, two authors (alice and bob) and an anonymous reader."""
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    clients = {}
    for person in (AUTHOR, OTHER):
        created = create_author(
            admin, person.username, person.email, person.password, display_name=person.display_name
        )
        assert created.status_code == 303, field_error(created, "username")
        clients[person.username] = app.test_client()
        assert login(clients[person.username], person.username, person.password).status_code == 303
    return Cast(app, app.test_client(), clients["alice"], clients["bob"], admin)


@pytest.fixture
def cast(app: App) -> Cast:
    """The SQLite blog with its admin, authors and anonymous reader."""
    return make_cast(app)


@pytest.fixture
def any_db_cast(any_db_app: App) -> Cast:
    """The same people on SQLite, then on PostgreSQL (where reachable)."""
    return make_cast(any_db_app)


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """An app shared by a module's read-only tests (saves building one per case)."""
    application = make_blog_app(tmp_path_factory.mktemp("blog"))
    yield application
    get_database(application).dispose()


@pytest.fixture(scope="module")
def shared_cast(module_app: App) -> Cast:
    """One cast for a module's tests that only read, or write what no other test looks at."""
    return make_cast(module_app)


def utc_ago(**delta: float) -> datetime:
    """Give the aware UTC time `delta` ago (timedelta keywords)."""
    return utcnow() - timedelta(**delta)


class Clock:
    """A clock tests move by hand (near the real time: sessions expire by the real one)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The app's clock, stopped at the current minute until the test moves it."""
    moved = Clock(datetime.now(UTC).replace(second=0, microsecond=0))
    set_clock(moved)
    try:
        yield moved
    finally:
        set_clock(None)


@dataclass
class World:
    """A blog with a cast, alice's published post and her draft (their slugs)."""

    cast: Cast
    published: str
    draft: str


def make_world(cast: Cast) -> World:
    """Give alice a published post (tagged, with Markdown) and a draft."""
    published = slug_of(
        write_post(
            cast.author,
            title="Alice in public",
            body="Down the *rabbit hole*.\n\nAnd further down.",
            tags="python, Café",
        )
    )
    draft = slug_of(write_post(cast.author, title="Alice's secret", status="draft"))
    return World(cast, published, draft)
