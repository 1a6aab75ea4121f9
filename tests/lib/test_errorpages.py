"""Tests for pyproject/lib/errorpages.py: how an error becomes an HTML page or JSON."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pyproject.lib.errorpages import plain_500
from pyproject.lib.exceptions import (
    BadRequest,
    Gone,
    MethodNotAllowed,
    NotFound,
    Redirect,
    RequestEntityTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    abort,
)

JSON = {"Accept": "application/json"}


class SecretError(Exception):
    """An unexpected error whose text must stay in the log."""


def raise_secret(request):
    raise SecretError("db password is hunter2")


def raiser(error):
    def view(request):
        raise error

    return view


@pytest.fixture
def app(make_app):
    """A small App whose views raise the errors under test."""
    app = make_app()
    app.add_route("/gone", raiser(Gone("That post was purged.")), endpoint="gone")
    app.add_route("/secret", raise_secret)
    app.add_route("/slow-down", raiser(TooManyRequests(retry_after=30)), endpoint="slow")
    app.add_route("/only-get", raiser(MethodNotAllowed(["GET", "PUT"])), endpoint="only_get")
    app.add_route("/moved", raiser(Redirect("/new-place?keep=1", 301)), endpoint="moved")
    app.add_route("/abort/<int:code>", lambda request, code: abort(code), endpoint="abort")
    return app


@pytest.fixture
def client(app):
    return app.test_client(validate=True)


# --- HTML or JSON ----------------------------------------------------------------------------


def test_an_http_error_is_an_html_page_in_the_site_layout(client):
    response = client.get("/gone")

    assert response.status_code == 410
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = response.html
    assert html.title.text == "410 Gone · Test Site"
    assert html.select_one("header.site-header .site-name").text == "Test Site"
    assert html.select_one("main h1").text == "Gone"
    assert html.select_one("main p").text == "That post was purged."


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/problem+json",
        "application/json, text/html;q=0.9",
        "text/html;q=0.1, application/json",
    ],
)
def test_an_http_error_is_json_when_the_client_ranks_json_first(client, accept):
    response = client.get("/gone", headers={"Accept": accept})

    assert response.status_code == 410
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json == {"error": {"status": 410, "message": "That post was purged."}}


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "text/html", "text/html, application/json;q=0.9", "image/png"],
)
def test_an_http_error_is_html_unless_json_is_ranked_first(client, accept):
    response = client.get("/gone", headers={"Accept": accept} if accept else {})

    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.html.select_one("main h1").text == "Gone"


def test_errors_under_api_are_json_whatever_the_accept_header(client):
    response = client.get("/api/nothing-here", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert response.json == {"error": {"status": 404, "message": NotFound.description}}


def test_a_template_for_the_code_wins_over_the_generic_one(make_app, tmp_path: Path):
    folder = tmp_path / "templates"
    (folder / "errors").mkdir(parents=True)
    (folder / "errors" / "error.html").write_text("generic {{ error.code }}", encoding="utf-8")
    (folder / "errors" / "404.html").write_text(
        "<p class=lost>Lost? {{ error.description }}</p>", encoding="utf-8"
    )
    client = make_app(template_folder=str(folder)).test_client(validate=True)

    lost = client.get("/nowhere")
    refused = client.post("/")

    assert lost.status_code == 404
    assert lost.html.select_one("p.lost").text == f"Lost? {NotFound.description}"
    assert refused.status_code == 405
    assert refused.text == "generic 405"


# --- headers the error carries ---------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, JSON], ids=["html", "json"])
def test_the_errors_own_headers_are_sent(client, headers):
    slow = client.get("/slow-down", headers=headers)
    only = client.get("/only-get", headers=headers)

    assert slow.status_code == 429
    assert slow.headers["Retry-After"] == "30"
    assert only.status_code == 405
    assert only.headers["Allow"] == "GET, PUT"


def test_a_redirect_raised_in_a_view_is_a_bare_redirect(client):
    response = client.get("/moved", headers=JSON)

    assert response.status_code == 301
    assert response.location == "/new-place?keep=1"
    assert response.data == b""


@pytest.mark.parametrize(
    ("code", "cacheable"),
    [(400, False), (403, True), (404, True), (410, True), (413, False), (500, False), (503, False)],
)
def test_400_413_and_server_errors_are_never_stored(client, code, cacheable):
    response = client.get(f"/abort/{code}")

    assert response.status_code == code
    if cacheable:
        assert "Cache-Control" not in response.headers
    else:
        assert response.headers["Cache-Control"] == "no-store"


def test_head_gets_the_error_status_and_headers_without_a_body(client):
    get = client.get("/slow-down")
    head = client.head("/slow-down")

    assert head.status_code == 429
    assert head.data == b""
    assert head.headers["Retry-After"] == "30"
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["Content-Length"] == str(len(get.data))


# --- unexpected exceptions -------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, JSON], ids=["html", "json"])
def test_an_unexpected_exception_is_a_500_that_shows_nothing_of_it(client, headers):
    response = client.get("/secret", headers=headers)

    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "no-store"
    for leak in ("hunter2", "SecretError", "Traceback", "raise_secret", __file__):
        assert leak not in response.text
    if headers:
        assert response.json["error"]["status"] == 500
    else:
        assert response.html.select_one("main h1").text == "Internal Server Error"


def test_an_unexpected_exception_is_logged_with_its_traceback_and_request(client, logs):
    client.get("/secret?x=1")

    records = [r for r in logs.records if r.name == "pyproject.lib.exceptions"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info[0] is SecretError
    assert "'GET' '/secret'" in record.getMessage()
    assert "Traceback" in logs.text
    assert "raise_secret" in logs.text
    assert "db password is hunter2" in logs.text


def test_an_unexpected_exception_under_head_has_no_body(client):
    response = client.head("/secret")

    assert response.status_code == 500
    assert response.data == b""


# --- when the error page itself fails --------------------------------------------------------


@pytest.fixture
def broken_layout(make_app, tmp_path: Path):
    """An App whose error template fails to render (as if the database behind it were down)."""
    folder = tmp_path / "templates"
    (folder / "errors").mkdir(parents=True)
    (folder / "errors" / "error.html").write_text("{{ no_such_value() }}", encoding="utf-8")
    app = make_app(template_folder=str(folder))
    app.add_route(
        "/hostile",
        raiser(BadRequest("<script>alert(1)</script> & more")),
        endpoint="hostile",
    )
    app.add_route("/secret", raise_secret)
    return app


def test_a_broken_error_template_falls_back_to_a_bare_escaped_page(broken_layout, logs):
    response = broken_layout.test_client(validate=True).get("/hostile")

    assert response.status_code == 400
    assert response.html.select_one("h1").text == "Bad Request"
    assert response.html.select_one("p").text == "<script>alert(1)</script> & more"
    assert response.html.find_all("script") == []
    assert "error page template failed for 400" in logs.text


def test_a_broken_error_template_on_a_500_gives_the_last_resort_page(broken_layout, logs):
    response = broken_layout.test_client(validate=True).get("/secret")

    assert response.status_code == 500
    assert response.data == plain_500().get_data()
    assert "hunter2" not in response.text
    assert any(r.exc_info and r.exc_info[0] is SecretError for r in logs.records)


def test_the_last_resort_500_page_needs_no_template_and_is_never_stored():
    response = plain_500()

    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "no-store"
    assert b"<h1>Internal Server Error</h1>" in response.get_data()


@pytest.mark.parametrize("error", [RequestEntityTooLarge(), ServiceUnavailable()])
def test_a_json_error_carries_the_errors_description(make_app, error):
    app = make_app()
    app.add_route("/fail", raiser(error), endpoint="fail")

    response = app.test_client(validate=True).get("/fail", headers=JSON)

    assert response.json == {"error": {"status": error.code, "message": error.description}}
