"""Malformed HTTP: broken lengths, invalid UTF-8 anywhere, broken multipart, odd methods and
odd headers get a 4xx answer, never a 500, in process and over a real gunicorn.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from blog.conftest import csrf_token, make_blog_app, signup_admin, slug_of, write_post

from pyproject.blog.db import get_database
from pyproject.lib import App
from pyproject.lib.testing import TestClient

from .live import Live, as_bytes

B = "b0undary"
MULTIPART = f"multipart/form-data; boundary={B}"
FORM = "application/x-www-form-urlencoded"


def part(headers: str, content: bytes) -> bytes:
    return f"--{B}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


END = f"--{B}--\r\n".encode()
FIELD = 'Content-Disposition: form-data; name="login"'

# (content type, body): every one broken in its own way.
BROKEN_BODIES = {
    "form, invalid UTF-8": (FORM, b"csrf_token=%ff&login=%C3%28"),
    "form, raw invalid UTF-8": (FORM, b"login=\xff\xfe"),
    "form, a lone %": (FORM, b"login=%&password=%G1"),
    "form, only separators": (FORM, b"&&&&==&=&"),
    "multipart, no boundary parameter": ("multipart/form-data", part(FIELD, b"x") + END),
    "multipart, empty boundary": ("multipart/form-data; boundary=", part(FIELD, b"x") + END),
    "multipart, boundary with a space": ("multipart/form-data; boundary=a b", b"--a b\r\n"),
    "multipart, boundary of 200 characters": (
        "multipart/form-data; boundary=" + "a" * 200,
        b"--" + b"a" * 200 + b"\r\n",
    ),
    "multipart, no closing boundary": (MULTIPART, part(FIELD, b"x")),
    "multipart, garbage": (MULTIPART, b"\x00\xff" * 100),
    "multipart, empty": (MULTIPART, b""),
    "multipart, LF line ends only": (MULTIPART, f"--{B}\n{FIELD}\n\nx\n--{B}--\n".encode()),
    "multipart, no Content-Disposition": (MULTIPART, part("Content-Type: text/plain", b"x") + END),
    "multipart, a header without a colon": (
        MULTIPART,
        part("Content-Disposition form-data", b"x") + END,
    ),
    "multipart, invalid UTF-8 in a field": (MULTIPART, part(FIELD, b"\xff\xfe\xc3\x28") + END),
    "multipart, an unknown charset": (
        MULTIPART,
        part(FIELD + "\r\nContent-Type: text/plain; charset=no-such-charset", b"x") + END,
    ),
    "multipart, UTF-16 with an odd byte": (
        MULTIPART,
        part(FIELD + "\r\nContent-Type: text/plain; charset=utf-16", b"\xff\xfea") + END,
    ),
    "multipart, a name with invalid UTF-8": (
        MULTIPART,
        part(
            'Content-Disposition: form-data; name="\xff"'.encode("latin-1").decode("latin-1"), b"x"
        )
        + END,
    ),
    "multipart, nested multipart/mixed": (
        MULTIPART,
        part(
            FIELD + "\r\nContent-Type: multipart/mixed; boundary=inner",
            b"--inner\r\n\r\nx\r\n--inner--",
        )
        + END,
    ),
    "multipart, a part header of 10 KB": (MULTIPART, part("X-Long: " + "a" * 10_000, b"x") + END),
    "JSON where a form is expected": ("application/json", b'{"login": "x"}'),
    "a content type with junk parameters": ('multipart/form-data; boundary="unclosed', b"--x"),
}
BAD_LENGTHS = ("abc", "-1", "1e3", "12, 12", "0x10", "+5", "1_000", "NaN", "１２", "9" * 25)
BAD_PATHS = (
    "/\xff",
    "/posts/\xc3\x28",
    "/tags/\xff\xfe",
    "/authors/\xc0\xaf",
    "/api/posts/\xed\xa0\x80",
    "/search\xff",
)
BAD_QUERIES = (
    "/search?q=%ff",
    "/?page=%ff",
    "/posts?page=%C3%28",
    "/login?next=%ff",
    "/api/search?q=%ed%a0%80",
    "/search?q=\xff",
    "/search?%ff=1",
    "/tags?x=%",
    "/?page=%00",
)
ODD_HEADERS = {
    "If-None-Match": ['"', "W/", "*, *", '"a", W/"b", junk', "\xff\xfe"],
    "If-Modified-Since": [
        "yesterday",
        "Mon, 32 Foo 2020 25:61:61 GMT",
        "\xff",
        "0",
        "-1",
        "9" * 40,
    ],
    "Accept": [
        "\xff",
        "*/*;q=nan",
        "application/json;q=inf",
        ";;;,,,",
        "text/html;q=-1",
        "application/activity+json;q=nan",
        'application/ld+json; profile="\xff"',
    ],
    "Origin": ["\xff", "http://", "null null"],
    "X-CSRF-Token": ["\xff" * 43, "é" * 43],
    "Content-Type": ["\xff", "multipart/form-data; boundary=\xff", ";", "text/plain; charset=\xff"],
    "X-Requested-With": ["\xff"],
    "Cookie": ["\xff=\xff", "session=\xff" * 10, "=; =; =="],
    "Range": ["bytes=0-", "bytes=-1", "\xff"],
    "Sec-Fetch-Site": ["\xff", "cross-site"],
    # What fediverse servers send (#19): content negotiation and HTTP Signatures.
    "Signature": ["\xff", ",", 'keyId="",signature=""', 'keyId="x",algorithm="\xff",signature="%"'],
    "Digest": ["\xff", "SHA-256=", "SHA-256=\xff"],
    "Date": ["\xff", "Mon, 32 Foo 2020 25:61:61 GMT"],
}
METHODS = {
    "FOO": (405,),
    "PROPFIND": (405,),
    "TRACE": (405,),
    "CONNECT": (405,),
    "PUT": (405,),
    "DELETE": (405,),
    "PATCH": (405,),
    "G@T": (400,),
    "G ET": (400,),
    "": (400,),
}


@dataclass
class Blog:
    app: App
    client: TestClient
    slug: str


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    app = make_blog_app(tmp_path_factory.mktemp("malformed"))
    client = app.test_client()
    signup_admin(client)
    slug = slug_of(write_post(client, title="Robust"))
    client.get("/")
    yield Blog(app, client, slug)
    get_database(app).dispose()


def send(client: TestClient, method: str, path: str, *, body: bytes = b"", **environ):
    """Send a request exactly as given (path already percent-decoded, as WSGI has it)."""
    raw_path, _, query = path.partition("?")
    built = client.build_environ("GET", "/")
    built.update(
        REQUEST_METHOD=method,
        PATH_INFO=raw_path,
        QUERY_STRING=query,
        CONTENT_LENGTH=str(len(body)) if body else "",
    )
    built["wsgi.input"] = io.BytesIO(body)
    built.update(environ)
    return client.run(built)


def signed_in_copy(blog: Blog) -> TestClient:
    """Give a client with the admin's cookie (what it is told to store stays its own)."""
    client = blog.app.test_client()
    client.cookies.update(blog.client.cookies)
    return client


