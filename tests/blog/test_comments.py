"""Comments (#18): the form, moderation, spam defence, feeds and notifications.

Readers post through the form as the page shows it (its signed token included); time
moves by the test clock, so the token's minimum age passes without sleeping.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pyproject.blog import comments
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, Post, SentMessage, SiteState, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.blog.conftest import Cast, Clock, World, form_of, make_world

_ADDRESSES = itertools.count(1)


def reader(app: App, address: str | None = None) -> TestClient:
    """Give an anonymous client from an address of its own (rate limits count per client)."""
    n = next(_ADDRESSES)
    return app.test_client(
        environ_overrides={"REMOTE_ADDR": address or f"10.{n // 250}.{n % 250}.{n % 7 + 1}"}
    )


def comment_form(client: TestClient, slug: str) -> dict[str, str]:
    return form_of(client.get(f"/posts/{slug}"), "#comment-form")


def kept_form(page: TestResponse) -> dict[str, str]:
    """Give the comment form a refusal (422, 429) shows again, as typed."""
    return page.form_values("#comment-form")


def send_comment(
    client: TestClient, slug: str, clock: Clock | None = None, **fields: str
) -> TestResponse:
    """Fill in the form under a post (after a few seconds of reading) and send it."""
    values = comment_form(client, slug)
    values.update(name="Carol", body="A kind word about this post.")
    values.update(fields)
    if clock is not None:
        clock.advance(seconds=5)
    return client.post(f"/posts/{slug}/comments", data=values)


def post_id_of(app: App, slug: str) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(Post.id).where(Post.slug == slug))


def stored(app: App) -> list[Comment]:
    with get_database(app).read() as db:
        return list(db.scalars(select(Comment).order_by(Comment.id)))


def site_version(app: App) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(SiteState.version).where(SiteState.id == 1))


def mails(app: App, kind: str) -> list[SentMessage]:
    with get_database(app).read() as db:
        return list(db.scalars(select(SentMessage).where(SentMessage.kind == kind)))


def moderate(client: TestClient, action: str, *ids: int, state: str = "held") -> TestResponse:
    page = client.get(f"/comments?state={state}")
    values = form_of(page, "form.moderation-form")
    return client.post(
        "/comments/moderate",
        data=[("csrf_token", values["csrf_token"]), ("state", state), ("action", action)]
        + [("ids", str(i)) for i in ids],
    )


@pytest.fixture
def world(clock: Clock, cast: Cast) -> World:
    """alice's posts, written on the test clock (so they are public at its time)."""
    return make_world(cast)


# --- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "wanted", "unwanted"),
    [
        ("*a* **b** `c`", "<em>a</em> <strong>b</strong> <code>c</code>", None),
        ("> quoted", "<blockquote>", None),
        ("- one\n- two", "<li>one</li>", None),
        ("[x](https://example.org/)", 'rel="nofollow ugc noopener"', None),
        (
            "https://example.org/",
            '<a href="https://example.org/" rel="nofollow ugc noopener"',
            None,
        ),
        ("![pic](https://example.org/p.png)", "![pic]", "<img"),
        ("# Title", "# Title", "<h1"),
        ("<script>alert(1)</script>", "&lt;script&gt;", "<script"),
        ("<b onclick=x>hi</b>", "&lt;b", "<b "),
        ("[x](javascript:alert(1))", "x", "javascript:"),
        ("[x](data:text/html,hi)", "x", "data:"),
    ],
)
def test_the_comment_markdown_subset(markdown: str, wanted: str, unwanted: str | None) -> None:
    html = comments.render_comment(markdown)
    assert wanted in html
    if unwanted:
        assert unwanted not in html


def test_form_tokens_are_checked_for_signature_post_and_age(clock: Clock) -> None:
    token = comments.form_token("s", 7)
    assert comments.check_token("s", token, 7) == "young"
    clock.advance(seconds=3)
    assert comments.check_token("s", token, 7) == "ok"
    assert comments.check_token("s", token, 8) == "wrong"
    assert comments.check_token("other", token, 7) == "wrong"
    assert comments.check_token("s", token[:-1] + "A", 7) in ("wrong", "ok")
    assert comments.check_token("s", "garbage", 7) == "wrong"
    clock.advance(days=1, seconds=1)
    assert comments.check_token("s", token, 7) == "expired"


