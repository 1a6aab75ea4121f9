"""Tests for pyproject/lib/testing.py: the in-process test client and what it answers."""

from __future__ import annotations

import json

import pytest

from pyproject.lib import Response, redirect
from pyproject.lib.testing import TestClient, TestResponse, encode_multipart


def echo(environ, start_response):
    """A bare WSGI app that answers with the environ it was given (strings) and the body."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    seen["body"] = environ["wsgi.input"].read(length).decode("latin-1")
    seen["has_content_length"] = "CONTENT_LENGTH" in environ
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


@pytest.fixture
def raw() -> TestClient:
    return TestClient(echo, validate=True)


# --- the environ a request gets --------------------------------------------------------------


def test_a_get_builds_the_environ_a_server_would(raw):
    seen = raw.get("/posts/caf%C3%A9?page=2").json

    assert seen["REQUEST_METHOD"] == "GET"
    assert seen["PATH_INFO"] == "/posts/caf\xc3\xa9"  # WSGI: the bytes, as latin-1
    assert seen["QUERY_STRING"] == "page=2"
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"], seen["HTTP_HOST"]) == (
        "localhost",
        "80",
        "localhost",
    )
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["has_content_length"] is False
    assert "HTTP_COOKIE" not in seen


def test_the_base_url_sets_scheme_host_and_port():
    seen = TestClient(echo, base_url="https://blog.example:8443").get("/").json

    assert seen["wsgi.url_scheme"] == "https"
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("blog.example", "8443")
    assert seen["HTTP_HOST"] == "blog.example:8443"


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/s", {"q": "a b", "tag": "c&d"}, "q=a+b&tag=c%26d"),
        ("/s", [("tag", "x"), ("tag", "y")], "tag=x&tag=y"),
        ("/s", {"tag": ["x", "y"]}, "tag=x&tag=y"),
        ("/s", "raw=%20as+given", "raw=%20as+given"),
        ("/s?page=2", {"q": "z"}, "page=2&q=z"),
        ("/s?page=2", None, "page=2"),
    ],
)
def test_query_strings_come_from_the_path_and_the_query_argument(raw, path, query, expected):
    assert raw.get(path, query=query).json["QUERY_STRING"] == expected


def test_headers_become_http_variables_and_content_type_its_own(raw):
    seen = raw.post(
        "/",
        data="x=1",
        headers={"X-Requested-With": "fetch", "Accept": "text/html", "Content-Type": "text/plain"},
    ).json

    assert seen["HTTP_X_REQUESTED_WITH"] == "fetch"
    assert seen["HTTP_ACCEPT"] == "text/html"
    assert seen["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_TYPE" not in seen


def test_a_header_given_as_none_is_left_out():
    seen = TestClient(echo).get("/", headers={"Host": None}).json

    assert "HTTP_HOST" not in seen


def test_environ_overrides_win_over_what_the_client_builds():
    client = TestClient(echo, environ_overrides={"REMOTE_ADDR": "203.0.113.9", "SCRIPT_NAME": "/b"})

    seen = client.get("/").json

    assert (seen["REMOTE_ADDR"], seen["SCRIPT_NAME"]) == ("203.0.113.9", "/b")


# --- bodies ------------------------------------------------------------------------------------


def test_form_data_is_sent_urlencoded(raw):
    seen = raw.post("/", data={"title": "Café & co", "tag": ["a", "b"]}).json

    assert seen["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert seen["body"] == "title=Caf%C3%A9+%26+co&tag=a&tag=b"
    assert seen["CONTENT_LENGTH"] == str(len(seen["body"]))


def test_json_is_sent_as_json(raw):
    seen = raw.put("/", json={"title": "T", "n": [1, 2]}).json

    assert seen["REQUEST_METHOD"] == "PUT"
    assert seen["CONTENT_TYPE"] == "application/json"
    assert json.loads(seen["body"]) == {"title": "T", "n": [1, 2]}


@pytest.mark.parametrize("data", [b"\x00\xffraw", "text body"])
def test_bytes_and_strings_are_sent_as_they_are(raw, data):
    seen = raw.post("/", data=data).json

    expected = data if isinstance(data, str) else data.decode("latin-1")
    assert seen["body"] == expected
    assert "CONTENT_TYPE" not in seen


def test_an_empty_post_still_says_its_length_is_zero(raw):
    seen = raw.post("/").json

    assert seen["CONTENT_LENGTH"] == "0"
    assert seen["body"] == ""


def test_files_and_fields_arrive_as_a_multipart_form(make_app):
    app = make_app()

    def upload(request):
        stored = request.files["upload"]
        return {
            "title": request.form["title"],
            "filename": stored.filename,
            "type": stored.content_type,
            "content": stored.read().decode("latin-1"),
        }

    app.add_route("/upload", upload, methods=["POST"], csrf=False)
    content = b"line one\r\n--not-a-boundary\r\n\x00\xff"

    answer = app.test_client(validate=True).post(
        "/upload",
        data={"title": "With a file"},
        files={"upload": ("notes.txt", content, "text/plain")},
    )

    assert answer.json == {
        "title": "With a file",
        "filename": "notes.txt",
        "type": "text/plain",
        "content": content.decode("latin-1"),
    }


def test_encode_multipart_gives_a_body_that_names_its_boundary():
    body, content_type = encode_multipart([("a", "1"), ("b", b"\x00")], {})

    prefix = "multipart/form-data; boundary="
    assert content_type.startswith(prefix)
    boundary = content_type.removeprefix(prefix).encode()
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"--" + boundary + b"--\r\n")
    assert b'name="a"\r\n\r\n1\r\n' in body
    assert b'name="b"\r\n\r\n\x00\r\n' in body


# --- cookies -----------------------------------------------------------------------------------


@pytest.fixture
def cookie_app(make_app):
    app = make_app()

    def set_cookie(request):
        response = Response("set")
        response.set_cookie("flavour", request.args.get("to", "oat"))
        return response

    def forget(request):
        response = Response("forgotten")
        response.delete_cookie("flavour")
        return response

    app.add_route("/set", set_cookie)
    app.add_route("/forget", forget)
    app.add_route("/show", lambda request: request.cookies.get("flavour", "none"), endpoint="show")
    return app


def test_cookies_are_kept_and_sent_back_like_a_browser(cookie_app):
    client = cookie_app.test_client(validate=True)

    assert client.get("/show").text == "none"
    client.get("/set")
    assert client.cookies["flavour"] == "oat"
    assert client.get("/show").text == "oat"
    client.get("/set?to=rye")
    assert client.get("/show").text == "rye"


def test_a_deleted_cookie_is_no_longer_sent(cookie_app):
    client = cookie_app.test_client(validate=True)
    client.get("/set")

    client.get("/forget")

    assert "flavour" not in client.cookies
    assert client.get("/show").text == "none"


def test_two_clients_of_one_app_keep_their_own_cookies(cookie_app):
    first, second = cookie_app.test_client(), cookie_app.test_client()

    first.get("/set?to=spelt")

    assert first.get("/show").text == "spelt"
    assert second.get("/show").text == "none"


def test_cookies_set_on_a_redirect_are_kept_while_following_it(make_app):
    app = make_app()

    def sign_in(request):
        response = redirect("/whoami", 303)
        response.set_cookie("who", "alice")
        return response

    app.add_route("/sign-in", sign_in, methods=["POST"], csrf=False)
    app.add_route("/whoami", lambda request: request.cookies.get("who", "nobody"), endpoint="who")

    answer = app.test_client(validate=True).post("/sign-in", follow_redirects=True)

    assert answer.text == "alice"


# --- redirects ---------------------------------------------------------------------------------


@pytest.fixture
def redirecting(make_app):
    app = make_app()

    def bounce(request, code):
        return redirect(f"http://localhost/landing?from={code}", code)

    def landing(request):
        return {
            "method": request.method,
            "args": request.args.to_dict(),
            "form": dict(request.form),
        }

    app.add_route("/bounce/<int:code>", bounce, methods=["GET", "POST"], csrf=False)
    app.add_route("/landing", landing, methods=["GET", "POST"], csrf=False)
    app.add_route("/loop", lambda request: redirect("/loop"), endpoint="loop")
    return app


def test_redirects_are_not_followed_unless_asked(redirecting):
    answer = redirecting.test_client(validate=True).get("/bounce/302")

    assert answer.status_code == 302
    assert answer.location == "http://localhost/landing?from=302"
    assert answer.history == []


@pytest.mark.parametrize("code", [301, 302, 303])
def test_following_a_redirect_of_a_post_turns_it_into_a_get(redirecting, code):
    answer = redirecting.test_client(validate=True).post(
        f"/bounce/{code}", data={"title": "T"}, follow_redirects=True
    )

    assert answer.status_code == 200
    assert answer.json == {"method": "GET", "args": {"from": str(code)}, "form": {}}
    assert [r.status_code for r in answer.history] == [code]
    assert answer.request_path == "/landing"


@pytest.mark.parametrize("code", [307, 308])
def test_following_a_307_or_308_keeps_the_method_and_the_body(redirecting, code):
    answer = redirecting.test_client(validate=True).post(
        f"/bounce/{code}", data={"title": "T"}, follow_redirects=True
    )

    assert answer.json == {"method": "POST", "args": {"from": str(code)}, "form": {"title": "T"}}


def test_a_redirect_loop_stops_with_an_assertion_error(redirecting):
    with pytest.raises(AssertionError, match="too many redirects"):
        redirecting.test_client().get("/loop", follow_redirects=True)


# --- what comes back ---------------------------------------------------------------------------


def test_head_gives_the_headers_and_no_body(make_app):
    app = make_app()
    app.add_route("/page", lambda request: "<p>twelve bytes</p>", endpoint="page")

    answer = app.test_client(validate=True).head("/page")

    assert answer.status_code == 200
    assert answer.data == b""
    assert answer.headers["Content-Length"] == str(len(b"<p>twelve bytes</p>"))


def test_a_streamed_body_is_read_whole_and_closed():
    closed = []

    class Chunks:
        def __iter__(self):
            yield b"first, "
            yield b""
            yield b"second"

        def close(self):
            closed.append(True)

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return Chunks()

    answer = TestClient(streaming, validate=True).get("/")

    assert answer.data == b"first, second"
    assert answer.text == "first, second"
    assert closed == [True]


def test_a_streamed_response_from_the_app_arrives_whole(make_app):
    app = make_app()
    app.add_route(
        "/stream",
        lambda request: Response(
            (part.encode() for part in ("a", "b", "c")), mimetype="text/plain"
        ),
        endpoint="stream",
    )

    answer = app.test_client(validate=True).get("/stream")

    assert answer.data == b"abc"


def test_the_validator_catches_an_app_that_breaks_wsgi():
    def broken(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return "a str, not bytes"

    with pytest.raises(AssertionError, match="should not return a string"):
        TestClient(broken, validate=True).get("/")


def test_text_is_decoded_with_the_charset_of_the_response():
    answer = TestResponse(
        "200 OK", [("Content-Type", "text/plain; charset=latin-1")], b"caf\xe9", "/"
    )

    assert answer.text == "café"
    assert answer.status_code == 200
    assert repr(answer) == "<TestResponse 200 OK />"


def test_location_is_none_without_a_redirect():
    assert TestResponse("200 OK", [], b"", "/").location is None


FORM_PAGE = b"""<!doctype html><main>
<form id="other"><input name="elsewhere" value="no"></form>
<form id="post" action="/save">
  <input type="hidden" name="csrf_token" value="t0k3n">
  <input name="title" value="A &amp; B">
  <input name="untyped">
  <textarea name="body">Line one
