"""Webmention both ways: the endpoint, verification against a real source server on
loopback, likes/reposts/replies, removal, the flood, sending with endpoint discovery, and
microformats2 on our own pages read back with mf2py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mf2py
import pytest
from sqlalchemy import delete, func, select

from blog.conftest import (
    Cast,
    delete_post,
    edit_post,
    make_cast,
    set_post,
    slug_of,
    utc_ago,
    write_post,
)
from blog.test_mail import eventually
from pyproject.blog import jobs, webmention
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, JobRecord, Mention, Post, SentMention, utcnow
from pyproject.blog.outgoing import Fetched
from pyproject.lib import App
from tests.conftest import POSTGRES_URL, _postgres_reason, build_app, reset_postgres

BASE_URL = "http://localhost"


# --- a real web server on loopback: other people's pages and endpoints ---------------------


class Web:
    """Pages by path (status, headers, body) and the POSTs its endpoints received."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, dict[str, str], str]] = {}
        self.received: list[tuple[str, dict[str, list[str]]]] = []
        self.url = ""

    def page(self, path: str, body: str, status: int = 200, **headers: str) -> str:
        self.pages[path] = (status, {"Content-Type": "text/html; charset=utf-8", **headers}, body)
        return self.url + path


def _handler(web: Web) -> type[BaseHTTPRequestHandler]:
    from urllib.parse import parse_qs

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            status, headers, body = web.pages.get(self.path, (404, {}, "not here"))
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                for one in value.split("\n"):
                    self.send_header(name.replace("_", "-"), one)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            web.received.append((self.path, form))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def web() -> Iterator[Web]:
    site = Web()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    httpd.daemon_threads = True
    site.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield site
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[App]:
    app = build_app(
        tmp_path,
        BASE_URL=BASE_URL,
        OUTGOING_ALLOW_LOOPBACK=True,
        OUTGOING_TIMEOUT=2,
        JOB_RETRY_SECONDS=0.05,
    )
    yield app
    get_database(app).dispose()


@pytest.fixture
def cast(site: App) -> Cast:
    return make_cast(site)


@pytest.fixture
def target(cast: Cast) -> str:
    slug = slug_of(write_post(cast.author, title="Hello web", body="A post to answer.", tags="web"))
    return f"{BASE_URL}/posts/{slug}"


def run_jobs(app: App, *wanted: jobs.Job) -> list[Any]:
    """Run the waiting jobs of these kinds (and those they queue) as the worker would."""
    names = [registered.name for registered in wanted]
    results: list[Any] = []
    jobs._WORKER_APP.append(app)
    try:
        while True:
            with get_database(app).read() as db:
                rows = db.execute(
                    select(JobRecord.id, JobRecord.name, JobRecord.args)
                    .where(JobRecord.name.in_(names))
                    .order_by(JobRecord.enqueued_at)
                ).all()
            if not rows:
                return results
            for job_id, name, args in rows:
                with get_database(app).write() as db:
                    db.execute(delete(JobRecord).where(JobRecord.id == job_id))
                results.append(jobs.JOBS[name](*json.loads(args)))
    finally:
        jobs._WORKER_APP.remove(app)


def mention(client: Any, source: str, target: str) -> Any:
    return client.post("/webmention", data={"source": source, "target": target})


def mentions(app: App) -> list[Mention]:
    with get_database(app).read() as db:
        return list(db.scalars(select(Mention).order_by(Mention.id)))


def h_entry(target: str, *, kind: str = "", name: str = "Carol", text: str = "Nice post") -> str:
    link = (
        f'<a class="{kind}" href="{target}">this post</a>' if kind else f'<a href="{target}">x</a>'
    )
    return f"""<!doctype html><html><body>
<article class="h-entry">
  <a class="p-author h-card" href="https://carol.example/">{name}</a>
  <time class="dt-published" datetime="2026-12-01T10:00:00Z">1 Dec</time>
  <div class="e-content">{text} {link}</div>
</article></body></html>"""


# --- the endpoint -------------------------------------------------------------------------