def test_the_writer_cookie_is_signed() -> None:
    value = comments.dump_written("s", [3, 2])
    assert comments.load_written("s", value) == [3, 2]
    assert comments.load_written("t", value) == []
    mac = value.split(".")[1]
    forged = comments.dump_written("t", [1, 2, 3]).split(".")[0] + "." + mac
    assert comments.load_written("s", forged) == []
    assert comments.load_written("s", "x.y.z") == []


@pytest.mark.parametrize(
    ("address", "subnet"),
    [("192.0.2.77", "192.0.2.0/24"), ("2001:db8:1:2::5", "2001:db8:1::/56"), ("??", "??")],
)
def test_subnets_group_neighbouring_addresses(address: str, subnet: str) -> None:
    assert comments.subnet_of(address) == subnet


# --- the form, on a cached page --------------------------------------------------------------


def test_a_reader_comments_without_an_account_on_a_cached_page(world: World, clock: Clock) -> None:
    app = world.cast.app
    first = reader(app).get(f"/posts/{world.published}")
    assert first.html.select_one("#comment-form input[name=token]") is not None
    assert first.html.select_one("#comment-form input[name=csrf_token]") is None
    assert "Set-Cookie" not in first.headers
    client = reader(app)
    cached = client.get(f"/posts/{world.published}")
    assert cached.data == first.data  # the page cache's copy, token and all
    values = form_of(cached, "#comment-form")
    values.update(name="Carol", email="carol@example.com", body="Lovely *rabbit* hole.")
    clock.advance(seconds=10)
    sent = client.post(f"/posts/{world.published}/comments", data=values)
    assert sent.status_code == 303
    (comment,) = stored(app)
    assert comment.state == "held" and comment.name == "Carol"
    assert sent.location.endswith(f"/posts/{world.published}#comment-{comment.id}")
    # The writer sees it, marked; other readers do not.
    mine = client.get(f"/posts/{world.published}")
    shown = mine.html.select_one(f"#comment-{comment.id}")
    assert shown is not None and "Awaiting review" in shown.get_text()
    assert "<em>rabbit</em>" in str(shown)
    other = reader(app).get(f"/posts/{world.published}")
    assert other.html.select_one(f"#comment-{comment.id}") is None
    # The author is told, once.
    (held,) = mails(app, "comment-held")
    assert held.recipient == "alice@example.com"


def test_the_form_rendered_once_is_the_macro_s_form_for_this_post(world: World) -> None:
    """A reader who is not signed in gets the comment form rendered once per app (#13),
    with this post's address and token: the same HTML the macro gives, byte for byte;
    a signed-in author, the macro's own (with the session's CSRF token)."""
    import re

    from pyproject.lib.app import _current_app

    app = world.cast.app
    page = reader(app).get(f"/posts/{world.published}")
    found = re.search(r'<form [^>]*id="comment-form".*?</form>', page.text, re.DOTALL)
    assert found is not None
    token = page.html.select_one("#comment-form input[name=token]")["value"]
    macros = app.jinja_env.get_template("comments/macros.html")
    module = macros.make_module({"current_user": None, "config": app.config})
    reset = _current_app.set(app)
    try:
        wanted = str(module.comment_form_fields({"slug": world.published}, token, None, ""))
    finally:
        _current_app.reset(reset)
    wanted = re.search(r"<form .*?</form>", wanted, re.DOTALL)
    assert wanted is not None and found.group(0) == wanted.group(0)
    assert f'action="/posts/{world.published}/comments"' in found.group(0)

    author = world.cast.author.get(f"/posts/{world.published}")
    assert author.html.select_one("#comment-form input[name=csrf_token]") is not None
    assert author.html.select_one("#comment-form input[name=name]") is None