Line &lt;two&gt;</textarea>
  <select name="status"><option value="draft">Draft</option>
    <option value="published" selected>Published</option></select>
  <select name="first"><option>Only text</option></select>
  <input type="checkbox" name="notify" value="yes" checked>
  <input type="checkbox" name="pin" value="yes">
  <input type="radio" name="size" value="s"><input type="radio" name="size" value="m" checked>
  <input type="file" name="upload">
  <input type="submit" name="go" value="Save">
  <button name="press" value="x">Press</button>
</form></main>"""


def test_form_values_gives_what_a_browser_would_send():
    page = TestResponse("200 OK", [("Content-Type", "text/html")], FORM_PAGE, "/")

    assert page.form_values("#post") == {
        "csrf_token": "t0k3n",
        "title": "A & B",
        "untyped": "",
        "body": "Line one\nLine <two>",
        "status": "published",
        "first": "Only text",
        "notify": "yes",
        "size": "m",
    }
    assert page.form_values() == {"elsewhere": "no"}


def test_form_values_fails_clearly_when_the_page_has_no_such_form():
    page = TestResponse("200 OK", [("Content-Type", "text/html")], FORM_PAGE, "/")

    with pytest.raises(AssertionError, match="no #missing on the page"):
        page.form_values("#missing")


def test_html_is_parsed_as_a_browser_would():
    page = TestResponse("200 OK", [], b"<title>T</title><p>one<p>two", "/")

    assert [p.text for p in page.html.select("body p")] == ["one", "two"]
    assert page.html.title.text == "T"
