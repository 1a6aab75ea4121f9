"""Tests for the Request in pyproject/lib/request.py, on environs built by hand."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from typing import Any

import pytest

from pyproject.lib.app import App
from pyproject.lib.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from pyproject.lib.request import Request

BOUNDARY = "----pyproject-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FORM = "application/x-www-form-urlencoded"


def wsgi_str(text: str) -> str:
    """Give text as a WSGI server hands it over: its UTF-8 bytes read as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def make_environ(
    method: str = "GET",
    path: str = "/",
    *,
    query: str = "",
    body: bytes = b"",
    content_type: str | None = None,
    content_length: str | None = None,
    stream: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Give a WSGI environ; CONTENT_LENGTH is the body's length unless given (or "")."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream if stream is not None else io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if content_length is None and body:
        content_length = str(len(body))
    if content_length:
        environ["CONTENT_LENGTH"] = content_length
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ.update(extra)
    return environ


def post(body: bytes, content_type: str = FORM, **extra: Any) -> Request:
    """Give a Request for a POST of `body`."""
    return Request(make_environ("POST", body=body, content_type=content_type, **extra))


class UnreadableStream:
    """A wsgi.input that fails the test if anyone reads it."""

    def read(self, *args: Any) -> bytes:
        pytest.fail("the body was read although it had to be refused unread")

    readline = read


def part(name: str, value: bytes, *, filename: str | None = None, ctype: str = "") -> bytes:
    """Give one multipart part (with its leading boundary line)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def multipart_body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc"
)


# --- the request line --------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["GET", "post", "Put"])
def test_method_is_kept_as_sent_since_methods_are_case_sensitive(raw):
    assert Request(make_environ(raw)).method == raw


def test_method_defaults_to_get():
    environ = make_environ()
    del environ["REQUEST_METHOD"]
    assert Request(environ).method == "GET"


@pytest.mark.parametrize("path", ["/", "/posts/hello", "/café", "/日本", "/a b/ü?"])
def test_path_undoes_wsgi_latin1_and_decodes_utf8(path):
    assert Request(make_environ(path=wsgi_str(path))).path == path


def test_empty_path_is_the_root():
    assert Request(make_environ(path="")).path == "/"


@pytest.mark.parametrize(
    "raw",
    [
        "/\xff",
        "/caf\xe9",  # latin-1 é alone is not UTF-8
        "/\xc3",  # a truncated sequence
        "/\xed\xa0\x80",  # an encoded surrogate
        "/\xc0\xaf",  # an overlong slash
        "/\u65e5",  # not a WSGI string at all
    ],
)
def test_path_that_is_not_utf8_is_a_bad_request(raw):
    with pytest.raises(BadRequest):
        _ = Request(make_environ(path=raw)).path


def test_full_path_keeps_the_query_string_and_encodes_the_path():
    request = Request(make_environ(path=wsgi_str("/café"), query="page=2"))
    assert request.full_path == "/caf%C3%A9?page=2"
    assert Request(make_environ(path="/posts")).full_path == "/posts"


def test_script_root_drops_the_trailing_slash():
    assert Request(make_environ(SCRIPT_NAME="/blog/")).script_root == "/blog"


# --- query string and forms --------------------------------------------------------------


def test_args_are_a_multidict_of_the_query_string():
    request = Request(make_environ(query="tag=a&tag=b&page=2&empty=&q=a+b%20c%26"))
    args = request.args
    assert args.getlist("tag") == ["a", "b"]
    assert args.get("page", type=int) == 2
    assert args["empty"] == ""
    assert args["q"] == "a b c&"


@pytest.mark.parametrize("query", ["q=caf%C3%A9", wsgi_str("q=café")])
def test_args_decode_utf8_encoded_and_raw(query):
    assert Request(make_environ(query=query)).args["q"] == "café"


@pytest.mark.parametrize("query", ["q=%ff", "q=\xff", "%ff=x", "q=%c3", "q=caf\xe9", "q=%ed%a0%80"])
def test_args_that_are_not_utf8_are_a_bad_request(query):
    with pytest.raises(BadRequest):
        _ = Request(make_environ(query=query)).args


def test_form_is_a_multidict_of_a_urlencoded_body():
    form = post(b"title=Hello+World&tag=a&tag=b&body=caf%C3%A9").form
    assert form["title"] == "Hello World"
    assert form.getlist("tag") == ["a", "b"]
    assert form["body"] == "café"


@pytest.mark.parametrize("body", [b"q=%ff", b"q=\xff", b"\xff=x", b"q=%c3%28", b"q=caf\xe9"])
def test_urlencoded_form_that_is_not_utf8_is_a_bad_request(body):
    with pytest.raises(BadRequest):
        _ = post(body).form


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE"])
def test_methods_without_a_form_body_give_an_empty_form(method):
    request = Request(make_environ(method, body=b"a=1", content_type=FORM))
    assert len(request.form) == 0
    assert len(request.files) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_bodies_of_other_types_give_an_empty_form(content_type):
    request = post(b"a=1", content_type=content_type)
    assert len(request.form) == 0
    assert request.get_data() == b"a=1"


class FewFieldsRequest(Request):
    max_form_fields = 3
    max_form_memory_size = 100


def test_form_with_as_many_fields_as_allowed_is_parsed():
    environ = make_environ("POST", body=b"a=1&b=2&c=3", content_type=FORM)
    assert len(FewFieldsRequest(environ).form) == 3


@pytest.mark.parametrize("body", [b"a=1&b=2&c=3&d=4", b"a=1;b=2;c=3;d=4", b"&&&"])
def test_form_with_more_fields_than_allowed_is_too_large(body):
    environ = make_environ("POST", body=body, content_type=FORM)
    with pytest.raises(RequestEntityTooLarge):
        _ = FewFieldsRequest(environ).form


def test_form_with_1001_fields_is_too_large_by_default():
    fields = "&".join(f"f{i}=x" for i in range(1000)).encode()
    assert len(post(fields).form) == 1000
    with pytest.raises(RequestEntityTooLarge):
        _ = post(fields + b"&one=more").form


def test_query_string_with_more_fields_than_allowed_is_too_large():
    with pytest.raises(RequestEntityTooLarge):
        _ = FewFieldsRequest(make_environ(query="a&b&c&d")).args


def test_form_field_larger_than_the_memory_limit_is_too_large():
    environ = make_environ("POST", body=b"a=" + b"x" * 100, content_type=FORM)
    assert FewFieldsRequest(environ).form["a"] == "x" * 100
    environ = make_environ("POST", body=b"a=" + b"x" * 101, content_type=FORM)
    with pytest.raises(RequestEntityTooLarge):
        _ = FewFieldsRequest(environ).form


# --- Content-Length and the body ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "length"), [("12", 12), (" 12 ", 12), ("0", 0), ("012", 12), ("", None)]
)
def test_content_length_is_parsed(raw, length):
    assert Request(make_environ(CONTENT_LENGTH=raw)).content_length == length


def test_missing_content_length_is_none():
    assert Request(make_environ()).content_length is None


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "-1",
        "+12",
        "1e3",
        "0x10",
        "12abc",
        "1 2",
        "1_000",
        "12.0",
        "9" * 19,  # huge
        "9" * 100,
        "²",  # a digit to str.isdigit, and a latin-1 byte a client can send
        "١٢",
    ],
)
def test_content_length_that_is_not_a_number_is_a_bad_request(raw):
    with pytest.raises(BadRequest):
        _ = Request(make_environ("POST", CONTENT_LENGTH=raw)).content_length


class SmallBodyRequest(Request):
    max_content_length = 100


def _parse(request: Request, what: str) -> Any:
    if what == "data":
        return request.get_data()
    if what == "json":
        return request.json
    return request.form


@pytest.mark.parametrize(
    ("what", "content_type"),
    [("data", None), ("form", FORM), ("form", MULTIPART), ("json", "application/json")],
)
def test_declared_length_over_the_limit_is_refused_without_reading(what, content_type):
    environ = make_environ(
        "POST", stream=UnreadableStream(), content_length="101", content_type=content_type
    )
    with pytest.raises(RequestEntityTooLarge):
        _parse(SmallBodyRequest(environ), what)


def test_declared_length_at_the_limit_is_read():
    environ = make_environ("POST", body=b"x" * 100)
    assert SmallBodyRequest(environ).get_data() == b"x" * 100


def test_body_is_read_only_up_to_the_declared_length():
    environ = make_environ("POST", body=b"a=1&b=2", content_length="3", content_type=FORM)
    request = Request(environ)
    assert request.form.to_dict() == {"a": "1"}
    assert environ["wsgi.input"].read() == b"&b=2"


def test_chunked_body_within_the_limit_is_read_to_the_end():
    environ = make_environ("POST", body=b"x" * 100, content_length="")
    environ["wsgi.input_terminated"] = True
    assert SmallBodyRequest(environ).get_data() == b"x" * 100


def test_chunked_body_past_the_limit_is_too_large():
    environ = make_environ("POST", body=b"x" * 101, content_length="")
    environ["wsgi.input_terminated"] = True
    with pytest.raises(RequestEntityTooLarge):
        SmallBodyRequest(environ).get_data()


def test_chunked_multipart_past_the_limit_is_too_large():
    body = multipart_body(part("a", b"x" * 200))
    environ = make_environ("POST", body=body, content_length="", content_type=MULTIPART)
    environ["wsgi.input_terminated"] = True
    with pytest.raises(RequestEntityTooLarge):
        _ = SmallBodyRequest(environ).form


def test_body_without_length_or_termination_is_empty_and_unread():
    environ = make_environ("POST", stream=UnreadableStream(), content_type=FORM)
    request = Request(environ)
    assert request.get_data() == b""
    assert len(request.form) == 0


def test_get_data_is_read_once():
    request = post(b"a=1")
    assert request.get_data() == b"a=1"
    assert request.get_data() == b"a=1"
    assert request.form["a"] == "1"


# --- multipart ---------------------------------------------------------------------------


def test_multipart_gives_fields_and_files():
    body = multipart_body(
        part("title", "Café".encode()),
        part("tag", b"a"),
        part("tag", b"b"),
        part("photo", b"\x89PNG\r\n\x00data", filename="me.png", ctype="image/png"),
    )
    request = post(body, MULTIPART)
    assert request.form["title"] == "Café"
    assert request.form.getlist("tag") == ["a", "b"]
    upload = request.files["photo"]
    assert (upload.name, upload.filename, upload.content_type) == ("photo", "me.png", "image/png")
    assert upload.read() == b"\x89PNG\r\n\x00data"
    assert upload.size == len(b"\x89PNG\r\n\x00data")
    request.close()


def test_multipart_file_without_content_type_is_octet_stream():
    request = post(multipart_body(part("f", b"data", filename="x.bin")), MULTIPART)
    assert request.files["f"].content_type == "application/octet-stream"
    request.close()


def test_multipart_field_in_a_declared_charset_is_decoded():
    body = multipart_body(
        part("name", "Zoë".encode("latin-1"), ctype="text/plain; charset=latin-1")
    )
    assert post(body, MULTIPART).form["name"] == "Zoë"


@pytest.mark.parametrize(
    "field",
    [part("name", b"caf\xe9"), part("name", b"x", ctype="text/plain; charset=no-such-charset")],
)
def test_multipart_field_that_cannot_be_decoded_is_a_bad_request(field):
    with pytest.raises(BadRequest):
        _ = post(multipart_body(field), MULTIPART).form


def test_multipart_small_file_stays_in_memory_and_large_file_is_spooled_to_disk():
    class SpoolingRequest(Request):
        spool_file_size = 1024

    body = multipart_body(
        part("small", b"s" * 1024, filename="small.txt"),
        part("large", b"L" * 1025, filename="large.txt"),
    )
    request = SpoolingRequest(make_environ("POST", body=body, content_type=MULTIPART))
    small, large = request.files["small"], request.files["large"]
    assert not small.stream._rolled
    assert large.stream._rolled
    assert os.fstat(large.stream.fileno()).st_size == 1025
    assert large.read() == b"L" * 1025
    request.close()
    assert small.stream.closed
    assert large.stream.closed


def test_multipart_leaves_no_temporary_files_after_close(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))

    class SpoolingRequest(Request):
        spool_file_size = 16

    body = multipart_body(*(part(f"f{i}", b"x" * 4096, filename=f"{i}.txt") for i in range(5)))
    request = SpoolingRequest(make_environ("POST", body=body, content_type=MULTIPART))
    uploads = request.files.items(multi=True)
    assert all(upload.stream._rolled for _, upload in uploads)
    request.close()
    assert list(spool.iterdir()) == []
    assert all(upload.stream.closed for _, upload in request.files.items(multi=True))


@needs_proc
@pytest.mark.parametrize(
    "ending",
    [
        b"",  # the body just stops inside the file
        f"\r\n--{BOUNDARY}XX".encode(),  # bytes after a boundary
    ],
)
def test_refused_multipart_closes_the_file_it_was_writing(ending):
    class SpoolingRequest(Request):
        spool_file_size = 16

    body = part("f", b"x" * 4096, filename="x.txt")[:-2] + ending
    before = open_descriptors()
    request = SpoolingRequest(make_environ("POST", body=body, content_type=MULTIPART))
    with pytest.raises(BadRequest) as refused:
        _ = request.form
    # `refused` keeps the traceback, so the parser's frame and its locals, alive: only an
    # explicit close() gives the descriptor back here.
    assert refused.value.code == 400
    assert open_descriptors() == before


def test_multipart_with_as_many_parts_as_allowed_is_parsed():
    body = multipart_body(*(part(f"f{i}", b"x") for i in range(1000)))
    assert len(post(body, MULTIPART).form) == 1000


def test_multipart_with_1001_parts_is_too_large():
    body = multipart_body(*(part(f"f{i}", b"x") for i in range(1001)))
    with pytest.raises(RequestEntityTooLarge):
        _ = post(body, MULTIPART).form


def test_multipart_field_larger_than_the_memory_limit_is_too_large():
    class SmallFieldRequest(Request):
        max_form_memory_size = 100

    body = multipart_body(part("a", b"x" * 100))
    assert SmallFieldRequest(make_environ("POST", body=body, content_type=MULTIPART)).form["a"]
    body = multipart_body(part("a", b"x" * 101))
    with pytest.raises(RequestEntityTooLarge):
        _ = SmallFieldRequest(make_environ("POST", body=body, content_type=MULTIPART)).form


def test_multipart_file_is_not_held_to_the_field_memory_limit():
    class SmallFieldRequest(Request):
        max_form_memory_size = 100

    body = multipart_body(part("f", b"x" * 1000, filename="x.txt"))
    request = SmallFieldRequest(make_environ("POST", body=body, content_type=MULTIPART))
    assert request.files["f"].size == 1000
    request.close()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (MULTIPART, part("a", b"1")),  # no closing boundary
        (MULTIPART, part("a", b"1") + part("b", b"2")[:-10]),  # cut inside a part
        (MULTIPART, b"garbage garbage garbage garbage"),
        (MULTIPART, b"\x00" * 1000),
        (MULTIPART, b""),
        (MULTIPART, f"--{BOUNDARY}\r\n\r\nno disposition\r\n--{BOUNDARY}--\r\n".encode()),
        (MULTIPART, f"--{BOUNDARY}\nContent-Disposition: form-data; name=a\n\n1\n".encode()),
        (MULTIPART, f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n".encode()),
        (MULTIPART, f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()),
        (MULTIPART, multipart_body(part("a", b"1")).replace(b"\r\n--" + BOUNDARY.encode(), b"")),
        ("multipart/form-data; boundary=other", multipart_body(part("a", b"1"))),
        ("multipart/form-data", multipart_body(part("a", b"1"))),  # no boundary parameter
        ('multipart/form-data; boundary=""', multipart_body(part("a", b"1"))),
        ("multipart/form-data; boundary=a\nb", multipart_body(part("a", b"1"))),
    ],
)
def test_broken_multipart_is_a_bad_request(content_type, body):
    request = post(body, content_type, CONTENT_LENGTH=str(len(body)))
    with pytest.raises(BadRequest):
        _ = request.form


def _refusal_time(body: bytes) -> float:
    """Give the best of five CPU times to refuse a multipart body (it must be refused)."""
    best = float("inf")
    for _ in range(5):
        request = post(body, MULTIPART)
        # CPU time, not wall time: other test runs on the machine must not skew the ratio.
        started = time.process_time()
        with pytest.raises((BadRequest, RequestEntityTooLarge)):
            _ = request.form
        best = min(best, time.process_time() - started)
        request.close()
    return best


@pytest.mark.parametrize(
    "prefix",
    [
        b"",  # before any boundary
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="'.encode(),  # in a header
        part("f", b"")[:-2],  # in a field
        part("f", b"", filename="f.txt")[:-2],  # in a file
    ],
    ids=["preamble", "header", "field", "file"],
)
def test_multipart_with_a_huge_line_is_refused_in_linear_time(prefix):
    small = prefix + b"a" * 1_000_000
    large = prefix + b"a" * 10_000_000
    small_time, large_time = _refusal_time(small), _refusal_time(large)
    # A ratio, not an absolute time; the floor keeps sub-millisecond noise out of it.
    assert large_time < 30 * max(small_time, 0.001)


# --- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/x+json",
    ],
)
def test_json_body_is_parsed(content_type):
    request = post(b'{"title": "Caf\xc3\xa9", "tags": [1, 2]}', content_type)
    assert request.json == {"title": "Café", "tags": [1, 2]}


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", FORM, MULTIPART, "application/jsonp", "json"]
)
def test_json_with_another_content_type_is_unsupported(content_type):
    with pytest.raises(UnsupportedMediaType):
        _ = post(b"{}", content_type).json


@pytest.mark.parametrize(
    "body", [b"", b"{", b"{'a': 1}", b"nope", b'"\xff"', b"\xff\xfe", b"[" * 100_000, b"1 2"]
)
def test_json_that_does_not_parse_is_a_bad_request(body):
    with pytest.raises(BadRequest):
        _ = post(body, "application/json").json


# --- headers, cookies, host --------------------------------------------------------------


def test_headers_are_read_case_insensitively():
    request = Request(make_environ(HTTP_USER_AGENT="test/1.0", CONTENT_TYPE="text/plain"))
    assert request.headers["user-agent"] == "test/1.0"
    assert request.headers.get("Content-Type") == "text/plain"
    assert request.headers.get("X-Missing") is None


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("session=abc; theme=dark", {"session": "abc", "theme": "dark"}),
        ("session=first; session=second", {"session": "first"}),
        ("broken; session=abc; =x", {"session": "abc"}),
        (wsgi_str("name=café; session=abc"), {"session": "abc"}),
        ("name=\xff; session=abc", {"session": "abc"}),
    ],
)
def test_cookies_skip_malformed_pairs_and_keep_the_first(header, cookies):
    assert Request(make_environ(HTTP_COOKIE=header)).cookies == cookies


def test_no_cookie_header_gives_no_cookies():
    assert Request(make_environ()).cookies == {}


class SiteRequest(Request):
    allowed_hosts = ("blog.example", ".example.org", "localhost")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("blog.example", "blog.example"),
        ("BLOG.Example", "blog.example"),
        ("blog.example:8000", "blog.example:8000"),
        ("blog.example.", "blog.example."),
        ("localhost", "localhost"),
        ("localhost:65535", "localhost:65535"),
        ("example.org", "example.org"),
        ("www.example.org", "www.example.org"),
        ("a.b.example.org:443", "a.b.example.org:443"),
    ],
)
def test_allowed_hosts_pass(host, expected):
    assert SiteRequest(make_environ(HTTP_HOST=host)).host == expected


@pytest.mark.parametrize(
    "host",
    [
        "unknown.example",
        "evil.example",
        "blog.example.evil.example",
        "evilexample.org",
        "blogexample",
        "a@b",
        "user@blog.example",
        "a:80/x",
        "blog.example/x",
        "",
        "   ",
        "evil.example,localhost",
        "localhost,evil.example",
        "localhost:99999999",
        "localhost:",
        "localhost:abc",
        "localhost:-1",
        "localhost:80:80",
        "[::1]",  # a fine address, but not one of ours here
        "[::1",
        "[zz::1]",
        "[]",
        "[::1]x",
        "[::1]:abc",
        "[::1]]",
        "blog .example",
        "blog.example\x00",
        "blog.example\r\nX-Injected: 1",
        "blög.example",
        "a" * 300,
    ],
)
def test_malformed_or_unknown_host_is_a_bad_request(host):
    with pytest.raises(BadRequest):
        _ = SiteRequest(make_environ(HTTP_HOST=host)).host


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:5000", "[::1]", "[::1]:8000"])
def test_default_allowed_hosts_are_the_loopback_names(host):
    assert Request(make_environ(HTTP_HOST=host)).host == host


def test_wildcard_allows_any_well_formed_host():
    class AnyHostRequest(Request):
        allowed_hosts = ("*",)

    assert AnyHostRequest(make_environ(HTTP_HOST="anything.example")).host == "anything.example"
    with pytest.raises(BadRequest):
        _ = AnyHostRequest(make_environ(HTTP_HOST="a@b")).host


def test_http_1_1_without_host_header_is_a_bad_request():
    environ = make_environ()
    del environ["HTTP_HOST"]
    with pytest.raises(BadRequest):
        _ = Request(environ).host


def test_http_1_0_without_host_header_the_server_name_and_port_are_checked():
    environ = make_environ(SERVER_NAME="localhost", SERVER_PORT="8000", SERVER_PROTOCOL="HTTP/1.0")
    del environ["HTTP_HOST"]
    assert Request(environ).host == "localhost:8000"
    environ = make_environ(SERVER_NAME="evil.example", SERVER_PORT="80", SERVER_PROTOCOL="HTTP/1.0")
    del environ["HTTP_HOST"]
    with pytest.raises(BadRequest):
        _ = Request(environ).host


@pytest.mark.parametrize(
    ("path", "accept", "expected"),
    [
        ("/", "application/json", True),
        ("/", "text/html,application/xhtml+xml,*/*;q=0.8", False),
        ("/", None, False),
        ("/api/posts", None, True),
        ("/api/posts", "text/html", True),
        ("/apix", "text/html", False),
    ],
)
def test_wants_json(path, accept, expected):
    extra = {"HTTP_ACCEPT": accept} if accept is not None else {}
    assert Request(make_environ(path=path, **extra)).wants_json is expected


# --- through the whole app, under wsgiref's validator ------------------------------------


def make_app(tmp_path) -> App:
    """Give a small App that takes uploads, with limits on its Request class."""
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "error.html").write_text("{{ error.code }} {{ error.description }}")
    app = App({"BASE_URL": "http://localhost", "DEBUG": False}, template_folder=str(tmp_path))
    app.request_class = type(
        "LimitedRequest", (Request,), {"max_content_length": 1000, "allowed_hosts": ("localhost",)}
    )

    def upload(request):
        return {"fields": request.form.to_dict(), "files": sorted(request.files)}

    app.add_route("/upload", upload, methods=["POST"], csrf=False)
    return app


def test_app_parses_an_upload(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.post(
        "/upload", data={"title": "Hi"}, files={"photo": ("me.png", b"png", "image/png")}
    )
    assert response.status_code == 200
    assert response.json == {"fields": {"title": "Hi"}, "files": ["photo"]}


def test_app_answers_413_to_a_body_over_the_limit(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.post("/upload", data={"title": "x" * 1000})
    assert response.status_code == 413
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", ["evil.example", "localhost,evil.example", "a@localhost"])
def test_app_answers_400_to_an_unknown_host(tmp_path, host):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.post("/upload", data={"a": "1"}, headers={"Host": host})
    assert response.status_code == 400


def test_app_answers_400_to_a_path_that_is_not_utf8(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    assert client.get("/%ff").status_code == 400