def test_a_token_too_young_lands_in_spam_and_a_filled_honeypot_too(
    world: World, clock: Clock
) -> None:
    app = world.cast.app
    assert send_comment(reader(app), world.published).status_code == 303  # no wait at all
    assert send_comment(reader(app), world.published, clock, homepage="x").status_code == 303
    assert [c.state for c in stored(app)] == ["spam", "spam"]
    assert mails(app, "comment-held") == []


@pytest.mark.parametrize("token", ["", "1.2.abc", "garbage", "9.1700000000." + "A" * 43])
def test_a_forged_or_missing_token_is_refused_with_the_words_kept(
    world: World, clock: Clock, token: str
) -> None:
    page = send_comment(reader(world.cast.app), world.published, clock, token=token, body="Keep me")
    assert page.status_code == 422
    assert page.html.select_one("#c-body").get_text() == "Keep me"
    assert stored(world.cast.app) == []


def test_an_expired_token_is_refused_and_a_fresh_one_given(world: World, clock: Clock) -> None:
    client = reader(world.cast.app)
    values = comment_form(client, world.published)
    values.update(name="Carol", body="Late words")
    clock.advance(days=1, minutes=1)
    page = client.post(f"/posts/{world.published}/comments", data=values)
    assert page.status_code == 422
    fresh = kept_form(page)
    assert fresh["token"] != values["token"] and fresh["body"] == "Late words"
    clock.advance(seconds=5)
    fresh.update(name="Carol")
    assert client.post(f"/posts/{world.published}/comments", data=fresh).status_code == 303


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "x" * 10_001}, "body"),
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"body": "bell\x07"}, "body"),
        ({"email": "not an address"}, "email"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"body": " ".join(f"https://e{i}.example.com/" for i in range(4))}, "body"),
    ],
)
def test_bad_input_is_422_with_what_was_typed_kept(
    world: World, clock: Clock, fields: dict[str, str], field: str
) -> None:
    page = send_comment(reader(world.cast.app), world.published, clock, **fields)
    assert page.status_code == 422
    assert page.html.select_one(f"#e-{field}") is not None
    kept = kept_form(page)
    for name, value in fields.items():
        if "\x00" not in value and "\x07" not in value:
            assert kept[name] == value.replace("\r", "")
    assert stored(world.cast.app) == []


def test_comments_on_a_draft_or_missing_post_are_404(world: World, clock: Clock) -> None:
    client = reader(world.cast.app)
    values = comment_form(client, world.published)
    values.update(name="C", body="b")
    assert client.post(f"/posts/{world.draft}/comments", data=values).status_code == 404
    assert client.post("/posts/no-such-post/comments", data=values).status_code == 404


# --- moderation and trust ------------------------------------------------------------------


def test_approval_trusts_the_writer_and_shows_the_comment_to_everyone(
    world: World, clock: Clock
) -> None:
    app = world.cast.app
    carol = reader(app)
    send_comment(carol, world.published, clock, email="Carol@Example.com", body="First")
    (first,) = stored(app)
    version = site_version(app)
    before = reader(app).get(f"/posts/{world.published}")
    assert moderate(world.cast.author, "approve", first.id).status_code == 303
    assert site_version(app) > version  # every worker's cached page changes at once
    after = reader(app).get(
        f"/posts/{world.published}", headers={"If-None-Match": before.headers["ETag"]}
    )
    assert after.status_code == 200 and after.html.select_one(f"#comment-{first.id}")
    assert "1 comment" in after.html.select_one("#comments-heading").get_text()
    # Later comments from the same address (another client, any case) go straight through.
    send_comment(reader(app), world.published, clock, email="carol@example.com", body="Second")
    assert [c.state for c in stored(app)] == ["approved", "approved"]
    # Without email, name + website is the identity; a name alone never is.
    send_comment(reader(app), world.published, clock, name="Carol", body="Third")
    assert stored(app)[-1].state == "held"