def assert_4xx(status: int, allowed: tuple[int, ...] = ()) -> None:
    assert status in allowed or 400 <= status < 500, status


# --- in process ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BROKEN_BODIES)
@pytest.mark.parametrize("path", ["/login", "/posts", "/account", "/ap/inbox"])
def test_a_broken_body_is_a_4xx(blog: Blog, case: str, path: str) -> None:
    content_type, body = BROKEN_BODIES[case]
    for headers in ({}, {"HTTP_X_CSRF_TOKEN": csrf_token(blog.client)}):
        response = send(
            signed_in_copy(blog), "POST", path, body=body, CONTENT_TYPE=content_type, **headers
        )
        assert_4xx(response.status_code, (200, 303))


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_a_bad_content_length_is_a_400(blog: Blog, length: str) -> None:
    response = send(
        blog.client, "POST", "/login", body=b"login=x", CONTENT_TYPE=FORM, CONTENT_LENGTH=length
    )
    assert response.status_code == 400


@pytest.mark.parametrize("path", BAD_PATHS)
def test_invalid_utf8_in_the_path_is_a_400(blog: Blog, path: str) -> None:
    for method in ("GET", "HEAD", "POST"):
        assert send(signed_in_copy(blog), method, path).status_code == 400


@pytest.mark.parametrize("path", BAD_QUERIES)
def test_invalid_utf8_in_the_query_is_a_4xx(blog: Blog, path: str) -> None:
    for client in (signed_in_copy(blog), blog.app.test_client()):
        assert_4xx(send(client, "GET", path).status_code, (200, 303))


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in ODD_HEADERS.items() for value in values]
)
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/posts/{slug}",
        "/feed.atom",
        "/api/posts",
        "/static/css/site.css",
        "/login",
        "/ap/inbox",
    ],
)
def test_odd_headers_never_cause_a_500(blog: Blog, name: str, value: str, path: str) -> None:
    key = "HTTP_" + name.upper().replace("-", "_")
    if name == "Content-Type":
        key = "CONTENT_TYPE"
    for client in (signed_in_copy(blog), blog.app.test_client()):
        for method in ("GET", "POST"):
            response = send(client, method, path.format(slug=blog.slug), **{key: value})
            assert response.status_code < 500, response.status_code


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/", "/login", "/posts/{slug}", "/nowhere", "/api/posts"])
def test_odd_methods_are_refused(blog: Blog, method: str, path: str) -> None:
    path = path.format(slug=blog.slug)
    response = send(signed_in_copy(blog), method, path, HTTP_X_SECRET="do-not-echo")
    allowed = METHODS[method] + ((404,) if path == "/nowhere" else ())
    assert response.status_code in allowed, response.status_code
    assert b"do-not-echo" not in response.data