def test_post_pages_advertise_the_endpoint(cast: Cast, target: str) -> None:
    page = cast.anonymous.get(target.removeprefix(BASE_URL))
    assert f'<{BASE_URL}/webmention>; rel="webmention"' in page.headers.getlist("Link")
    link = page.html.select_one('link[rel="webmention"]')
    assert link is not None and link["href"] == f"{BASE_URL}/webmention"
    assert cast.anonymous.get("/").html.select_one('link[rel="webmention"]') is not None
    # A copy the page cache kept answers with the header too.
    again = cast.anonymous.get(target.removeprefix(BASE_URL))
    assert f'<{BASE_URL}/webmention>; rel="webmention"' in again.headers.getlist("Link")


@pytest.mark.parametrize(
    ("source", "target_path"),
    [
        ("", "/posts/{slug}"),
        ("https://a.example/1", ""),
        ("ftp://a.example/1", "/posts/{slug}"),
        ("javascript:alert(1)", "/posts/{slug}"),
        ("https://a.example/1", "javascript:alert(1)"),
        ("https://a.example/" + "x" * 2100, "/posts/{slug}"),
        ("https://a.example/1", "https://elsewhere.example/posts/{slug}"),
        ("https://a.example/1", "/"),
        ("https://a.example/1", "/posts/no-such-post"),
        ("https://a.example/1", "/tags"),
        ("{target}", "/posts/{slug}"),
        ("{target}#frag", "/posts/{slug}"),
        ("https://a.example/1\r\nX: y", "/posts/{slug}"),
    ],
)
def test_bad_requests_answer_400(cast: Cast, target: str, source: str, target_path: str) -> None:
    slug = target.rsplit("/", 1)[1]
    wanted = target_path.format(slug=slug)
    if wanted.startswith("/"):
        wanted = BASE_URL + wanted
    answer = mention(cast.anonymous, source.format(target=target), wanted)
    assert answer.status_code == 400
    assert mentions(cast.app) == []


def test_a_draft_is_not_a_target(cast: Cast) -> None:
    slug = slug_of(write_post(cast.author, title="Secret", body="Draft", status="draft"))
    assert (
        mention(cast.anonymous, "https://a.example/1", f"{BASE_URL}/posts/{slug}").status_code
        == 400
    )


def test_a_good_request_is_accepted_without_csrf_and_queued_once(cast: Cast, target: str) -> None:
    for _ in range(20):
        answer = mention(cast.anonymous, "https://a.example/reply", target)
        assert answer.status_code == 202
    (row,) = mentions(cast.app)
    assert (row.state, row.queued) == ("pending", True)
    with get_database(cast.app).read() as db:
        waiting = db.scalar(
            select(func.count()).where(JobRecord.name == webmention.verify_mention.name)
        )
    assert waiting == 1


def test_a_flood_is_answered_fast_and_limited_per_source_host(cast: Cast, target: str) -> None:
    started = time.monotonic()
    answers = [
        mention(cast.anonymous, f"https://flood.example/{n}", target).status_code
        for n in range(1000)
    ]
    elapsed = time.monotonic() - started
    assert answers.count(202) == 30 and answers.count(429) == 970
    assert elapsed < 30, f"1,000 POSTs took {elapsed:.1f} s"
    refused = mention(cast.anonymous, "https://flood.example/late", target)
    assert int(refused.headers["Retry-After"]) > 0
    # Another host is not held up by the flood's host (the client's own limit is higher).
    assert mention(cast.anonymous, "https://calm.example/1", target).status_code == 202
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(Mention)) == 31


# --- verification --------------------------------------------------------------------------


def test_a_source_that_links_becomes_a_mention_shown_by_name(
    cast: Cast, target: str, web: Web
) -> None:
    source = web.page("/note", h_entry(target, name="Carol &lt;b&gt;C&lt;/b&gt;"))
    assert mention(cast.anonymous, source, target).status_code == 202
    assert run_jobs(cast.app, webmention.verify_mention) == ["mention"]
    (row,) = mentions(cast.app)
    assert (row.state, row.kind, row.author_name) == ("verified", "mention", "Carol <b>C</b>")
    assert row.author_url == "https://carol.example/"
    assert row.published_at is not None and row.published_at.day == 1
    page = cast.anonymous.get(target.removeprefix(BASE_URL))
    listed = page.html.select_one("#mentions a.mention")
    assert listed is not None and listed.text == "Carol <b>C</b>" and listed["href"] == source
    assert "nofollow" in listed["rel"]
    assert page.html.select("#mentions img") == []


