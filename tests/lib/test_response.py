"""Tests for the Response, wsgi_parts and the response helpers in pyproject/lib/response.py."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from pyproject.lib.app import App
from pyproject.lib.http import http_date
from pyproject.lib.response import (
    Response,
    json_response,
    not_modified,
    redirect,
    with_validators,
    wsgi_parts,
)
from pyproject.lib.testing import TestClient

MODIFIED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def environ(method: str = "GET", **extra: Any) -> dict[str, Any]:
    """Give the parts of a WSGI environ that wsgi_parts and the 304 helpers read."""
    return {"REQUEST_METHOD": method, **extra}


def run(response: Response, method: str = "GET", **extra: Any):
    """Give the status, Headers-like dict list and joined body wsgi_parts produces."""
    status, headers, body = wsgi_parts(response, environ(method, **extra))
    data = b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return status, headers, data


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times"
    return values[0] if values else None


class ClosingIterable:
    """An iterable body that records being closed, as WSGI servers close bodies."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


# --- bodies and status -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "data"),
    [
        ("café", "café".encode()),
        (b"\x00\xff", b"\x00\xff"),
        (bytearray(b"abc"), b"abc"),
        ([b"a", "é", b"c"], "aéc".encode()),
        ((chunk for chunk in [b"x", b"y"]), b"xy"),
        (io.BytesIO(b"from a file"), b"from a file"),
        (None, b""),
    ],
)
def test_response_body_may_be_str_bytes_iterable_or_file(body, data):
    response = Response(body)
    assert response.get_data() == data
    assert response.get_data() == data  # an iterable or file body is kept once read


def test_response_text_decodes_utf8():
    assert Response("Zoë".encode()).text == "Zoë"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (200, "200 OK"),
        (201, "201 Created"),
        (404, "404 Not Found"),
        (503, "503 Service Unavailable"),
    ],
)
def test_response_status_has_the_standard_phrase(code, status):
    assert Response(b"", code).status == status


@pytest.mark.parametrize("code", [0, 99, 299, 600, 1000])
def test_unknown_status_raises(code):
    with pytest.raises(ValueError):
        Response(b"", code)


def test_content_type_defaults_to_html_and_can_be_chosen():
    assert Response().headers["Content-Type"] == "text/html"
    assert Response(mimetype="text/plain").headers["Content-Type"] == "text/plain"
    assert (
        Response(content_type="text/csv; charset=latin-1").headers["Content-Type"]
        == "text/csv; charset=latin-1"
    )
    assert Response(headers={"content-type": "image/png"}).mimetype == "image/png"


# --- wsgi_parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "length"), [(b"hello", "5"), ("café", "5"), (b"", "0")])
def test_finalize_sets_content_length_of_buffered_bodies_in_bytes(body, length):
    status, headers, data = run(Response(body))
    assert status == "200 OK"
    assert header(headers, "Content-Length") == length
    assert len(data) == int(length)


def test_finalize_replaces_a_wrong_content_length():
    _, headers, _ = run(Response(b"hello", headers={"Content-Length": "999"}))
    assert header(headers, "Content-Length") == "5"


def test_finalize_sends_no_content_length_for_iterables():
    _, headers, data = run(Response(iter([b"a", "é"])))
    assert header(headers, "Content-Length") is None
    assert data == "aé".encode()


