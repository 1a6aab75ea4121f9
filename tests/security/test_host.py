"""The Host header: unknown, malformed, empty or doubled hosts get 400, and every absolute URL
the site writes comes from BASE_URL, even when the request named one of its aliases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
from blog.conftest import signup_admin, slug_of, write_post

from pyproject.blog.db import get_database
from pyproject.lib import App
from tests.conftest import build_app

from .checks import parse_html
from .live import Live, as_bytes

BAD_HOSTS = {
    "unknown": "evil.example",
    "unknown, with our port": "evil.example:80",
    "a look-alike": "localhost.evil.example",
    "userinfo": "a@b",
    "userinfo before our name": "evil.example@localhost",
    "a path": "a:80/x",
    "our name with a path": "localhost/x",
    "empty": "",
    "blank": "   ",
    "only a port": ":80",
    "doubled, as a server joins them": "localhost,evil.example",
    "doubled, ours second": "evil.example, localhost",
    "a space inside": "local host",
    "a port that is not a number": "localhost:abc",
    "a port too long": "localhost:1234567",
    "a non-ASCII digit in the port": "localhost:\u00b2",
    "a Cyrillic o": "l\u043ecalhost",
    "a NUL": "localhost\x00",
    "an unclosed bracket": "[::1",
    "not an IPv6 address": "[::g]",
    "a scheme": "http://localhost",
    "300 characters": "a" * 300,
}
# Absolute URLs that are names, not links to this site (namespaces, vocabularies).
NOT_OURS = re.compile(r"^https?://(www\.w3\.org/|purl\.org/|www\.sitemaps\.org/|schema\.org)")
ABSOLUTE_URL = re.compile(r"""https?://[^\s"'<>\\]+""")


@pytest.fixture
def client(world_app: App):
    return world_app.test_client()


@pytest.fixture(scope="module")
def aliased(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, str]]:
    """A blog at https://blog.example that also answers to alias.example."""
    app = build_app(
        tmp_path_factory.mktemp("host"),
        BASE_URL="https://blog.example",
        ALLOWED_HOSTS="blog.example,alias.example",
    )
    admin = app.test_client(base_url="https://blog.example")
    signup_admin(admin)
    slug = slug_of(write_post(admin, title="Where am I", tags="place", body="Here."))
    yield app, slug
    get_database(app).dispose()


@pytest.mark.parametrize("case", BAD_HOSTS)
def test_a_bad_host_is_refused(client, case: str) -> None:
    host = BAD_HOSTS[case]
    for path in ("/", "/login", "/static/css/site.css", "/api/posts"):
        response = client.get(path, headers={"Host": host})
        if path.startswith("/static/"):
            continue  # static files do not depend on the host (nothing in them names it)
        assert response.status_code == 400, f"{path}: {response.status_code}"
        if host.strip() and host not in "http://localhost/":  # our own address may show
            assert host.encode() not in response.data


@pytest.mark.parametrize(("protocol", "status"), [("HTTP/1.1", 400), ("HTTP/1.0", 200)])
def test_without_a_host_header(client, protocol: str, status: int) -> None:
    """HTTP/1.1 must name the host; HTTP/1.0 has no Host, and the server's name stands in."""
    environ = client.build_environ("GET", "/", headers={"Host": None})
    environ["SERVER_PROTOCOL"] = protocol
    assert client.run(environ).status_code == status


def absolute_urls(text: str) -> list[str]:
    return [url for url in ABSOLUTE_URL.findall(text) if not NOT_OURS.match(url)]


def site_urls(content_type: str, body: bytes) -> list[str]:
    """Give the absolute URLs the site itself writes (not those inside posts' content)."""
    if content_type.startswith("text/html"):
        root = parse_html(body)
        urls = [link.get("href") for link in root.iter("link") if link.get("rel") == "canonical"]
        urls += [m.get("content") for m in root.iter("meta") if m.get("property") == "og:url"]
        for script in root.iter("script"):
            if script.get("type") == "application/ld+json":
                urls += re.findall(r'"(https?://[^"]+)"', script.text or "")
        return [url for url in urls if not NOT_OURS.match(url)]
    if content_type.startswith("application/json"):
        found = re.findall(r'"(?:url|next|previous)":"(https?://[^"]+)"', body.decode())
        return found
    if "xml" in content_type:
        root = ElementTree.fromstring(body)
        urls = []
        for node in root.iter():
            tag = node.tag.rsplit("}", 1)[-1]
            if tag in ("link", "id", "uri", "loc") and (node.text or "").startswith("http"):
                urls.append(node.text.strip())
            urls += [v for k, v in node.attrib.items() if k in ("href", "scheme")]
        return [url for url in urls if url.startswith("http") and not NOT_OURS.match(url)]
    return absolute_urls(body.decode())


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/posts/{slug}",
        "/tags/place",
        "/authors/admin",
        "/feed.atom",
        "/feed.rss",
        "/tags/place/feed.atom",
        "/authors/admin/feed.atom",
        "/sitemap.xml",
        "/robots.txt",
        "/api/posts",
        "/api/posts/{slug}",
        "/api/tags",
        "/api/search?q=where",
    ],
)
def test_absolute_urls_come_from_base_url_not_host(aliased, path: str) -> None:
    app, slug = aliased
    client = app.test_client(base_url="https://alias.example")
    response = client.get(path.format(slug=slug))
    assert response.status_code == 200
    text = response.data.decode()
    assert "alias.example" not in text
    urls = absolute_urls(text)
    assert urls, "the page names no absolute URL at all"
    assert set(site_urls(response.headers.get("Content-Type", ""), response.data)) <= set(urls)
    for url in urls:
        assert url.startswith("https://blog.example/") or url == "https://blog.example", url


# --- over a real gunicorn ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_HOSTS)
def test_gunicorn_refuses_a_bad_host(live: Live, live_log, case: str) -> None:
    host = BAD_HOSTS[case]
    response = live.raw(live.get_raw("/", host=host))
    assert response.status == 400, response.status
    if host.strip() and host not in live.base_url + "/":  # our own address may show
        assert as_bytes(host) not in response.body


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_head",
    [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: evil.example\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    ],
    ids=[
        "doubled, ours first",
        "doubled, ours second",
        "doubled, both ours",
        "empty",
        "absolute-form",
    ],
)
def test_gunicorn_refuses_doubled_and_empty_hosts(
    live: Live, live_log, request_head: bytes
) -> None:
    assert live.raw(request_head).status == 400


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", ["/", "/posts", "/feed.atom", "/feed.rss", "/sitemap.xml", "/robots.txt", "/api/posts"]
)
def test_gunicorn_writes_urls_from_base_url_for_an_alias(live: Live, live_log, path: str) -> None:
    response = live.raw(live.get_raw(path, host=live.alias))
    assert response.status == 200
    assert live.alias.encode() not in response.body
    urls = site_urls(response.header("content-type") or "", response.body)
    assert urls, "the response names no absolute URL of the site"
    for url in urls:
        assert url.startswith(live.base_url), url
