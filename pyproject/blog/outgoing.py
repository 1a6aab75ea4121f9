"""The one way the site fetches from other servers: every outgoing HTTP request goes here.

A URL given to the site by a stranger (a Webmention's source, a link in a post) must not
make it reach into the network it runs in (server-side request forgery). So a fetch:

- takes http and https URLs only, without user names or passwords in them;
- resolves the host name once, refuses the fetch if any of its addresses is private,
  loopback, link-local, multicast, reserved, unspecified or otherwise not global (IPv4
  and IPv6, IPv4-mapped and NAT64/6to4-embedded IPv4 included), then connects to that
  very address, sending the name in the Host header and in TLS SNI (and checking the
  certificate against the name): a DNS answer that changes between the check and the
  connection (DNS rebinding) is never used;
- has connect and read timeouts and a deadline for the whole answer, a size cap (1 MB
  unless the caller asks for another), and follows at most 5 redirects, each checked
  like the first URL;
- names the site in its User-Agent.

The test-only setting OUTGOING_ALLOW_LOOPBACK=1 lets loopback addresses (127.0.0.0/8,
::1) through, and nothing else, so tests and two local instances can talk.

Built on urllib3 (already pinned: boto3 needs it), which lets us open a connection pool
to a fixed IP address while naming the host for SNI and certificate checks
(`server_hostname`, `assert_hostname`), and gives timeouts and streaming reads without
any redirect or retry handling of its own (both are off here and done below).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from pyproject import __version__

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_TIMEOUT = 10.0
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class FetchError(Exception):
    """A fetch that gave no answer to use; the message says why (safe to log)."""


class Refused(FetchError):
    """The URL or an address it leads to is not one the site may fetch."""


class TooLarge(FetchError):
    """The answer is larger than the size cap."""


class TooManyRedirects(FetchError):
    """More redirects than allowed."""


class FetchFailed(FetchError):
    """The server could not be reached or did not answer in time (worth retrying)."""


@dataclass
class Fetched:
    """An answer: the final URL (after redirects), status, headers and body (capped)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        """The body decoded with the charset the server named (UTF-8 otherwise)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def header_values(self, name: str) -> list[str]:
        """Give every value of a repeated header (Link may come several times)."""
        getlist = getattr(self.headers, "getlist", None)
        if getlist is not None:
            return list(getlist(name))
        value = self.headers.get(name)
        return [value] if value is not None else []


# --- which addresses may be fetched ------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Give the IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def address_problem(address: str | IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Give why the site may not connect to this address, or None when it may."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner, allow_loopback=allow_loopback)
            return problem and f"{problem} (inside an IPv6 address)"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    for test, name in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "an address that is not public"),
    ):
        if test:
            return name
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Give the addresses a host name resolves to (each once, in the resolver's order)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchFailed(f"{host}: the name does not resolve ({error})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (one checked address) and what to ask for."""

    scheme: str
    host: str  # the name, for Host, SNI and the certificate
    port: int
    address: str  # the checked IP address the connection goes to
    path: str  # path and query

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


