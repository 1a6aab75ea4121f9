"""Talking to the real gunicorn: a cookie-keeping client for forms, and byte-exact requests.

`Live` is the session's server (see conftest.live) with a World built on its database by
an in-process app on the same SQLite file: sessions live in the database, so a cookie the
in-process client was given signs in on gunicorn too.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.e2e.conftest import RawResponse, ServerHandle, _parse_head

from .world import World

TIMEOUT = 10.0


@dataclass
class LiveResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def header_list(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class LiveClient:
    """A client for the live server that keeps cookies like a browser (no redirects followed)."""

    server: ServerHandle
    cookies: dict[str, str] = field(default_factory=dict)
    host: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> LiveResponse:
        sent = {"Host": self.host or f"127.0.0.1:{self.server.port}"}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if data is not None:
            body = urlencode(data, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=TIMEOUT)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                connection.putheader(name, value)
            if body is not None or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body or b"")))
            connection.endheaders(body)
            response = connection.getresponse()
            answer = LiveResponse(response.status, response.getheaders(), response.read())
        finally:
            connection.close()
        for header in answer.header_list("Set-Cookie"):
            pair, *attributes = header.split(";")
            name, _, value = pair.strip().partition("=")
            if not value or any(a.strip().lower() == "max-age=0" for a in attributes):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return answer

    def get(self, path: str, **kwargs: Any) -> LiveResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> LiveResponse:
        return self.request("POST", path, **kwargs)


@dataclass
class Live:
    """The session's gunicorn, the World on its database, and where its temporary files go."""

    server: ServerHandle
    world: World
    tmpdir: Path
    alias: str

    @property
    def base_url(self) -> str:
        return self.server.url

    def client(self, who: str | None = None) -> LiveClient:
        """Give a live client carrying the session cookie of a World client (or none)."""
        cookies = {}
        if who is not None:
            cookies = dict(self.world.clients[who].cookies)
        return LiveClient(self.server, cookies)

    def raw(self, data: bytes, *, timeout: float = TIMEOUT) -> RawResponse:
        return self.server.raw(data, timeout=timeout)

    def get_raw(self, target: str | bytes, *, host: str | None = None, extra: str = "") -> bytes:
        """Give the bytes of a GET for exactly `target` (no normalising), closing after.

        Text is sent as latin-1 where it can be (so "\\xff" is the byte 0xFF), else UTF-8.
        """
        if host is None:
            host = f"127.0.0.1:{self.server.port}"
        head = f"Host: {host}\r\n{extra}Connection: close\r\n\r\n"
        return b"GET " + as_bytes(target) + b" HTTP/1.1\r\n" + as_bytes(head)


def as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def stream_request(
    port: int, head: bytes, chunks: list[bytes], *, timeout: float = TIMEOUT
) -> tuple[RawResponse | None, float, BaseException | None]:
    """Send a head, then body chunks from a thread, while reading the answer as it comes.

    Gives the response (None if the connection ended without one), the seconds from the
    end of the head to the end of the response's head, and the error sending met, if any:
    a server that answers early and closes stops the sending, which is the point.
    """
    errors: list[BaseException] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:

        def send_body() -> None:
            try:
                for chunk in chunks:
                    sock.sendall(chunk)
            except OSError as error:
                errors.append(error)

        sock.sendall(head)
        started = time.monotonic()
        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        received = _receive(sock, until_head=True)
        elapsed = time.monotonic() - started
        head_bytes, _, body = received.partition(b"\r\n\r\n")
        response = None
        if head_bytes:
            response = _parse_head(head_bytes, body, started)
            length = response.header("content-length")
            wanted = int(length) if length and length.isdigit() else 0
            response.body = body + _receive(sock, wanted=wanted - len(body))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout)
    return response, elapsed, errors[0] if errors else None


def _receive(sock: socket.socket, *, until_head: bool = False, wanted: int = 0) -> bytes:
    """Read until a response head is complete, or `wanted` bytes came, or the peer closed."""
    received = b""
    try:
        while (b"\r\n\r\n" not in received) if until_head else (len(received) < wanted):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:  # the server closed with our body unread: keep what came
        pass
    return received
