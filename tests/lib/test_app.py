"""Tests for pyproject/lib/app.py: the life of a request through a small App."""

from __future__ import annotations

import logging
import re

import pytest

from pyproject.config import ROOT
from pyproject.lib import Response, not_modified, redirect, url_for
from pyproject.lib.exceptions import Forbidden, HTTPException, NotFound, abort
from pyproject.lib.routing import RoutingError

SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
)


class LeakyError(Exception):
    """An exception whose text must never reach the client."""


class TeapotError(Exception):
    pass


def assert_site_layout(response, title: str) -> None:
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = response.html
    assert title in html.title.text
    assert html.select_one("header.site-header a.site-name").text == "Test Site"
    assert html.select_one("main h1").text == title


# --- what a view may return ------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "status", "content_type", "body"),
    [
        (Response("made by hand", 201), 201, "text/html; charset=utf-8", b"made by hand"),
        ("a string", 200, "text/html; charset=utf-8", b"a string"),
        (b"some bytes", 200, "text/html; charset=utf-8", b"some bytes"),
        (("created", 201), 201, "text/html; charset=utf-8", b"created"),
        (("accepted", 202, {"X-Extra": "yes"}), 202, "text/html; charset=utf-8", b"accepted"),
        ((Response("kept"), 203, [("X-Extra", "yes")]), 203, "text/html; charset=utf-8", b"kept"),
        ({"answer": 42}, 200, "application/json; charset=utf-8", b'{"answer":42}'),
        (({"made": True}, 201), 201, "application/json; charset=utf-8", b'{"made":true}'),
        ([1, "<two>"], 200, "application/json; charset=utf-8", b'[1,"\\u003ctwo\\u003e"]'),
    ],
    ids=[
        "response",
        "str",
        "bytes",
        "body-status",
        "body-status-headers",
        "response-status-headers",
        "dict",
        "dict-status",
        "list",
    ],
)
def test_view_return_values_become_responses(make_app, returned, status, content_type, body):
    app = make_app()
    app.add_route("/view", lambda request: returned, endpoint="view")

    response = app.test_client(validate=True).get("/view")

    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    assert response.data == body
    assert response.headers["Content-Length"] == str(len(body))
    if isinstance(returned, tuple) and len(returned) == 3:
        assert response.headers["X-Extra"] == "yes"


@pytest.mark.parametrize(
    "returned",
    [None, 42, object(), ("too", "many", "parts", "here"), ("one",), {1, 2}],
    ids=["none", "int", "object", "4-tuple", "1-tuple", "set"],
)
def test_view_returning_something_else_is_a_logged_500(make_app, logs, returned):
    app = make_app()
    app.add_route("/view", lambda request: returned, endpoint="view")

    response = app.test_client(validate=True).get("/view")

    assert response.status_code == 500
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is TypeError


# --- registration ----------------------------------------------------------------------


def test_registering_a_route_after_the_first_request_raises(make_app):
    app = make_app()
    app.test_client(validate=True).get("/")

    with pytest.raises(RoutingError):
        app.add_route("/late", lambda request: "late", endpoint="late")


def test_two_views_for_the_same_rule_and_method_raise(make_app):
    app = make_app()
    app.add_route("/thing", lambda request: "one", endpoint="one", methods=["GET", "POST"])

    with pytest.raises(RoutingError):
        app.add_route("/thing", lambda request: "two", endpoint="two", methods=["POST"])


def test_one_rule_may_have_different_views_per_method(make_app):
    app = make_app()
    app.add_route("/thing", lambda request: "read", endpoint="read")
    app.add_route("/thing", lambda request: "write", endpoint="write", methods=["PUT"], csrf=False)
    client = app.test_client(validate=True)

    assert client.get("/thing").data == b"read"
    assert client.put("/thing").data == b"write"


# --- HEAD, OPTIONS, 404, 405 -------------------------------------------------------------


def test_get_route_answers_head_with_the_same_headers_and_no_body(make_app):
    app = make_app()
    app.add_route(
        "/page", lambda request: ("<p>a page</p>", 200, {"ETag": '"v1"'}), endpoint="page"
    )
    client = app.test_client(validate=True)

    get = client.get("/page")
    head = client.head("/page")

    assert head.status_code == 200
    assert head.data == b""
    assert head.headers.items() == get.headers.items()
    assert head.headers["Content-Length"] == str(len(get.data))


