"""Behind a reverse proxy: the client's address, scheme and host, from proxies we trust only.

A reverse proxy connects to us itself, so every request's peer address is the proxy's.
The proxy says who its client was in `X-Forwarded-For` (a list each proxy appends its own
peer to), and what the client asked for in `X-Forwarded-Proto` and `X-Forwarded-Host`.
Anyone can send those headers, so they mean something only when the peer is a proxy the
operator named (TRUSTED_PROXIES): then the client is the rightmost address of the list
that is not itself a trusted proxy (what a client wrote further left is its own claim and
is never believed). From any other peer the headers are ignored.

`ProxyHeaders` is WSGI middleware outside everything else, so that every part of the app
(Host checks, the page cache, static files, sessions' Secure flag, throttles) reads the
one answer from the environ: REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST. The peer's own
address stays in the environ under "pyproject.peer_addr".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PEER_KEY = "pyproject.peer_addr"
_MAX_HOPS = 20  # a longer X-Forwarded-For is read only this far from the right


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """Give the networks of "10.0.0.1, 10.1.0.0/16, ::1" (ValueError naming a bad entry)."""
    entries = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """Give the address of one X-Forwarded-For entry (IPv4, IPv6, [IPv6], with a port), or None."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text, closed, _port = text[1:].partition("]")
        if not closed:
            return None
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def is_trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    return any(address.version == network.version and address in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """Give the client's address for a request from `peer` carrying `forwarded_for`.

    Walks the list from the right while each hop is a trusted proxy; the first one that
    is not is the client. An entry that is not an address stops the walk: the last hop
    we could believe is given instead.
    """
    believed = peer
    if not forwarded_for or not is_trusted(parse_address(peer), trusted):
        return peer
    hops = forwarded_for.split(",")[-_MAX_HOPS:]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return believed
        believed = str(address)
        if not is_trusted(address, trusted):
            return believed
    return believed  # every hop a proxy of ours: the leftmost is as far as anyone knows


def _last(value: str | None) -> str:
    """Give the rightmost entry of a comma-separated header (what the nearest proxy set)."""
    return value.rsplit(",", 1)[-1].strip() if value else ""


class ProxyHeaders:
    """Take the client's address, scheme and host from trusted proxies' headers."""

    def __init__(self, app: Any, trusted: str | Iterable[str]) -> None:
        self.app = app
        self.trusted = parse_networks(trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "") or ""
        environ[PEER_KEY] = peer
        if self.trusted and is_trusted(parse_address(peer), self.trusted):
            environ["REMOTE_ADDR"] = client_address(
                peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted
            )
            scheme = _last(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
            if scheme in ("http", "https"):
                environ["wsgi.url_scheme"] = scheme
            host = _last(environ.get("HTTP_X_FORWARDED_HOST"))
            if host:
                environ["HTTP_HOST"] = host  # still checked against ALLOWED_HOSTS downstream
        return self.app(environ, start_response)