@pytest.mark.parametrize("method", ["get", "post", "Post"])
def test_lower_case_methods_are_not_their_upper_case_twins(blog: Blog, method: str) -> None:
    assert send(signed_in_copy(blog), method, "/login").status_code in (400, 405, 501)


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 9999 23:59:59 -2359",
        "Fri, 31 Dec 9999 23:30:00 -0100",
    ],
)
@pytest.mark.parametrize("path", ["/", "/feed.atom", "/static/css/site.css"])
def test_an_if_modified_since_at_the_end_of_time_is_ignored(
    blog: Blog, path: str, value: str
) -> None:
    response = send(blog.app.test_client(), "GET", path, HTTP_IF_MODIFIED_SINCE=value)
    assert response.status_code == 200


# Digits that str.isdigit accepts and int() does not (or reads as another number).
UNICODE_DIGITS = ("\u00b2", "\u0661", "\uff11", "\u2460", "\U0001d7cf")


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_non_ascii_digits_in_numbers_are_a_4xx(blog: Blog, digit: str) -> None:
    reader = blog.app.test_client()
    for path in ("/", "/posts", "/search?q=robust&", "/api/posts", "/tags/robust"):
        joiner = "" if path.endswith("&") else "?"
        response = reader.get(f"{path}{joiner}page={quote(digit)}")
        assert response.status_code == 404, (path, response.status_code)
    values = blog.client.get(f"/posts/{blog.slug}/edit").form_values("#post-form")
    values.update(base_revision=digit, title="Changed")
    response = blog.client.post(f"/posts/{blog.slug}/edit", data=values)
    assert response.status_code == 409


# --- over a real gunicorn ---------------------------------------------------------------------