def test_options_answers_204_with_allow(make_app):
    app = make_app()
    app.add_route("/form", lambda request: "form", methods=["GET", "POST"], endpoint="form")

    response = app.test_client(validate=True).options("/form")

    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert "Content-Type" not in response.headers


def test_options_on_an_unknown_path_is_404(make_app):
    response = make_app().test_client(validate=True).options("/nowhere")

    assert response.status_code == 404


def test_404_is_an_html_page_in_the_site_layout(make_app):
    response = make_app().test_client(validate=True).get("/no/such/page")

    assert response.status_code == 404
    assert_site_layout(response, "Not Found")


def test_405_is_an_html_page_in_the_site_layout_with_allow(make_app):
    app = make_app()
    app.add_route("/read-only", lambda request: "read", endpoint="read_only")

    response = app.test_client(validate=True).post("/read-only")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert_site_layout(response, "Method Not Allowed")


@pytest.mark.parametrize(
    "accept", ["application/json", "application/json, text/html;q=0.5", "application/ld+json"]
)
def test_404_is_json_when_the_client_asks_for_json(make_app, accept):
    response = make_app().test_client(validate=True).get("/nowhere", headers={"Accept": accept})

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json["error"]["status"] == 404


def test_405_is_json_with_allow_when_the_client_asks_for_json(make_app):
    app = make_app()
    app.add_route("/read-only", lambda request: "read", endpoint="read_only")

    response = app.test_client(validate=True).delete(
        "/read-only", headers={"Accept": "application/json"}
    )

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json["error"]["status"] == 405


@pytest.mark.parametrize(
    "path",
    [
        "/<script>alert(1)</script>",
        "/%3Cscript%3Ealert(1)%3C/script%3E",
        '/"><script>alert(1)</script>',
        "/<img src=x onerror=alert(1)>",
        "/</title><script>alert(1)</script>",
    ],
)
def test_the_path_sent_is_never_markup_on_the_404_page(make_app, path):
    response = make_app().test_client(validate=True).get(path)

    assert response.status_code == 404
    assert response.html.find_all("script") == []
    assert response.html.select("[onerror]") == []
    assert b"<script>" not in response.data


# --- hooks -----------------------------------------------------------------------------


def test_before_request_hook_returning_a_response_short_circuits(make_app):
    app = make_app()
    calls = []
    app.add_route(
        "/guarded", lambda request: calls.append("view") or "view ran", endpoint="guarded"
    )
    app.before_request(lambda request: ("closed for maintenance", 503))

    response = app.test_client(validate=True).get("/guarded")

    assert response.status_code == 503
    assert response.data == b"closed for maintenance"
    assert calls == []


def test_before_request_hook_returning_none_lets_the_view_run(make_app):
    app = make_app()
    app.add_route("/open", lambda request: request.context["user"], endpoint="open")
    app.before_request(lambda request: request.context.update(user="ada"))

    response = app.test_client(validate=True).get("/open")

    assert response.data == b"ada"


def test_after_request_hook_can_change_the_response(make_app):
    app = make_app()
    app.add_route("/page", lambda request: "original", endpoint="page")

    @app.after_request
    def stamp(request, response):
        response.headers.set("X-Stamped", request.endpoint)
        return response

    @app.after_request
    def replace(request, response):
        return Response("replaced", 202)

    response = app.test_client(validate=True).get("/page")

    # Hooks run in reverse order of registration, each on the last one's result.
    assert response.status_code == 202
    assert response.data == b"replaced"
    assert response.headers["X-Stamped"] == "page"


def test_teardown_runs_with_no_error_after_a_normal_request(make_app):
    app = make_app()
    seen = []
    app.teardown_request(lambda request, error: seen.append((request.path, error)))

    app.test_client(validate=True).get("/")

    assert seen == [("/", None)]


def test_teardown_runs_and_receives_the_error_when_the_view_raises(make_app):
    app = make_app()
    seen = []

    def broken(request):
        raise LeakyError("database is down")

    app.add_route("/broken", broken)
    app.teardown_request(lambda request, error: seen.append(error))

    response = app.test_client(validate=True).get("/broken")

    assert response.status_code == 500
    assert len(seen) == 1
    assert isinstance(seen[0], LeakyError)


def test_teardown_receives_http_errors_too(make_app):
    app = make_app()
    seen = []
    app.teardown_request(lambda request, error: seen.append(error))

    app.test_client(validate=True).get("/missing")

    assert len(seen) == 1
    assert isinstance(seen[0], NotFound)


