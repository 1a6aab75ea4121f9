"""The API against a live gunicorn: schemathesis checks every answer against the OpenAPI
document, and the write API and Micropub are used as curl would use them (#20)."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import VENV_BIN, ServerHandle, start_gunicorn
from tests.e2e.test_new_user_walk import Visitor

PASSPHRASE = "a long and lovely passphrase"
# What the issue asks of every answer: that it matches the document, and is never a 5xx.
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@dataclass
class Site:
    server: ServerHandle
    token: str  # read, posts:write and media:write
    reader_token: str  # read only

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
        **headers: str,
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {name.replace("_", "-"): value for name, value in headers.items()}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        response, data = self.server.request(method, path, headers=sent, body=body)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def make_token(visitor: Visitor, name: str, *scopes: str) -> str:
    page = visitor.open("/account/tokens")
    changes = {f"scope_{scope}": "on" for scope in scopes}
    made = visitor.submit(page, 'form[action="/account/tokens"]', name=name, **changes)
    assert made.status == 200, made.text
    return made.html.select_one("#new-token").get_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = start_gunicorn(data_dir=tmp_path_factory.mktemp("api"))
    try:
        ada = Visitor(server.url)
        editor = ada.submit(
            ada.open("/setup"),
            "main form",
            username="ada",
            email="ada@example.com",
            display_name="Ada",
            password=PASSPHRASE,
            confirm=PASSPHRASE,
        )
        ada.submit(editor, "#post-form", title="Hello", body="Words.", status="published")
        token = make_token(ada, "everything", "read", "posts:write", "media:write")
        # the form starts with read ticked: unticking it is the only way to drop it
        reader = make_token(ada, "reader")
        yield Site(server, token, reader)
    finally:
        server.stop()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        )
        parts.append(value.encode() + b"\r\n")
    for name, (filename, data, kind) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_every_answer_matches_the_document_and_none_is_a_5xx(site: Site, tmp_path: Path) -> None:
    server = site.server
    run = subprocess.run(
        [
            str(VENV_BIN / "st"),
            "run",
            f"{server.url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {site.token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "10",
        ],
        cwd=tmp_path,  # its report folder, if any, lands here
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "9 selected / 9 total" in run.stdout  # every operation of the document was tried
    assert "Traceback" not in server.stderr_text()


def test_the_document_names_every_api_route(site: Site) -> None:
    status, headers, body = site.call("GET", "/api/openapi.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    document = json.loads(body)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": site.server.url}]
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/api/posts"),
        ("POST", "/api/posts"),
        ("GET", "/api/posts/{slug}"),
        ("PATCH", "/api/posts/{slug}"),
        ("DELETE", "/api/posts/{slug}"),
        ("GET", "/api/posts/{slug}/source"),
        ("GET", "/api/tags"),
        ("GET", "/api/search"),
        ("POST", "/api/media"),
        ("GET", "/api/openapi.json"),
    }


def test_write_api_as_curl_uses_it(site: Site) -> None:
    body = json.dumps({"title": "By curl", "body": "Sent *by* curl.", "tags": ["cli"]}).encode()
    status, headers, data = site.call(
        "POST", "/api/posts", body, site.token, Content_Type="application/json"
    )
    assert status == 201, data
    etag = headers["etag"]
    assert headers["location"] == f"{site.server.url}/api/posts/by-curl/source"
    change = json.dumps({"status": "published"}).encode()
    status, _, data = site.call(
        "PATCH", "/api/posts/by-curl", change, site.token, Content_Type="application/json"
    )
    assert status == 428
    status, headers, data = site.call(
        "PATCH",
        "/api/posts/by-curl",
        change,
        site.token,
        Content_Type="application/json",
        If_Match=etag,
    )
    assert status == 200, data
    status, _, page = site.call("GET", "/posts/by-curl")
    assert status == 200 and b"<em>by</em>" in page
    status, _, data = site.call(
        "PATCH",
        "/api/posts/by-curl",
        change,
        site.token,
        Content_Type="application/json",
        If_Match=etag,
    )
    assert status == 412 and json.loads(data)["post"]["status"] == "published"
    status, _, data = site.call(
        "POST", "/api/posts", body, site.reader_token, Content_Type="application/json"
    )
    assert status == 403
    status, _, _ = site.call("DELETE", "/api/posts/by-curl", token=site.token)
    assert status == 204
    assert site.call("GET", "/posts/by-curl")[0] == 410


def test_micropub_as_a_client_uses_it(site: Site) -> None:
    status, _, page = site.call("GET", "/")
    assert f'<link rel="micropub" href="{site.server.url}/micropub">'.encode() in page
    status, _, data = site.call("GET", "/micropub?q=config", token=site.token)
    config = json.loads(data)
    assert status == 200 and config["media-endpoint"] == f"{site.server.url}/micropub/media"

    # a picture through the media endpoint, then a note that shows it
    upload, kind = multipart({}, {"file": ("red.jpg", jpeg(), "image/jpeg")})
    status, headers, data = site.call(
        "POST", "/micropub/media", upload, site.token, Content_Type=kind
    )
    assert status == 201, data
    picture = headers["location"]
    assert site.call("GET", picture.removeprefix(site.server.url))[0] == 200
    form = (
        "h=entry&content=A+note+from+my+phone&category%5B%5D=notes"
        f"&photo={picture}&mp-syndicate-to=x"
    ).encode()
    status, headers, data = site.call(
        "POST",
        "/micropub",
        form,
        site.token,
        Content_Type="application/x-www-form-urlencoded",
    )
    assert status == 201, data
    assert json.loads(data)["ignored"] == ["mp-syndicate-to"]
    location = headers["location"]
    status, _, page = site.call("GET", location.removeprefix(site.server.url))
    assert status == 200 and b"A note from my phone" in page
    assert picture.removeprefix(site.server.url).encode() in page

    # the source, an update, delete and undelete
    status, _, data = site.call("GET", f"/micropub?q=source&url={location}", token=site.token)
    assert json.loads(data)["properties"]["category"] == ["notes"]
    update = json.dumps(
        {"action": "update", "url": location, "replace": {"content": ["Changed."]}}
    ).encode()
    status, _, data = site.call(
        "POST", "/micropub", update, site.token, Content_Type="application/json"
    )
    assert status == 200, data
    assert b"Changed." in site.call("GET", location.removeprefix(site.server.url))[2]
    for action, expected in (("delete", 410), ("undelete", 200)):
        sent = f"action={action}&url={location}".encode()
        status, _, _ = site.call(
            "POST", "/micropub", sent, site.token, Content_Type="application/x-www-form-urlencoded"
        )
        assert status == 204
        assert site.call("GET", location.removeprefix(site.server.url))[0] == expected

    # no token, or a token that may only read
    status, _, data = site.call(
        "POST", "/micropub", b"h=entry&content=x", Content_Type="application/x-www-form-urlencoded"
    )
    assert status == 401 and json.loads(data)["error"] == "unauthorized"
    status, _, data = site.call(
        "POST",
        "/micropub",
        b"h=entry&content=x",
        site.reader_token,
        Content_Type="application/x-www-form-urlencoded",
    )
    assert status == 403 and json.loads(data)["error"] == "insufficient_scope"
    assert "Traceback" not in site.server.stderr_text()


def test_racing_writes_with_one_etag_save_one_and_412_the_rest(site: Site) -> None:
    """Eight clients PATCH at once from the same ETag, on two workers: exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    body = json.dumps({"title": "Raced", "body": "Start."}).encode()
    status, headers, _ = site.call(
        "POST", "/api/posts", body, site.token, Content_Type="application/json"
    )
    assert status == 201
    etag = headers["etag"]

    def change(n: int) -> tuple[int, int]:
        sent = json.dumps({"body": f"Version {n}."}).encode()
        got, _, _ = site.call(
            "PATCH",
            "/api/posts/raced",
            sent,
            site.token,
            Content_Type="application/json",
            If_Match=etag,
        )
        return n, got

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(change, range(8)))
    winners = [n for n, got in results if got == 200]
    assert len(winners) == 1, results
    assert sorted(got for _, got in results) == [200] + [412] * 7
    _, _, data = site.call("GET", "/api/posts/raced/source", token=site.token)
    assert json.loads(data)["post"]["body"] == f"Version {winners[0]}."
    assert json.loads(data)["post"]["revision"] == 2