def test_held_and_spam_comments_change_no_cached_page(world: World, clock: Clock) -> None:
    app = world.cast.app
    version = site_version(app)
    send_comment(reader(app), world.published, clock)
    send_comment(reader(app), world.published, clock, homepage="bot")
    assert site_version(app) == version


def test_approve_and_trust_approves_the_writers_other_held_comments(
    world: World, clock: Clock
) -> None:
    app = world.cast.app
    for body in ("one", "two"):
        send_comment(reader(app), world.published, clock, email="d@example.com", body=body)
    send_comment(reader(app), world.published, clock, email="e@example.com", body="three")
    first = stored(app)[0]
    assert moderate(world.cast.admin, "trust", first.id).status_code == 303
    assert [c.state for c in stored(app)] == ["approved", "approved", "held"]


def test_moderation_lists_only_the_authors_own_posts_and_admins_see_all(
    world: World, clock: Clock
) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock, body="For alice")
    (comment,) = stored(app)
    assert "For alice" in world.cast.author.get("/comments").text
    assert "For alice" in world.cast.admin.get("/comments").text
    assert "For alice" not in world.cast.other.get("/comments").text
    assert comment.state == "held"
    assert world.cast.anonymous.get("/comments").status_code in (302, 303)


def test_bob_cannot_moderate_alices_comments(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock)
    (comment,) = stored(app)
    # bob's own list is empty, so he takes a CSRF token from the page's header form.
    token = world.cast.other.get("/").html.select_one('input[name="csrf_token"]')["value"]
    answer = world.cast.other.post(
        "/comments/moderate",
        data={"csrf_token": token, "action": "approve", "ids": str(comment.id)},
    )
    assert answer.status_code == 303
    assert stored(app)[0].state == "held"


@pytest.mark.parametrize("action", ["spam", "delete", "hold"])
def test_bulk_actions(world: World, clock: Clock, action: str) -> None:
    app = world.cast.app
    for body in ("a", "b", "c"):
        send_comment(reader(app), world.published, clock, body=body)
    ids = [c.id for c in stored(app)]
    moderate(world.cast.author, "approve", *ids)
    assert moderate(world.cast.author, action, *ids[:2], state="approved").status_code == 303
    states = [c.state for c in stored(app)]
    if action == "delete":
        assert states == ["approved"]
    else:
        assert states == [{"spam": "spam", "hold": "held"}[action]] * 2 + ["approved"]