def test_a_failing_teardown_does_not_stop_the_others_or_the_response(make_app, logs):
    app = make_app()
    seen = []
    app.teardown_request(lambda request, error: seen.append("first registered"))

    @app.teardown_request
    def broken(request, error):
        raise RuntimeError("teardown failed")

    response = app.test_client(validate=True).get("/")

    assert response.status_code == 200
    assert seen == ["first registered"]
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in logs.records)


# --- error handlers --------------------------------------------------------------------


def test_error_handler_by_status_code(make_app):
    app = make_app()
    app.errorhandler(404)(lambda request, error: (f"custom 404 for {request.path}", 404))

    response = app.test_client(validate=True).get("/missing")

    assert response.status_code == 404
    assert response.data == b"custom 404 for /missing"


def test_error_handler_by_exception_class(make_app):
    app = make_app()

    def brew(request):
        raise TeapotError

    app.add_route("/brew", brew)
    app.errorhandler(TeapotError)(lambda request, error: ("short and stout", 418))

    response = app.test_client(validate=True).get("/brew")

    assert response.status_code == 418
    assert response.data == b"short and stout"


def test_error_handler_by_base_class_catches_subclasses(make_app):
    app = make_app()
    app.add_route("/private", lambda request: abort(403), endpoint="private")
    app.errorhandler(HTTPException)(lambda request, error: (f"handled {error.code}", error.code))

    response = app.test_client(validate=True).get("/private")

    assert response.status_code == 403
    assert response.data == b"handled 403"


def test_the_most_specific_class_handler_wins_whatever_the_registration_order(make_app):
    app = make_app()
    app.add_route("/private", lambda request: abort(403), endpoint="private")
    app.add_route("/missing", lambda request: abort(404), endpoint="missing")
    app.errorhandler(HTTPException)(lambda request, error: ("any http error", error.code))
    app.errorhandler(Forbidden)(lambda request, error: ("forbidden", 403))
    client = app.test_client(validate=True)

    assert client.get("/private").data == b"forbidden"
    assert client.get("/missing").data == b"any http error"


def test_error_handler_by_code_wins_over_one_by_class(make_app):
    app = make_app()
    app.add_route("/private", lambda request: abort(403), endpoint="private")
    app.errorhandler(Forbidden)(lambda request, error: ("by class", 403))
    app.errorhandler(403)(lambda request, error: ("by code", 403))

    response = app.test_client(validate=True).get("/private")

    assert response.data == b"by code"


def test_500_handler_answers_unexpected_exceptions_and_they_are_still_logged(make_app, logs):
    app = make_app()

    def broken(request):
        raise LeakyError("password=hunter2")

    app.add_route("/broken", broken)
    app.errorhandler(500)(lambda request, error: ("our own 500 page", 500))

    response = app.test_client(validate=True).get("/broken")

    assert response.status_code == 500
    assert response.data == b"our own 500 page"
    assert any(r.exc_info and r.exc_info[0] is LeakyError for r in logs.records)


def test_an_error_handler_that_fails_gives_a_bare_500(make_app, logs):
    app = make_app()
    app.errorhandler(404)(lambda request, error: 1 / 0)

    response = app.test_client(validate=True).get("/missing")

    assert response.status_code == 500
    assert b"Internal Server Error" in response.data
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in logs.records)


# --- unexpected exceptions -----------------------------------------------------------


def raise_leaky(request):
    raise LeakyError("secret-db-password in /srv/secret/config.py")


def test_unexpected_exception_is_logged_with_its_traceback(make_app, logs):
    app = make_app()
    app.add_route("/broken", raise_leaky)

    app.test_client(validate=True).get("/broken")

    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info[0] is LeakyError
    assert errors[0].exc_info[2] is not None
    assert "raise_leaky" in logs.text
    assert "secret-db-password" in logs.text


def test_unexpected_exception_gives_a_500_page_that_reveals_nothing(make_app):
    app = make_app()
    app.add_route("/broken", raise_leaky)

    response = app.test_client(validate=True).get("/broken")

    assert response.status_code == 500
    assert_site_layout(response, "Internal Server Error")
    assert response.headers["Cache-Control"] == "no-store"
    exposed = response.text + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in (
        "secret-db-password",
        "LeakyError",
        "Traceback",
        "raise_leaky",
        "/srv/secret",
        str(ROOT),
        __file__,
    ):
        assert secret not in exposed