@pytest.mark.parametrize(
    ("css", "kind", "label"),
    [("u-like-of", "like", "Liked by"), ("u-repost-of", "repost", "Reposted by")],
)
def test_likes_and_reposts_are_counted_and_listed(
    cast: Cast, target: str, web: Web, css: str, kind: str, label: str
) -> None:
    for n, name in enumerate(["Dan", "Eve"]):
        source = web.page(f"/{kind}/{n}", h_entry(target, kind=css, name=name))
        mention(cast.anonymous, source, target)
    assert run_jobs(cast.app, webmention.verify_mention) == [kind, kind]
    text = cast.anonymous.get(target.removeprefix(BASE_URL)).html.select_one("#mentions").text
    assert f"{label} 2:" in text and "Dan" in text and "Eve" in text


def test_a_reply_joins_the_moderation_queue(cast: Cast, target: str, web: Web) -> None:
    source = web.page("/reply", h_entry(target, kind="u-in-reply-to", text="I <i>disagree</i>"))
    mention(cast.anonymous, source, target)
    assert run_jobs(cast.app, webmention.verify_mention) == ["reply"]
    with get_database(cast.app).read() as db:
        (comment,) = db.scalars(select(Comment))
        assert (comment.state, comment.kind, comment.source_url) == ("held", "webmention", source)
        assert "I disagree" in comment.body_html and "<i>" not in comment.body_html
    # Held: readers see neither the reply nor a mention line for it.
    page = cast.anonymous.get(target.removeprefix(BASE_URL))
    assert "I disagree" not in page.text and page.html.select_one("#mentions") is None


def test_a_source_answering_410_later_removes_the_mention_and_reply(
    cast: Cast, target: str, web: Web
) -> None:
    source = web.page("/reply", h_entry(target, kind="u-in-reply-to"))
    mention(cast.anonymous, source, target)
    run_jobs(cast.app, webmention.verify_mention)
    web.page("/reply", "gone", status=410)
    assert mention(cast.anonymous, source, target).status_code == 202
    assert run_jobs(cast.app, webmention.verify_mention) == ["removed"]
    assert mentions(cast.app) == []
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(Comment)) == 0


def test_a_source_that_no_longer_links_removes_the_mention(
    cast: Cast, target: str, web: Web
) -> None:
    source = web.page("/note", h_entry(target))
    mention(cast.anonymous, source, target)
    run_jobs(cast.app, webmention.verify_mention)
    assert cast.anonymous.get(target.removeprefix(BASE_URL)).html.select_one("#mentions")
    web.page("/note", "<p>Edited: no link any more</p>")
    mention(cast.anonymous, source, target)
    assert run_jobs(cast.app, webmention.verify_mention) == ["removed"]
    assert cast.anonymous.get(target.removeprefix(BASE_URL)).html.select_one("#mentions") is None


@pytest.mark.parametrize(
    "body",
    [
        "<p>No link at all</p>",
        '<p><a href="http://localhost/posts/other">another post</a></p>',
        "<!-- http://localhost/posts/hello-web --><p>only in a comment</p>",
    ],
)
def test_a_source_that_does_not_link_is_dropped(
    cast: Cast, target: str, web: Web, body: str
) -> None:
    source = web.page("/spam", body)
    mention(cast.anonymous, source, target)
    assert run_jobs(cast.app, webmention.verify_mention) == ["removed"]
    assert mentions(cast.app) == []


@pytest.mark.parametrize(
    "source",
    ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/"],
)
def test_a_source_at_a_private_address_is_never_fetched(
    cast: Cast, target: str, source: str
) -> None:
    """SSRF: the endpoint takes any URL, the guard refuses it before connecting."""
    assert mention(cast.anonymous, source, target).status_code == 202
    assert run_jobs(cast.app, webmention.verify_mention) == ["removed"]