def test_the_moderation_page_escapes_what_readers_typed(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(
        reader(app), world.published, clock, name="<img src=x onerror=alert(1)>", body="<b>x</b>"
    )
    page = world.cast.author.get("/comments")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text


# --- spam defence --------------------------------------------------------------------------


def test_blocked_words_send_a_comment_to_spam(clock: Clock, make_app) -> None:
    from tests.blog.conftest import make_cast

    app = make_app(COMMENTS_BLOCKED_WORDS="casino, cheap pills")
    world = make_world(make_cast(app))
    send_comment(reader(app), world.published, clock, body="Best CASINO here")
    send_comment(reader(app), world.published, clock, body="Buy cheap pills now")
    send_comment(reader(app), world.published, clock, body="Casinos are not words we block")
    assert [c.state for c in stored(app)] == ["spam", "spam", "held"]


def test_one_client_is_rate_limited_and_its_neighbours_too(world: World, clock: Clock) -> None:
    app = world.cast.app
    client = reader(app, "198.51.100.7")
    answers = [send_comment(client, world.published, clock, body=f"n{i}") for i in range(6)]
    assert [a.status_code for a in answers] == [303] * 5 + [429]
    assert answers[-1].headers["Retry-After"]
    assert kept_form(answers[-1])["body"] == "n5"
    neighbours = [reader(app, f"198.51.100.{20 + i}") for i in range(20)]
    codes = [send_comment(c, world.published, clock).status_code for c in neighbours]
    assert codes.count(429) == 5  # the /24 allows 20 in ten minutes
    clock.advance(minutes=11)
    assert send_comment(client, world.published, clock, body="later").status_code == 303


def test_a_trusted_writer_dropping_links_is_held(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock, email="f@example.com")
    moderate(world.cast.author, "approve", stored(app)[0].id)
    send_comment(
        reader(app), world.published, clock, email="f@example.com", body="https://x.example.com/"
    )
    send_comment(
        reader(app),
        world.published,
        clock,
        email="f@example.com",
        body="See https://a.example.com/ and https://b.example.com/ and https://c.example.com/",
    )
    assert [c.state for c in stored(app)] == ["approved", "held", "held"]


# --- replies, notifications, the edit window -------------------------------------------------


def test_a_reply_notifies_a_commenter_who_opted_in(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock, email="g@example.com", notify="on", body="Q?")
    parent = stored(app)[0]
    moderate(world.cast.author, "approve", parent.id)
    # The author answers, signed in: approved at once, marked as the author.
    values = form_of(world.cast.author.get(f"/posts/{world.published}"), "#comment-form")
    values.update(body="A!", parent=str(parent.id))
    clock.advance(seconds=5)
    assert (
        world.cast.author.post(f"/posts/{world.published}/comments", data=values).status_code == 303
    )
    reply = stored(app)[-1]
    assert reply.parent_id == parent.id and reply.state == "approved" and reply.user_id
    (told,) = mails(app, "comment-reply")
    assert told.recipient == "g@example.com"
    page = reader(app).get(f"/posts/{world.published}")
    shown = page.html.select_one(f".comment-replies #comment-{reply.id}")
    assert shown is not None and "Author" in shown.get_text()
    # A reply to a reply joins the thread (one level).
    values = form_of(reader(app).get(f"/posts/{world.published}"), "#comment-form")
    values.update(name="H", body="me too", parent=str(reply.id))
    clock.advance(seconds=5)
    reader(app).post(f"/posts/{world.published}/comments", data=values)
    assert stored(app)[-1].parent_id == parent.id


def test_the_writer_may_edit_and_delete_for_fifteen_minutes(world: World, clock: Clock) -> None:
    app = world.cast.app
    client = reader(app)
    send_comment(client, world.published, clock, body="Typo heer")
    (comment,) = stored(app)
    edit = client.get(f"/comments/{comment.id}/edit")
    assert edit.status_code == 200
    values = form_of(edit, "form.comment-form")
    values["body"] = "Typo here"
    assert client.post(f"/comments/{comment.id}/edit", data=values).status_code == 303
    assert stored(app)[0].body_md == "Typo here" and stored(app)[0].edited_at
    # Someone else, or the writer without the form's token, cannot.
    assert reader(app).get(f"/comments/{comment.id}/edit").status_code == 404
    assert client.post(f"/comments/{comment.id}/delete", data={}).status_code == 403
    clock.advance(minutes=16)
    assert client.get(f"/comments/{comment.id}/edit").status_code == 403
    assert client.post(f"/comments/{comment.id}/edit", data=values).status_code == 403


def test_the_writer_deletes_their_comment(world: World, clock: Clock) -> None:
    app = world.cast.app
    client = reader(app)
    send_comment(client, world.published, clock)
    (comment,) = stored(app)
    page = client.get(f"/posts/{world.published}")
    values = form_of(page, f'form[action="/comments/{comment.id}/delete"]')
    assert client.post(f"/comments/{comment.id}/delete", data=values).status_code == 303
    assert stored(app) == []


# --- closed posts, counts, feeds, pages ---------------------------------------------------------


def test_a_closed_post_shows_no_form_and_refuses_comments(world: World, clock: Clock) -> None:
    app = world.cast.app
    client = reader(app)
    values = comment_form(client, world.published)
    page = world.cast.author.get(f"/posts/{world.published}")
    setting = form_of(page, "form.comment-setting")
    setting["comments"] = "closed"
    assert (
        world.cast.author.post(
            f"/comments/posts/{post_id_of(app, world.published)}/setting", data=setting
        ).status_code
        == 303
    )
    shown = reader(app).get(f"/posts/{world.published}")
    assert shown.html.select_one("#comment-form") is None
    assert "Comments are closed" in shown.text
    values.update(name="C", body="late")
    clock.advance(seconds=5)
    assert client.post(f"/posts/{world.published}/comments", data=values).status_code == 403
    # Another author may not change it.
    setting["comments"] = "open"
    assert (
        world.cast.other.post(
            f"/comments/posts/{post_id_of(app, world.published)}/setting", data=setting
        ).status_code
        == 403
    )


def test_comments_close_by_themselves_after_the_set_days(clock: Clock, make_app) -> None:
    from tests.blog.conftest import make_cast, set_post

    app = make_app(COMMENTS_CLOSE_DAYS=14)
    world = make_world(make_cast(app))
    assert reader(app).get(f"/posts/{world.published}").html.select_one("#comment-form")
    set_post(app, world.published, published_at=clock.now - timedelta(days=15))
    clock.advance(hours=1)  # a post page is rendered afresh at least hourly
    assert reader(app).get(f"/posts/{world.published}").html.select_one("#comment-form") is None
    set_post(app, world.published, comments="open")
    clock.advance(hours=1)
    assert reader(app).get(f"/posts/{world.published}").html.select_one("#comment-form")


def test_lists_show_comment_counts(world: World, clock: Clock) -> None:
    app = world.cast.app
    for body in ("a", "b"):
        send_comment(reader(app), world.published, clock, body=body)
    moderate(world.cast.author, "approve", *[c.id for c in stored(app)])
    home = reader(app).get("/")
    link = home.html.select_one(f'a[href="/posts/{world.published}#comments"]')
    assert link is not None and "2 comments" in link.get_text()


def test_the_comments_feed_lists_approved_comments(world: World, clock: Clock) -> None:
    import feedparser

    app = world.cast.app
    send_comment(reader(app), world.published, clock, body="Shown <script>x</script>")
    send_comment(reader(app), world.published, clock, body="Not shown")
    moderate(world.cast.author, "approve", stored(app)[0].id)
    answer = reader(app).get(f"/posts/{world.published}/comments.atom")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(answer.data)
    assert not feed.bozo
    (entry,) = feed.entries
    assert "Shown" in entry.content[0].value and "<script>" not in entry.content[0].value


def test_many_comments_are_paged_with_the_newest_page_on_the_post(
    world: World, clock: Clock
) -> None:
    app = world.cast.app
    post_id = post_id_of(app, world.published)
    with get_database(app).write() as db:
        db.add_all(
            Comment(
                post_id=post_id,
                name=f"r{i}",
                body_md=f"comment {i}",
                body_html=f"<p>comment {i}</p>",
                state="approved",
                created_at=clock.now,
            )
            for i in range(10_000)
        )
    page = reader(app).get(f"/posts/{world.published}")
    assert page.status_code == 200
    shown = page.html.select(".comment-list > li")
    assert len(shown) == comments.PER_PAGE
    assert "comment 9999" in page.text and "comment 9949" not in page.text
    assert "10000 comments" in page.text
    earlier = page.html.select_one('.comment-pages a[rel="prev"]')["href"]
    older = reader(app).get(earlier)
    assert older.status_code == 200 and "comment 9949" in older.text
    assert older.html.select_one('.comment-pages a[href$="#comments"]') is not None
    assert reader(app).get(f"/posts/{world.published}/comments/older?page=1").status_code == 200
    assert reader(app).get(f"/posts/{world.published}/comments/older?page=201").status_code == 404
    assert reader(app).get(f"/posts/{world.published}/comments/older?page=0").status_code == 404


# --- remote replies (Webmention) -------------------------------------------------------------


def test_a_remote_reply_is_held_as_escaped_text_and_replaced_by_its_source(world: World) -> None:
    app = world.cast.app
    post_id = post_id_of(app, world.published)
    with get_database(app).write() as db:
        reply = comments.add_remote_reply(
            db,
            post_id,
            author_name="Eve\nRemote",
            author_url="https://eve.example/",
            body_text="<script>alert(1)</script>\n\nsecond",
            source_url="https://eve.example/reply",
            published=None,
            app=app,
        )
        assert reply.state == "held" and reply.kind == "webmention"
        assert reply.name == "Eve Remote"
        assert "<script>" not in reply.body_html and "&lt;script&gt;" in reply.body_html
        again = comments.add_remote_reply(
            db,
            post_id,
            author_name="Eve",
            author_url="https://eve.example/",
            body_text="changed",
            source_url="https://eve.example/reply",
            published=None,
            app=app,
        )
        assert again.id == reply.id and again.body_md == "changed"
    (held,) = mails(app, "comment-held")
    assert held.recipient == "alice@example.com"
    moderate(world.cast.author, "approve", reply.id)
    page = reader(app).get(f"/posts/{world.published}")
    shown = page.html.select_one(f"#comment-{reply.id}")
    assert shown is not None and "https://eve.example/reply" in shown.get_text()
    with get_database(app).write() as db:
        comments.remove_remote_reply(db, "https://eve.example/reply", post_id)
    with get_database(app).read() as db:
        assert db.scalar(select(func.count()).select_from(Comment)) == 0


def test_each_comment_has_a_reply_page_with_the_form(world: World, clock: Clock) -> None:
    app = world.cast.app
    send_comment(reader(app), world.published, clock, email="k@example.com", body="Question")
    parent = stored(app)[0]
    path = f"/posts/{world.published}/comments/{parent.id}/reply"
    assert reader(app).get(path).status_code == 404  # held: nothing to answer yet
    moderate(world.cast.author, "approve", parent.id)
    page = reader(app).get(f"/posts/{world.published}")
    assert page.html.select_one(f'a[href="{path}"]') is not None
    assert len(page.html.select("form.comment-form")) == 1  # one form, however many comments
    client = reader(app)
    values = form_of(client.get(path), "#comment-form")
    assert values["parent"] == str(parent.id)
    values.update(name="L", body="An answer")
    clock.advance(seconds=5)
    assert client.post(f"/posts/{world.published}/comments", data=values).status_code == 303
    assert stored(app)[-1].parent_id == parent.id
    # A refused reply keeps saying what it answers.
    values.update(body="")
    clock.advance(seconds=5)
    refused = client.post(f"/posts/{world.published}/comments", data=values)
    assert refused.status_code == 422 and "Replying to" in refused.text
    assert kept_form(refused)["parent"] == str(parent.id)


def test_comments_on_sqlite_and_postgresql(clock: Clock, any_db_cast: Cast) -> None:
    """The form, trust, moderation, counts, the feed and paging, on both databases."""
    world = make_world(any_db_cast)
    app = any_db_cast.app
    send_comment(reader(app), world.published, clock, email="p@example.com", body="First")
    moderate(any_db_cast.author, "approve", stored(app)[0].id)
    send_comment(reader(app), world.published, clock, email="p@example.com", body="Second")
    assert [c.state for c in stored(app)] == ["approved", "approved"]
    home = reader(app).get("/")
    assert "2 comments" in home.html.select_one(f'a[href="/posts/{world.published}#comments"]').text
    feed = reader(app).get(f"/posts/{world.published}/comments.atom")
    assert feed.status_code == 200 and feed.text.count("<entry>") == 2
    page = reader(app).get(f"/posts/{world.published}")
    assert len(page.html.select(".comment-list > li")) == 2
    assert reader(app).get(f"/posts/{world.published}/comments/older?page=1").status_code == 200


def test_old_spam_is_pruned_daily(world: World, clock: Clock) -> None:
    from pyproject.blog import jobs

    app = world.cast.app
    send_comment(reader(app), world.published, clock, homepage="bot")  # spam
    clock.advance(days=31)
    send_comment(reader(app), world.published, clock, homepage="bot")  # spam, recent
    send_comment(reader(app), world.published, clock)  # held, kept
    assert jobs.JOBS["pyproject.blog.comments.prune_spam"].periodic is not None
    running = jobs.Worker(app, threads=1)
    running.start()  # the job asks for the worker's app
    try:
        assert comments.prune_spam() == 1
    finally:
        running.stop()
    assert [c.state for c in stored(app)] == ["spam", "held"]


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "//evil.example/", "https://a b/", ""]
)
def test_a_remote_replys_author_link_is_http_or_nothing(world: World, url: str) -> None:
    app = world.cast.app
    with get_database(app).write() as db:
        reply = comments.add_remote_reply(
            db,
            post_id_of(app, world.published),
            author_name="Mallory",
            author_url=url,
            body_text="hi",
            source_url="https://m.example/r",
            published=None,
            app=app,
        )
        assert reply.website == ""