def test_unexpected_exception_is_json_without_details_when_asked_for_json(make_app):
    app = make_app()
    app.add_route("/broken", raise_leaky)

    response = app.test_client(validate=True).get("/broken", headers={"Accept": "application/json"})

    assert response.status_code == 500
    assert response.json["error"]["status"] == 500
    assert "secret" not in response.text
    assert "LeakyError" not in response.text


def test_with_debug_the_500_page_shows_the_traceback(make_app):
    app = make_app(DEBUG=True)
    app.add_route("/broken", raise_leaky)

    response = app.test_client(validate=True).get("/broken")

    assert response.status_code == 500
    trace = response.html.select_one("pre.traceback").text
    assert "Traceback" in trace
    assert "raise_leaky" in trace
    assert "LeakyError: secret-db-password" in trace


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Note", "fine\r\nSet-Cookie: session=attacker"),
        ("X-Note", "fine\nSet-Cookie: session=attacker"),
        ("X-Note", "fine\rSet-Cookie: session=attacker"),
        ("X-Note", "fine\x00Set-Cookie: session=attacker"),
        ("X-Note\r\nSet-Cookie", "session=attacker"),
        ("X-Note: injected", "value"),
        ("X Note", "value"),
        ("", "value"),
    ],
    ids=["crlf", "lf", "cr", "nul", "crlf-in-name", "colon-in-name", "space-in-name", "empty"],
)
def test_a_header_with_cr_lf_or_a_bad_name_gives_a_500_not_a_split_header(
    make_app, logs, name, value
):
    app = make_app()
    app.add_route("/inject", lambda request: ("body", 200, {name: value}), endpoint="inject")

    response = app.test_client(validate=True).get("/inject")

    assert response.status_code == 500
    assert "Set-Cookie" not in response.headers
    assert "X-Note" not in response.headers
    assert all("attacker" not in v and "\n" not in v for _, v in response.headers.items())
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in logs.records)


# --- URLs and hosts --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "blog.example", "localhost:8080"])
def test_external_url_for_uses_base_url_never_the_host_header(make_app, host):
    app = make_app(BASE_URL="https://blog.example/")
    app.add_route("/posts/<slug:slug>", lambda request, slug: slug, endpoint="post")
    app.add_route(
        "/link", lambda request: url_for("post", slug="hello-world", _external=True, page=2)
    )

    response = app.test_client(validate=True).get("/link", headers={"Host": host})

    assert response.data == b"https://blog.example/posts/hello-world?page=2"


def test_internal_url_for_is_a_path(make_app):
    app = make_app()
    app.add_route("/posts/<slug:slug>", lambda request, slug: slug, endpoint="post")
    app.add_route("/link", lambda request: url_for("post", slug="hello"), endpoint="link")

    assert app.test_client(validate=True).get("/link").data == b"/posts/hello"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "blog.example.evil.example",
        "evilblog.example",
        "localhost:notaport",
        "localhost:123456",
        "local host",
        "localhost/path",
        "user@localhost",
        "[::1",
        "",
        "a" * 300,
        "bl\u00f6g.example",
    ],
)
def test_unknown_or_malformed_host_is_a_400_page(make_app, host):
    app = make_app()
    calls = []
    app.add_route("/page", lambda request: calls.append(1) or "page", endpoint="page")

    response = app.test_client(validate=True).get("/page", headers={"Host": host})

    assert response.status_code == 400
    assert_site_layout(response, "Bad Request")
    assert calls == []


@pytest.mark.parametrize("host", ["localhost:8000", "LOCALHOST", "Blog.Example", "localhost."])
def test_allowed_host_in_any_spelling_is_answered(make_app, host):
    response = make_app().test_client(validate=True).get("/", headers={"Host": host})

    assert response.status_code == 200


# --- security headers ------------------------------------------------------------------


