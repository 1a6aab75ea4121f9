"""Finished anonymous pages, answered by the app from a per-worker cache.

A view says its response is the same for every anonymous reader by setting
`response.shared` (a `Shared`: the validators it was built at, and what to run on every
hit). The `App` hands what it finally sent (status line, every header, the body) to its
`PageCache`, and asks the cache first on the next anonymous GET or HEAD, before a
Request is even built: the cache answers a 304 when the reader's copy is current, else
the kept page. Every answer is checked against the validators of the moment
(`etag_for`), which the site computes from its shared storage, so a change made by any
worker or host retires every kept page at once.

What is never kept or answered here: anything but GET and HEAD, any request that may
carry the session cookie (the App asks its session interface), a Host the app would
refuse, an unparsable query string, a page that set a cookie or said `private` or
`no-store`. Those all go to the app.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyproject.lib.http import is_not_modified
from pyproject.lib.request import Request, host_problem
from pyproject.lib.response import Shared

_NOT_MODIFIED = "304 Not Modified"
_NO_CONTENT_HEADERS = ("content-type", "content-length")

# Validators of the moment for a page kind: the quoted ETag and Last-Modified.
EtagFor = Callable[[int | None], tuple[str, datetime]]


@dataclass(slots=True)
class Entry:
    etag: str
    refresh: int | None
    page_headers: list[tuple[str, str]] | None = None  # of the 200, as sent
    body: bytes | None = None
    not_modified_headers: list[tuple[str, str]] | None = None  # of the 304, as sent
    on_hit: Callable[[dict[str, Any]], None] | None = None
    endpoint: str = ""  # the view that made the page, for whoever counts requests
    size: int = 0


@dataclass(slots=True)
class Answer:
    """What the cache sends for a request: status line, headers, body, logged length."""

    status: str
    headers: list[tuple[str, str]]
    body: list[bytes]
    length: str
    endpoint: str = ""


def _size(headers: list[tuple[str, str]] | None) -> int:
    return sum(len(name) + len(value) for name, value in headers) if headers else 0


class PageCache:
    """Keeps shared anonymous pages and answers them before the app builds a Request.

    `etag_for(refresh)` gives the current quoted ETag and Last-Modified for a page whose
    validators include a time bucket of `refresh` seconds (None for none).
    `parameters` names the query parameters that make a page distinct (the site's own
    choice; others, such as utm_source, share the entry). The Host is checked against
    `request_class.allowed_hosts`, as the Request would. The cache is bounded in bytes
    (bodies and headers) and in entries.
    """

    def __init__(
        self,
        *,
        etag_for: EtagFor,
        parameters: tuple[str, ...],
        request_class: type[Request] = Request,
        max_bytes: int = 8 * 1024 * 1024,
        max_entries: int = 10_000,
    ) -> None:
        self.etag_for = etag_for
        self.parameters = parameters
        self.request_class = request_class
        self.allowed_hosts = tuple(request_class.allowed_hosts)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

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

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """Give the kept answer to an anonymous GET or HEAD, or None for the app to answer."""
        method = environ.get("REQUEST_METHOD")
        if not self._entries or (method != "GET" and method != "HEAD"):
            return None
        key = self.key(environ)
        entry = self._entries.get(key) if key is not None else None
        if entry is None:
            return None
        host = environ.get("HTTP_HOST")
        if host is None or host_problem(host.strip().lower(), self.allowed_hosts):
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
                return Answer(
                    _NOT_MODIFIED, list(entry.not_modified_headers), [], "-", entry.endpoint
                )
            if entry.body is None or entry.page_headers is None:
                return None
            if entry.on_hit is not None:
                entry.on_hit(environ)
        except Exception:  # the database is away, say: the app answers, and logs it
            return None
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
        body = [entry.body] if method == "GET" else []
        length = str(len(entry.body))
        return Answer("200 OK", list(entry.page_headers), body, length, entry.endpoint)

    def keep(
        self,
        request: Request,
        shared: Shared,
        status: str,
        headers: list[tuple[str, str]],
        body: Iterable[bytes],
    ) -> Iterable[bytes]:
        """Keep what the app sent for a shared page, if it may be kept; give the body."""
        code = status[:3]
        if shared.etag is None or code not in ("200", "304") or not _shareable(headers):
            return body
        if request.method != "GET" and request.method != "HEAD":
            return body
        try:
            key = self.key(request.environ, request.args)
        except Exception:  # malformed: the app has said why; nothing to keep
            return body
        if key is None:
            return body
        endpoint = request.endpoint or ""
        if code == "304":
            self._store(key, shared, endpoint, not_modified_headers=list(headers))
            return body
        if request.method != "GET" or not isinstance(body, list):
            return body
        content = b"".join(body)
        self._store(
            key, shared, endpoint, page_headers=list(headers), body=content, on_hit=shared.on_hit
        )
        return [content]

    def _store(self, key: str, shared: Shared, endpoint: str, **parts: Any) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._size -= entry.size
            if entry is None or entry.etag != shared.etag:
                entry = Entry(str(shared.etag), shared.refresh)
            entry.endpoint = endpoint
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
