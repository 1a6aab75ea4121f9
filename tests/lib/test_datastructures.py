"""Tests for MultiDict, Headers, EnvironHeaders and FileStorage."""

from __future__ import annotations

import io

import pytest

from pyproject.lib.datastructures import EnvironHeaders, FileStorage, Headers, MultiDict

# --- MultiDict ---------------------------------------------------------------------------


def test_multidict_get_and_getitem_give_the_first_value():
    data = MultiDict([("tag", "python"), ("tag", "wsgi"), ("page", "2")])
    assert data["tag"] == "python"
    assert data.get("tag") == "python"
    assert data.get("page") == "2"


def test_multidict_getlist_gives_every_value_in_order():
    data = MultiDict([("tag", "python"), ("page", "2"), ("tag", "wsgi")])
    assert data.getlist("tag") == ["python", "wsgi"]
    assert data.getlist("missing") == []


def test_multidict_getlist_gives_a_copy():
    data = MultiDict([("tag", "python")])
    data.getlist("tag").append("changed")
    assert data.getlist("tag") == ["python"]


def test_multidict_missing_key_gives_default_or_raises_key_error():
    data = MultiDict()
    assert data.get("missing") is None
    assert data.get("missing", "fallback") == "fallback"
    with pytest.raises(KeyError):
        data["missing"]


@pytest.mark.parametrize(
    ("raw", "type_", "expected"),
    [
        ("2", int, 2),
        ("02", int, 2),
        ("two", int, 0),
        ("", int, 0),
        ("1.5", int, 0),
        ("1.5", float, 1.5),
        ("x", float, 0),
    ],
)
def test_multidict_get_converts_with_type_and_falls_back_to_default(raw, type_, expected):
    assert MultiDict([("page", raw)]).get("page", 0, type=type_) == expected


def test_multidict_get_with_type_gives_default_when_key_missing():
    assert MultiDict().get("page", 1, type=int) == 1


def test_multidict_items_give_first_values_or_every_pair_with_multi():
    data = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert list(data.items()) == [("a", "1"), ("b", "2")]
    assert list(data.items(multi=True)) == [("a", "1"), ("a", "3"), ("b", "2")]


def test_multidict_from_dict_spreads_list_values():
    data = MultiDict({"tag": ["a", "b"], "page": "1", "pair": ("x", "y")})
    assert data.getlist("tag") == ["a", "b"]
    assert data.getlist("pair") == ["x", "y"]
    assert data["page"] == "1"


def test_multidict_setitem_replaces_every_value_and_add_appends():
    data = MultiDict([("a", "1"), ("a", "2")])
    data["a"] = "3"
    assert data.getlist("a") == ["3"]
    data.add("a", "4")
    assert data.getlist("a") == ["3", "4"]


def test_multidict_len_iter_contains_and_to_dict_count_keys():
    data = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert len(data) == 2
    assert list(data) == ["a", "b"]
    assert "a" in data
    assert "c" not in data
    assert data.to_dict() == {"a": "1", "b": "2"}


# --- Headers -----------------------------------------------------------------------------


def test_headers_are_case_insensitive():
    headers = Headers([("Content-Type", "text/html")])
    assert headers["content-type"] == "text/html"
    assert headers.get("CONTENT-TYPE") == "text/html"
    assert "cOnTeNt-TyPe" in headers


def test_headers_missing_gives_default_or_raises_key_error():
    headers = Headers()
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "default") == "default"
    assert "X-Missing" not in headers
    with pytest.raises(KeyError):
        headers["X-Missing"]


def test_headers_add_keeps_every_set_cookie_line():
    headers = Headers()
    headers.add("Set-Cookie", "a=1")
    headers.add("set-cookie", "b=2")
    assert headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert headers.to_wsgi_list() == [("Set-Cookie", "a=1"), ("set-cookie", "b=2")]


def test_headers_set_replaces_every_line_of_that_name():
    headers = Headers([("Vary", "Accept"), ("X-Other", "1"), ("vary", "Origin")])
    headers.set("VARY", "Cookie")
    assert headers.getlist("Vary") == ["Cookie"]
    assert headers.get("X-Other") == "1"