def check_url(url: str) -> tuple[str, str, int, str]:
    """Give (scheme, host, port, path) of a URL the site may ask for; raise Refused if not."""
    if not isinstance(url, str) or len(url) > 4000:
        raise Refused("not a URL the site fetches")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise Refused("the URL has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("not a well-formed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused(f"only http and https URLs are fetched, not {scheme or 'none'}")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("URLs with a user name or password are not fetched")
    host = parts.hostname.rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise Refused("the host name is not valid") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


# --- the fetcher --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetcher:
    """Fetches by the rules above; one per use, from `for_app(app)` or built in tests."""

    allow_loopback: bool = False
    timeout: float = DEFAULT_TIMEOUT  # to connect, and between two reads
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    user_agent: str = f"PyProject/{__version__}"
    resolver: Resolver = system_resolver
    ca_certs: str | None = None  # a CA bundle to trust instead of the system's (tests)

    def resolve(self, url: str) -> Target:
        """Check the URL and its host's addresses once; give where to connect."""
        scheme, host, port, path = check_url(url)
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        addresses = [str(literal)] if literal is not None else self.resolver(host, port)
        if not addresses:
            raise FetchFailed(f"{host}: the name has no address")
        for address in addresses:
            # Every address is checked: a name answering with one public and one private
            # address must not get the private one from the next lookup (or from us).
            problem = address_problem(address, allow_loopback=self.allow_loopback)
            if problem:
                raise Refused(f"{host} leads to {problem}")
        return Target(scheme, host.strip("[]"), port, addresses[0], path)

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, max_bytes: int | None = None
    ) -> Fetched:
        """GET a URL (following checked redirects); give the answer, whatever its status."""
        return self.request("GET", url, headers=headers, max_bytes=max_bytes)

    def post(
        self,
        url: str,
        *,
        data: Mapping[str, str] | bytes,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        """POST a form (a dict, sent urlencoded) or bytes; give the answer."""
        sent = dict(headers or {})
        if not isinstance(data, bytes):
            data = urlencode(data).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return self.request("POST", url, body=data, headers=sent, max_bytes=max_bytes)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Fetched:
        cap = self.max_bytes if max_bytes is None else max_bytes
        seen: list[str] = []
        while True:
            answer = self._once(method, url, body, headers or {}, cap)
            location = answer.headers.get("location")
            if answer.status not in REDIRECTS or not location:
                answer.redirects = seen
                return answer
            if len(seen) >= self.max_redirects:
                raise TooManyRedirects(f"more than {self.max_redirects} redirects")
            seen.append(url)
            url = urljoin(url, location.strip())
            if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                method, body = "GET", None

    def _once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], cap: int
    ) -> Fetched:
        target = self.resolve(url)
        sent = {
            "User-Agent": self.user_agent,
            "Accept-Encoding": "gzip, deflate",
            **{k: v for k, v in headers.items() if k.lower() != "host"},
            "Host": target.host_header,
        }
        timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        options: dict[str, Any] = {"timeout": timeout, "retries": False, "maxsize": 1}
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=self.ca_certs,
                **options,
            )
        else:
            pool = urllib3.HTTPConnectionPool(target.address, target.port, **options)
        deadline = time.monotonic() + 3 * self.timeout
        try:
            response = pool.urlopen(
                method,
                target.path,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                data = self._read(response, cap, deadline)
            finally:
                response.release_conn()
            return Fetched(url, response.status, response.headers, data)
        except (Urllib3Error, OSError) as error:
            raise FetchFailed(f"{target.host}: {type(error).__name__}: {error}") from None
        finally:
            pool.close()

    @staticmethod
    def _read(response: Any, cap: int, deadline: float) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise TooLarge(f"the answer is {length} bytes, more than {cap}")
        chunks, total = [], 0
        for chunk in response.stream(CHUNK, decode_content=True):
            total += len(chunk)
            if total > cap:
                raise TooLarge(f"the answer is more than {cap} bytes")
            if time.monotonic() > deadline:
                raise FetchFailed("the answer took too long")
            chunks.append(chunk)
        return b"".join(chunks)


def for_app(app: Any) -> Fetcher:
    """Give the fetcher the app's settings ask for (OUTGOING_*), naming the site."""
    config = app.config
    site = urlsplit(str(config.get("BASE_URL") or "")).hostname or "localhost"
    return Fetcher(
        allow_loopback=bool(config.get("OUTGOING_ALLOW_LOOPBACK")),
        timeout=float(config.get("OUTGOING_TIMEOUT") or DEFAULT_TIMEOUT),
        max_bytes=int(config.get("OUTGOING_MAX_BYTES") or DEFAULT_MAX_BYTES),
        user_agent=f"PyProject/{__version__} (+{config.get('BASE_URL') or site})",
    )
