"""The Response, its helpers (redirect, JSON, conditional 304s), and how one becomes WSGI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote

from pyproject.lib.datastructures import Headers
from pyproject.lib.http import (
    STATUS_PHRASES,
    check_header,
    dump_cookie,
    http_date,
    is_not_modified,
    parse_http_date,
    quote_etag,
    status_line,
)

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_NO_BODY = {204, 304}


@dataclass(slots=True)
class Shared:
    """A view's word that its response is the same for every anonymous reader.

    The app's page cache (pyproject.lib.pagecache) may then keep the page and answer
    the same URL itself while `etag` (quoted, as sent) is still current, for
    validators with a time bucket of `refresh` seconds. `on_hit(environ)` runs each time
    a kept copy is served, as the view would have run it (counting a view, say: the
    request's method, User-Agent and Referer are in the environ).
    """

    etag: str | None = None
    refresh: int | None = None
    on_hit: Callable[[dict[str, Any]], None] | None = None


class Response:
    """An HTTP response: a status, headers and a body (str, bytes, an iterable or a file)."""

    default_mimetype = "text/html"

    def __init__(
        self,
        body: str | bytes | Iterable[bytes] | IO[bytes] | None = b"",
        status: int = 200,
        headers: Headers | dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        mimetype: str | None = None,
        content_type: str | None = None,
    ) -> None:
        if status not in STATUS_PHRASES:
            raise ValueError(f"unknown HTTP status code {status}")
        self.status_code = status
        if headers is None:
            # The common case: no headers yet, so no lookups either.
            self.headers = Headers()
            self.headers.add("Content-Type", content_type or mimetype or self.default_mimetype)
        else:
            self.headers = headers if isinstance(headers, Headers) else Headers(headers)
            if content_type is None and "Content-Type" not in self.headers:
                content_type = mimetype or self.default_mimetype
            if content_type is not None:
                self.headers.set("Content-Type", content_type)
        self.body = body if body is not None else b""
        # Whether the response depends on the session (set by the session layer).
        self.vary_cookie = False
        # Set by a view whose page anonymous readers may share (see Shared).
        self.shared: Shared | None = None

    # --- convenience -----------------------------------------------------------------

    @property
    def status(self) -> str:
        return status_line(self.status_code)

    @property
    def mimetype(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def get_data(self) -> bytes:
        """Give the body as bytes (joining an iterable body, which is then kept)."""
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        if isinstance(self.body, bytes | bytearray):
            return bytes(self.body)
        if hasattr(self.body, "read"):
            data = self.body.read()
            self.body = data
            return data
        data = b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in self.body)
        self.body = data
        return data

    @property
    def text(self) -> str:
        return self.get_data().decode("utf-8")

    def set_cookie(self, name: str, value: str = "", **attributes: Any) -> None:
        """Add a Set-Cookie header (attributes as in `http.dump_cookie`)."""
        self.headers.add("Set-Cookie", dump_cookie(name, value, **attributes))

    def delete_cookie(
        self,
        name: str,
        *,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        samesite: str | None = "Lax",
    ) -> None:
        """Tell the browser to forget a cookie."""
        self.set_cookie(
            name,
            "",
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            samesite=samesite,
        )

    def set_etag(self, tag: str, weak: bool = False) -> None:
        self.headers.set("ETag", quote_etag(tag, weak))

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def last_modified(self) -> datetime | None:
        return parse_http_date(self.headers.get("Last-Modified"))

    @last_modified.setter
    def last_modified(self, value: datetime | None) -> None:
        if value is None:
            self.headers.remove("Last-Modified")
        else:
            self.headers.set("Last-Modified", http_date(value))

    def make_conditional(self, environ: dict[str, Any]) -> Response:
        """Turn this response into a 304 if the request's validators still match it."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or self.status_code != 200:
            return self
        if is_not_modified(
            etag=self.etag,
            last_modified=self.last_modified,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
        ):
            self.status_code = 304
            self.body = b""
        return self

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        status, headers, body = wsgi_parts(self, environ)
        start_response(status, headers)
        return body


def wsgi_parts(
    response: Response, environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
    """Give the WSGI status, header list and body iterable for a response.

    The one place that sets Content-Length for buffered bodies, adds charset=utf-8 to
    text types, empties the body for HEAD, 204 and 304, and refuses CR, LF or NUL in
    any header (a ValueError, which the app logs as a 500: it is always our bug).
    """
    headers = response.headers
    code = response.status_code
    content_type = headers.get("Content-Type")
    is_text = content_type and (
        content_type.startswith(_TEXT_TYPES) or content_type.endswith(("+xml", "+json"))
    )
    if is_text and "charset=" not in content_type.lower():
        headers.set("Content-Type", f"{content_type}; charset=utf-8")
    if response.vary_cookie:
        vary = headers.get("Vary")
        if not vary:
            headers.set("Vary", "Cookie")
        elif "cookie" not in vary.lower():
            headers.set("Vary", f"{vary}, Cookie")

    body = response.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    if code in _NO_BODY or 100 <= code < 200:
        headers.remove("Content-Length")
        headers.remove("Content-Type")  # no content to type; WSGI validators refuse it
        iterable: Iterable[bytes] = []
        _close(body)
    elif isinstance(body, bytes | bytearray):
        headers.set("Content-Length", str(len(body)))
        iterable = [] if environ.get("REQUEST_METHOD") == "HEAD" else [bytes(body)]
    elif hasattr(body, "read"):
        if "Content-Length" not in headers:
            size = _file_size(body)
            if size is not None:
                headers.set("Content-Length", str(size))
        if environ.get("REQUEST_METHOD") == "HEAD":
            _close(body)
            iterable = []
        else:
            wrapper = environ.get("wsgi.file_wrapper")
            iterable = wrapper(body, 64 * 1024) if wrapper else read_chunks(body)
    else:
        if environ.get("REQUEST_METHOD") == "HEAD":
            _close(body)
            iterable = []
        else:
            iterable = (c.encode("utf-8") if isinstance(c, str) else c for c in body)

    header_list = headers.to_wsgi_list()
    for name, value in header_list:
        check_header(name, value)
    return status_line(code), header_list, iterable


def _file_size(stream: IO[bytes]) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size - stream.tell()
    except (AttributeError, OSError, ValueError):
        return None


def read_chunks(stream: IO[bytes]) -> Iterable[bytes]:
    """Give a file's content in 64 KB pieces, closing it when done or abandoned."""
    try:
        while chunk := stream.read(64 * 1024):
            yield chunk
    finally:
        stream.close()


def _close(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


# --- helpers views use -----------------------------------------------------------------


def safe_location(location: str) -> str:
    """Give a Location value with spaces, controls and non-ASCII percent-encoded."""
    return quote(location, safe="/:@!$&'()*+,;=-._~%?#[]")


def redirect(location: str, code: int = 303) -> Response:
    """Give a redirect response to `location` (303 See Other after a POST by default)."""
    if code not in (301, 302, 303, 307, 308):
        raise ValueError("redirect codes are 301, 302, 303, 307 and 308")
    response = Response(b"", code, mimetype="text/plain")
    response.headers.set("Location", safe_location(location))
    return response


def json_response(data: Any, status: int = 200, headers: Any = None) -> Response:
    """Give a JSON response (compact, UTF-8, `<`, `>` and `&` escaped for safe embedding)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Response(text, status, headers, mimetype="application/json")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def not_modified(
    environ: dict[str, Any],
    *,
    etag: str | None = None,
    last_modified: datetime | None = None,
    weak: bool = False,
) -> Response | None:
    """Give a 304 response if the request's validators match, before any body is built.

    Views call this with validators computed cheaply (a version number, a timestamp)
    and return its answer when it is not None; otherwise they build the page and call
    `with_validators` on it.
    """
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    quoted = quote_etag(etag, weak) if etag is not None else None
    if is_not_modified(
        etag=quoted,
        last_modified=last_modified,
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
    ):
        response = Response(b"", 304)
        # A 304 has no content to type: its headers are the validators alone.
        headers = response.headers
        headers.clear()
        if quoted is not None:
            headers.add("ETag", quoted)
        if last_modified is not None:
            headers.add("Last-Modified", http_date(last_modified))
        return response
    return None


def with_validators(
    response: Response,
    *,
    etag: str | None = None,
    last_modified: datetime | None = None,
    weak: bool = False,
) -> Response:
    """Set ETag and Last-Modified on a response and give it back."""
    if etag is not None:
        response.set_etag(etag, weak)
    if last_modified is not None:
        response.last_modified = last_modified
    return response