def test_headers_setitem_is_set():
    headers = Headers([("Vary", "Accept"), ("Vary", "Origin")])
    headers["vary"] = "Cookie"
    assert headers.getlist("Vary") == ["Cookie"]


def test_headers_remove_and_del_drop_every_line_of_that_name():
    headers = Headers([("Set-Cookie", "a=1"), ("Content-Type", "text/html"), ("SET-COOKIE", "b")])
    headers.remove("set-cookie")
    assert headers.items() == [("Content-Type", "text/html")]
    del headers["content-type"]
    assert len(headers) == 0


def test_headers_remove_of_a_missing_name_is_harmless():
    headers = Headers([("A", "1")])
    headers.remove("B")
    assert headers.items() == [("A", "1")]


def test_headers_setdefault_keeps_an_existing_value():
    headers = Headers([("X-Frame-Options", "SAMEORIGIN")])
    assert headers.setdefault("x-frame-options", "DENY") == "SAMEORIGIN"
    assert headers.setdefault("Referrer-Policy", "no-referrer") == "no-referrer"
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers["Referrer-Policy"] == "no-referrer"


def test_headers_keep_the_order_they_were_set_in():
    headers = Headers({"B": "2", "A": "1"})
    headers.add("C", "3")
    assert [name for name, _ in headers] == ["B", "A", "C"]


def test_headers_turn_values_into_strings():
    headers = Headers()
    headers.add("Content-Length", 12)
    headers.set("Max-Forwards", 3)
    assert headers.to_wsgi_list() == [("Content-Length", "12"), ("Max-Forwards", "3")]


def test_headers_copy_from_headers():
    original = Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    copy = Headers(original)
    copy.add("Set-Cookie", "c=3")
    assert original.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert copy.getlist("Set-Cookie") == ["a=1", "b=2", "c=3"]


def test_headers_contains_only_strings():
    assert 1 not in Headers([("1", "x")])


# --- EnvironHeaders ----------------------------------------------------------------------

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "application/json",
    "CONTENT_LENGTH": "12",
    "HTTP_ACCEPT": "text/html",
    "HTTP_X_REQUESTED_WITH": "fetch",
    "HTTP_USER_AGENT": "test",
    "wsgi.url_scheme": "http",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "application/json"),
        ("content-length", "12"),
        ("ACCEPT", "text/html"),
        ("X-Requested-With", "fetch"),
        ("x_requested_with", "fetch"),
    ],
)
def test_environ_headers_read_the_environ_case_insensitively(name, value):
    headers = EnvironHeaders(ENVIRON)
    assert headers.get(name) == value
    assert headers[name] == value
    assert name in headers


@pytest.mark.parametrize("name", ["Request-Method", "Url-Scheme", "X-Missing"])
def test_environ_headers_do_not_expose_other_environ_keys(name):
    headers = EnvironHeaders(ENVIRON)
    assert headers.get(name) is None
    assert name not in headers
    with pytest.raises(KeyError):
        headers[name]


def test_environ_headers_iterate_only_over_headers():
    assert sorted(EnvironHeaders(ENVIRON)) == [
        ("Accept", "text/html"),
        ("Content-Length", "12"),
        ("Content-Type", "application/json"),
        ("User-Agent", "test"),
        ("X-Requested-With", "fetch"),
    ]


def test_environ_headers_skip_empty_content_headers_when_iterating():
    environ = {"CONTENT_TYPE": "", "CONTENT_LENGTH": "", "HTTP_ACCEPT": "*/*"}
    assert list(EnvironHeaders(environ)) == [("Accept", "*/*")]


def test_environ_headers_see_later_changes_to_the_environ():
    environ: dict[str, str] = {}
    headers = EnvironHeaders(environ)
    environ["HTTP_ACCEPT"] = "text/html"
    assert headers["Accept"] == "text/html"


# --- FileStorage -------------------------------------------------------------------------


def test_file_storage_read_gives_everything_from_the_start(tmp_path):
    stream = io.BytesIO(b"hello world")
    stream.seek(6)
    upload = FileStorage("photo", "photo.txt", "text/plain", stream, size=11)
    assert upload.read() == b"hello world"
    destination = tmp_path / "copy.txt"
    upload.save(str(destination))
    assert destination.read_bytes() == b"hello world"
    upload.close()
    assert stream.closed
