"""Fuzzing the real app with hypothesis: query strings, forms, cookies, multipart bodies,
headers and arbitrary paths never give a 500, never let an exception escape the app, and
never make it log an error; and the sanitiser's output is stable and harmless.

Derandomised, so CI sees the same examples every run; no example database is written.
An If-Modified-Since at the very end of the calendar (once a crash) is in
test_malformed.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote_to_bytes, urlencode

import pytest
from blog.conftest import csrf_token, make_blog_app, signup_admin, slug_of, write_post
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyproject.blog.db import get_database
from pyproject.blog.markup import sanitize_html
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse

from .checks import script_problems
from .faults import captured_errors


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@dataclass
class Blog:
    app: App
    admin: TestClient
    reader: TestClient
    token: str
    slug: str

    def run(
        self,
        client: TestClient,
        method: str,
        path_info: str,
        query: str = "",
        *,
        body: bytes = b"",
        **environ: str,
    ) -> TestResponse:
        """Send a request as a server would hand it over (PATH_INFO already decoded)."""
        built = client.build_environ("GET", "/")
        built.update(REQUEST_METHOD=method, PATH_INFO=path_info, QUERY_STRING=query)
        built["wsgi.input"] = io.BytesIO(body)
        if body:
            built["CONTENT_LENGTH"] = str(len(body))
        built.update(environ)
        with captured_errors() as logged:
            response = client.run(built)  # an exception escaping the app fails the test here
        assert response.status_code < 500, (
            f"{method} {path_info!r} ? {query!r}: {response.status_code}"
        )
        assert not logged, f"{method} {path_info!r}: logged {logged[0].getMessage()}"
        return response


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    app = make_blog_app(tmp_path_factory.mktemp("fuzz"))
    admin = app.test_client()
    signup_admin(admin)
    slug = slug_of(write_post(admin, title="Fuzzed", tags="fuzz", body="Some *words*."))
    admin.get("/")
    yield Blog(app, admin, app.test_client(), csrf_token(admin), slug)
    get_database(app).dispose()


def wsgi_text(raw: bytes) -> str:
    """Give bytes as WSGI carries them in the environ (latin-1 text)."""
    return raw.decode("latin-1")


# Text a client could put on a request line: no space, CR, LF or #, any other byte.
request_line_text = st.binary(max_size=120).map(
    lambda b: wsgi_text(bytes(c for c in b if c not in b" \r\n#"))
)
any_text = st.text(max_size=120)
READ_PATHS = (
    "/",
    "/posts",
    "/search",
    "/tags",
    "/tags/fuzz",
    "/authors/admin",
    "/feed.atom",
    "/feed.rss",
    "/sitemap.xml",
    "/login",
    "/api/posts",
    "/api/search",
    "/api/tags",
)
queries = st.one_of(
    request_line_text,
    st.lists(
        st.tuples(st.sampled_from(["q", "page", "next", "autosave", "x"]) | any_text, any_text),
        max_size=6,
    ).map(lambda pairs: urlencode(pairs)),
    st.sampled_from(
        [
            "page=",
            "page=0",
            "page=01",
            "page=-1",
            "page=1e3",
            "page=9999999",
            "page=%C2%B2",
            "q=%00",
            "q=%ff",
        ]
    ),
)


@fuzz(600)
@given(
    path=st.sampled_from(
        [*READ_PATHS, "/drafts", "/trash", "/posts/{slug}/edit", "/posts/{slug}/revisions"]
    ),
    query=queries,
    signed_in=st.booleans(),
)
def test_query_strings(blog: Blog, path: str, query: str, signed_in: bool) -> None:
    client = blog.admin if signed_in else blog.reader
    blog.run(client, "GET", path.format(slug=blog.slug), query)


FIELDS = (
    "title", "body", "summary", "tags", "slug", "status", "publish_at", "base_revision", "editing",
    "login", "password", "next", "display_name", "bio", "current_password", "confirm",
    "username", "email", "role",
)  # fmt: skip
field_values = st.one_of(
    any_text,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "published",
            "draft",
            "²",
            "0",
            "-1",
            "9" * 30,
            "2026-02-30T25:61",
            "0001-01-01T00:00",
            "9999-12-31T23:59",
            "\x00",
            "\u202e",
            "a" * 1001,
        ]
    ),
)
POST_PATHS = (
    "/posts",
    "/posts/preview",
    "/posts/autosave",
    "/posts/{slug}/edit",
    "/posts/{slug}/autosave",
    "/account",
    "/account/password",
    "/admin/users",
    "/login",
)


@fuzz(400)
@given(
    path=st.sampled_from(POST_PATHS),
    fields=st.lists(st.tuples(st.sampled_from(FIELDS) | any_text, field_values), max_size=10),
    raw=st.none() | st.binary(max_size=200),
)
def test_url_encoded_forms(
    blog: Blog, path: str, fields: list[tuple[str, str]], raw: bytes | None
) -> None:
    if raw is not None:  # bytes of any kind, the token in the header so the view runs
        body, extra = raw, {"HTTP_X_CSRF_TOKEN": blog.token}
    else:
        body, extra = urlencode([("csrf_token", blog.token), *fields]).encode(), {}
    content_type = "application/x-www-form-urlencoded"
    blog.run(
        blog.admin,
        "POST",
        path.format(slug=blog.slug),
        body=body,
        CONTENT_TYPE=content_type,
        **extra,
    )


cookie_text = st.one_of(
    request_line_text,
    st.lists(
        st.tuples(
            st.sampled_from(["session", "__Host-session", "x"]) | any_text,
            any_text | st.just("A" * 43),
        ),
        max_size=5,
    ).map(lambda pairs: "; ".join(f"{k}={v}" for k, v in pairs)),
)


@fuzz(500)
@given(
    cookie=cookie_text,
    path=st.sampled_from(["/", "/drafts", "/login", "/posts/{slug}", "/account"]),
    post=st.booleans(),
)
def test_cookies(blog: Blog, cookie: str, path: str, post: bool) -> None:
    encoded = cookie.encode("utf-8", "surrogatepass").decode("latin-1")
    method = "POST" if post else "GET"
    blog.run(
        blog.reader,
        method,
        path.format(slug=blog.slug),
        HTTP_COOKIE=encoded,
        CONTENT_TYPE="application/x-www-form-urlencoded",
    )


BOUNDARY = "fuzz-boundary"
part_headers = st.lists(
    st.sampled_from(
        [
            'Content-Disposition: form-data; name="body"',
            'Content-Disposition: form-data; name="title"',
            'Content-Disposition: form-data; name="csrf_token"',
            'Content-Disposition: form-data; name="f"; filename="a.txt"',
            'Content-Disposition: form-data; name="\xff"',
            "Content-Disposition: attachment",
            "Content-Disposition: form-data; name=\"x\"; filename*=UTF-8''%E2%82%AC",
            "Content-Type: text/plain; charset=utf-16",
            "Content-Type: text/plain; charset=bogus",
            "Content-Type: multipart/mixed; boundary=inner",
            "Content-Transfer-Encoding: base64",
            "X: " + "y" * 50,
            "no colon",
        ]
    ),
    max_size=3,
)
parts = st.lists(st.tuples(part_headers, st.binary(max_size=80)), max_size=5)


def multipart_body(items: list[tuple[list[str], bytes]], ending: bytes) -> bytes:
    out = b""
    for headers, content in items:
        out += (
            f"--{BOUNDARY}\r\n".encode()
            + "\r\n".join(headers).encode("latin-1")
            + b"\r\n\r\n"
            + content
            + b"\r\n"
        )
    return out + ending


@fuzz(400)
@given(
    items=parts,
    ending=st.sampled_from(
        [f"--{BOUNDARY}--\r\n".encode(), b"", f"--{BOUNDARY}".encode(), b"--", b"\r\n"]
    ),
    junk=st.binary(max_size=40),
    cut=st.sampled_from([0, 0, 0, 1, 2, 5, 20, 100, 400]),
    path=st.sampled_from(["/posts/preview", "/posts", "/login", "/posts/{slug}/autosave"]),
)
def test_multipart_bodies(
    blog: Blog, items, ending: bytes, junk: bytes, cut: int, path: str
) -> None:
    body = multipart_body(items, ending)
    body = body[: max(0, len(body) - cut)] + junk  # cut short, then trailing bytes
    blog.run(
        blog.admin,
        "POST",
        path.format(slug=blog.slug),
        body=body,
        CONTENT_TYPE=f"multipart/form-data; boundary={BOUNDARY}",
        HTTP_X_CSRF_TOKEN=blog.token,
    )


HEADER_NAMES = (
    "HTTP_ACCEPT", "HTTP_ORIGIN", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_HOST",
    "HTTP_X_CSRF_TOKEN", "HTTP_X_REQUESTED_WITH", "HTTP_SEC_FETCH_SITE", "HTTP_RANGE",
    "HTTP_REFERER", "HTTP_USER_AGENT", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_ACCEPT_LANGUAGE",
)  # fmt: skip
http_dates = st.builds(
    lambda moment, offset: moment.strftime("%a, %d %b %Y %H:%M:%S ") + f"{offset:+05d}",
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-2359, max_value=2359),
)
header_values = st.one_of(
    request_line_text,
    http_dates,
    st.sampled_from(
        [
            '"x"',
            'W/"x"',
            "*",
            "localhost",
            "localhost:80",
            "null",
            "application/json",
            "text/html;q=0.1, application/json",
            "0",
            "-1",
        ]
    ),
)


@fuzz(600)
@given(
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=4),
    path=st.sampled_from(
        [
            "/",
            "/posts/{slug}",
            "/static/css/site.css",
            "/api/posts",
            "/feed.atom",
            "/login",
            "/search",
        ]
    ),
    method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"]),
)
def test_headers(blog: Blog, headers: dict[str, str], path: str, method: str) -> None:
    blog.run(blog.reader, method, path.format(slug=blog.slug), **headers)


path_segments = st.one_of(
    st.sampled_from(
        [
            "posts",
            "tags",
            "authors",
            "api",
            "static",
            "sitemaps",
            "admin",
            "users",
            "edit",
            "revisions",
            "1",
            "0",
            "01",
            "..",
            ".",
            "",
            "feed.atom",
            "x.xml",
            "new",
            "preview",
        ]
    ),
    st.text(max_size=20),
    st.binary(max_size=12).map(wsgi_text),
)


@fuzz(1000)
@given(
    segments=st.lists(path_segments, min_size=0, max_size=6),
    method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "TRACE"]),
    signed_in=st.booleans(),
)
def test_router_with_arbitrary_paths(
    blog: Blog, segments: list[str], method: str, signed_in: bool
) -> None:
    path = "/" + "/".join(segments)
    if not all(ord(c) < 256 for c in path):
        path = path.encode("utf-8", "surrogatepass").decode("latin-1")
    client = blog.admin if signed_in else blog.reader
    blog.run(client, method, path, HTTP_X_CSRF_TOKEN=blog.token if signed_in else "")


# --- the sanitiser -----------------------------------------------------------------------------

PIECES = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">',
    "<a href='java&#x09;script:alert(1)'>x</a>",
    "<svg onload=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<iframe srcdoc='&lt;script&gt;'>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<form><button formaction=javascript:alert(1)>",
    "<object data=x>", "<embed src=x>", "<base href=//evil>", "<style>*{}</style>",
    '<p style="x:expression(alert(1))">', '<img src="data:text/html,x">', '<a href="vbscript:x">',
    '<a href="https://example.com" rel=x>', '<span class="k">', '<div class="codehilite">',
    "<table>", "<tr>", "<td>", "<li>", "</p>", "<p>", "<ul>", "<pre>", "<b>", "</b>",
    "<!--", "-->", "<![CDATA[", "]]>", "&amp;", "&lt;", "&#x3c;", "&#60", '"', "'", "<", ">",
    "=", "/", "\x00", "\u2028", "text ", "\n", " ",
)  # fmt: skip
markup = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=25).map("".join)


@fuzz(1000)
@given(fragment=markup | st.text(max_size=200))
def test_sanitised_html_is_stable_and_harmless(fragment: str) -> None:
    once = sanitize_html(fragment)
    assert sanitize_html(once) == once
    assert script_problems(once, fragment_is_user_content=True) == []


@fuzz(200)
@given(path=st.text(max_size=30))
def test_percent_encoded_paths(blog: Blog, path: str) -> None:
    """Arbitrary text, percent-encoded as a browser sends it, decoded as a server does."""
    raw = unquote_to_bytes(quote(path.encode("utf-8", "surrogatepass"), safe="/"))
    blog.run(blog.reader, "GET", "/" + wsgi_text(raw))
