"""Behind a reverse proxy: who the client is, believed only from proxies the operator named."""

from __future__ import annotations

from typing import Any

import pytest

from pyproject.lib.proxies import (
    PEER_KEY,
    ProxyHeaders,
    client_address,
    parse_address,
    parse_networks,
)

PROXIES = parse_networks("10.0.0.5, 10.1.0.0/16, ::1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # No proxy in between: the peer is the client, whatever it claims.
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("203.0.113.7", "10.0.0.5", "203.0.113.7"),
        # One trusted proxy: the address it saw.
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", " 198.51.100.1 ", "198.51.100.1"),
        # A client's own X-Forwarded-For through the proxy: its claim stays to the left.
        ("10.0.0.5", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "10.0.0.5, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "127.0.0.1, 198.51.100.1", "198.51.100.1"),
        # A chain of trusted proxies: the first hop from the right that is not one.
        ("10.0.0.5", "198.51.100.1, 10.1.2.3", "198.51.100.1"),
        ("10.1.9.9", "1.2.3.4, 198.51.100.1, 10.1.2.3, 10.0.0.5", "198.51.100.1"),
        # Every hop a proxy of ours: the leftmost is as far as anyone knows.
        ("10.0.0.5", "10.1.0.1, 10.1.0.2", "10.1.0.1"),
        # IPv6 clients and proxies, bracketed, with ports, IPv4-mapped.
        ("::1", "2001:db8::7", "2001:db8::7"),
        ("::1", "[2001:db8::7]:5000", "2001:db8::7"),
        ("10.0.0.5", "198.51.100.1:4711", "198.51.100.1"),
        ("::ffff:10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "::ffff:198.51.100.1", "198.51.100.1"),
        ("fd00::1", "2001:db8::8, fd00::2", "2001:db8::8"),
        # Garbage stops the walk at the last hop we could believe.
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4, unknown, 10.1.2.3", "10.1.2.3"),
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", ",,,", "10.0.0.5"),
        ("10.0.0.5", "198.51.100.1\x00", "10.0.0.5"),
        ("10.0.0.5", "999.1.1.1", "10.0.0.5"),
    ],
)
def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert client_address(peer, forwarded_for, PROXIES) == client


def test_a_long_forwarded_list_is_read_only_so_far_from_the_right() -> None:
    hops = ", ".join(["10.1.0.1"] * 10_000)
    assert client_address("10.0.0.5", hops, PROXIES) == "10.1.0.1"


def test_with_no_trusted_proxies_nothing_is_believed() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("example.com", None),
        ("", None),
        ("[2001:db8::1", None),
    ],
)
def test_forwarded_entries_parse_as_addresses_or_not_at_all(text: str, expected: str | None):
    address = parse_address(text)
    assert (str(address) if address else None) == expected


def test_a_setting_that_is_not_an_address_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address"):
        parse_networks("10.0.0.1, proxy.example")
    assert parse_networks(" , ") == ()
    assert [str(n) for n in parse_networks(["10.0.0.1", "10.2.0.0/16"])] == [
        "10.0.0.1/32",
        "10.2.0.0/16",
    ]


def seen_by_app(trusted: str, **environ: Any) -> dict[str, Any]:
    """Give the environ the app inside ProxyHeaders sees for a request with `environ`."""
    seen: dict[str, Any] = {}

    def app(inner: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(inner)
        start_response("200 OK", [])
        return [b""]

    base = {"REMOTE_ADDR": "10.0.0.5", "wsgi.url_scheme": "http", "HTTP_HOST": "proxy.internal"}
    ProxyHeaders(app, trusted)({**base, **environ}, lambda status, headers: None)
    return seen


def test_from_a_trusted_proxy_the_forwarded_address_scheme_and_host_are_used() -> None:
    seen = seen_by_app(
        "10.0.0.5",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="blog.example.org",
    )
    assert seen["REMOTE_ADDR"] == "198.51.100.1"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "blog.example.org"
    assert seen[PEER_KEY] == "10.0.0.5"


def test_from_anyone_else_the_forwarded_headers_change_nothing() -> None:
    seen = seen_by_app(
        "10.0.0.5",
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="evil.example",
    )
    assert seen["REMOTE_ADDR"] == "203.0.113.9"
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["HTTP_HOST"] == "proxy.internal"


@pytest.mark.parametrize("proto", ["javascript", "HTTPS, ftp", "", "http\r\n"])
def test_a_forwarded_scheme_other_than_http_or_https_is_ignored(proto: str) -> None:
    seen = seen_by_app("10.0.0.5", HTTP_X_FORWARDED_PROTO=proto)
    assert seen["wsgi.url_scheme"] == "http"


def test_the_nearest_proxys_values_win_in_a_list() -> None:
    seen = seen_by_app(
        "10.0.0.5",
        HTTP_X_FORWARDED_PROTO="http, https",
        HTTP_X_FORWARDED_HOST="spoofed.example, blog.example.org",
    )
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "blog.example.org"
