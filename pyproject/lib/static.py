"""Static files: a WSGI middleware in front of the app, and fingerprinted URLs for them."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pyproject.lib.http import (
    http_date,
    is_not_modified,
    parse_http_date,
    quote_etag,
    safe_join,
    status_line,
)
from pyproject.lib.request import host_problem
from pyproject.lib.response import read_chunks

_EXTRA_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
    ".ico": "image/x-icon",
}
_TEXT_PREFIXES = ("text/", "application/javascript", "application/json", "image/svg+xml")
YEAR = 365 * 24 * 3600
# Files up to this size are served from memory where files cannot change (not DEBUG).
KEEP_FILE_BYTES = 256 * 1024
KEEP_TOTAL_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One servable file: where it is, and the header values it is sent with."""

    path: str
    stat: os.stat_result
    content_type: str
    etag: str
    last_modified: str
    modified_at: datetime | None
    content: bytes | None  # the bytes when small enough to keep in memory


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A file's content hash, with the mtime and size it was computed for."""

    mtime_ns: int
    size: int
    value: str


class StaticFiles:
    """Serves files under `directory` at `prefix`, passing every other request to the app.

    Anything that is not a regular file inside the folder (after decoding and following
    links) is a plain 404 that reveals nothing. `static_url()` gives a URL with a content
    fingerprint; a request that carries the current fingerprint may be cached for a year.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        directory: str,
        *,
        prefix: str = "/static/",
        max_age: int = 3600,
        extra_headers: list[tuple[str, str]] | None = None,
        check_changes: bool = False,
        allowed_hosts: tuple[str, ...] | None = None,
    ) -> None:
        self.app = app
        self.directory = os.path.realpath(directory)
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.max_age = max_age
        self.extra_headers = list(extra_headers or ())
        self.check_changes = check_changes
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts is not None else None
        self._fingerprints: dict[str, Fingerprint] = {}
        self._url_cache: dict[str, str] = {}
        self._known: dict[str, StaticFile] = {}
        self._kept_bytes = 0
        self._lock = threading.Lock()

    @property
    def kept_bytes(self) -> int:
        """Give how many bytes of file content are held in memory."""
        return self._kept_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(self.prefix):
            return self.app(environ, start_response)
        if self.allowed_hosts is not None:
            host = environ.get("HTTP_HOST", "").strip().lower()
            if host_problem(host, self.allowed_hosts):
                return self._plain(start_response, 400, "Bad Request")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._plain(start_response, 405, "Method Not Allowed", [("Allow", "GET, HEAD")])
        found = self._file(path[len(self.prefix) :])
        if found is None:
            return self._plain(start_response, 404, "Not Found")
        stat, content = found.stat, found.content
        headers = [
            ("Content-Type", found.content_type),
            ("ETag", found.etag),
            ("Last-Modified", found.last_modified),
            ("Cache-Control", self._cache_control(environ, found.path, stat)),
            *self.extra_headers,
        ]
        if is_not_modified(
            etag=found.etag,
            last_modified=found.modified_at,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
        ):
            start_response(status_line(304), headers[1:])
            return []
        if method == "HEAD":
            start_response(status_line(200), [*headers, ("Content-Length", str(stat.st_size))])
            return []
        if content is not None:
            start_response(status_line(200), [*headers, ("Content-Length", str(len(content)))])
            return [content]
        try:
            handle = open(found.path, "rb")  # noqa: SIM115 - the file wrapper closes it
        except OSError:  # removed since it was remembered
            self._known.pop(path[len(self.prefix) :], None)
            return self._plain(start_response, 404, "Not Found")
        start_response(status_line(200), [*headers, ("Content-Length", str(stat.st_size))])
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(handle, 64 * 1024)
        return read_chunks(handle)

    def _file(self, raw: str) -> StaticFile | None:
        """Give a file's path, stat and header values, remembered unless files may change."""
        known = self._known.get(raw)
        if known is not None:
            return known
        found = self.resolve(raw)
        if found is None:
            return None
        real, stat = found
        modified_header = http_date(int(stat.st_mtime))
        # Only files that exist are remembered (a bounded set: what static/ holds), and
        # only where they cannot change under a running server. Small ones are kept in
        # memory too: no open, read and close per request.
        known = StaticFile(
            path=real,
            stat=stat,
            content_type=self._content_type(real),
            etag=quote_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}"),
            last_modified=modified_header,
            modified_at=parse_http_date(modified_header),
            content=None if self.check_changes else self._content(real, stat),
        )
        if not self.check_changes:
            self._known[raw] = known
        return known

    def _content(self, real: str, stat: os.stat_result) -> bytes | None:
        """Give a small file's bytes to keep, within the memory budget; else None."""
        if stat.st_size > KEEP_FILE_BYTES or self._kept_bytes + stat.st_size > KEEP_TOTAL_BYTES:
            return None
        try:
            with open(real, "rb") as handle:
                content = handle.read(KEEP_FILE_BYTES + 1)
        except OSError:
            return None
        if len(content) != stat.st_size:  # changed while we looked: serve it from disk
            return None
        with self._lock:
            self._kept_bytes += len(content)
        return content

    def resolve(self, raw: str) -> tuple[str, os.stat_result] | None:
        """Give the real path and stat of a regular file for a raw (WSGI) subpath, or None."""
        try:
            # PATH_INFO is already percent-decoded once; a second %xx layer is refused
            # by the '%' check so double-encoded dots never become dots.
            text = raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
        if "%" in text or not text:
            return None
        real = safe_join(self.directory, text)
        if real is None:
            return None
        try:
            stat = os.stat(real)
        except (OSError, ValueError):
            return None
        if not stat_module.S_ISREG(stat.st_mode):
            return None
        return real, stat

    def _content_type(self, real: str) -> str:
        ext = os.path.splitext(real)[1].lower()
        ctype = _EXTRA_TYPES.get(ext) or mimetypes.guess_type(real)[0] or "application/octet-stream"
        if ctype.startswith(_TEXT_PREFIXES) and "charset" not in ctype:
            ctype += "; charset=utf-8"
        return ctype

    def _cache_control(self, environ: dict[str, Any], real: str, stat: os.stat_result) -> str:
        query = environ.get("QUERY_STRING", "")
        if query.startswith("v=") and query[2:] == self._fingerprint(real, stat):
            return f"public, max-age={YEAR}, immutable"
        return f"public, max-age={self.max_age}"

    def _fingerprint(self, real: str, stat: os.stat_result) -> str:
        cached = self._fingerprints.get(real)
        if (
            cached is not None
            and cached.mtime_ns == stat.st_mtime_ns
            and cached.size == stat.st_size
        ):
            return cached.value
        digest = hashlib.sha256()
        with open(real, "rb") as handle:
            for chunk in iter(lambda: handle.read(64 * 1024), b""):
                digest.update(chunk)
        value = digest.hexdigest()[:12]
        with self._lock:
            self._fingerprints[real] = Fingerprint(stat.st_mtime_ns, stat.st_size, value)
        return value

    def url_for(self, filename: str) -> str:
        """Give the URL of a static file with its content fingerprint (for `static_url`)."""
        if not self.check_changes and filename in self._url_cache:
            return self._url_cache[filename]
        path = self.prefix + quote(filename.lstrip("/"), safe="/")
        found = self.resolve(filename.lstrip("/"))
        if found is None:
            raise FileNotFoundError(f"no static file {filename!r}")
        url = f"{path}?v={self._fingerprint(*found)}"
        if not self.check_changes:
            self._url_cache[filename] = url
        return url

    def _plain(self, start_response, code: int, text: str, extra: list | None = None):
        body = f"{code} {text}\n".encode()
        start_response(
            status_line(code),
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                *(extra or []),
                *self.extra_headers,
            ],
        )
        return [body]
