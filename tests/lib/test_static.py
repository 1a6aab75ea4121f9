"""Tests for pyproject/lib/static.py: the static files middleware and fingerprinted URLs."""

from __future__ import annotations

import hashlib
import os
import re
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from pyproject.app import create_app
from pyproject.config import ROOT
from pyproject.lib.http import http_date
from pyproject.lib.static import StaticFiles
from pyproject.lib.testing import TestClient

SECRET = b"TOP-SECRET-MARKER"
TEXT = b"hello, static world\n"


def inner_app(environ, start_response):
    """Stand in for the app behind the middleware."""
    body = b"inner app"
    start_response(
        "404 Not Found",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Give a static folder with a few files, beside files that must never be served."""
    (tmp_path / "main.py").write_bytes(SECRET)
    (tmp_path / "x").write_bytes(SECRET)
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "hello.txt").write_bytes(TEXT)
    (static / "css" / "site.css").write_bytes(b"body { color: red; }\n")
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (static / "app.js").write_bytes(b"console.log(1);\n")
    (static / ".hidden").write_bytes(SECRET)
    (static / "link.txt").symlink_to(tmp_path / "main.py")
    (static / "linkdir").symlink_to(tmp_path)
    return static


@pytest.fixture
def files(folder: Path) -> StaticFiles:
    return StaticFiles(inner_app, str(folder), check_changes=True)


@pytest.fixture
def client(files: StaticFiles) -> TestClient:
    return TestClient(files, validate=True)


def get_raw(client: TestClient, path_info: str, method: str = "GET"):
    """Send a request whose PATH_INFO is exactly `path_info` (as a server hands it over)."""
    environ = client.build_environ(method, "/")
    environ["PATH_INFO"] = path_info
    return client.run(environ)


# --- serving a file --------------------------------------------------------------------


def test_a_text_file_is_served_with_type_length_validators_and_cache_control(client, folder):
    response = client.get("/static/hello.txt")

    assert response.status_code == 200
    assert response.data == TEXT
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(TEXT))
    assert re.fullmatch(r'"[!#-~]+"', response.headers["ETag"])
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    mtime = int((folder / "hello.txt").stat().st_mtime)
    assert response.headers["Last-Modified"] == http_date(mtime)
    assert parsedate_to_datetime(response.headers["Last-Modified"]).timestamp() == mtime


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/css/site.css", "text/css; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/logo.png", "image/png"),
    ],
)
def test_content_type_follows_the_extension_with_a_charset_only_on_text(client, path, content_type):
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type


def test_a_binary_file_is_served_byte_for_byte(client, folder):
    response = client.get("/static/logo.png")

    assert response.data == (folder / "logo.png").read_bytes()


def test_the_etag_changes_when_the_file_changes(client, folder):
    before = client.get("/static/hello.txt").headers["ETag"]
    (folder / "hello.txt").write_bytes(b"new content, longer than before\n")

    assert client.get("/static/hello.txt").headers["ETag"] != before


# --- conditional requests and HEAD -------------------------------------------------------


def test_if_none_match_gives_304_without_a_body(client):
    etag = client.get("/static/hello.txt").headers["ETag"]

    response = client.get("/static/hello.txt", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert "Content-Length" not in response.headers


@pytest.mark.parametrize("template", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_if_none_match_forms_that_match(client, template):
    etag = client.get("/static/hello.txt").headers["ETag"]

    response = client.get(
        "/static/hello.txt", headers={"If-None-Match": template.format(etag=etag)}
    )

    assert response.status_code == 304


def test_if_none_match_wins_over_a_stale_if_modified_since(client):
    etag = client.get("/static/hello.txt").headers["ETag"]

    response = client.get(
        "/static/hello.txt",
        headers={"If-None-Match": etag, "If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"},
    )

    assert response.status_code == 304


def test_a_stale_if_none_match_wins_over_a_fresh_if_modified_since(client):
    last_modified = client.get("/static/hello.txt").headers["Last-Modified"]

    response = client.get(
        "/static/hello.txt",
        headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified},
    )

    assert response.status_code == 200
    assert response.data == TEXT


def test_if_modified_since_the_last_modification_gives_304(client):
    last_modified = client.get("/static/hello.txt").headers["Last-Modified"]

    response = client.get("/static/hello.txt", headers={"If-Modified-Since": last_modified})

    assert response.status_code == 304
    assert response.data == b""


@pytest.mark.parametrize(
    "since", ["Mon, 01 Jan 1990 00:00:00 GMT", "not a date", "", "Mon, 99 Foo 2024 99:99:99 GMT"]
)
def test_an_old_or_unreadable_if_modified_since_gives_the_file(client, since):
    response = client.get("/static/hello.txt", headers={"If-Modified-Since": since})

    assert response.status_code == 200
    assert response.data == TEXT


def test_head_gives_the_headers_without_a_body(client):
    get = client.get("/static/hello.txt")

    head = client.head("/static/hello.txt")

    assert head.status_code == 200
    assert head.data == b""
    assert head.headers.items() == get.headers.items()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(client, method):
    response = client.open(method, "/static/hello.txt")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert TEXT not in response.data


# --- what must never be served -----------------------------------------------------------


@pytest.mark.parametrize(
    "path_info",
    [
        "/static/../main.py",
        "/static/../x",
        "/static/css/../../main.py",
        "/static/%2e%2e/main.py",
        "/static/%2E%2E/main.py",
        "/static/%252e%252e/x",
        "/static/..%2fmain.py",
        "/static/..%5cmain.py",
        "/static/..\\main.py",
        "/static/css\\..\\..\\main.py",
        "/static//etc/passwd",
        "/static/" + str(Path(__file__).resolve()),
        "/static/C:/Windows/win.ini",
        "/static/a%00b",
        "/static/\x00",
        "/static/hello.txt\x00.png",
        "/static/.hidden",
        "/static/css/.hidden",
        "/static/./hello.txt",
        "/static/link.txt",
        "/static/linkdir/main.py",
        "/static/css/",
        "/static/css",
        "/static/",
        "/static",
        "/static/missing.txt",
        "/static/hello.txt/",
        "/static/\xff\xfe",
        "/static/hello%2etxt",
    ],
)
def test_traversal_and_odd_paths_are_a_plain_404(client, folder, path_info):
    response = get_raw(client, path_info)

    assert response.status_code == 404
    assert SECRET not in response.data
    assert TEXT not in response.data
    for name in ("hello.txt", "site.css", "main.py", "css"):
        assert name.encode() not in response.data
    assert "ETag" not in response.headers


def test_the_folder_itself_through_a_symlink_is_not_listed(client):
    response = get_raw(client, "/static/linkdir")

    assert response.status_code == 404
    assert b"main.py" not in response.data


def test_requests_outside_the_prefix_reach_the_app(client):
    response = client.get("/elsewhere/hello.txt")

    assert response.data == b"inner app"


# --- fingerprinted URLs ----------------------------------------------------------------


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_static_url_adds_the_content_fingerprint(files, folder):
    url = files.url_for("css/site.css")

    assert url == f"/static/css/site.css?v={fingerprint(folder / 'css' / 'site.css')}"


def test_static_url_quotes_odd_file_names(files, folder):
    (folder / "a file #1.txt").write_bytes(b"x")

    assert files.url_for("a file #1.txt").startswith("/static/a%20file%20%231.txt?v=")


@pytest.mark.parametrize("name", ["missing.css", "../main.py", ".hidden", "link.txt", "css"])
def test_static_url_refuses_what_would_not_be_served(files, name):
    with pytest.raises(FileNotFoundError):
        files.url_for(name)


def test_the_current_fingerprint_may_be_cached_for_a_year(client, files):
    response = client.get(files.url_for("css/site.css"))

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("query", ["v=000000000000", "v=", "v", "x=1", "v=abc&v=def"])
def test_a_wrong_fingerprint_gets_the_short_cache(client, query):
    response = client.get(f"/static/css/site.css?{query}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=3600"


def test_the_fingerprint_changes_when_the_file_changes(client, files, folder):
    old_url = files.url_for("css/site.css")
    target = folder / "css" / "site.css"
    target.write_bytes(b"body { color: blue; background: white; }\n")
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    new_url = files.url_for("css/site.css")

    assert new_url != old_url
    assert new_url.endswith(f"?v={fingerprint(target)}")
    stale = client.get(old_url)
    assert stale.headers["Cache-Control"] == "public, max-age=3600"
    assert client.get(new_url).headers["Cache-Control"].endswith("immutable")


# --- the real stylesheet through the real app ------------------------------------------


@pytest.fixture
def site(tmp_path):
    app = create_app(
        {
            "SECRET_KEY": "test-secret",
            "DEBUG": False,
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    return app


def test_the_sites_stylesheet_is_served_with_a_year_of_cache_at_its_fingerprint(site):
    client = site.test_client(validate=True)
    url = site.static_files.url_for("css/site.css")

    response = client.get(url)

    assert url == f"/static/css/site.css?v={fingerprint(ROOT / 'static' / 'css' / 'site.css')}"
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.data == (ROOT / "static" / "css" / "site.css").read_bytes()
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path_info", ["/static/../main.py", "/static/../.env", "/static/%2e%2e/.env"]
)
def test_the_sites_static_folder_does_not_leak_the_project(site, path_info):
    client = site.test_client(validate=True)

    response = get_raw(client, path_info)

    assert response.status_code == 404
    assert b"SECRET_KEY" not in response.data
    assert b"create_app" not in response.data


# --- files kept in memory (production: files cannot change under the server) ----------------


def test_small_files_are_served_from_memory_once_seen(folder):
    """Where files may not change (DEBUG off), a small file is read once, then kept."""
    client = TestClient(StaticFiles(inner_app, str(folder)), validate=True)
    first = client.get("/static/hello.txt")
    (folder / "hello.txt").write_bytes(b"changed on disk under a running server\n")
    again = client.get("/static/hello.txt")
    assert again.data == first.data == TEXT
    assert again.headers["Content-Length"] == str(len(TEXT))
    assert again.headers["ETag"] == first.headers["ETag"]


def test_files_may_change_under_a_server_that_checks(client, folder):
    client.get("/static/hello.txt")
    (folder / "hello.txt").write_bytes(b"new\n")
    assert client.get("/static/hello.txt").data == b"new\n"


def test_large_files_are_streamed_from_disk(folder, monkeypatch):
    import pyproject.lib.static as static_module

    monkeypatch.setattr(static_module, "KEEP_FILE_BYTES", 100)
    big = bytes(range(256)) * 40
    (folder / "big.bin").write_bytes(big)
    client = TestClient(StaticFiles(inner_app, str(folder)), validate=True)
    assert client.get("/static/big.bin").data == big
    assert client.get("/static/hello.txt").data == TEXT  # small ones are still kept
    (folder / "big.bin").write_bytes(b"x" * len(big))  # same size: the remembered stat holds
    assert client.get("/static/big.bin").data == b"x" * len(big)


def test_the_memory_kept_is_bounded(folder, monkeypatch):
    import pyproject.lib.static as static_module

    monkeypatch.setattr(static_module, "KEEP_TOTAL_BYTES", len(TEXT) + 10)
    files = StaticFiles(inner_app, str(folder))
    client = TestClient(files, validate=True)
    client.get("/static/hello.txt")
    client.get("/static/app.js")
    client.get("/static/logo.png")
    assert files.kept_bytes <= len(TEXT) + 10
    assert client.get("/static/logo.png").data == (folder / "logo.png").read_bytes()


def test_kept_bytes_counts_each_file_held_in_memory_once(folder):
    files = StaticFiles(inner_app, str(folder))
    client = TestClient(files, validate=True)
    assert files.kept_bytes == 0

    client.get("/static/hello.txt")
    client.get("/static/hello.txt")
    client.head("/static/app.js")

    assert files.kept_bytes == len(TEXT) + (folder / "app.js").stat().st_size


def test_a_server_that_checks_for_changes_keeps_nothing_in_memory(client, files):
    client.get("/static/hello.txt")

    assert files.kept_bytes == 0
