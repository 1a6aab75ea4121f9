"""Tests for pyproject/lib/security.py: CSRF tokens, origin checks, the security headers."""

from __future__ import annotations

import secrets

import pytest

from pyproject.lib.security import (
    CSRF_FIELD,
    DEFAULT_CSP,
    UNSAFE_METHODS,
    csrf_token,
    origin_of,
    security_headers,
)

UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def app(make_app, calls):
    """Give an App with a token page, a protected endpoint and an unprotected one."""
    app = make_app()

    def token(request):
        return csrf_token(request.session)

    def submit(request):
        calls.append(request.method)
        return "accepted"

    def webhook(request):
        calls.append("webhook")
        return "webhook accepted"

    app.add_route("/token", token)
    app.add_route("/submit", submit, methods=["GET", *UNSAFE])
    app.add_route("/webhook", webhook, methods=["POST"], csrf=False)
    return app


@pytest.fixture
def client(app):
    return app.test_client(validate=True)


@pytest.fixture
def token(client) -> str:
    return client.get("/token").text


def assert_refused(response, calls) -> None:
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.html.select_one("main h1").text == "Forbidden"
    assert calls == []


# --- tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (None, None),
        ("csrf_token", ""),
        ("csrf_token", "short"),
        ("csrf_token", "A" * 42),
        ("csrf_token", "A" * 44),
        ("csrf_token", "é" * 43),
        ("csrf_token", "\x00" * 43),
        ("csrf_token", "A" * 100_000),
        ("csrf_token", "TOKEN "),
        ("csrf_token", " TOKEN"),
        ("CSRF_TOKEN", "TOKEN"),
        ("csrf_token[]", "TOKEN"),
    ],
    ids=[
        "none",
        "empty",
        "short",
        "one-short",
        "one-long",
        "non-ascii",
        "nul",
        "very-long",
        "trailing-space",
        "leading-space",
        "wrong-field-case",
        "wrong-field-name",
    ],
)
def test_post_without_a_valid_token_is_refused_before_the_view(client, token, calls, field, value):
    data = {"text": "hello"}
    if field is not None:
        data[field] = value.replace("TOKEN", token)

    response = client.post("/submit", data=data)

    assert_refused(response, calls)


def test_a_random_token_of_the_right_shape_is_refused(client, token, calls):
    response = client.post("/submit", data={"csrf_token": secrets.token_urlsafe(32)})

    assert_refused(response, calls)


def test_another_sessions_token_is_refused(app, client, token, calls):
    other_token = app.test_client(validate=True).get("/token").text

    response = client.post("/submit", data={"csrf_token": other_token})

    assert other_token != token
    assert_refused(response, calls)


def test_a_token_without_a_session_is_refused(app, token, calls):
    stranger = app.test_client(validate=True)

    response = stranger.post("/submit", data={"csrf_token": token})

    assert_refused(response, calls)


def test_a_token_only_in_the_query_string_is_refused(client, token, calls):
    response = client.post(f"/submit?csrf_token={token}", data={"text": "hello"})

    assert_refused(response, calls)


@pytest.mark.parametrize("header", ["", "é" * 43, "A" * 8000, "wrong"])
def test_a_bad_header_token_is_refused_even_with_a_good_form_token(client, token, calls, header):
    latin1 = header.encode().decode("latin-1")

    response = client.post("/submit", data={"csrf_token": token}, headers={"X-CSRF-Token": latin1})

    assert_refused(response, calls)


def test_a_valid_token_in_the_form_is_accepted(client, token, calls):
    response = client.post("/submit", data={"csrf_token": token, "text": "hello"})

    assert response.status_code == 200
    assert calls == ["POST"]


def test_a_valid_token_in_a_multipart_form_is_accepted(client, token, calls):
    response = client.post(
        "/submit",
        data={"csrf_token": token},
        files={"upload": ("a.txt", b"content", "text/plain")},
    )

    assert response.status_code == 200
    assert calls == ["POST"]


def test_a_valid_token_in_the_header_is_accepted(client, token, calls):
    response = client.post("/submit", headers={"X-CSRF-Token": token})

    assert response.status_code == 200
    assert calls == ["POST"]


def test_the_token_stays_the_same_for_the_session(client, token):
    assert client.get("/token").text == token


