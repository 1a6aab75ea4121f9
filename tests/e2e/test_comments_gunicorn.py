"""Comments end to end against gunicorn with several workers (#18), without JavaScript.

Readers comment on a page the page cache served (its form carries a signed token, no
cookie); the author moderates from /comments; trust, replies, the writer's edit window,
closing a post and the spam traps are all walked over HTTP, each request landing on
whichever worker takes it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import ServerHandle
from tests.e2e.test_new_user_walk import Visitor

PASSPHRASE = "a long and lovely passphrase"
MIN_AGE = 3.2  # the token's minimum age, with a little to spare


@pytest.fixture
def server(gunicorn_factory: Callable[..., ServerHandle]) -> ServerHandle:
    return gunicorn_factory(workers=3)


def comment_ids(page_text: str) -> list[int]:
    return [int(n) for n in re.findall(r'id="comment-(\d+)"', page_text)]


def test_readers_comment_on_cached_pages_and_the_author_moderates(server: ServerHandle) -> None:
    author = Visitor(server.url)
    setup = author.open("/setup")
    editor = author.submit(
        setup,
        "main form",
        username="ada",
        email="ada@example.com",
        display_name="Ada",
        password=PASSPHRASE,
        confirm=PASSPHRASE,
    )
    post = author.submit(
        editor, "#post-form", title="Talk to me", body="Say hello.", status="published"
    )
    assert post.status == 200 and post.url.endswith("/posts/talk-to-me")
    path = "/posts/talk-to-me"

    # Readers load the page: the second load comes from a worker's page cache, no cookie.
    carol, bot = Visitor(server.url), Visitor(server.url)
    pages = {who: who.open(path) for who in (carol, bot)}
    for page in pages.values():
        assert page.status == 200 and "Set-Cookie" not in page.headers
        assert page.html.select_one("#comment-form input[name=token]")
        assert not page.html.select_one("#comment-form input[name=csrf_token]")
    time.sleep(MIN_AGE)

    # A robot filling in the hidden field lands in spam. (One answering at once would too,
    # but the token's age counts from the page's rendering, and this page was cached a
    # while ago: tests/blog/test_comments.py sends a fresh page's form at once.)
    trapped = bot.submit(pages[bot], "#comment-form", name="Bot", body="Buy", homepage="x")
    assert trapped.status == 200

    # Carol's first comment is held: she sees it, marked; others do not.
    mine = carol.submit(
        pages[carol], "#comment-form", name="Carol", email="carol@example.com", body="Hello *Ada*"
    )
    assert mine.status == 200 and f"{path}#comment-" in mine.url
    (held_id,) = comment_ids(mine.text)
    assert "Awaiting review" in mine.text
    assert held_id not in comment_ids(Visitor(server.url).open(path).text)

    # The author approves it from /comments; every worker shows it at once.
    queue = author.open("/comments")
    assert "Hello" in queue.text and "Buy" not in queue.text
    approved = author.submit(queue, "form.moderation-form", single=f"approve:{held_id}")
    assert approved.status == 200
    for _ in range(6):
        assert held_id in comment_ids(Visitor(server.url).open(path).text)
    spam = author.open("/comments?state=spam")
    assert "Bot" in spam.text

    # Trusted now: Carol's next comment, from another browser, goes straight through.
    carol_again, dave = Visitor(server.url), Visitor(server.url)
    form_page = carol_again.open(path)
    reply_link = (
        Visitor(server.url).open(path).html.select_one(f'a[href$="/comments/{held_id}/reply"]')
    )
    reply_page = dave.open(reply_link["href"])
    time.sleep(MIN_AGE)
    second = carol_again.submit(
        form_page, "#comment-form", name="Carol", email="carol@example.com", body="Me again"
    )
    second_id = max(comment_ids(second.text))
    assert "Awaiting review" not in second.text
    assert second_id in comment_ids(Visitor(server.url).open(path).text)

    # Dave replies to Carol's first comment (held: he is new), within her thread.
    replied = dave.submit(reply_page, "#comment-form", name="Dave", body="Welcome!")
    reply_id = max(comment_ids(replied.text))
    assert replied.html.select_one(f".comment-replies #comment-{reply_id}")

    # Within 15 minutes Dave may edit his reply.
    edit = dave.open(f"/comments/{reply_id}/edit")
    assert edit.status == 200
    edited = dave.submit(edit, "form.comment-form", body="Welcome, Carol!")
    assert "Welcome, Carol!" in edited.text
    assert Visitor(server.url).open(f"/comments/{reply_id}/edit").status == 404

    # The author closes the post: no form, and an old form is refused.
    late = Visitor(server.url)
    late_page = late.open(path)
    closed = author.submit(author.open(path), "form.comment-setting", comments="closed")
    assert "Comments are closed" in closed.text
    assert Visitor(server.url).open(path).html.select_one("#comment-form") is None
    time.sleep(MIN_AGE)
    refused = late.submit(late_page, "#comment-form", name="Late", body="Too late")
    assert refused.status == 403
