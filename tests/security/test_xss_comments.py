"""XSS through comments (#18): the whole corpus, in every comment field, runs no script.

Stored: every payload goes through the comment form (40 to a comment, each in another
Markdown place of its body; names, and websites where they pass as addresses, made of
payloads too), all approved, then the post page, every earlier page of comments, the
moderation lists, the writer's edit page and the comments feed are parsed and checked.
Echoed: the whole corpus again, through every field of a refused form (422), whose page
shows back what was typed. Chromium's part is in test_xss_comments_browser.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from blog.conftest import (
    AUTHOR,
    Clock,
    create_author,
    login,
    make_blog_app,
    signup_admin,
    slug_of,
    write_post,
)
from sqlalchemy import select

from pyproject.blog import comments
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, Post, set_clock, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient

from .checks import CORPUS_FILE, CORPUS_MISSING, chunked, feed_problems, load_corpus, pack
from .test_xss import MARKDOWN_PLACES, Findings, XssSite

pytestmark = pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING)

STORED_CHUNK = 40  # payloads in one comment
ECHO_CHUNK = 100  # payloads sent through one refused form
_ADDRESSES = itertools.count(1)


def in_comment(payloads: list[str]) -> str:
    """Give a comment body: each payload in the next Markdown place, blocks apart."""
    blocks = []
    for i, payload in enumerate(payloads):
        place = MARKDOWN_PLACES[i % len(MARKDOWN_PLACES)]
        blocks.append(place.replace("№", str(i)).replace("@", payload))
    return "\n\n".join(blocks)[: comments.MAX_BODY]


def website_of(payloads: list[str]) -> str:
    """Give a website address with payloads in its path (one that passes as an address)."""
    return ("https://example.com/" + "".join(payloads).replace(" ", ""))[: comments.MAX_WEBSITE]


def reader(app: App) -> TestClient:
    n = next(_ADDRESSES)
    return app.test_client(environ_overrides={"REMOTE_ADDR": f"10.{n // 200}.{n % 200}.1"})


@dataclass
class CommentSite:
    site: XssSite
    slug: str
    post_id: int
    writer: TestClient  # wrote the last comment: sees it and its edit page
    last_id: int


@pytest.fixture(scope="module")
def commented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommentSite]:
    payloads = load_corpus()
    # Payloads carry many links: the limit is lifted so that every one is stored.
    app = make_blog_app(
        tmp_path_factory.mktemp("xss-comments"), overrides={"COMMENTS_MAX_LINKS": 10**6}
    )
    clock = Clock(utcnow())
    set_clock(clock)
    try:
        admin = app.test_client()
        assert signup_admin(admin).status_code == 303
        assert create_author(admin, AUTHOR.username, password=AUTHOR.password).status_code == 303
        alice = app.test_client()
        assert login(alice, AUTHOR.username, AUTHOR.password).status_code == 303
        slug = slug_of(write_post(alice, title="Answer me", body="Comments welcome."))
        with get_database(app).read() as db:
            post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        secret = str(app.config["SECRET_KEY"])
        writer = None
        for chunk in chunked(payloads, STORED_CHUNK):
            writer = reader(app)
            token = comments.form_token(secret, post_id)
            clock.advance(seconds=5)
            response = writer.post(
                f"/posts/{slug}/comments",
                data={
                    "token": token,
                    "name": pack(chunk, comments.MAX_NAME).replace("\n", " ") or "x",
                    "website": website_of(chunk),
                    "body": in_comment(chunk),
                },
            )
            if response.status_code == 422:  # the website did not pass: without it
                response = writer.post(
                    f"/posts/{slug}/comments",
                    data={
                        "token": token,
                        "name": pack(chunk, comments.MAX_NAME).replace("\n", " ") or "x",
                        "body": in_comment(chunk),
                    },
                )
            assert response.status_code == 303, (
                response.status_code,
                [e.get_text() for e in response.html.select(".error")],
            )
        with get_database(app).write() as db:
            ids = list(db.scalars(select(Comment.id).order_by(Comment.id)))
            # Half approved (readers see them), the rest left held and spam for the lists.
            for comment in db.scalars(select(Comment)):
                comment.state = ("approved", "approved", "held", "spam")[comment.id % 4]
                if comment.id == ids[-1]:
                    comment.state = "held"
        yield CommentSite(XssSite(app, admin, payloads, {}), slug, post_id, writer, ids[-1])
    finally:
        set_clock(None)
        get_database(app).dispose()


def test_every_payload_was_stored_as_typed(commented: CommentSite) -> None:
    with get_database(commented.site.app).read() as db:
        count = db.scalar(select(Comment.id).order_by(Comment.id.desc()).limit(1))
    assert count == len(chunked(commented.site.payloads, STORED_CHUNK))


def test_post_and_comment_pages_run_no_script(commented: CommentSite) -> None:
    found = Findings(commented.site)
    slug = commented.slug
    anonymous = commented.site.app.test_client()
    root = found.page(f"/posts/{slug}", anonymous.get(f"/posts/{slug}"))
    assert root is not None
    assert sum(1 for _ in root.iter("article")) >= comments.PER_PAGE // 2
    number = 1
    while True:
        response = anonymous.get(f"/posts/{slug}/comments/older?page={number}")
        if response.status_code == 404:
            break
        found.page(f"comments page {number}", response)
        number += 1
    assert number > 2, "the comments should fill several pages"
    # The writer sees their held comment, with its edit and delete forms.
    found.page("the writer's post page", commented.writer.get(f"/posts/{slug}"))
    found.page("the edit page", commented.writer.get(f"/comments/{commented.last_id}/edit"))
    found.page("alice's post page", commented.site.admin.get(f"/posts/{slug}"))
    found.check()


def test_moderation_lists_run_no_script(commented: CommentSite) -> None:
    found = Findings(commented.site)
    for state in comments.STATES:
        assert found.walk(commented.site.admin, f"/comments?state={state}") >= 1
    found.check()


def test_the_comments_feed_carries_no_script(commented: CommentSite) -> None:
    response = commented.site.app.test_client().get(f"/posts/{commented.slug}/comments.atom")
    assert response.status_code == 200
    problems = feed_problems(response.data, rss_description_is_html=False)
    assert not problems, "\n".join(problems[:15])


def test_refused_forms_show_every_field_back_without_script(commented: CommentSite) -> None:
    found = Findings(commented.site)
    slug = commented.slug
    for i, chunk in enumerate(chunked(commented.site.payloads, ECHO_CHUNK)):
        data = {
            "token": pack(chunk, 60),  # not a token: refused, everything shown back
            "name": pack(chunk, 100),
            "email": pack(chunk[1:], 254),
            "website": pack(chunk[2:], 300),
            "body": "\n".join(chunk),
            "parent": pack(chunk[3:], 20),
        }
        response = reader(commented.site.app).post(f"/posts/{slug}/comments", data=data)
        found.page(f"echo {i}", response, statuses=(422,))
    found.check()
