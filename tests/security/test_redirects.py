"""Open redirects and header injection: after sign-in, `next=` never leads off the site, and no
header ever carries a CR or LF, however the target is written or encoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from blog.conftest import (
    ADMIN,
    edit_post,
    form_of,
    make_blog_app,
    signup_admin,
    slug_of,
    write_post,
)

from pyproject.blog.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient

from .checks import parse_html
from .live import Live, LiveClient

TARGETS = (
    "//evil.example",
    "/\\evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/%0D%0ALocation:%20https://evil.example",
    "///evil.example",
    "////evil.example",
    "/\t/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "http:evil.example",
    "http:/evil.example",
    "https:/\\evil.example",
    " //evil.example",
    "\x00//evil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5c%5cevil.example",
    "/%09/evil.example",
    "/%00//evil.example",
    "%0a/evil.example",
    "/.//evil.example",
    "//evil.example@localhost",
    "/@evil.example",
    "/\uff0f\uff0fevil.example",
    "data:text/html,<script>alert(1)</script>",
    "/drafts",  # a fine target: it must still work
)
# How the target reaches the sign-in: in the URL (encoded, or raw as typed), in the form.
WAYS = ("query, encoded", "query, raw", "form field")


def assert_stays_on_site(location: str | None, headers: list[tuple[str, str]]) -> None:
    assert location is not None
    assert location.startswith("/"), location
    assert not location.startswith(("//", "/\\")), location
    for name, value in headers:
        assert not any(c in value for c in "\r\n\0"), f"{name}: {value!r}"
        assert not (name.lower() == "set-cookie" and value.startswith("x=")), value


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, str, str]]:
    """An admin, and a post whose slug changed (its old address redirects)."""
    app = make_blog_app(tmp_path_factory.mktemp("redirects"))
    admin = app.test_client()
    signup_admin(admin)
    old = slug_of(write_post(admin, title="Moving"))
    assert edit_post(admin, old, slug="moved").status_code == 303
    yield app, old, "moved"
    get_database(app).dispose()


def sign_in_with_next(client: TestClient, target: str, way: str):
    if way == "form field":
        values = form_of(client.get("/login"), 'form[action="/login"]')
        values.update(login=ADMIN.username, password=ADMIN.password, next=target)
        return client.post("/login", data=values)
    if way == "query, encoded":
        query = urlencode({"next": target})
    else:  # as typed into the address bar: only non-ASCII gets encoded (as browsers do)
        query = "next=" + "".join(c if c.isascii() else quote(c) for c in target)
    values = form_of(client.get(f"/login?{query}"), 'form[action="/login"]')
    values.update(login=ADMIN.username, password=ADMIN.password)
    return client.post(f"/login?{query}", data=values)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("target", TARGETS)
def test_sign_in_never_redirects_off_the_site(blog, target: str, way: str) -> None:
    app, _, _ = blog
    client = app.test_client()
    response = sign_in_with_next(client, target, way)
    assert response.status_code == 303
    assert_stays_on_site(response.location, response.headers.items())
    if target == "/drafts":
        assert response.location == "/drafts"
    # Already signed in, /login?next= redirects at once: the same rules hold.
    again = client.get("/login?" + urlencode({"next": target}))
    assert again.status_code == 303
    assert_stays_on_site(again.location, again.headers.items())


INJECTED_QUERIES = (
    "q=%0d%0aSet-Cookie:x=1",
    "q=%0D%0A%0D%0A<script>alert(1)</script>",
    "%0d%0aLocation:https://evil.example",
    "a=%E5%98%8A%E5%98%8DSet-Cookie:x=1",  # U+560A U+560D: CR/LF in their low bytes
)


@pytest.mark.parametrize("query", INJECTED_QUERIES)
def test_redirects_that_keep_the_query_keep_it_encoded(blog, query: str) -> None:
    app, old, new = blog
    client = app.test_client()
    response = client.get(f"/posts/{old}?{query}")
    assert response.status_code == 301
    assert response.location.startswith(f"/posts/{new}?")
    assert_stays_on_site(response.location, response.headers.items())
    response = client.get(f"/drafts?{query}")
    assert response.status_code == 303
    assert response.location.startswith("/login?next=")
    assert_stays_on_site(response.location, response.headers.items())


# --- over a real gunicorn ---------------------------------------------------------------------


def live_sign_in(live: Live, target: str, way: str):
    client = LiveClient(live.server)
    query = "" if way == "form field" else "?" + urlencode({"next": target})
    page = client.get(f"/login{query}")
    form = parse_html(page.body).find(".//form[@action='/login']")
    values = {field.get("name"): field.get("value", "") for field in form.iter("input")}
    values.update(login=ADMIN.username, password=ADMIN.password)
    if way == "form field":
        values["next"] = target
    return client, client.post(f"/login{query}", data=values)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_gunicorn_sign_in_never_redirects_off_the_site(live: Live, live_log, target: str) -> None:
    for way in ("query, encoded", "form field"):
        client, response = live_sign_in(live, target, way)
        assert response.status == 303, response.status
        assert_stays_on_site(response.header("Location"), response.headers)
        again = client.get("/login?" + urlencode({"next": target}))
        assert_stays_on_site(again.header("Location"), again.headers)


@pytest.mark.slow
@pytest.mark.parametrize("query", INJECTED_QUERIES)
def test_gunicorn_keeps_redirected_queries_encoded(live: Live, live_log, query: str) -> None:
    response = live.raw(live.get_raw(f"/drafts?{query}"))
    assert response.status == 303
    assert_stays_on_site(response.header("location"), response.headers)
    assert b"\r\nSet-Cookie: x=" not in response.raw and b"\r\nx=1" not in response.raw
