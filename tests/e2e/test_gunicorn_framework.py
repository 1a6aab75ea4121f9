"""The framework behind a real gunicorn: headers, errors, static files and hostile requests.

Everything goes over real sockets; requests a client library would tidy up (dot
segments, bad Host, broken Content-Length) are sent byte for byte with `server.raw`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import LogWatch, ServerHandle

ROOT = Path(__file__).resolve().parents[2]

SECURITY_HEADERS = {
    "content-security-policy": None,  # any value; its content is tested in tests/lib
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": None,
}
QUOTED_ETAG = re.compile(r'^(W/)?"[\x21\x23-\x7e\x80-\xff]*"$')
MAIN_PY = (ROOT / "main.py").read_bytes()


def get(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    """Give the bytes of a GET request for exactly `path`, closing the connection after."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode(
        "latin-1"
    )


def assert_security_headers(header: Callable[[str], str | None]) -> None:
    """Check the security headers, given a function from header name to value."""
    for name, expected in SECURITY_HEADERS.items():
        value = header(name)
        assert value, f"missing {name}"
        if expected is not None:
            assert value == expected, f"{name}: {value!r}"


def assert_not_main_py(body: bytes) -> None:
    assert b"cli_main" not in body
    assert MAIN_PY[:40] not in body


class StylesheetFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and "stylesheet" in (values.get("rel") or "").split():
            self.hrefs.append(values.get("href") or "")


@pytest.fixture(scope="module")
def server(gunicorn_server: ServerHandle) -> ServerHandle:
    return gunicorn_server


@pytest.fixture(autouse=True)
def _no_tracebacks(server_log: LogWatch) -> LogWatch:
    """Fail any test during which the server logged a traceback."""
    return server_log


@pytest.fixture(scope="module")
def stylesheet(server: ServerHandle) -> str:
    """Give the stylesheet URL the home page links to."""
    _, body = server.request("GET", "/")
    finder = StylesheetFinder()
    finder.feed(body.decode("utf-8"))
    assert finder.hrefs, "the home page links no stylesheet"
    return finder.hrefs[0]


# --- ordinary requests -----------------------------------------------------------------


def test_server_runs_the_configured_number_of_workers(server: ServerHandle) -> None:
    deadline = time.monotonic() + 5
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.worker_pids()) == 2


def test_home_page_is_html_with_security_headers(server: ServerHandle) -> None:
    response, body = server.request("GET", "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert_security_headers(response.getheader)
    assert int(response.getheader("Content-Length")) == len(body)
    assert b"<!doctype html>" in body.lower()


def test_head_returns_the_get_headers_without_body(server: ServerHandle) -> None:
    got = server.raw(get("/"))
    head = server.raw(get("/").replace(b"GET", b"HEAD", 1))
    assert head.status == got.status == 200
    assert head.body == b""
    # Vary differs between a worker's first rendering and its cached copies: see
    # test_every_response_for_a_page_has_the_same_vary.
    ignored = {"date", "vary"}
    assert [h for h in head.headers if h[0] not in ignored] == [
        h for h in got.headers if h[0] not in ignored
    ]
    assert int(head.header("content-length")) == len(got.body)


def test_every_response_for_a_page_has_the_same_vary(server: ServerHandle) -> None:
    path = f"/?probe={uuid.uuid4().hex}"  # a page no worker has cached yet
    answers = [server.raw(get(path)) for _ in range(6)]
    assert {a.status for a in answers} == {200}
    assert len({a.header("vary") for a in answers}) == 1, [a.header("vary") for a in answers]


@pytest.mark.parametrize("path", ["/no/such/page", "/static/no-such-file.css"])
def test_head_of_an_error_has_no_body(server: ServerHandle, path: str) -> None:
    got = server.raw(get(path))
    head = server.raw(get(path).replace(b"GET", b"HEAD", 1))
    assert head.status == got.status == 404
    assert head.body == b""
    assert head.header("content-length") == str(len(got.body))


def test_unknown_path_is_an_html_404(server: ServerHandle) -> None:
    response, body = server.request("GET", "/no/such/page")
    assert response.status == 404
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert_security_headers(response.getheader)
    assert b"Not Found" in body


def test_post_to_a_get_route_is_405_with_allow(server: ServerHandle) -> None:
    response, _ = server.request("POST", "/", body=b"")
    assert response.status == 405
    allowed = {m.strip() for m in response.getheader("Allow", "").split(",")}
    assert {"GET", "HEAD"} <= allowed
    assert "POST" not in allowed
    assert_security_headers(response.getheader)


# --- static files ----------------------------------------------------------------------


def test_stylesheet_is_served_with_a_quoted_etag(server: ServerHandle, stylesheet: str) -> None:
    response, body = server.request("GET", stylesheet)
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/css; charset=utf-8"
    assert QUOTED_ETAG.match(response.getheader("ETag", "")), response.getheader("ETag")
    assert response.getheader("Last-Modified")
    # The home page links the fingerprinted URL, which may be cached for good.
    assert "immutable" in response.getheader("Cache-Control", "")
    assert int(response.getheader("Content-Length")) == len(body) > 0
    assert_security_headers(response.getheader)


def test_stylesheet_revalidation_is_304_without_body(server: ServerHandle, stylesheet: str) -> None:
    first, _ = server.request("GET", stylesheet)
    etag = first.getheader("ETag")
    again = server.raw(get(stylesheet, extra=f"If-None-Match: {etag}\r\n"))
    assert again.status == 304
    assert again.body == b""
    assert again.header("etag") == etag
    assert again.header("content-length") is None


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),  # If-None-Match compares weakly
        ('"other", {etag}', 304),
        ("*", 304),
        ('"other"', 200),
        ("", 200),
    ],
)
def test_stylesheet_if_none_match(
    server: ServerHandle, stylesheet: str, if_none_match: str, status: int
) -> None:
    first, _ = server.request("GET", stylesheet)
    value = if_none_match.format(etag=first.getheader("ETag"))
    response = server.raw(get(stylesheet, extra=f"If-None-Match: {value}\r\n"))
    assert response.status == status
    assert bool(response.body) == (status == 200)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../main.py",
        "/static/%2e%2e/main.py",
        "/static/%252e%252e/main.py",
        "/static/..%2fmain.py",
        "/static/%2e%2e%2fmain.py",
        "/static/css/../../main.py",
        "/static/css/..%2f..%2fmain.py",
        "/static/..%5cmain.py",
        "/static/%c0%ae%c0%ae/main.py",
        "/static//work/main/main.py",
        "/static/%2fetc%2fpasswd",
        "/static/css/site.css%00.py",
        "/../main.py",
        "/%2e%2e/main.py",
    ],
)
def test_traversal_is_a_plain_404(server: ServerHandle, path: str) -> None:
    response = server.raw(get(path))
    assert response.status == 404
    assert_not_main_py(response.body)
    assert b"root:" not in response.body
    assert_security_headers(response.header)