# --- mail, through a real SMTP server and the real worker -------------------------------------


@pytest.fixture
def smtp_app(tmp_path):
    """The blog sending its mail to an aiosmtpd server on loopback; give (app, mailbox)."""
    from aiosmtpd.controller import Controller

    from blog.test_mail import Mailbox, free_port
    from tests.conftest import build_app

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    app = build_app(
        tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", SMTP_TIMEOUT=5, JOB_RETRY_SECONDS=0.05
    )
    try:
        yield app, box
    finally:
        get_database(app).dispose()
        controller.stop()


def test_the_author_and_a_commenter_who_asked_are_mailed_through_smtp(smtp_app) -> None:
    from blog.test_mail import eventually, parts
    from pyproject.blog import jobs
    from tests.blog.conftest import make_cast

    app, box = smtp_app
    cast = make_cast(app)
    world = make_world(cast)
    running = jobs.Worker(app, threads=2)
    running.start()
    try:
        post_id = post_id_of(app, world.published)
        # A form rendered ten seconds ago, as a reader who read the post would send it.
        token = comments.form_token(
            str(app.config["SECRET_KEY"]), post_id, utcnow() - timedelta(seconds=10)
        )
        sent = reader(app).post(
            f"/posts/{world.published}/comments",
            data={
                "token": token,
                "name": "Quinn",
                "email": "quinn@example.com",
                "notify": "on",
                "body": "Is this <b>true</b>?",
            },
        )
        assert sent.status_code == 303
        assert eventually(lambda: len(box.messages) == 1)
        [held] = box.parsed()
        assert held["To"].addresses[0].addr_spec == "alice@example.com"
        assert held["Subject"] == "A comment awaits your review"
        assert "Quinn" in parts(held)[0] and "/comments" in parts(held)[0]
        question = stored(app)[0]
        moderate(cast.author, "approve", question.id)
        values = form_of(cast.author.get(f"/posts/{world.published}"), "#comment-form")
        values.update(body="It is.", parent=str(question.id), token=token)
        assert (
            cast.author.post(f"/posts/{world.published}/comments", data=values).status_code == 303
        )
        assert eventually(lambda: len(box.messages) == 2)
        reply = box.parsed()[1]
        assert reply["To"].addresses[0].addr_spec == "quinn@example.com"
        assert "answered your comment" in reply["Subject"]
        assert f"#comment-{stored(app)[-1].id}" in parts(reply)[0]
        assert "quinn@example.com" not in reader(app).get(f"/posts/{world.published}").text
    finally:
        running.stop()


def test_a_signed_in_comment_needs_the_sessions_csrf_token_too(world: World, clock: Clock) -> None:
    """A forged cross-site form could carry a public page's token, never the session's."""
    app = world.cast.app
    values = form_of(world.cast.author.get(f"/posts/{world.published}"), "#comment-form")
    values.update(body="Really mine")
    clock.advance(seconds=5)
    forged = {k: v for k, v in values.items() if k != "csrf_token"}
    answer = world.cast.author.post(f"/posts/{world.published}/comments", data=forged)
    assert answer.status_code == 403 and stored(app) == []
    answer = world.cast.author.post(f"/posts/{world.published}/comments", data=values)
    assert answer.status_code == 303 and stored(app)[0].user_id is not None