def test_the_real_worker_verifies(cast: Cast, target: str, web: Web) -> None:
    source = web.page("/note", h_entry(target, kind="u-like-of"))
    worker = jobs.Worker(cast.app, threads=2)
    worker.start()
    try:
        mention(cast.anonymous, source, target)
        assert eventually(lambda: [m.state for m in mentions(cast.app)] == ["verified"])
    finally:
        worker.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The site as `site` gives it, on SQLite, then on PostgreSQL (where reachable)."""
    database_url = None
    if request.param == "postgres":
        if _postgres_reason():
            pytest.skip(_postgres_reason())
        reset_postgres()
        database_url = POSTGRES_URL
    app = build_app(
        tmp_path, database_url, BASE_URL=BASE_URL, OUTGOING_ALLOW_LOOPBACK=True, OUTGOING_TIMEOUT=2
    )
    yield app
    get_database(app).dispose()


def test_both_ways_on_any_database(any_db_site: App, web: Web) -> None:
    cast = make_cast(any_db_site)
    slug = slug_of(write_post(cast.author, title="Hello web", body=f"[x]({web.url}/t)"))
    target = f"{BASE_URL}/posts/{slug}"
    web.page("/t", "<p>hi</p>", Link='</endpoint>; rel="webmention"')
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert [path for path, _ in web.received] == ["/endpoint"]
    for path, css in (("/r", "u-in-reply-to"), ("/l", "u-like-of")):
        mention(cast.anonymous, web.page(path, h_entry(target, kind=css)), target)
        mention(cast.anonymous, web.url + path, target)  # the same again: one check
    assert sorted(run_jobs(cast.app, webmention.verify_mention)) == ["like", "reply"]
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(Comment)) == 1
    page = cast.anonymous.get(f"/posts/{slug}")
    assert "Liked by 1:" in page.html.select_one("#mentions").text


def test_hostile_names_and_urls_from_sources_run_no_script(
    cast: Cast, target: str, web: Web
) -> None:
    """The XSS corpus: a sample through the whole path, then every payload as a name."""
    from html import escape

    from security.checks import load_corpus, parse_html, script_problems

    corpus = load_corpus()
    sample = corpus[:20] + [p for p in corpus if "javascript:" in p.lower()][:20]
    for n, payload in enumerate(sample):
        card = f'<a class="p-author h-card" href="{escape(payload)}">{escape(payload)}</a>'
        page = f'<div class="h-entry u-like-of">{card}<a href="{target}">x</a></div>'
        mention(cast.anonymous, web.page(f"/x{n}", page), target)
    assert set(run_jobs(cast.app, webmention.verify_mention)) == {"mention"}
    with get_database(cast.app).read() as db:
        urls = set(db.scalars(select(Mention.author_url)))
    assert all(url == "" or url.startswith(("http://", "https://")) for url in urls)
    # Every payload as a like's name and as a mention's source, shown 400 to a page.
    post_ids = []
    with get_database(cast.app).write() as db:
        for start in range(0, len(corpus), 400):
            chunk = corpus[start : start + 400]
            slug = f"xss-{start}"
            post_ids.append(slug)
            db.commit()
            write_post(cast.author, title=slug, body="Target.", slug=slug)
            post_id = db.scalar(select(Post.id).where(Post.slug == slug))
            for n, payload in enumerate(chunk):
                db.add(
                    Mention(
                        source=f"https://x.example/{start + n}",
                        post_id=post_id,
                        kind="like" if n % 2 else "mention",
                        author_name=payload[:100],
                        author_url=f"https://x.example/{escape(payload[:50])}",
                        state="verified",
                        verified_at=utcnow(),
                    )
                )
    problems = []
    for slug in [target.rsplit("/", 1)[1], *post_ids]:
        answer = cast.anonymous.get(f"/posts/{slug}")
        assert answer.status_code == 200
        problems += script_problems(
            parse_html(answer.data), routable=cast.app.router.allowed_methods
        )
        if slug in post_ids:  # each payload is there, as text
            assert len(answer.html.select("#mentions a.mention")) == len(
                corpus[post_ids.index(slug) * 400 :][:400]
            )
    assert problems == []


# --- sending -------------------------------------------------------------------------------


def fetched(body: str = "", url: str = "https://t.example/a/post?x=1", **headers: Any) -> Fetched:
    from urllib3 import HTTPHeaderDict

    sent = HTTPHeaderDict({"Content-Type": "text/html; charset=utf-8"})
    for name, value in headers.items():
        for one in value if isinstance(value, list) else [value]:
            sent.add(name.replace("_", "-"), one)
    return Fetched(url, 200, sent, body.encode())


@pytest.mark.parametrize(
    ("answer", "endpoint"),
    [
        (fetched(Link='<https://e.example/wm>; rel="webmention"'), "https://e.example/wm"),
        (fetched(Link="</wm>; rel=webmention"), "https://t.example/wm"),
        (fetched(Link='<wm?a=1&b=2>; rel="other webmention"'), "https://t.example/a/wm?a=1&b=2"),
        (fetched(Link='<https://n.example/>; rel="not-webmention"'), None),
        (
            fetched(
                Link=['<https://a.example/>; rel="me"', '<https://b.example/wm>; rel="webmention"']
            ),
            "https://b.example/wm",
        ),
        (
            fetched(
                Link='<https://a.example/>; rel="me", <https://c.example/wm>; rel="webmention"'
            ),
            "https://c.example/wm",
        ),
        (fetched('<link rel="webmention" href="/from-link">'), "https://t.example/from-link"),
        (fetched('<a rel="webmention" href="from-a">'), "https://t.example/a/from-a"),
        (fetched('<link rel="WebMention" href="">'), "https://t.example/a/post?x=1"),
        (
            fetched('<!-- <link rel="webmention" href="/no"> --><a rel="webmention" href="/yes">'),
            "https://t.example/yes",
        ),
        (
            fetched(
                '<a href="/x">x</a><link rel="webmention" href="/first">'
                '<a rel="webmention" href="/second">'
            ),
            "https://t.example/first",
        ),
        (fetched('<link rel="webmention">'), None),
        (
            fetched('<link rel="webmention" href="/html">', Link='</header>; rel="webmention"'),
            "https://t.example/header",
        ),
        (fetched("<p>nothing</p>"), None),
    ],
)
def test_endpoint_discovery(answer: Fetched, endpoint: str | None) -> None:
    assert webmention.discover_endpoint(answer) == endpoint


def test_links_in_a_post_are_absolute_and_elsewhere() -> None:
    html = (
        '<p><a href="https://a.example/x#part">a</a> <a href="/posts/own">own</a>'
        ' <a href="http://localhost/posts/own2">own</a> <a href="mailto:x@y.z">m</a>'
        ' <a href="https://a.example/x">again</a> <a href="http://b.example:8080/">b</a></p>'
    )
    assert webmention.links_in(html, BASE_URL) == ["https://a.example/x", "http://b.example:8080/"]


def test_publishing_sends_to_each_link_once_per_revision(cast: Cast, web: Web) -> None:
    web.page("/with-header", "<p>hi</p>", Link='</endpoint>; rel="webmention"')
    web.page("/with-link", '<html><head><link rel="webmention" href="/endpoint2"></head></html>')
    web.page("/without", "<p>no endpoint</p>")
    body = (
        f"See [one]({web.url}/with-header), [two]({web.url}/with-link)"
        f" and [three]({web.url}/without)."
    )
    slug = slug_of(write_post(cast.author, title="Links", body=body))
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    source = f"{BASE_URL}/posts/{slug}"
    assert sorted((path, form["source"], form["target"]) for path, form in web.received) == [
        ("/endpoint", [source], [f"{web.url}/with-header"]),
        ("/endpoint2", [source], [f"{web.url}/with-link"]),
    ]
    with get_database(cast.app).read() as db:
        assert db.scalar(select(func.count()).select_from(SentMention)) == 3
    # Nothing changed: saving nothing new, or running the job again, sends nothing.
    web.received.clear()
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_mention(1, f"{web.url}/with-header") == "sent already"
    finally:
        jobs._WORKER_APP.remove(cast.app)
    assert web.received == []
    # An edit is a new revision: each link is told again, the removed one too.
    edit_post(cast.author, slug, body=f"Only [one]({web.url}/with-header) now.")
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert sorted(path for path, _ in web.received) == ["/endpoint", "/endpoint2"]


def test_a_scheduled_post_sends_when_it_goes_live(cast: Cast, web: Web) -> None:
    web.page("/with-header", "<p>hi</p>", Link='</endpoint>; rel="webmention"')
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    body = f"[x]({web.url}/with-header)"
    slug = slug_of(write_post(cast.author, title="Later", body=body, publish_at=later))
    assert run_jobs(cast.app, webmention.send_mentions, webmention.send_mention) == []
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_due_mentions() == 0  # not live yet
        # Its time comes (the post was saved well before).
        set_post(cast.app, slug, published_at=utc_ago(minutes=1), updated_at=utc_ago(hours=1))
        assert webmention.send_due_mentions() == 1
    finally:
        jobs._WORKER_APP.remove(cast.app)
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert [path for path, _ in web.received] == ["/endpoint"]
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_due_mentions() == 0  # looked at: not asked for again
    finally:
        jobs._WORKER_APP.remove(cast.app)


def test_a_post_moved_to_the_trash_tells_its_targets_again(cast: Cast, web: Web) -> None:
    web.page("/with-header", "<p>hi</p>", Link='</endpoint>; rel="webmention"')
    web.page("/without", "<p>none</p>")
    body = f"[x]({web.url}/with-header) [y]({web.url}/without)"
    slug = slug_of(write_post(cast.author, title="Soon gone", body=body))
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert delete_post(cast.author, slug).status_code == 303
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_due_mentions() == 1
    finally:
        jobs._WORKER_APP.remove(cast.app)
    assert run_jobs(cast.app, webmention.send_mentions, webmention.send_removal) == [1, "sent"]
    assert [path for path, _ in web.received] == ["/endpoint", "/endpoint"]
    assert web.received[1][1]["source"] == [f"{BASE_URL}/posts/{slug}"]
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 410  # what they will find
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_due_mentions() == 0  # told once
    finally:
        jobs._WORKER_APP.remove(cast.app)
    # Restored: once its save is a minute old, its links are told of it again.
    values = cast.author.get("/trash").form_values(f'main form[action="/posts/{slug}/restore"]')
    assert cast.author.post(f"/posts/{slug}/restore", data=values).status_code == 303
    set_post(cast.app, slug, updated_at=utc_ago(minutes=2))
    jobs._WORKER_APP.append(cast.app)
    try:
        assert webmention.send_due_mentions() == 1
    finally:
        jobs._WORKER_APP.remove(cast.app)
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert [path for path, _ in web.received] == ["/endpoint"] * 3


def test_a_draft_sends_nothing(cast: Cast, web: Web) -> None:
    web.page("/with-header", "<p>hi</p>", Link='</endpoint>; rel="webmention"')
    write_post(cast.author, title="Draft", body=f"[x]({web.url}/with-header)", status="draft")
    run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)
    assert web.received == []


def test_an_endpoint_at_a_private_address_is_not_posted_to(cast: Cast, web: Web) -> None:
    web.page("/sneaky", "<p>hi</p>", Link='<http://10.0.0.1/admin>; rel="webmention"')
    write_post(cast.author, title="Sneaky", body=f"[x]({web.url}/sneaky)")
    assert "no endpoint" in run_jobs(cast.app, webmention.send_mentions, webmention.send_mention)


# --- microformats2 on our pages ---------------------------------------------------------------


def test_post_page_is_an_h_entry(cast: Cast, target: str) -> None:
    page = cast.anonymous.get(target.removeprefix(BASE_URL))
    parsed = mf2py.parse(doc=page.text, url=target, metaformats=False)
    (entry,) = [item for item in parsed["items"] if "h-entry" in item["type"]]
    props = entry["properties"]
    assert props["name"] == ["Hello web"]
    assert props["url"] == [target]
    assert "A post to answer." in props["content"][0]["value"]
    assert props["published"][0].startswith("20")
    author = props["author"][0]
    assert author["type"] == ["h-card"]
    assert author["properties"]["name"] == ["Alice Author"]
    assert author["properties"]["url"] == [f"{BASE_URL}/authors/alice"]


@pytest.mark.parametrize("path", ["/", "/posts", "/tags/web", "/authors/alice"])
def test_lists_are_h_feeds_of_h_entries(cast: Cast, target: str, path: str) -> None:
    page = cast.anonymous.get(path)
    parsed = mf2py.parse(doc=page.text, url=BASE_URL + path, metaformats=False)
    feeds = [item for item in parsed["items"] if "h-feed" in item["type"]]
    assert len(feeds) == 1
    (entry,) = feeds[0]["children"]
    assert entry["properties"]["name"] == ["Hello web"]
    assert entry["properties"]["url"] == [target]
