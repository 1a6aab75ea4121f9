"""Security headers on every kind of response: pages, redirects, 304s, every error (the 500
included), static files and their errors, JSON and feeds; in process and over gunicorn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from blog.conftest import (
    csrf_token,
    delete_post,
    edit_post,
    make_blog_app,
    signup_admin,
    slug_of,
    write_post,
)

from pyproject.blog.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

from .faults import hidden_table, read_only_database
from .live import Live, LiveClient

SAFE_REFERRER_POLICIES = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}


def policy(csp: str) -> dict[str, list[str]]:
    directives = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    return directives


def header_problems(get: Callable[[str], str | None]) -> list[str]:
    """Give what is missing or weak in a response's security headers."""
    problems = []
    csp = get("Content-Security-Policy")
    if not csp:
        return ["no Content-Security-Policy"]
    directives = policy(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    if scripts is None:
        problems.append("CSP limits no scripts")
    elif {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(scripts):
        problems.append(f"CSP script-src allows {scripts}")
    if directives.get("frame-ancestors") != ["'none'"]:
        problems.append(f"CSP frame-ancestors {directives.get('frame-ancestors')}")
    if directives.get("object-src") != ["'none'"]:
        problems.append(f"CSP object-src {directives.get('object-src')}")
    if directives.get("base-uri") not in (["'none'"], ["'self'"]):
        problems.append(f"CSP base-uri {directives.get('base-uri')}")
    if (get("X-Content-Type-Options") or "").lower() != "nosniff":
        problems.append(f"X-Content-Type-Options {get('X-Content-Type-Options')}")
    if (get("X-Frame-Options") or "").upper() != "DENY":
        problems.append(f"X-Frame-Options {get('X-Frame-Options')}")
    if (get("Referrer-Policy") or "").lower() not in SAFE_REFERRER_POLICIES:
        problems.append(f"Referrer-Policy {get('Referrer-Policy')}")
    return problems


@dataclass
class Blog:
    app: App
    admin: TestClient
    slug: str
    old_slug: str
    trashed: str


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    app = make_blog_app(tmp_path_factory.mktemp("headers"))
    admin = app.test_client()
    signup_admin(admin)
    old = slug_of(write_post(admin, title="Headers"))
    assert edit_post(admin, old, slug="headed").status_code == 303
    trashed = slug_of(write_post(admin, title="Binned"))
    delete_post(admin, trashed)
    admin.get("/")
    yield Blog(app, admin, "headed", old, trashed)
    get_database(app).dispose()


def responses(blog: Blog) -> dict[str, Callable[[], TestResponse]]:
    """Give a way to get each kind of response, and its expected status in the name."""

    def reader() -> TestClient:
        return blog.app.test_client()

    def not_modified(path: str) -> TestResponse:
        client = reader()
        first = client.get(path)
        return client.get(path, headers={"If-None-Match": first.headers["ETag"]})

    def refused_login() -> TestResponse:
        client = reader()
        token = csrf_token(client, "/login")
        return client.post("/login", data={"csrf_token": token, "login": "x", "password": "y"})

    def profile_saved() -> TestResponse:
        return blog.admin.post("/account", data={"csrf_token": csrf_token(blog.admin), "bio": ""})

    def throttled() -> TestResponse:
        client = blog.app.test_client()
        values = client.get("/login").form_values('form[action="/login"]')
        for _ in range(6):
            response = client.post("/login", data={**values, "login": "nobody-h", "password": "x"})
        return response

    def failing() -> TestResponse:
        token = csrf_token(blog.admin)
        with read_only_database(blog.app):
            return blog.admin.post("/account", data={"csrf_token": token, "bio": "x"})

    return {
        "200 page": lambda: reader().get("/"),
        "200 HEAD": lambda: reader().head(f"/posts/{blog.slug}"),
        "200 signed in": lambda: blog.admin.get("/drafts"),
        "200 JSON": lambda: reader().get("/api/posts"),
        "200 feed": lambda: reader().get("/feed.atom"),
        "200 text": lambda: reader().get("/robots.txt"),
        "204 OPTIONS": lambda: reader().options("/"),
        "301 old slug": lambda: reader().get(f"/posts/{blog.old_slug}"),
        "303 sign in first": lambda: reader().get("/drafts"),
        "303 after a POST": profile_saved,
        "304 page": lambda: not_modified("/"),
        "304 static": lambda: not_modified("/static/css/site.css"),
        "400 bad host": lambda: reader().get("/", headers={"Host": "evil.example"}),
        "403 CSRF": lambda: reader().post("/login", data={"login": "x"}),
        "404 page": lambda: reader().get("/nowhere"),
        "404 JSON": lambda: reader().get("/api/posts/nowhere"),
        "405": lambda: reader().post("/"),
        "410 trashed": lambda: reader().get(f"/posts/{blog.trashed}"),
        "413": lambda: reader().post(
            "/login",
            data=b"x",
            headers={
                "Content-Length": str(10**9),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ),
        "422": refused_login,
        "429": throttled,
        "500": failing,
        "200 static": lambda: reader().get("/static/js/site.js"),
        "404 static": lambda: reader().get("/static/nowhere.css"),
        "405 static": lambda: reader().post("/static/css/site.css"),
    }


KINDS = tuple(responses(Blog(None, None, "", "", "")))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_response_has_the_security_headers(blog: Blog, kind: str) -> None:
    response = responses(blog)[kind]()
    assert response.status_code == int(kind[:3]), response.status_code
    assert header_problems(response.headers.get) == []


@pytest.mark.slow
def test_gunicorn_sends_the_security_headers_on_every_kind_of_response(live: Live) -> None:
    reader = LiveClient(live.server)
    admin = live.client("admin")
    port = live.server.port
    first = reader.get("/")
    static = reader.get("/static/css/site.css")
    answers = {
        "200 page": first,
        "200 JSON": reader.get("/api/posts"),
        "200 static": static,
        "204 OPTIONS": reader.request("OPTIONS", "/"),
        "303": reader.get("/drafts"),
        "304 page": reader.get("/", headers={"If-None-Match": first.header("ETag")}),
        "304 static": reader.get(
            "/static/css/site.css", headers={"If-None-Match": static.header("ETag")}
        ),
        "400": LiveClient(live.server, host="evil.example").get("/"),
        "403": reader.post("/login", data={"login": "x"}),
        "404": reader.get("/nowhere"),
        "404 static": reader.get("/static/nowhere.css"),
        "405": reader.post("/"),
        "405 static": reader.post("/static/css/site.css"),
    }
    raw = live.raw(
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {10**9}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n".encode()
    )
    database = live.server.data_dir / "e2e.sqlite3"
    with hidden_table(database, "revisions"):
        failed = admin.get(f"/posts/{live.world.slugs['autosave']}/revisions")
    problems = {}
    for kind, response in answers.items():
        assert response.status == int(kind[:3]), (kind, response.status)
        found = header_problems(response.header)
        if found:
            problems[kind] = found
    assert raw.status == 413
    if header_problems(raw.header):
        problems["413"] = header_problems(raw.header)
    assert failed.status == 500
    if header_problems(failed.header):
        problems["500"] = header_problems(failed.header)
    assert problems == {}
