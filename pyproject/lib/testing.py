"""An in-process test client: builds environs, keeps cookies, follows redirects."""

from __future__ import annotations

import io
import json as jsonlib
import sys
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode, urlsplit
from wsgiref.validate import validator

from pyproject.lib.datastructures import Headers
from pyproject.lib.http import parse_options_header


class TestResponse:
    """What the app answered: status, headers, body, with text, JSON and parsed HTML."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: str, headers: list[tuple[str, str]], data: bytes, request_path: str):
        self.status = status
        self.status_code = int(status.split(" ", 1)[0])
        self.headers = Headers(headers)
        self.data = data
        self.request_path = request_path
        self.history: list[TestResponse] = []

    @property
    def text(self) -> str:
        charset = parse_options_header(self.headers.get("Content-Type"))[1].get("charset", "utf-8")
        return self.data.decode(charset)

    @property
    def json(self) -> Any:
        return jsonlib.loads(self.data)

    @cached_property
    def html(self) -> Any:
        """Give the body parsed as HTML (a BeautifulSoup tree, as html5lib would parse it)."""
        from bs4 import BeautifulSoup

        return BeautifulSoup(self.data, "html5lib")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def form_values(self, selector: str = "form") -> dict[str, str]:
        """Give the named inputs and textareas of the first form matching `selector`."""
        form = self.html.select_one(selector)
        if form is None:
            raise AssertionError(f"no {selector} on the page")
        values = {}
        for field in form.select("input[name], textarea[name], select[name]"):
            if field.name == "textarea":
                values[field["name"]] = field.text
            elif field.name == "select":
                chosen = field.select_one("option[selected]") or field.select_one("option")
                values[field["name"]] = chosen.get("value", chosen.text) if chosen else ""
            elif field.get("type") in ("checkbox", "radio"):
                if field.has_attr("checked"):
                    values[field["name"]] = field.get("value", "on")
            elif field.get("type") not in ("submit", "button", "image", "file"):
                values[field["name"]] = field.get("value", "")
        return values

    def __repr__(self) -> str:
        return f"<TestResponse {self.status} {self.request_path}>"


class TestClient:
    """Calls a WSGI app in process, keeping cookies between calls like a browser."""

    __test__ = False

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        base_url: str = "http://localhost",
        validate: bool = False,
        environ_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.app = validator(app) if validate else app
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.netloc
        self.cookies: dict[str, str] = {}
        self.environ_overrides = dict(environ_overrides or {})

    def build_environ(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | list[tuple[str, Any]] | str | None = None,
        data: dict[str, Any] | list[tuple[str, Any]] | bytes | str | None = None,
        json: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Give a WSGI environ for a request as a browser would send it."""
        raw_path, _, query_string = path.partition("?")
        if query is not None:
            extra = query if isinstance(query, str) else urlencode(query, doseq=True)
            query_string = f"{query_string}&{extra}" if query_string else extra
        body = b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            content_type = content_type or "application/json"
        elif files:
            body, content_type = encode_multipart(data or {}, files)
        elif isinstance(data, dict | list):
            body = urlencode(data, doseq=True).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            body = data.encode()
        elif isinstance(data, bytes):
            body = data
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query_string,
            "SERVER_NAME": self.host.split(":")[0],
            "SERVER_PORT": self.host.split(":")[1] if ":" in self.host else "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": self.host,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            environ["CONTENT_LENGTH"] = str(len(body))
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            elif value is None:
                environ.pop("HTTP_" + key, None)
            else:
                environ["HTTP_" + key] = value
        environ.update(self.environ_overrides)
        return environ

    def run(self, environ: dict[str, Any]) -> TestResponse:
        """Call the app with an environ and give its response (cookies are kept)."""
        captured: dict[str, Any] = {}

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda chunk: None

        result = self.app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        response = TestResponse(captured["status"], captured["headers"], data, environ["PATH_INFO"])
        self._store_cookies(response)
        return response

    def _store_cookies(self, response: TestResponse) -> None:
        for header in response.headers.getlist("Set-Cookie"):
            pair, *attributes = header.split(";")
            name, _, value = pair.strip().partition("=")
            expired = any(a.strip().lower() in ("max-age=0",) for a in attributes)
            if expired or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def open(self, method: str, path: str, *, follow_redirects: bool = False, **kwargs: Any):
        """Send a request; with `follow_redirects`, follow Location headers with GET."""
        response = self.run(self.build_environ(method, path, **kwargs))
        history = []
        while follow_redirects and response.status_code in (301, 302, 303, 307, 308):
            history.append(response)
            if len(history) > 10:
                raise AssertionError("too many redirects")
            target = urlsplit(response.location or "/")
            location = target.path + (f"?{target.query}" if target.query else "")
            keep = response.status_code in (307, 308)
            response = self.run(
                self.build_environ(method if keep else "GET", location, **(kwargs if keep else {}))
            )
        response.history = history
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("OPTIONS", path, **kwargs)


def encode_multipart(
    fields: dict[str, Any] | list[tuple[str, Any]], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """Give a multipart/form-data body and its Content-Type for fields and files."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    items = fields.items() if isinstance(fields, dict) else fields
    for name, value in items:
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value if isinstance(value, bytes) else str(value).encode())
        out.write(b"\r\n")
    for name, (filename, content, ctype) in files.items():
        out.write(f"--{boundary}\r\n".encode())
        out.write(
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
        )
        out.write(f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(content)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"