def test_finalize_sends_a_real_file_with_its_length(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG" * 100)
    handle = path.open("rb")
    _, headers, data = run(Response(handle, mimetype="image/png"))
    assert header(headers, "Content-Length") == "400"
    assert data == b"\x89PNG" * 100
    assert handle.closed


def test_finalize_uses_the_servers_file_wrapper(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF")
    _, _, body = wsgi_parts(
        Response(path.open("rb"), mimetype="application/pdf"),
        environ(**{"wsgi.file_wrapper": FileWrapper}),
    )
    assert isinstance(body, FileWrapper)
    assert b"".join(body) == b"%PDF"
    body.close()


@pytest.mark.parametrize(
    ("content_type", "sent"),
    [
        ("text/html", "text/html; charset=utf-8"),
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("application/json", "application/json; charset=utf-8"),
        ("application/problem+json", "application/problem+json; charset=utf-8"),
        ("application/xml", "application/xml; charset=utf-8"),
        ("application/atom+xml", "application/atom+xml; charset=utf-8"),
        ("image/svg+xml", "image/svg+xml; charset=utf-8"),
        ("application/javascript", "application/javascript; charset=utf-8"),
        ("text/html; charset=iso-8859-1", "text/html; charset=iso-8859-1"),
        ("image/png", "image/png"),
        ("image/jpeg", "image/jpeg"),
        ("application/octet-stream", "application/octet-stream"),
        ("application/pdf", "application/pdf"),
        ("font/woff2", "font/woff2"),
    ],
)
def test_finalize_adds_charset_to_text_types_only(content_type, sent):
    _, headers, _ = run(Response(b"x", content_type=content_type))
    assert header(headers, "Content-Type") == sent


def test_head_returns_headers_without_body():
    status, headers, data = run(Response(b"hello"), "HEAD")
    assert status == "200 OK"
    assert data == b""
    assert header(headers, "Content-Length") == "5"
    assert header(headers, "Content-Type") == "text/html; charset=utf-8"


def test_head_of_a_file_keeps_its_length_and_closes_it(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 1234)
    handle = path.open("rb")
    _, headers, data = run(Response(handle, mimetype="application/octet-stream"), "HEAD")
    assert data == b""
    assert header(headers, "Content-Length") == "1234"
    assert handle.closed


def test_head_of_an_iterable_closes_it_unread():
    body = ClosingIterable([b"never sent"])
    _, _, data = run(Response(body), "HEAD")
    assert data == b""
    assert body.closed


@pytest.mark.parametrize("code", [204, 304])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_no_content_and_not_modified_have_no_body_length_or_type(code, method):
    status, headers, data = run(Response(b"a body that must not be sent", code), method)
    assert status.startswith(str(code))
    assert data == b""
    assert header(headers, "Content-Length") is None
    assert header(headers, "Content-Type") is None


def test_not_modified_closes_a_file_body(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<p>")
    handle = path.open("rb")
    run(Response(handle, 304))
    assert handle.closed


def test_not_modified_keeps_its_validators():
    response = Response(b"", 304, headers={"ETag": '"v1"', "Cache-Control": "no-cache"})
    _, headers, _ = run(response)
    assert header(headers, "ETag") == '"v1"'
    assert header(headers, "Cache-Control") == "no-cache"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Test", "value\r\nSet-Cookie: session=stolen"),
        ("X-Test", "value\rmore"),
        ("X-Test", "value\nmore"),
        ("X-Test", "value\x00"),
        ("X-Test\r\nSet-Cookie", "x=1"),
        ("X-Test\n", "x"),
        ("X-Test\x00", "x"),
        ("X Test", "x"),
        ("", "x"),
        ("Location", "/next\r\n\r\n<script>alert(1)</script>"),
    ],
)
def test_finalize_refuses_cr_lf_nul_in_header_names_and_values(name, value):
    response = Response(b"ok")
    response.headers.add(name, value)
    with pytest.raises(ValueError):
        wsgi_parts(response, environ())


def test_session_dependent_response_varies_on_cookie_once():
    response = Response(b"x", headers={"Vary": "Accept-Encoding"})
    response.vary_cookie = True
    _, headers, _ = run(response)
    assert header(headers, "Vary") == "Accept-Encoding, Cookie"
    again = Response(b"x", headers={"Vary": "cookie"})
    again.vary_cookie = True
    assert header(run(again)[1], "Vary") == "cookie"
    fresh = Response(b"x")
    fresh.vary_cookie = True
    assert header(run(fresh)[1], "Vary") == "Cookie"


# --- cookies -----------------------------------------------------------------------------


def test_set_cookie_adds_one_header_line_per_cookie():
    response = Response()
    response.set_cookie("session", "abc", max_age=60, secure=True)
    response.set_cookie("theme", "dark", httponly=False, samesite="Strict", path="/blog")
    assert response.headers.getlist("Set-Cookie") == [
        "session=abc; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Lax",
        "theme=dark; Path=/blog; SameSite=Strict",
    ]


def test_set_cookie_refuses_values_that_would_inject_attributes():
    with pytest.raises(ValueError):
        Response().set_cookie("session", "abc; Domain=evil.example")


def test_delete_cookie_expires_it_on_the_same_path_and_domain():
    response = Response()
    response.delete_cookie("session", path="/blog", domain="blog.example", secure=True)
    assert response.headers["Set-Cookie"] == (
        "session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/blog; "
        "Domain=blog.example; Secure; HttpOnly; SameSite=Lax"
    )


# --- redirects ---------------------------------------------------------------------------


def test_redirect_defaults_to_303_see_other():
    response = redirect("/posts/hello/")
    status, headers, data = run(response)
    assert status == "303 See Other"
    assert header(headers, "Location") == "/posts/hello/"
    assert data == b""


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_accepts_every_redirect_code(code):
    assert redirect("/", code).status_code == code


@pytest.mark.parametrize("code", [200, 300, 304, 305, 404])
def test_redirect_refuses_codes_that_are_not_redirects(code):
    with pytest.raises(ValueError):
        redirect("/", code)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/a\r\nSet-Cookie: x=1", "/a%0D%0ASet-Cookie:%20x=1"),
        ("/a\nb", "/a%0Ab"),
        ("/a\x00b", "/a%00b"),
        ("/a b", "/a%20b"),
        ("/café", "/caf%C3%A9"),
        ("/search?q=a&tag=b#top", "/search?q=a&tag=b#top"),
        ("/already%20encoded", "/already%20encoded"),
        ("https://blog.example/x", "https://blog.example/x"),
    ],
)
def test_redirect_percent_encodes_the_location(target, location):
    _, headers, _ = run(redirect(target))
    assert header(headers, "Location") == location
    assert [name for name, _ in headers].count("Set-Cookie") == 0