# --- origins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://blog.example",
        "https://blog.example:8443",
        "https://blog.example.evil.example",
        "https://evil.example/https://blog.example",
        "https://localhost",
        "",
    ],
)
def test_a_valid_token_from_a_foreign_origin_is_refused(client, token, calls, origin):
    response = client.post("/submit", data={"csrf_token": token}, headers={"Origin": origin})

    assert_refused(response, calls)


@pytest.mark.parametrize(
    "origin", ["https://blog.example", "https://BLOG.example", "https://blog.example/"]
)
def test_the_base_url_origin_is_accepted(client, token, calls, origin):
    response = client.post("/submit", data={"csrf_token": token}, headers={"Origin": origin})

    assert response.status_code == 200
    assert calls == ["POST"]


def test_the_origin_of_the_host_the_request_was_sent_to_is_accepted(client, token, calls):
    response = client.post(
        "/submit", data={"csrf_token": token}, headers={"Origin": "http://localhost"}
    )

    assert response.status_code == 200
    assert calls == ["POST"]


def test_sec_fetch_site_cross_site_is_refused(client, token, calls):
    response = client.post(
        "/submit", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )

    assert_refused(response, calls)


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
def test_sec_fetch_site_from_our_side_is_accepted(client, token, calls, site):
    response = client.post("/submit", data={"csrf_token": token}, headers={"Sec-Fetch-Site": site})

    assert response.status_code == 200
    assert calls == ["POST"]


# --- which routes and methods ------------------------------------------------------------


def test_a_route_registered_with_csrf_off_accepts_without_a_token(client, calls):
    response = client.post("/webhook", data={"event": "ping"}, headers={"Origin": "null"})

    assert response.status_code == 200
    assert calls == ["webhook"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_put_patch_and_delete_are_checked(client, token, calls, method):
    refused = client.open(method, "/submit")

    assert_refused(refused, calls)
    accepted = client.open(method, "/submit", headers={"X-CSRF-Token": token})
    assert accepted.status_code == 200
    assert calls == [method]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_get_is_never_checked(client, calls, headers):
    response = client.get("/submit", headers=headers)

    assert response.status_code == 200
    assert calls == ["GET"]


def test_the_403_is_json_when_the_client_asks_for_json(client, calls):
    response = client.post(
        "/submit", json={"text": "hello"}, headers={"Accept": "application/json"}
    )

    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json["error"]["status"] == 403
    assert calls == []


# --- the pieces on their own ---------------------------------------------------------------


def test_unsafe_methods_are_the_ones_that_change_things():
    assert frozenset({"POST", "PUT", "PATCH", "DELETE"}) == UNSAFE_METHODS
    assert not {"GET", "HEAD", "OPTIONS", "TRACE"} & UNSAFE_METHODS
    assert CSRF_FIELD == "csrf_token"


def test_csrf_token_makes_one_token_per_session_and_keeps_it():
    session: dict[str, str] = {}

    first = csrf_token(session)

    assert len(first) >= 43  # 32 random bytes, URL-safe base64
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert csrf_token(session) == first
    assert list(session.values()) == [first]
    assert csrf_token({}) != first


def test_csrf_token_replaces_an_empty_stored_token():
    session: dict[str, str] = {}
    csrf_token(session)
    (key,) = session
    session[key] = ""

    token = csrf_token(session)

    assert token
    assert session[key] == token


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://blog.example/", "https://blog.example"),
        ("https://Blog.Example:8443/path?q=1#top", "https://blog.example:8443"),
        ("HTTP://LOCALHOST", "http://localhost"),
        ("http://[::1]:8000/x", "http://[::1]:8000"),
    ],
)
def test_origin_of_gives_scheme_and_host_lower_cased(url, origin):
    assert origin_of(url) == origin


def test_security_headers_by_default():
    headers = dict(security_headers())

    assert headers == {
        "Content-Security-Policy": DEFAULT_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def test_security_headers_add_hsts_only_when_asked():
    assert "Strict-Transport-Security" not in dict(security_headers())

    headers = dict(security_headers(hsts=True))

    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_security_headers_take_another_csp():
    headers = dict(security_headers("default-src 'none'"))

    assert headers["Content-Security-Policy"] == "default-src 'none'"


def csp_directives(policy: str) -> dict[str, str]:
    return dict(part.strip().partition(" ")[::2] for part in policy.split(";"))


def test_the_default_csp_allows_only_our_own_scripts_and_no_framing():
    directives = csp_directives(DEFAULT_CSP)

    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe-inline" not in DEFAULT_CSP and "unsafe-eval" not in DEFAULT_CSP
