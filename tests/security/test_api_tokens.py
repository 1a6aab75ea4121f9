"""Personal tokens, the write API and Micropub under attack (#20).

Every token-only route refuses a request without a token, and a session cookie alone, with
401; hostile Authorization headers are 401; a token without the scope is 403; hostile JSON
and Micropub input is a 4xx, never a 5xx. None of those changes a byte of any table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blog.conftest import Cast, csrf_token, make_blog_app, make_cast, write_post
from blog.test_tokens import make_token
from sqlalchemy import select

from pyproject.blog.db import get_database
from pyproject.blog.models import ApiToken, Post
from pyproject.lib import App

from .checks import changed_tables, script_problems, snapshot
from .test_access import TOKEN_ONLY

# The tables an attempt must leave as they were; a request with no valid token must not
# even mark a token as used. (A valid token refused for its scope was used: it may.)
WATCHED = ("posts", "revisions", "tags", "post_tags", "media", "media_owners")
WITH_TOKENS = (*WATCHED, "api_tokens")


class Site:
    def __init__(self, app: App, cast: Cast) -> None:
        self.app, self.cast = app, cast
        self.tokens = {
            "all": make_token(cast.author, "All", "read", "posts:write", "media:write"),
            "read": make_token(cast.author, "Read", "read"),
            "posts": make_token(cast.author, "Posts", "posts:write"),
            "media": make_token(cast.author, "Media", "media:write"),
            "bob": make_token(cast.other, "Bob", "read", "posts:write", "media:write"),
        }
        assert write_post(cast.author, title="Alice's post", slug="alices").status_code == 303
        assert write_post(cast.other, title="Bob's post", slug="bobs").status_code == 303
        self.engine = get_database(app).engine

    def snapshot(self, tables: tuple[str, ...] = WATCHED) -> dict:
        return snapshot(self.engine, tables)

    def unchanged_since(self, before: dict) -> list[str]:
        return changed_tables(before, self.snapshot(tuple(before)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder: Path = tmp_path_factory.mktemp("api-tokens")
    app = make_blog_app(folder, overrides={"OUTGOING_ALLOW_LOOPBACK": False})
    yield Site(app, make_cast(app))
    get_database(app).dispose()


def path_of(rule: str) -> str:
    return rule.replace("<slug:slug>", "alices")


def send(client, method: str, rule: str, headers: dict[str, str] | None = None):
    path = path_of(rule)
    if rule.startswith("/micropub") and method == "POST":
        return client.open(method, path, data={"h": "entry", "content": "x"}, headers=headers)
    if method in ("POST", "PATCH"):
        return client.open(method, path, json={"title": "Taken", "body": "x"}, headers=headers)
    if rule == "/micropub":
        return client.open(method, path + "?q=config", headers=headers)
    return client.open(method, path, headers=headers)


@pytest.mark.parametrize(("method", "rule"), sorted(TOKEN_ONLY))
def test_no_token_and_a_session_cookie_alone_are_401(site: Site, method: str, rule: str) -> None:
    author = site.cast.author
    cookie_and_csrf = {"X-CSRF-Token": csrf_token(author), "If-Match": "*"}
    before = site.snapshot(WITH_TOKENS)
    for client, headers in ((site.cast.anonymous, {}), (author, cookie_and_csrf)):
        answer = send(client, method, rule, headers)
        assert answer.status_code == 401, (rule, answer.status_code, answer.text[:200])
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert site.unchanged_since(before) == []


HOSTILE_AUTHORIZATION = [
    "Bearer",
    "Bearer ",
    "bearer",
    "Bearer  ",
    "Token {all}",
    "Basic {all}",
    "Bearer {all}x",
    "Bearer {all_short}",
    "Bearer {prefix}",
    "Bearer {digest}",
    "Bearer {all} {all}",
    "Bearer " + "A" * 5000,
    "Bearer \u00e9\u00e9\u00e9",
    "Bearer %00",
    "Bearer ../../etc/passwd",
    "Bearer ' OR 1=1 --",
    "Bearer pp_",
]


@pytest.mark.parametrize("header", HOSTILE_AUTHORIZATION)
def test_hostile_authorization_headers_are_401(site: Site, header: str) -> None:
    token = site.tokens["all"]
    with get_database(site.app).read() as db:
        row = db.scalar(select(ApiToken).where(ApiToken.name == "All"))
    value = (
        header.format(all=token, all_short=token[:-1], prefix=row.prefix, digest=row.digest)
        .encode("utf-8")
        .decode("latin-1")
    )
    before = site.snapshot()
    for method, rule in (("POST", "/api/posts"), ("PATCH", "/api/posts/<slug:slug>"),
                         ("POST", "/micropub"), ("DELETE", "/api/posts/<slug:slug>")):  # fmt: skip
        answer = send(site.cast.anonymous, method, rule, {"Authorization": value, "If-Match": "*"})
        assert answer.status_code == 401, (header, rule, answer.status_code)
    assert site.unchanged_since(before) == []


def test_a_token_in_the_query_string_or_a_form_field_is_not_taken(site: Site) -> None:
    token = site.tokens["all"]
    before = site.snapshot(WITH_TOKENS)
    client = site.cast.anonymous
    answers = [
        client.post(f"/api/posts?access_token={token}", json={"title": "t", "body": "b"}),
        client.post("/micropub", data={"h": "entry", "content": "x", "access_token": token}),
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert site.unchanged_since(before) == []


# (token, method, rule, expected): the scope a route needs, and another author's post.
SCOPE_TABLE = [
    ("read", "POST", "/api/posts", 403),
    ("media", "POST", "/api/posts", 403),
    ("read", "PATCH", "/api/posts/<slug:slug>", 403),
    ("media", "DELETE", "/api/posts/<slug:slug>", 403),
    ("read", "POST", "/api/media", 403),
    ("posts", "POST", "/api/media", 403),
    ("read", "POST", "/micropub", 403),
    ("media", "POST", "/micropub", 403),
    ("posts", "POST", "/micropub/media", 403),
    ("read", "POST", "/micropub/media", 403),
    ("media", "GET", "/api/posts/<slug:slug>/source", 403),
    ("bob", "PATCH", "/api/posts/<slug:slug>", 403),  # alice's post
    ("bob", "DELETE", "/api/posts/<slug:slug>", 403),
    ("bob", "GET", "/api/posts/<slug:slug>/source", 403),
]


@pytest.mark.parametrize(("token", "method", "rule", "expected"), SCOPE_TABLE)
def test_a_token_may_do_only_what_its_scopes_and_account_allow(
    site: Site, token: str, method: str, rule: str, expected: int
) -> None:
    headers = {"Authorization": f"Bearer {site.tokens[token]}", "If-Match": "*"}
    before = site.snapshot()
    answer = send(site.cast.anonymous, method, rule, headers)
    assert answer.status_code == expected, answer.text[:300]
    assert site.unchanged_since(before) == []


HOSTILE_JSON = [
    (b"", "application/json"),
    (b"null", "application/json"),
    (b'"a string"', "application/json"),
    (b"1e999999", "application/json"),
    (b'{"title": NaN, "body": "x"}', "application/json"),
    (b'{"title": "a", "title": 5, "body": "x"}', "application/json"),
    (b'{"title": "t", "body": "x", "tags": [[["deep"]]]}', "application/json"),
    (b'{"title": "t", "body": "x", "tags": {"a": 1}}', "application/json"),
    (b'{"title": "t", "body": "x", "cover": -1}', "application/json"),
    (b'{"title": "t", "body": "x", "cover": 1e308}', "application/json"),
    (b'{"title": "t", "body": "x", "cover": 99999999999999999999999}', "application/json"),
    (b'{"title": "t", "body": "x", "slug": "../../etc/passwd"}', "application/json"),
    (b'{"title": "t", "body": "x", "slug": "a/b"}', "application/json"),
    (b'{"title": "t", "body": "x", "status": ["published"]}', "application/json"),
    (b'{"title": "t", "body": "x", "publish_at": 1700000000}', "application/json"),
    (b'{"title": "t", "body": "x", "publish_at": "9999-99-99T99:99:99Z"}', "application/json"),
    (b'{"title": "\\u0000", "body": "x"}', "application/json"),
    (b'{"title": "\\ud800", "body": "x"}', "application/json"),
    (b'{"title": "t", "body": "x", "id": 1, "author_id": 1}', "application/json"),
    (b'{"__proto__": {"admin": true}}', "application/json"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    (b'{"title": "t", "body": "x"}', "text/plain"),
    (b'{"title": "t", "body": "x"}', "application/x-www-form-urlencoded"),
    (b"\xef\xbb\xbf{}", "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), HOSTILE_JSON)
def test_hostile_json_is_a_4xx_and_changes_nothing(
    site: Site, body: bytes, content_type: str
) -> None:
    headers = {
        "Authorization": f"Bearer {site.tokens['all']}",
        "Content-Type": content_type,
        "If-Match": "*",
    }
    before = site.snapshot()
    for method, path in (("POST", "/api/posts"), ("PATCH", "/api/posts/alices")):
        answer = site.cast.anonymous.open(method, path, data=body, headers=headers)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:300])
        assert answer.json["error"]["status"] == answer.status_code
    assert site.unchanged_since(before) == []


HOSTILE_MICROPUB = [
    {"h": "event", "content": "x"},
    {"h": "entry", "content": "x", "photo": "http://127.0.0.1/secret.jpg"},
    {"h": "entry", "content": "x", "photo": "http://localhost:22/"},
    {"h": "entry", "content": "x", "photo": "http://[::1]/x.jpg"},
    {"h": "entry", "content": "x", "photo": "ftp://example.com/x.jpg"},
    {"h": "entry", "content": "x", "photo": "http://user:pass@example.com/x.jpg"},
    {"h": "entry", "content": "x", "mp-slug": "../../admin"},
    {"h": "entry", "content": "x", "mp-slug": "new"},
    {"h": "entry", "content": "x", "post-status": "published; DROP TABLE posts"},
    {"h": "entry", "content": "x", "published": "2026-13-45T00:00:00Z"},
    {"h": "entry", "content": ""},
    {"h": "entry", "name": "x" * 500, "content": "x"},
    {"h": "entry", "content": "x", "category[]": [f"t{i}" for i in range(50)]},
    {"action": "update", "url": "http://localhost/posts/bobs"},
    {"action": "delete", "url": "http://localhost/posts/bobs"},
    {"action": "delete", "url": "http://evil.example/posts/alices"},
    {"action": "delete", "url": "javascript:alert(1)"},
    {"action": "undelete", "url": "http://localhost/posts/alices"},
    {"action": "drop"},
]


@pytest.mark.parametrize("form", HOSTILE_MICROPUB, ids=range(len(HOSTILE_MICROPUB)))
def test_hostile_micropub_input_is_refused_and_changes_nothing(site: Site, form: dict) -> None:
    before = site.snapshot()
    answer = site.cast.anonymous.post(
        "/micropub", data=form, headers={"Authorization": f"Bearer {site.tokens['all']}"}
    )
    assert answer.status_code in (400, 403), (form, answer.status_code, answer.text[:300])
    assert answer.json["error"] in ("invalid_request", "forbidden")
    assert site.unchanged_since(before) == []


def test_markup_in_api_and_micropub_input_never_runs(site: Site) -> None:
    attack = '<script>alert(1)</script><img src=x onerror=alert(1)><a href="javascript:x()">a</a>'
    token = {"Authorization": f"Bearer {site.tokens['all']}"}
    made = site.cast.anonymous.post(
        "/api/posts",
        json={"title": attack[:200], "body": attack, "status": "published", "tags": ["<b>x</b>"]},
        headers=token,
    )
    assert made.status_code == 201, made.text
    noted = site.cast.anonymous.post(
        "/micropub",
        json={"type": ["h-entry"], "properties": {"content": [{"html": attack}]}},
        headers=token,
    )
    assert noted.status_code == 201, noted.text
    router = site.app.router
    for location in (made.json["post"]["url"], noted.headers["Location"]):
        page = site.cast.anonymous.get(location.removeprefix("http://localhost"))
        assert page.status_code == 200
        assert script_problems(page.text, routable=lambda p: bool(router.allowed_methods(p))) == []
    with get_database(site.app).read() as db:
        html = list(db.scalars(select(Post.body_html)))
    assert not any("<script" in h or "onerror" in h for h in html)