# --- hostile and malformed requests ----------------------------------------------------


def test_huge_declared_body_is_refused_without_reading_it(server: ServerHandle) -> None:
    request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n"
    response = server.raw(request, timeout=3)
    assert response.status in (405, 413)
    assert response.elapsed < 1.0


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "127.0.0.1@evil.example",
        "localhost.",
        "127.0.0.1:notaport",
    ],
)
def test_unknown_host_is_400(server: ServerHandle, host: str) -> None:
    response = server.raw(get("/", host=host))
    if host == "localhost.":  # the same host with a root dot: allowed, or refused
        assert response.status in (200, 400)
        return
    assert response.status == 400
    assert b"evil.example" not in response.body
    assert_security_headers(response.header)


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10", "12 34", "+5", "5, 6"])
def test_malformed_content_length_is_a_client_error(server: ServerHandle, length: str) -> None:
    request = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    response = server.raw(request)
    assert 400 <= response.status < 500


def test_body_framed_two_ways_is_refused(server: ServerHandle) -> None:
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    )
    assert server.raw(request).status == 400


def test_http11_request_without_host_is_400(server: ServerHandle) -> None:
    response = server.raw(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert response.status == 400


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "PATCH", "DELETE", "foo"])
def test_unknown_method_is_405_or_400(server: ServerHandle, method: str) -> None:
    response = server.raw(get("/").replace(b"GET", method.encode(), 1))
    assert response.status in (400, 405)


@pytest.mark.parametrize(
    "path", ["/%ff", "/%c0%af", "/%ed%a0%80", "/caf%e9", "/static/%ff", "/static/css/%ff.css"]
)
def test_invalid_utf8_in_path_is_404_or_400(
    server: ServerHandle, server_log: LogWatch, path: str
) -> None:
    response = server.raw(get(path))
    assert response.status in (400, 404)
    server_log.take()  # the log is checked in the test below


@pytest.mark.parametrize(
    "path",
    [
        "/%ff",
        "/caf%e9",
        "/static/%ff",
    ],
)
def test_invalid_utf8_in_path_logs_no_traceback(
    server: ServerHandle, server_log: LogWatch, path: str
) -> None:
    response = server.raw(get(path))
    log = server_log.take()
    assert "Traceback" not in log, log
    if response.status == 400:  # the site's own error page, not the bare fallback
        assert b'rel="stylesheet"' in response.body
