"""Comments (#18): the kept counts, the mail that stops reply notifications, the feed link.

The counts a post page and the lists show live in comment_counts, recounted whenever a
shown comment changes; these tests change comments every way the site does and compare
the kept counts with a fresh count of the comments.
"""

from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import case, func, select

from pyproject.blog import comments
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, CommentCount
from pyproject.lib import App
from tests.blog.conftest import Cast, Clock, World, form_of, make_world
from tests.blog.test_comments import mails, moderate, post_id_of, reader, send_comment, stored


@pytest.fixture
def world(clock: Clock, cast: Cast) -> World:
    """alice's posts, written on the test clock (so they are public at its time)."""
    return make_world(cast)


def kept(app: App, post_id: int) -> tuple[int, int]:
    with get_database(app).read() as db:
        row = db.execute(
            select(CommentCount.approved, CommentCount.threads).where(
                CommentCount.post_id == post_id
            )
        ).first()
    return (row[0], row[1]) if row else (0, 0)


def counted(app: App, post_id: int) -> tuple[int, int]:
    with get_database(app).read() as db:
        total, threads = db.execute(
            select(func.count(), func.sum(case((Comment.parent_id.is_(None), 1), else_=0))).where(
                Comment.post_id == post_id, Comment.state == "approved"
            )
        ).one()
    return int(total or 0), int(threads or 0)


def answer(client, slug: str, parent: int, clock: Clock, **fields: str):
    values = form_of(client.get(f"/posts/{slug}"), "#comment-form")
    values.update(name="Ann", body="An answer.", parent=str(parent), **fields)
    clock.advance(seconds=5)
    return client.post(f"/posts/{slug}/comments", data=values)


def test_counts_follow_every_change_of_a_shown_comment(world: World, clock: Clock) -> None:
    app = world.cast.app
    post_id = post_id_of(app, world.published)
    assert kept(app, post_id) == (0, 0)
    for body in ("one", "two", "three"):
        send_comment(reader(app), world.published, clock, body=body)
    assert kept(app, post_id) == (0, 0)  # held comments are not counted
    first, second, third = (c.id for c in stored(app))
    moderate(world.cast.author, "approve", first, second, third)
    assert kept(app, post_id) == counted(app, post_id) == (3, 3)
    assert answer(world.cast.author, world.published, first, clock).status_code == 303
    assert kept(app, post_id) == counted(app, post_id) == (4, 3)
    moderate(world.cast.author, "spam", second, state="approved")
    assert kept(app, post_id) == counted(app, post_id) == (3, 2)
    # Deleting a thread's first comment takes its replies with it (the database cascades).
    moderate(world.cast.author, "delete", first, state="approved")
    assert kept(app, post_id) == counted(app, post_id) == (1, 1)
    page = reader(app).get(f"/posts/{world.published}")
    assert "1 comment" in page.html.select_one("#comments-heading").get_text()
    assert len(page.html.select(".comment-list > li")) == 1


def test_pruned_spam_takes_its_answers_out_of_the_counts(world: World, clock: Clock) -> None:
    from pyproject.blog import jobs

    app = world.cast.app
    post_id = post_id_of(app, world.published)
    send_comment(reader(app), world.published, clock, body="Soon spam")
    (first,) = (c.id for c in stored(app))
    moderate(world.cast.author, "approve", first)
    answer(world.cast.author, world.published, first, clock)
    moderate(world.cast.author, "spam", first, state="approved")
    assert kept(app, post_id) == (1, 0)  # the author's answer is still shown
    clock.advance(days=31)
    running = jobs.Worker(app, threads=1)
    running.start()
    try:
        assert comments.prune_spam() == 1
    finally:
        running.stop()
    assert kept(app, post_id) == counted(app, post_id) == (0, 0)


def test_a_reply_mail_carries_a_one_click_stop(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock, email="g@example.com", notify="on", body="Q?")
    send_comment(
        reader(app), world.published, clock, email="g@example.com", notify="on", body="Q2?"
    )
    parent, other = stored(app)
    moderate(world.cast.author, "approve", parent.id, other.id)
    answer(world.cast.author, world.published, parent.id, clock)
    (told,) = mails(app, "comment-reply")
    message = email.message_from_bytes(told.message, policy=policy.default)
    stop = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert stop.startswith("http://localhost/comments/") and "/quiet/" in stop
    text = message.get_body(("plain",)).get_content()
    assert stop in text and stop in message.get_body(("html",)).get_content()
    path = stop.removeprefix("http://localhost")
    asking = reader(app).get(path)
    assert asking.status_code == 200 and asking.html.select_one(f'form[action="{path}"]')
    # A forged or cut token is 404 and changes nothing.
    assert reader(app).post(path[:-3] + "abc").status_code == 404
    assert all(c.notify_replies for c in stored(app) if c.email == "g@example.com")
    # The mail client's one click: no session, no CSRF token, 200 and no redirect.
    done = reader(app).post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "No more reply notifications" in done.text
    assert not any(c.notify_replies for c in stored(app) if c.email == "g@example.com")
    answer(world.cast.author, world.published, other.id, clock)
    assert len(mails(app, "comment-reply")) == 1  # nothing more is sent


def test_a_post_page_links_its_comments_feed(world: World) -> None:
    page = reader(world.cast.app).get(f"/posts/{world.published}")
    link = page.html.select_one('head link[rel="alternate"][href$="/comments.atom"]')
    assert link is not None and link["type"] == "application/atom+xml"
    assert link["href"] == f"/posts/{world.published}/comments.atom"


def test_answers_racing_on_one_post_are_all_counted(any_db_cast: Cast, clock: Clock) -> None:
    """Eight writers add approved comments to one post at once (PostgreSQL runs them truly
    side by side): the kept counts end equal to a fresh count."""
    import threading

    app = any_db_cast.app
    world = make_world(any_db_cast)
    post_id = post_id_of(app, world.published)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(5):
                with get_database(app).write() as db:
                    db.add(
                        Comment(
                            post_id=post_id,
                            name=f"w{n}",
                            body_md=f"{n}.{i}",
                            body_html=f"<p>{n}.{i}</p>",
                            state="approved",
                        )
                    )
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert kept(app, post_id) == counted(app, post_id) == (40, 40)