def raw_request(
    live: Live, method: str, target: bytes, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        f"Host: 127.0.0.1:{live.server.port}".encode(),
        b"Connection: close",
    ]
    lines += [as_bytes(f"{k}: {v}") for k, v in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.slow
@pytest.mark.parametrize("case", BROKEN_BODIES)
def test_gunicorn_answers_broken_bodies_with_a_4xx(live: Live, live_log, case: str) -> None:
    content_type, body = BROKEN_BODIES[case]
    for path in ("/login", "/posts"):
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if path == "/posts":
            headers["Cookie"] = f"session={live.world.clients['admin'].cookies['session']}"
            headers["X-CSRF-Token"] = live.world.token("admin")
        response = live.raw(raw_request(live, "POST", path.encode(), headers, body))
        assert_4xx(response.status, (200, 303))


PROTOCOL_JUNK = (
    b"GET / HTTP/1.1\r\nHost: H\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: H\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nlogin=",
    b"POST /login HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: H\r\n Folded: header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: H\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: H\r\nX-Nul: a\x00b\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: H\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\nHost: H\r\n\r\n",
    b"get /login HTTP/1.1\r\nHost: H\r\n\r\n",
)


@pytest.mark.slow
def test_gunicorn_serves_static_files_whatever_the_if_modified_since(live: Live) -> None:
    request = live.get_raw(
        "/static/css/site.css", extra="If-Modified-Since: Fri, 31 Dec 9999 23:59:59 -2359\r\n"
    )
    assert live.raw(request).status == 200


@pytest.mark.slow
def test_gunicorn_answers_malformed_requests_with_a_4xx(live: Live, live_log) -> None:
    def ask(request: bytes) -> int:
        host = f"Host: 127.0.0.1:{live.server.port}\r\n".encode()
        response = live.raw(request.replace(b"Host: H\r\n", host))
        assert b"do-not-echo" not in response.body
        return response.status

    lengths = [
        ask(
            raw_request(
                live, "POST", b"/login", {"Content-Type": FORM, "Content-Length": v}, b"login=x"
            )
        )
        for v in BAD_LENGTHS
    ]
    assert lengths == [400] * len(lengths)
    paths = [ask(raw_request(live, "GET", p.encode("latin-1"), {})) for p in BAD_PATHS]
    paths += [ask(raw_request(live, "GET", p, {})) for p in (b"/%ff%fe", b"/posts/%C3%28")]
    assert paths == [400] * len(paths)
    others = [ask(raw_request(live, "GET", q.encode("latin-1"), {})) for q in BAD_QUERIES]
    others += [
        ask(raw_request(live, "GET", b"/", {name: value}))
        for name, values in ODD_HEADERS.items()
        for value in values
    ]
    others += [ask(request) for request in PROTOCOL_JUNK]
    assert all(status < 500 for status in others), others
    methods = [
        ask(raw_request(live, method, b"/login", {"X-Secret": "do-not-echo"}))
        for method in METHODS
        if method and " " not in method
    ]
    assert all(400 <= status < 500 for status in methods), methods


# --- on PostgreSQL, which refuses NUL in text -------------------------------------------------

NUL_LOOKUPS = {
    "an author page": ("GET", "/authors/%00x", None),
    "an author feed": ("GET", "/authors/x%00/feed.atom", None),
    "a sign-in name": ("POST", "/login", {"login": "a\x00b", "password": "x"}),
    "the post a preview edits": ("POST", "/posts/preview", {"body": "x", "editing": "a\x00"}),
}


@pytest.fixture(scope="module")
def postgres_blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blog]:
    """The blog on a PostgreSQL database of its own (the shared test database is left alone)."""
    from tests.conftest import POSTGRES_URL, build_app, postgres_unavailable_reason

    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    server = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'pyproject_security'"
        ).fetchone()
        if not exists:
            connection.execute("CREATE DATABASE pyproject_security")
    with psycopg.connect(f"{server}/pyproject_security", autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/pyproject_security"
    app = build_app(tmp_path_factory.mktemp("postgres"), url)
    client = app.test_client()
    signup_admin(client)
    client.get("/")
    yield Blog(app, client, "")
    get_database(app).dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("case", NUL_LOOKUPS)
def test_a_nul_in_a_lookup_is_not_a_500_on_postgres(postgres_blog: Blog, case: str) -> None:
    method, path, data = NUL_LOOKUPS[case]
    client = postgres_blog.client
    if data is not None:
        data = {**data, "csrf_token": csrf_token(client)}
    assert client.open(method, path, data=data).status_code < 500
