"""Finished anonymous pages, answered in front of the app from a per-worker cache.

A view decorator (the blog's `reader_page`) marks a response as a page that is the same
for every anonymous reader, with the validators it was built at: `mark(environ, ...)`.
`PageCache`, a WSGI middleware around the app, then keeps what the app finally sent
(status line, every header, the body) and answers the next anonymous GET or HEAD of
the same URL itself, before a Request is even built: a 304 when the reader's copy is
current, else the kept page. Every answer is checked against the validators of the
moment (`etag_for`), which come from the shared database, so a change made by any
worker or host retires every kept page at once.

What is never kept or answered here: anything but GET and HEAD, any request carrying
the session cookie, a Host the app would refuse, an unparsable query string, a page
that set a cookie or said `private` or `no-store`. Those all go to the app.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyproject.lib.app import log, log_request
from pyproject.lib.http import is_not_modified
from pyproject.lib.request import Request, host_problem

MARK = "pyproject.page_mark"  # the environ key a view's mark travels in
_NOT_MODIFIED = "304 Not Modified"
_NO_CONTENT_HEADERS = ("content-type", "content-length")

# Validators of the moment for a page kind: the quoted ETag and Last-Modified.
EtagFor = Callable[[int | None], tuple[str, datetime]]


@dataclass(slots=True)
class PageMark:
    """What a view tells the cache about its response (see `PageCache.mark`)."""

    key: str
    etag: str
    refresh: int | None
    keep_body: bool = False
    on_hit: Callable[[str], None] | None = None


@dataclass(slots=True)
class Entry:
    etag: str
    refresh: int | None
    page_headers: list[tuple[str, str]] | None = None  # of the 200, as sent
    body: bytes | None = None
    not_modified_headers: list[tuple[str, str]] | None = None  # of the 304, as sent
    on_hit: Callable[[str], None] | None = None
    size: int = 0


def _size(headers: list[tuple[str, str]] | None) -> int:
    return sum(len(name) + len(value) for name, value in headers) if headers else 0


class PageCache:
    """WSGI middleware: keeps marked anonymous pages and answers them before the app.

    `etag_for(refresh)` gives the current quoted ETag and Last-Modified for a page whose
    validators include a time bucket of `refresh` seconds (None for none).
    `session_cookie` is the session cookie's name: a request whose cookies hold it (the
    `__Host-` form too) is not anonymous. The cache is bounded in bytes (bodies and
    headers) and in entries.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        etag_for: EtagFor,
        session_cookie: str,
        allowed_hosts: tuple[str, ...] | list[str],
        parameters: tuple[str, ...] = ("page", "q"),
        request_class: type[Request] = Request,
        max_bytes: int = 8 * 1024 * 1024,
        max_entries: int = 10_000,
    ) -> None:
        self.app = app
        self.etag_for = etag_for
        self.session_cookie = session_cookie
        self.allowed_hosts = tuple(allowed_hosts)
        self.parameters = parameters
        self.request_class = request_class
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._good_hosts: set[str] = set()
        self._size = 0
        self._lock = threading.Lock()

    # --- what views call -----------------------------------------------------------

    def key(self, environ: dict[str, Any], args: Any = None) -> str | None:
        """Give the cache key of a request: its path and the parameters pages read.

        Other parameters (utm_source=...) change nothing on a page, so they share the
        entry. None when the query string cannot be parsed (the app answers 400).
        """
        path = environ.get("PATH_INFO", "")
        if not environ.get("QUERY_STRING"):
            return path + "?"
        if args is None:
            try:
                args = self.request_class(environ).args
            except Exception:  # malformed: the app says why
                return None
        kept = [f"{name}={args.get(name)}" for name in self.parameters if name in args]
        return path + "?" + "&".join(kept)

    def is_anonymous(self, environ: dict[str, Any]) -> bool:
        """Give whether a request carries no session cookie (its pages are everyone's).

        Deliberately coarse: any cookie text holding the name counts as a session, and
        the app, which parses cookies properly, decides those requests.
        """
        cookies = environ.get("HTTP_COOKIE")
        return not cookies or self.session_cookie not in cookies

    def mark(
        self,
        environ: dict[str, Any],
        key: str,
        etag: str,
        refresh: int | None,
    ) -> PageMark:
        """Mark the response to this request as an anonymous page at these validators.

        Set `keep_body` on the mark (and `on_hit`, a function of the method to run when
        a kept page is served, such as counting a view) once the page is known to be
        the same for every anonymous reader.
        """
        page_mark = PageMark(key, etag, refresh)
        environ[MARK] = page_mark
        return page_mark

    # --- the middleware ------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        method = environ.get("REQUEST_METHOD")
        if method != "GET" and method != "HEAD":
            return self.app(environ, start_response)
        if self._entries:
            started = time.perf_counter()
            answer = self._answer(environ, method)
            if answer is not None:
                status, headers, body, length = answer
                start_response(status, headers)
                if log.isEnabledFor(logging.INFO):
                    log_request(environ, status, length, started)
                return body
        sent: list[Any] = []

        def remember_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            sent[:] = (status, headers)
            return start_response(status, headers, exc_info)

        body = self.app(environ, remember_start)
        page_mark = environ.get(MARK)
        if page_mark is None or not sent:
            return body
        return self._keep(page_mark, method, sent[0], sent[1], body)

    def _answer(
        self, environ: dict[str, Any], method: str
    ) -> tuple[str, list[tuple[str, str]], list[bytes], str] | None:
        """Give the status, headers, body and logged length to send, or None for the app."""
        key = self.key(environ)
        entry = self._entries.get(key) if key is not None else None
        if entry is None or not self.is_anonymous(environ):
            return None
        host = environ.get("HTTP_HOST")
        if host is None or (host not in self._good_hosts and not self._host_is_good(host)):
            return None
        try:
            etag, last_modified = self.etag_for(entry.refresh)
            if etag != entry.etag:
                return None
            if_none_match = environ.get("HTTP_IF_NONE_MATCH")
            if if_none_match == etag or is_not_modified(
                etag=etag,
                last_modified=last_modified,
                if_none_match=if_none_match,
                if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
            ):
                if entry.not_modified_headers is None:
                    return None
                return _NOT_MODIFIED, list(entry.not_modified_headers), [], "-"
            if entry.body is None or entry.page_headers is None:
                return None
            if entry.on_hit is not None:
                entry.on_hit(method)
        except Exception:  # the database is away, say: the app answers, and logs it
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        body = [entry.body] if method == "GET" else []
        return "200 OK", list(entry.page_headers), body, str(len(entry.body))

    def _host_is_good(self, host: str) -> bool:
        """Give whether the app would accept this Host value; remember the ones it would."""
        if host_problem(host.strip().lower(), self.allowed_hosts):
            return False
        if len(self._good_hosts) < 64:  # a bounded set: only names the site answers to
            self._good_hosts.add(host)
        return True

    def _keep(
        self,
        page_mark: PageMark,
        method: str,
        status: str,
        headers: list[tuple[str, str]],
        body: Iterable[bytes],
    ) -> Iterable[bytes]:
        """Keep what the app sent for a marked page, if it may be kept; give the body."""
        code = status[:3]
        if code not in ("200", "304") or not _shareable(headers):
            return body
        if code == "304":
            self._store(page_mark, not_modified_headers=list(headers))
            return body
        if method != "GET" or not page_mark.keep_body or not isinstance(body, list):
            return body
        content = b"".join(body)
        self._store(
            page_mark,
            page_headers=list(headers),
            body=content,
            on_hit=page_mark.on_hit,
        )
        return [content]

    def _store(self, page_mark: PageMark, **parts: Any) -> None:
        key = page_mark.key
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._size -= entry.size
            if entry is None or entry.etag != page_mark.etag:
                entry = Entry(page_mark.etag, page_mark.refresh)
            for name, value in parts.items():
                setattr(entry, name, value)
            if entry.not_modified_headers is None and entry.page_headers is not None:
                # Until the app sends its own: the page's, less what describes the content.
                entry.not_modified_headers = [
                    (name, value)
                    for name, value in entry.page_headers
                    if name.lower() not in _NO_CONTENT_HEADERS
                ]
            entry.size = (
                len(key)
                + len(entry.body or b"")
                + _size(entry.page_headers)
                + _size(entry.not_modified_headers)
            )
            if entry.size > self.max_bytes // 8:  # one page never crowds out the rest
                return
            self._entries[key] = entry
            self._size += entry.size
            while self._entries and (
                self._size > self.max_bytes or len(self._entries) > self.max_entries
            ):
                _, evicted = self._entries.popitem(last=False)
                self._size -= evicted.size

    def clear(self) -> None:
        """Forget every kept page."""
        with self._lock:
            self._entries.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def _shareable(headers: list[tuple[str, str]]) -> bool:
    """Give whether a response may be kept for others: no cookie set, nothing private."""
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            return False
        if lower == "cache-control" and ("private" in value or "no-store" in value):
            return False
    return True
