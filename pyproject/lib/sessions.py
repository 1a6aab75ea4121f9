"""Server-side sessions: a random id in an HttpOnly cookie, the data behind a store.

The cookie holds only the id; the store keeps the data under a hash of it, so a leaked
store does not hand out live session ids. Logout really ends a session (the row goes),
and several workers or hosts share sessions through whatever store the app plugs in.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol

from pyproject.lib.response import Response

_SID_LENGTH = 43  # secrets.token_urlsafe(32)


class SessionStore(Protocol):
    """Where session data lives, keyed by the hash of the session id."""

    def load(self, key: str) -> dict[str, Any] | None:
        """Give the data stored under `key`, or None if absent or expired."""

    def save(self, key: str, data: dict[str, Any], expires_at: float) -> None:
        """Store `data` under `key` until `expires_at` (a Unix time)."""

    def delete(self, key: str) -> None:
        """Forget `key`."""


class MemoryStore:
    """A process-local store, for the framework's own tests and single-process demos."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._data.get(key)
        if item is None or item[1] < time.time():
            return None
        return dict(item[0])

    def save(self, key: str, data: dict[str, Any], expires_at: float) -> None:
        with self._lock:
            self._data[key] = (dict(data), expires_at)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def keys(self) -> list[str]:
        """Give the keys held, expired ones included."""
        with self._lock:
            return list(self._data)

    def expires_at(self, key: str) -> float | None:
        """Give when the data under `key` expires (a Unix time), or None if absent."""
        with self._lock:
            item = self._data.get(key)
        return None if item is None else item[1]


def session_key(sid: str) -> str:
    """Give the store key for a session id (its SHA-256, hex)."""
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def _valid_sid(value: str | None) -> bool:
    return (
        value is not None
        and len(value) == _SID_LENGTH
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )


def _cookie_count(header: str, name: str) -> int:
    return sum(1 for pair in header.split(";") if pair.partition("=")[0].strip() == name)


class Session(MutableMapping[str, Any]):
    """The data of one visitor's session, loaded from the store on first use."""

    def __init__(self, store: SessionStore, sid: str | None) -> None:
        self._store = store
        self._incoming_sid = sid if _valid_sid(sid) else None
        self._data: dict[str, Any] | None = None
        self.sid: str | None = None
        self.accessed = False
        self.modified = False
        self._stale_sids: list[str] = []

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self.accessed = True
            data = None
            if self._incoming_sid is not None:
                data = self._store.load(session_key(self._incoming_sid))
            if data is None:
                self._data = {}
            else:
                self._data = data
                self.sid = self._incoming_sid
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._load()[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._load()[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    @property
    def incoming_sid(self) -> str | None:
        """Give the well-formed id the request's cookie carried, live or not (else None)."""
        return self._incoming_sid

    def snapshot(self) -> dict[str, Any]:
        """Give a copy of the data, as it should be written to the store."""
        return dict(self._load())

    def pop_stale_sids(self) -> list[str]:
        """Give the ids this session was rotated away from, and forget them."""
        stale, self._stale_sids = self._stale_sids, []
        return stale

    def rotate(self) -> None:
        """Issue a new id for the same data (at sign-in) and drop the old one from the store."""
        self._load()
        if self.sid is not None:
            self._stale_sids.append(self.sid)
        self.sid = None
        self.modified = True

    def clear(self) -> None:
        """Forget everything and the id too (at sign-out), so the old cookie is worthless."""
        self._load()
        self._data = {}
        self.rotate()


class SessionInterface:
    """Opens a session for a request and writes it back to the store and the cookie."""

    def __init__(
        self,
        store: SessionStore,
        *,
        cookie_name: str = "session",
        max_age: int = 14 * 24 * 3600,
        refresh_after: int = 24 * 3600,
        secure: bool | None = None,
        samesite: str = "Lax",
    ) -> None:
        self.store = store
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.refresh_after = refresh_after
        self.secure = secure
        self.samesite = samesite

    def _is_secure(self, environ: dict[str, Any]) -> bool:
        if self.secure is not None:
            return self.secure
        return environ.get("wsgi.url_scheme") == "https"

    def cookie_for(self, environ: dict[str, Any]) -> str:
        """Give the cookie name: `__Host-` prefixed when served over HTTPS."""
        return f"__Host-{self.cookie_name}" if self._is_secure(environ) else self.cookie_name

    def carries_session(self, environ: dict[str, Any]) -> bool:
        """Give whether a request may carry the session cookie: the one test of "anonymous".

        Deliberately coarse, and cheap enough to run before a Request is built: any cookie
        text holding the name (either form) counts. A false "yes" only costs a fresh page.
        """
        cookies = environ.get("HTTP_COOKIE")
        return bool(cookies) and self.cookie_name in cookies

    def open(self, environ: dict[str, Any], cookies: dict[str, str]) -> Session:
        """Give the (lazy) session for a request.

        A request carrying the cookie twice is anonymous: the other one was planted (from
        a sibling domain or a narrower path), and we cannot tell which one we issued.
        """
        name = self.cookie_for(environ)
        sid = cookies.get(name)
        if sid is not None and _cookie_count(environ.get("HTTP_COOKIE", ""), name) > 1:
            sid = None
        return Session(self.store, sid)

    def save(self, environ: dict[str, Any], session: Session, response: Response) -> None:
        """Write the session back if it changed or needs refreshing; set or clear the cookie."""
        if not session.accessed:
            return
        response.vary_cookie = True
        if session.incoming_sid is not None or session.modified:
            # The page may show this visitor's data: no shared cache may keep it.
            cache = response.headers.get("Cache-Control") or ""
            if "private" not in cache and "no-store" not in cache:
                response.headers.set("Cache-Control", "private, no-cache")
        for stale in session.pop_stale_sids():
            self.store.delete(session_key(stale))
        secure = self._is_secure(environ)
        name = self.cookie_for(environ)
        data = session.snapshot()
        now = time.time()
        if not data:
            if session.incoming_sid is not None:
                if session.sid is not None:
                    self.store.delete(session_key(session.sid))
                response.delete_cookie(name, secure=secure, samesite=self.samesite)
            return
        refreshed_at = data.get("_refreshed", 0)
        if (
            not session.modified
            and session.sid is not None
            and now - refreshed_at < self.refresh_after
        ):
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
        data["_refreshed"] = int(now)
        self.store.save(session_key(session.sid), data, now + self.max_age)
        response.set_cookie(
            name,
            session.sid,
            max_age=self.max_age,
            path="/",
            secure=secure,
            httponly=True,
            samesite=self.samesite,
        )