# --- JSON --------------------------------------------------------------------------------


def test_json_response_escapes_html_significant_characters():
    data = {"title": "</script><script>alert('x')</script>", "q": "a & b"}
    response = json_response(data)
    text = response.text
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == data


def test_json_response_is_compact_utf8_json():
    status, headers, body = run(json_response({"name": "Zoë", "tags": [1, 2]}, 201))
    assert status == "201 Created"
    assert header(headers, "Content-Type") == "application/json; charset=utf-8"
    assert body == '{"name":"Zoë","tags":[1,2]}'.encode()


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "2024-05-01T12:00:00+00:00"),
        (datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00+00:00"),
        (
            datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T14:00:00+02:00",
        ),
    ],
)
def test_json_response_writes_datetimes_in_iso_format(moment, text):
    assert json.loads(json_response({"at": moment}).text) == {"at": text}


def test_json_response_refuses_values_json_cannot_hold():
    with pytest.raises(TypeError):
        json_response({"value": object()})


# --- conditional responses ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_not_modified_gives_304_when_the_etag_matches(method):
    response = not_modified(environ(method, HTTP_IF_NONE_MATCH='"v1"'), etag="v1")
    assert response is not None
    status, headers, data = run(response, method)
    assert status == "304 Not Modified"
    assert header(headers, "ETag") == '"v1"'
    assert header(headers, "Content-Type") is None
    assert data == b""


def test_not_modified_gives_none_when_the_etag_differs():
    assert not_modified(environ(HTTP_IF_NONE_MATCH='"v0"'), etag="v1") is None


def test_not_modified_with_weak_tag():
    response = not_modified(environ(HTTP_IF_NONE_MATCH='W/"v1"'), etag="v1", weak=True)
    assert response is not None
    assert response.headers["ETag"] == 'W/"v1"'


def test_not_modified_if_none_match_wins_over_if_modified_since():
    request = environ(HTTP_IF_NONE_MATCH='"v0"', HTTP_IF_MODIFIED_SINCE=http_date(MODIFIED))
    assert not_modified(request, etag="v1", last_modified=MODIFIED) is None


@pytest.mark.parametrize("last_modified", [MODIFIED, MODIFIED.replace(tzinfo=None)])
def test_not_modified_by_date_sends_last_modified(last_modified):
    request = environ(HTTP_IF_MODIFIED_SINCE=http_date(MODIFIED))
    response = not_modified(request, last_modified=last_modified)
    assert response is not None
    assert response.headers["Last-Modified"] == http_date(MODIFIED)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_not_modified_never_answers_unsafe_methods(method):
    request = environ(method, HTTP_IF_NONE_MATCH='"v1"')
    assert not_modified(request, etag="v1") is None