def security_app(make_app):
    app = make_app(max_content_length=100)

    def form(request):
        return f"{len(request.form)} fields"

    app.add_route("/form", form, methods=["POST"], csrf=False)
    app.add_route("/go", lambda request: redirect("/"), endpoint="go")
    app.add_route(
        "/cached",
        lambda request: not_modified(request.environ, etag="v1") or "fresh",
        endpoint="cached",
    )
    app.add_route("/broken", raise_leaky)
    return app


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/", {}, 200),
        ("GET", "/go", {}, 303),
        ("GET", "/cached", {"headers": {"If-None-Match": '"v1"'}}, 304),
        ("GET", "/missing", {}, 404),
        ("DELETE", "/", {}, 405),
        ("POST", "/form", {"data": {"text": "x" * 200}}, 413),
        ("GET", "/broken", {}, 500),
        ("GET", "/", {"headers": {"Host": "evil.example"}}, 400),
        ("GET", "/static/css/site.css", {}, 200),
        ("GET", "/static/css/missing.css", {}, 404),
        ("POST", "/static/css/site.css", {}, 405),
    ],
    ids=[
        "200",
        "303",
        "304",
        "404",
        "405",
        "413",
        "500",
        "400",
        "static-200",
        "static-404",
        "static-405",
    ],
)
def test_security_headers_are_on_every_response(make_app, method, path, kwargs, status):
    client = security_app(make_app).test_client(validate=True)

    response = client.open(method, path, **kwargs)

    assert response.status_code == status
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "'unsafe-inline'" not in directives.get("script-src", directives["default-src"])
    assert directives["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    for name in SECURITY_HEADERS:
        assert len(response.headers.getlist(name)) == 1


def test_static_304_carries_security_headers(make_app):
    client = make_app().test_client(validate=True)
    etag = client.get("/static/css/site.css").headers["ETag"]

    response = client.get("/static/css/site.css", headers={"If-None-Match": etag})

    assert response.status_code == 304
    for name in SECURITY_HEADERS:
        assert name in response.headers


def test_hsts_is_sent_only_when_base_url_is_https(make_app):
    https = make_app(BASE_URL="https://blog.example").test_client(validate=True).get("/")
    http = make_app(BASE_URL="http://blog.example").test_client(validate=True).get("/")

    assert https.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in http.headers


def test_a_view_may_set_its_own_csp(make_app):
    app = make_app()
    app.add_route(
        "/embed", lambda request: ("x", 200, {"Content-Security-Policy": "default-src 'none'"})
    )

    response = app.test_client(validate=True).get("/embed")

    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]


# --- request logging -------------------------------------------------------------------

LOG_LINE = re.compile(
    r"^(?P<method>\S+) (?P<path>\S+) (?P<status>\d{3}) (?P<bytes>\d+|-) [\d.]+ms$"
)


@pytest.mark.parametrize(
    ("method", "path", "status", "size"),
    [
        ("GET", "/hello", "200", "5"),
        ("HEAD", "/hello", "200", "5"),
        ("POST", "/hello", "405", None),
        ("GET", "/missing", "404", None),
        ("GET", "/broken", "500", None),
    ],
)
def test_each_request_logs_one_debug_line(make_app, logs, method, path, status, size):
    app = make_app()
    app.add_route("/hello", lambda request: "hello", endpoint="hello")
    app.add_route("/broken", raise_leaky)

    response = app.test_client(validate=True).open(method, path)

    lines = [r for r in logs.records if r.name == "pyproject.request"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
    match = LOG_LINE.match(lines[0].getMessage())
    assert match is not None, lines[0].getMessage()
    assert match["method"] == method
    assert match["path"] == path
    assert match["status"] == status
    assert match["bytes"] == (size or response.headers["Content-Length"])


@pytest.mark.parametrize(
    "path",
    ["/a%0d%0aGET /admin 200 1 0.1ms", "/a%0aforged", "/a%1b[31mred", "/a%00b"],
    ids=["crlf", "lf", "ansi-escape", "nul"],
)
def test_request_log_line_cannot_be_split_or_forged(make_app, logs, path):
    make_app().test_client(validate=True).get(path)

    lines = [r.getMessage() for r in logs.records if r.name == "pyproject.request"]
    assert len(lines) == 1
    assert lines[0].isprintable()
    assert lines[0].startswith("GET /a")
    assert re.search(r" 404 \d+ [\d.]+ms$", lines[0])


def test_error_log_message_cannot_be_forged_by_the_path(make_app, logs):
    app = make_app()

    # No route matches a segment with control characters, so fail before routing.
    @app.before_request
    def anything(request):
        raise LeakyError("boom")

    app.test_client(validate=True).get("/a%0d%0aERROR forged line")

    (error,) = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert "\n" not in error.getMessage()
    assert "\r" not in error.getMessage()
