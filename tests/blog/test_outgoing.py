"""The outgoing-fetch guard against real HTTP servers on loopback; refusals by address checks.

No test sends traffic past loopback: every refused address is refused before any
connection is made (the guard checks addresses, then connects to the one it checked).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pyproject.blog import outgoing
from pyproject.blog.outgoing import Fetcher, FetchFailed, Refused, TooLarge, TooManyRedirects


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /ok, /big, /slow, /redirect/N, /to?url, /echo-host, /post."""

    seen: list[dict[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.seen.append({"path": self.path, **dict(self.headers)})
        if self.path == "/ok":
            self._send(200, "héllo".encode(), Content_Type="text/plain; charset=utf-8")
        elif self.path == "/big":
            self._send(200, b"x" * 2_000_000)
        elif self.path == "/big-unannounced":
            self.send_response(200)
            self.end_headers()  # no Content-Length: read until closed
            for _ in range(40):
                self.wfile.write(b"y" * 65536)
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, b"late")
        elif self.path.startswith("/redirect/"):
            left = int(self.path.rsplit("/", 1)[1])
            if left == 0:
                self._send(200, b"arrived")
            else:
                self._send(302, Location=f"/redirect/{left - 1}")
        elif self.path.startswith("/to?"):
            self._send(301, Location=self.path[4:])
        elif self.path == "/gone":
            self._send(410, b"gone")
        else:
            self._send(404, b"no")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Handler.seen.append({"path": self.path, "body": body.decode(), **dict(self.headers)})
        if self.path == "/post-303":
            self._send(303, Location="/ok")
        else:
            self._send(202, b"accepted")


class QuietServer(ThreadingHTTPServer):
    """A loopback server whose clients may hang up (timeouts, refused certificates)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOCAL = Fetcher(allow_loopback=True, timeout=1.0)


def test_get_gives_status_headers_and_text(server: str) -> None:
    answer = LOCAL.get(server + "/ok")
    assert (answer.status, answer.text, answer.content_type) == (200, "héllo", "text/plain")
    assert Handler.seen[-1]["User-Agent"].startswith("PyProject/")


def test_other_statuses_are_answers_not_errors(server: str) -> None:
    assert LOCAL.get(server + "/gone").status == 410
    assert LOCAL.get(server + "/missing").status == 404


def test_read_timeout_gives_up(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed):
        Fetcher(allow_loopback=True, timeout=0.3).get(server + "/slow")
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_a_failure_to_retry() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed):
        LOCAL.get(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_size_cap_stops_reading(server: str, path: str) -> None:
    with pytest.raises(TooLarge):
        LOCAL.get(server + path)


def test_size_cap_is_per_call(server: str) -> None:
    with pytest.raises(TooLarge):
        LOCAL.get(server + "/ok", max_bytes=3)
    assert len(LOCAL.get(server + "/big", max_bytes=3_000_000).body) == 2_000_000


def test_five_redirects_are_followed(server: str) -> None:
    answer = LOCAL.get(server + "/redirect/5")
    assert (answer.status, answer.body, len(answer.redirects)) == (200, b"arrived", 5)
    assert answer.url == server + "/redirect/0"


def test_a_sixth_redirect_is_refused(server: str) -> None:
    with pytest.raises(TooManyRedirects):
        LOCAL.get(server + "/redirect/6")


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.0.1]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
    ],
)
def test_redirect_to_a_forbidden_place_is_refused(server: str, location: str) -> None:
    with pytest.raises(Refused):
        LOCAL.get(f"{server}/to?{location}")


def test_redirect_to_loopback_is_refused_without_the_test_setting(server: str) -> None:
    port = server.rsplit(":", 1)[1]

    def public_name(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "blog.example" else ["10.1.2.3"]

    # The first hop may reach loopback only through the test setting; without it even the
    # first URL is refused before connecting.
    with pytest.raises(Refused):
        Fetcher(resolver=public_name).get(f"http://blog.example:{port}/ok")


def test_303_after_post_becomes_a_get(server: str) -> None:
    answer = LOCAL.post(server + "/post-303", data={"a": "1"})
    assert answer.status == 200 and answer.text == "héllo"
    assert [seen["path"] for seen in Handler.seen] == ["/post-303", "/ok"]


def test_post_sends_a_form(server: str) -> None:
    answer = LOCAL.post(server + "/post", data={"source": "https://a.example/1", "target": "x y"})
    assert answer.status == 202
    assert Handler.seen[-1]["body"] == "source=https%3A%2F%2Fa.example%2F1&target=x+y"
    assert Handler.seen[-1]["Content-Type"] == "application/x-www-form-urlencoded"


def test_name_is_resolved_once_and_the_checked_address_is_used(server: str) -> None:
    """DNS rebinding: a second lookup would give another address; there is none."""
    port = server.rsplit(":", 1)[1]
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    answer = Fetcher(allow_loopback=True, resolver=rebinding).get(f"http://blog.example:{port}/ok")
    assert answer.status == 200 and calls == ["blog.example"]
    assert Handler.seen[-1]["Host"] == f"blog.example:{port}"


def test_a_name_with_any_private_address_is_refused() -> None:
    def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    with pytest.raises(Refused, match="private"):
        Fetcher(resolver=mixed).resolve("https://mixed.example/")


def test_localhost_by_name_is_refused() -> None:
    with pytest.raises(Refused, match="loopback"):
        Fetcher().resolve("http://localhost/")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,hi",
        "//example.com/",
        "http:///nohost",
        "http://user:pass@example.com/",
        "http://exa mple.com/",
        "http://example.com/\r\nX: y",
        "http://[::1/",
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    with pytest.raises(Refused):
        Fetcher().resolve(url)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "scoped"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", ""),
        ("0.0.0.0", "unspecified"),  # nosec B104 (an address refused)
        ("::", "unspecified"),
        ("100.64.0.1", "not public"),
        ("192.0.2.1", ""),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),
        ("2002:c0a8:101::1", "private"),
    ],
)
def test_each_refused_address_class(address: str, kind: str) -> None:
    problem = outgoing.address_problem(address)
    assert problem is not None and kind in problem


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert outgoing.address_problem(address) is None


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "169.254.169.254", "fe80::1", "::ffff:192.168.0.1", "0.0.0.0", "224.0.0.1"],  # nosec B104
)
def test_the_loopback_setting_allows_loopback_only(address: str) -> None:
    assert outgoing.address_problem("127.0.0.1", allow_loopback=True) is None
    assert outgoing.address_problem("::1", allow_loopback=True) is None
    assert outgoing.address_problem(address, allow_loopback=True) is not None


@pytest.mark.parametrize(
    "url",
    ["http://2130706433/", "http://0x7f.0.0.1/", "http://017700000001/", "http://127.1/"],
)
def test_odd_spellings_of_loopback_are_refused(url: str) -> None:
    with pytest.raises((Refused, FetchFailed)):
        Fetcher().resolve(url)


def test_for_app_reads_the_settings() -> None:
    class Site:
        config = {
            "BASE_URL": "https://blog.example",
            "OUTGOING_ALLOW_LOOPBACK": True,
            "OUTGOING_TIMEOUT": 3,
            "OUTGOING_MAX_BYTES": 500,
        }

    fetcher = outgoing.for_app(Site())
    assert (fetcher.allow_loopback, fetcher.timeout, fetcher.max_bytes) == (True, 3.0, 500)
    assert "https://blog.example" in fetcher.user_agent


# --- HTTPS: the checked address is connected to, the certificate checked against the name ---


def _certificate(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """Make a CA and a certificate for `name` it signs; give (ca, cert, key) files."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """An HTTPS server on loopback with a certificate for blog.example; gives (port, CA)."""
    ca, cert, key = _certificate(tmp_path, "blog.example")
    Handler.seen = []
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.server_address[1], str(ca)
    httpd.shutdown()
    httpd.server_close()


def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_https_checks_the_certificate_against_the_name(tls_server: tuple[int, str]) -> None:
    port, ca = tls_server
    fetcher = Fetcher(allow_loopback=True, timeout=2, resolver=to_loopback, ca_certs=ca)
    answer = fetcher.get(f"https://blog.example:{port}/ok")
    assert answer.status == 200 and answer.text == "héllo"
    assert Handler.seen[-1]["Host"] == f"blog.example:{port}"


def test_https_refuses_a_certificate_for_another_name(tls_server: tuple[int, str]) -> None:
    port, ca = tls_server
    fetcher = Fetcher(allow_loopback=True, timeout=2, resolver=to_loopback, ca_certs=ca)
    with pytest.raises(FetchFailed):
        fetcher.get(f"https://other.example:{port}/ok")


def test_https_refuses_an_untrusted_certificate(tls_server: tuple[int, str]) -> None:
    port, _ = tls_server
    with pytest.raises(FetchFailed):
        Fetcher(allow_loopback=True, timeout=2, resolver=to_loopback).get(
            f"https://blog.example:{port}/ok"
        )