def test_with_validators_sets_etag_and_last_modified():
    response = Response(b"page")
    assert with_validators(response, etag="v1", last_modified=MODIFIED) is response
    assert response.etag == '"v1"'
    assert response.headers["Last-Modified"] == "Wed, 01 May 2024 12:00:00 GMT"
    assert response.last_modified == MODIFIED


def _page() -> Response:
    return with_validators(Response(b"the page"), etag="v1", last_modified=MODIFIED)


def test_make_conditional_turns_a_matching_etag_into_304():
    response = _page().make_conditional(environ(HTTP_IF_NONE_MATCH='W/"v1", "v2"'))
    status, headers, data = run(response)
    assert status == "304 Not Modified"
    assert data == b""
    assert header(headers, "ETag") == '"v1"'


def test_make_conditional_if_none_match_wins_over_if_modified_since():
    request = environ(
        HTTP_IF_NONE_MATCH='"v0"', HTTP_IF_MODIFIED_SINCE=http_date(MODIFIED + timedelta(days=1))
    )
    assert _page().make_conditional(request).status_code == 200


def test_make_conditional_by_date():
    fresh = environ(HTTP_IF_MODIFIED_SINCE=http_date(MODIFIED))
    stale = environ(HTTP_IF_MODIFIED_SINCE=http_date(MODIFIED - timedelta(seconds=1)))
    assert _page().make_conditional(fresh).status_code == 304
    assert _page().make_conditional(stale).status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_make_conditional_never_gives_304_to_other_methods(method):
    response = _page().make_conditional(environ(method, HTTP_IF_NONE_MATCH='"v1"'))
    assert response.status_code == 200
    assert response.get_data() == b"the page"


def test_make_conditional_leaves_errors_alone():
    response = with_validators(Response(b"gone", 404), etag="v1")
    assert response.make_conditional(environ(HTTP_IF_NONE_MATCH='"v1"')).status_code == 404


# --- whole WSGI calls under wsgiref's validator ------------------------------------------


@pytest.mark.parametrize(
    ("make", "code", "data"),
    [
        (lambda: Response("hello"), 200, b"hello"),
        (lambda: Response([b"chunk", b"ed"]), 200, b"chunked"),
        (lambda: Response(b"dropped", 204), 204, b""),
        (lambda: Response(b"dropped", 304), 304, b""),
        (lambda: redirect("/elsewhere"), 303, b""),
        (lambda: json_response({"a": 1}), 200, b'{"a":1}'),
    ],
)
def test_response_is_a_valid_wsgi_app(make, code, data):
    response = TestClient(make(), validate=True).get("/")
    assert (response.status_code, response.data) == (code, data)


def make_app(tmp_path) -> App:
    """Give a small App whose views return the responses under test."""
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "error.html").write_text("{{ error.code }} {{ error.description }}")
    app = App({"BASE_URL": "http://localhost", "DEBUG": False}, template_folder=str(tmp_path))
    app.add_route("/page", lambda request: "hello", endpoint="page")
    app.add_route("/empty", lambda request: Response(b"", 204), endpoint="empty")

    def cached(request):
        return (
            with_validators(Response("cached page"), etag="v1", last_modified=MODIFIED)
        ).make_conditional(request.environ)

    def injected(request):
        response = Response("x")
        response.headers.set("X-Echo", request.args.get("v", ""))
        return response

    app.add_route("/cached", cached)
    app.add_route("/echo", injected, endpoint="echo")
    return app


def test_app_head_returns_headers_without_body(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    got, head = client.get("/page"), client.head("/page")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == "5"
    assert head.headers["Content-Type"] == got.headers["Content-Type"]


def test_app_no_content_passes_the_validator(tmp_path):
    response = make_app(tmp_path).test_client(validate=True).get("/empty")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers


def test_app_answers_a_matching_etag_with_304(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    first = client.get("/cached")
    assert first.status_code == 200
    again = client.get("/cached", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    assert "Content-Length" not in again.headers


def test_app_turns_a_header_injection_into_a_500(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.get("/echo", query={"v": "x\r\nSet-Cookie: session=stolen"})
    assert response.status_code == 500
    assert "X-Echo" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert client.get("/echo", query={"v": "fine"}).headers["X-Echo"] == "fine"
