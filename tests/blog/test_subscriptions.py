"""Email subscriptions (pyproject/blog/subscriptions.py): subscribe, confirm, get each new post
once, unsubscribe in one click; the admin's list and CSV; the hooks for later features.

End-to-end tests go through a real aiosmtpd server on loopback and the real job worker
(the fixtures of test_mail.py); the others read the messages the site queued from the
`sent_messages` table, exactly as the job would send them.
"""

from __future__ import annotations

import csv
import email
import io
import json
import re
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from bs4 import BeautifulSoup
from sqlalchemy import delete, func, select

from blog.conftest import (
    Cast,
    Clock,
    csrf_token,
    edit_post,
    make_cast,
    set_post,
    slug_of,
    utc_ago,
    write_post,
)
from blog.test_mail import BASE_URL, Mailbox, eventually, free_port, parts
from pyproject.blog import jobs, subscriptions
from pyproject.blog.db import get_database
from pyproject.blog.migrate import downgrade, upgrade
from pyproject.blog.models import JobRecord, Post, SentMessage, Subscriber
from pyproject.lib import App
from pyproject.lib.testing import TestClient
from tests.conftest import build_app

READER = "reader@example.com"


# --- the site and its readers ---------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[App]:
    """The blog without SMTP_URL (messages are read from sent_messages)."""
    app = build_app(tmp_path, BASE_URL=BASE_URL, JOB_RETRY_SECONDS=0.05)
    yield app
    get_database(app).dispose()


@pytest.fixture
def cast(site: App) -> Cast:
    return make_cast(site)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on a free loopback port (aiosmtpd), and what reaches it."""
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def worker() -> Iterator[Callable[[App], jobs.Worker]]:
    """Start the real job worker (huey's consumer, in threads) for an app; stop it after."""
    started: list[jobs.Worker] = []

    def start(app: App) -> jobs.Worker:
        running = jobs.Worker(app, threads=2)
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def smtp_site(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[App]:
    """The blog sending to the loopback SMTP server."""
    app = build_app(
        tmp_path,
        BASE_URL=BASE_URL,
        SMTP_URL=f"smtp://127.0.0.1:{mailbox[1]}",
        SMTP_TIMEOUT=5,
        JOB_RETRY_SECONDS=0.05,
    )
    yield app
    get_database(app).dispose()


def subscribe(client: TestClient, address: str, **headers: str) -> Any:
    """Type an address into the home page's box, then send the form it leads to."""
    box = client.get("/").html.select_one("form.inline-form")
    assert box["method"] == "get" and box["action"] == "/subscribe"
    page = client.get("/subscribe", query={"email": address})
    values = page.form_values('form[action="/subscribe"]')
    values["email"] = address  # as typed, even what the page could not show back
    answer = client.post("/subscribe", data=values, headers=headers)
    if client.app not in jobs._WORKER_APP:
        run_subscription_jobs(client.app)
    return answer


def run_subscription_jobs(app: App) -> None:
    """Run the jobs subscribe forms asked for, as the worker would (no worker runs here)."""
    with get_database(app).read() as db:
        waiting = db.execute(
            select(JobRecord.id, JobRecord.args)
            .where(JobRecord.name == subscriptions.handle_subscription.name)
            .order_by(JobRecord.enqueued_at)
        ).all()
    jobs._WORKER_APP.append(app)
    try:
        for job_id, args in waiting:
            subscriptions.handle_subscription(*json.loads(args))
            with get_database(app).write() as db:  # done: off the ledger
                db.execute(delete(JobRecord).where(JobRecord.id == job_id))
    finally:
        jobs._WORKER_APP.remove(app)


def messages(app: App, kind: str | None = None, to: str | None = None) -> list[EmailMessage]:
    """Give the messages the site queued (oldest first), parsed as they will be sent."""
    query = select(SentMessage.message).order_by(SentMessage.id)
    if kind:
        query = query.where(SentMessage.kind == kind)
    if to:
        query = query.where(SentMessage.recipient == to)
    with get_database(app).read() as db:
        raws = db.scalars(query).all()
    return [email.message_from_bytes(raw, policy=policy.default) for raw in raws]


def link_in(message: EmailMessage, path_start: str) -> str:
    """Give the path of the first link in a message's text part that starts with `path_start`."""
    text, _ = parts(message)
    for link in re.findall(rf"{re.escape(BASE_URL)}(/\S+)", text):
        if link.startswith(path_start):
            return link
    raise AssertionError(f"no {path_start} link in:\n{text}")


def subscriber(app: App, address: str = READER) -> Subscriber | None:
    with get_database(app).read() as db:
        return db.scalar(select(Subscriber).where(Subscriber.email == address))


def confirmed_reader(app: App, address: str = READER) -> TestClient:
    """Subscribe `address` and follow its confirmation link; give the reader's client."""
    reader = app.test_client()
    assert subscribe(reader, address).status_code == 303
    [confirm] = messages(app, "confirm", address)
    assert reader.get(link_in(confirm, "/subscribe/confirm/")).status_code == 200
    assert subscriber(app, address).state == "confirmed"
    return reader


def count(app: App, model: Any, *where: Any) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where))


# --- end to end through SMTP and the worker ---------------------------------------------------


def test_subscribe_confirm_and_a_new_post_arrives_once_through_smtp(
    smtp_site: App, mailbox: tuple[Mailbox, int], worker
) -> None:
    box, _ = mailbox
    app = smtp_site
    cast = make_cast(app)
    reader = app.test_client()
    worker(app)

    answer = subscribe(reader, "Reader@Example.com ")
    assert answer.status_code == 303
    assert "confirmation link" in reader.get(answer.location).text
    assert eventually(lambda: len(box.messages) == 1)
    [confirm] = box.parsed()
    assert confirm["To"].addresses[0].addr_spec == READER
    assert confirm["Subject"] == "Confirm your subscription to PyProject"
    assert confirm["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    reader_path = link_in(confirm, "/subscribe/confirm/")
    confirmed = reader.get(reader_path)
    assert confirmed.status_code == 200
    assert confirmed.html.select_one("h1").text == "You are subscribed"

    slug = slug_of(
        write_post(
            cast.author,
            title="Rabbits & holes",
            body="See [the archive](/posts) and ![a rabbit](/static/rabbit.png).\n\n"
            "<script>alert(1)</script>\n\nThe *end*.",
        )
    )
    assert eventually(lambda: len(box.messages) == 2)
    post_mail = box.parsed()[1]
    assert post_mail["Subject"] == "Rabbits & holes"
    assert post_mail["To"].addresses[0].addr_spec == READER
    unsubscribe_link = post_mail["List-Unsubscribe"]
    assert re.fullmatch(rf"<{re.escape(BASE_URL)}/unsubscribe/[^>\s]+>", unsubscribe_link)
    assert post_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(post_mail)
    assert "The *end*." in text and f"{BASE_URL}/posts/{slug}" in text
    page = BeautifulSoup(html, "html.parser")
    hrefs = {a["href"] for a in page.select("a[href]")}
    assert f"{BASE_URL}/posts" in hrefs  # the post's own link, made absolute
    assert unsubscribe_link[1:-1] in hrefs  # the visible unsubscribe link
    assert [img["src"] for img in page.select("img")] == [f"{BASE_URL}/static/rabbit.png"]
    assert not page.select("script, iframe, style, link")
    assert "<script" not in html  # the sanitiser kept its words as text, not as script
    assert page.select_one("p[style]") is not None

    # A later edit, and the periodic job running, send nothing more.
    assert edit_post(cast.author, slug, body="Changed words.").status_code == 303
    subscriptions.announce_due_posts()
    assert eventually(lambda: count(app, JobRecord) == 0)
    assert len(box.messages) == 2
    assert count(app, SentMessage, SentMessage.kind == "post") == 1

    # One click from the mail client: a POST without any session or CSRF token.
    client = app.test_client()
    path = urlsplit(unsubscribe_link[1:-1]).path
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert subscriber(app).state == "unsubscribed"
    write_post(cast.author, title="After leaving", body="Nobody gets this.")
    assert eventually(lambda: count(app, JobRecord) == 0)
    assert count(app, SentMessage, SentMessage.kind == "post") == 1
    assert len(box.messages) == 2


def test_a_newcomer_tries_it_with_the_outbox(tmp_path: Path, cast: Cast, worker) -> None:
    """As the README tells: subscribe, confirm with the link from instance/outbox/, publish,
    and see the post's message in /admin/outbox."""
    app = cast.app
    worker(app)
    reader = app.test_client()
    assert subscribe(reader, READER).status_code == 303
    outbox = tmp_path / "outbox"
    assert eventually(lambda: len(list(outbox.glob("*-confirm-*.eml"))) == 1)
    [written] = outbox.glob("*-confirm-*.eml")
    confirm = email.message_from_bytes(written.read_bytes(), policy=policy.default)
    assert reader.get(link_in(confirm, "/subscribe/confirm/")).status_code == 200

    write_post(cast.author, title="Fresh from the oven", body="Warm *bread*.")

    assert eventually(lambda: len(list(outbox.glob("*-post-*.eml"))) == 1)
    page = cast.admin.get("/admin/outbox")
    assert page.html.select("article h2")[0].text == "Fresh from the oven"
    assert "Warm *bread*." in page.html.select("article pre")[0].text


def test_a_scheduled_post_is_announced_by_the_periodic_job_when_it_goes_live(
    cast: Cast, worker
) -> None:
    app = cast.app
    confirmed_reader(app)
    slug = slug_of(write_post(cast.author, title="Later on", publish_at="2099-01-01T09:00"))
    # The periodic job's runs, called here; the worker starts after them, or its own
    # run at the turn of a minute could ask first (and this one then finds it waiting).
    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_due_posts() == 0  # not live yet
        set_post(app, slug, published_at=utc_ago(minutes=1))  # its time has come
        assert subscriptions.announce_due_posts() == 1
    finally:
        jobs._WORKER_APP.remove(app)
    worker(app)

    assert eventually(lambda: count(app, SentMessage, SentMessage.kind == "post") == 1)
    assert eventually(lambda: count(app, JobRecord) == 0)
    [message] = messages(app, "post")
    assert message["Subject"] == "Later on"
    with get_database(app).read() as db:
        assert db.scalar(select(Post.announced_at).where(Post.slug == slug)) is not None
    assert subscriptions.announce_due_posts() == 0  # announced: never again


def test_a_waiting_announcement_is_not_asked_for_twice(cast: Cast) -> None:
    app = cast.app
    slug = slug_of(write_post(cast.author, title="Later on", publish_at="2099-01-01T09:00"))
    set_post(app, slug, published_at=utc_ago(minutes=1))
    jobs._WORKER_APP.append(app)  # the periodic job's app, without consuming the queue
    try:
        assert subscriptions.announce_due_posts() == 1
        assert subscriptions.announce_due_posts() == 0
    finally:
        jobs._WORKER_APP.remove(app)
    assert count(app, JobRecord, JobRecord.name == subscriptions.announce_post.name) == 1


def test_only_confirmed_subscribers_get_the_post_each_once(cast: Cast) -> None:
    app = cast.app
    confirmed_reader(app, "one@example.com")
    confirmed_reader(app, "two@example.com")
    assert subscribe(app.test_client(), "pending@example.com").status_code == 303
    slug = slug_of(write_post(cast.author, title="For both"))
    with get_database(app).read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))

    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_post(post_id) == 2
        assert subscriptions.announce_post(post_id) == 0  # run twice: nothing more
    finally:
        jobs._WORKER_APP.remove(app)

    recipients = sorted(m["To"].addresses[0].addr_spec for m in messages(app, "post"))
    assert recipients == ["one@example.com", "two@example.com"]


def test_a_large_list_is_queued_in_batches(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    app = cast.app
    monkeypatch.setattr(subscriptions, "BATCH", 2)  # a batch size, not our code, changed
    for n in range(5):
        confirmed_reader(app, f"r{n}@example.com")
    slug = slug_of(write_post(cast.author, title="For five"))
    with get_database(app).read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))

    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_post(post_id) == 2
        after = 0
        for expected in (2, 1):
            with get_database(app).read() as db:
                args = db.scalars(
                    select(JobRecord.args).where(
                        JobRecord.name == subscriptions.announce_batch.name
                    )
                ).all()
            after = max(int(a.strip("[]").split(",")[1]) for a in args)
            assert subscriptions.announce_batch(post_id, after) == expected
    finally:
        jobs._WORKER_APP.remove(app)
    assert count(app, SentMessage, SentMessage.kind == "post") == 5


def test_upgrading_marks_every_public_post_announced_so_none_is_mailed(cast: Cast) -> None:
    app = cast.app
    public = slug_of(write_post(cast.author, title="Old news"))
    later = slug_of(write_post(cast.author, title="Not yet", publish_at="2099-01-01T09:00"))
    draft = slug_of(write_post(cast.author, title="Thinking", status="draft"))
    engine = get_database(app).engine
    downgrade(engine, "0011")  # a site from before subscriptions, with posts
    upgrade(engine)

    with get_database(app).read() as db:
        rows = {
            slug: (announced, published)
            for slug, announced, published in db.execute(
                select(Post.slug, Post.announced_at, Post.published_at)
            )
        }
    assert rows[public][0] == rows[public][1] is not None
    assert rows[later][0] is None and rows[draft][0] is None
    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_due_posts() == 0
    finally:
        jobs._WORKER_APP.remove(app)


def test_the_flow_and_the_migration_work_on_sqlite_and_postgresql(any_db_cast: Cast) -> None:
    cast = any_db_cast
    app = cast.app
    old = slug_of(write_post(cast.author, title="Before subscriptions"))
    engine = get_database(app).engine
    downgrade(engine, "0011")
    upgrade(engine)
    reader = confirmed_reader(app)
    new = slug_of(write_post(cast.author, title="After subscriptions"))
    with get_database(app).read() as db:
        ids = dict(db.execute(select(Post.slug, Post.id)).all())

    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_due_posts() == 0  # the editor asked for the new one
        assert subscriptions.announce_post(ids[old]) == 0
        assert subscriptions.announce_post(ids[new]) == 1
        assert subscriptions.announce_post(ids[new]) == 0
    finally:
        jobs._WORKER_APP.remove(app)
    [message] = messages(app, "post")
    assert message["Subject"] == "After subscriptions"
    assert reader.post(link_in(message, "/unsubscribe/")).status_code == 200
    assert subscriber(app).state == "unsubscribed"
    assert "unsubscribed" in cast.admin.get("/admin/subscribers.csv").text


# --- subscribing: the same answer, at most one message an hour ----------------------------


def test_the_answer_is_the_same_whatever_the_address_is(cast: Cast) -> None:
    app = cast.app
    confirmed_reader(app, "confirmed@example.com")
    assert subscribe(app.test_client(), "pending@example.com").status_code == 303
    answers = []
    for address in ("new@example.com", "pending@example.com", "confirmed@example.com"):
        client = app.test_client()
        answer = subscribe(client, address)
        page = client.get(answer.location)
        flash = page.html.select_one(".flash").text.replace(address, "ADDRESS")
        answers.append((answer.status_code, answer.location, flash))
    assert answers[0] == answers[1] == answers[2]


def test_the_request_only_asks_for_a_job_whatever_the_address(cast: Cast) -> None:
    """The same work, so the same time: the address is looked up after the answer."""
    app = cast.app
    confirmed_reader(app, "confirmed@example.com")
    for address in ("new@example.com", "confirmed@example.com"):
        client = app.test_client()
        before = (count(app, Subscriber), count(app, SentMessage), count(app, JobRecord))
        answer = client.post(
            "/subscribe", data={"csrf_token": csrf_token(client), "email": address}
        )
        assert answer.status_code == 303
        after = (count(app, Subscriber), count(app, SentMessage), count(app, JobRecord))
        assert after == (before[0], before[1], before[2] + 1), address
    run_subscription_jobs(app)
    assert subscriber(app, "new@example.com").state == "pending"
    assert len(messages(app, "confirm")) == 2  # the new address's; none more for the other


def test_a_pending_address_is_sent_its_link_again_at_most_once_an_hour(
    cast: Cast, clock: Clock
) -> None:
    app = cast.app
    for _ in range(3):
        assert subscribe(app.test_client(), READER).status_code == 303
    assert len(messages(app, "confirm")) == 1
    clock.advance(minutes=61)
    assert subscribe(app.test_client(), READER).status_code == 303
    assert subscribe(app.test_client(), READER).status_code == 303
    sent = messages(app, "confirm")
    assert len(sent) == 2
    assert link_in(sent[0], "/subscribe/confirm/") != link_in(sent[1], "/subscribe/confirm/")


def test_a_confirmed_address_gets_no_new_email(cast: Cast, clock: Clock) -> None:
    app = cast.app
    confirmed_reader(app)
    clock.advance(hours=2)
    assert subscribe(app.test_client(), READER).status_code == 303
    assert len(messages(app)) == 1
    assert subscriber(app).state == "confirmed"


def test_nothing_but_the_confirmation_is_sent_before_confirming(cast: Cast) -> None:
    app = cast.app
    assert subscribe(app.test_client(), READER).status_code == 303
    slug = slug_of(write_post(cast.author, title="Too soon"))
    with get_database(app).read() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
    jobs._WORKER_APP.append(app)
    try:
        assert subscriptions.announce_post(post_id) == 0
    finally:
        jobs._WORKER_APP.remove(app)
    assert [m["Subject"] for m in messages(app)] == ["Confirm your subscription to PyProject"]


def test_unsubscribed_then_subscribed_again_needs_a_new_confirmation(cast: Cast) -> None:
    app = cast.app
    reader = confirmed_reader(app)
    [old_confirm] = messages(app, "confirm")
    old_unsubscribe = link_in(old_confirm, "/unsubscribe/")
    assert reader.post(old_unsubscribe).status_code == 200
    assert subscribe(reader, READER).status_code == 303

    assert subscriber(app).state == "pending"
    new_confirm = messages(app, "confirm")[1]
    # Links from before the new subscription no longer work.
    assert reader.get(link_in(old_confirm, "/subscribe/confirm/")).status_code == 404
    assert reader.post(old_unsubscribe).status_code == 404
    assert reader.get(link_in(new_confirm, "/subscribe/confirm/")).status_code == 200
    assert subscriber(app).state == "confirmed"


# --- bad input and throttling ---------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "not an address",
        "reader@",
        "@example.com",
        "reader@@example.com",
        "<reader@example.com>",
        "Reader <reader@example.com>",
        "reader@example.com\r\nBcc: everyone@example.com",
        "reader@example.com\n",
        "reader@example.com\r",
        "reader\x00@example.com",
        "reader@exa\u2028mple.com",
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",  # 255 long
        "x" * 100_000,
        "réader@example.com",
    ],
)
def test_bad_addresses_are_refused_with_422_and_kept(cast: Cast, typed: str) -> None:
    app = cast.app
    client = app.test_client()
    answer = client.post("/subscribe", data={"csrf_token": csrf_token(client), "email": typed})

    assert answer.status_code == 422
    assert answer.html.select_one("#e-email") is not None
    if typed.strip() and "\x00" not in typed:
        shown = answer.html.select_one("#f-email")["value"]
        assert shown == typed.replace("\r\n", "\n").replace("\r", "\n")  # as HTML reads it
    assert count(app, Subscriber) == 0
    assert count(app, SentMessage) == 0
    assert count(app, JobRecord) == 0


def test_the_longest_address_is_accepted(cast: Cast) -> None:
    address = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(address) == 254
    assert subscribe(cast.app.test_client(), address).status_code == 303
    assert subscriber(cast.app, address) is not None


def test_a_get_with_a_huge_or_odd_address_shows_the_form(cast: Cast) -> None:
    client = cast.app.test_client()
    for typed in ("x" * 10_000, "<script>", "a\r\nb"):
        page = client.get("/subscribe", query={"email": typed})
        assert page.status_code == 200
        assert "<script>" not in page.text.split("<main", 1)[-1]


def test_one_address_is_throttled_after_five_forms_an_hour(cast: Cast, clock: Clock) -> None:
    app = cast.app
    for _ in range(5):
        assert subscribe(app.test_client(), READER).status_code == 303
    answer = subscribe(app.test_client(), READER)
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.html.select_one("#f-email")["value"] == READER
    clock.advance(hours=1, minutes=1)
    assert subscribe(app.test_client(), READER).status_code == 303


def test_one_client_is_throttled_after_ten_forms_an_hour(cast: Cast) -> None:
    app = cast.app
    client = app.test_client()
    for n in range(10):
        assert subscribe(client, f"r{n}@example.com").status_code == 303
    answer = subscribe(client, "eleventh@example.com")
    assert answer.status_code == 429
    assert subscriber(app, "eleventh@example.com") is None


def test_subscribe_without_the_csrf_token_is_refused(cast: Cast) -> None:
    client = cast.app.test_client()
    assert client.post("/subscribe", data={"email": READER}).status_code == 403
    assert count(cast.app, Subscriber) == 0


# --- confirmation and unsubscribe links ------------------------------------------------------


def test_a_confirmation_link_that_is_wrong_expired_or_used_changes_nothing(
    cast: Cast, clock: Clock
) -> None:
    app = cast.app
    reader = app.test_client()
    assert subscribe(reader, READER).status_code == 303
    [confirm] = messages(app, "confirm")
    good = link_in(confirm, "/subscribe/confirm/")
    sub_id, expires, mac = good.rsplit("/", 1)[1].split(".")
    for bad in (
        f"{sub_id}.{expires}.{mac[:-1]}A" if mac[-1] != "A" else f"{sub_id}.{expires}.{mac[:-1]}B",
        f"{sub_id}.{int(expires) + 86400}.{mac}",  # a longer life, not signed
        f"{int(sub_id) + 1}.{expires}.{mac}",
        "nonsense",
        "1.2.3",
        "9" * 30,
    ):
        answer = reader.get(f"/subscribe/confirm/{bad}")
        assert answer.status_code == 404, bad
        assert answer.html.select_one("h1").text == "This link does not work"
    clock.advance(days=7, minutes=1)
    expired = reader.get(good)
    assert expired.status_code == 410
    assert "expired" in expired.html.select_one("h1").text
    assert subscriber(app).state == "pending"

    clock.advance(days=-7, minutes=-2)
    assert reader.get(good).status_code == 200
    used = reader.get(good)
    assert used.status_code == 410
    assert "already used" in used.html.select_one("h1").text
    assert subscriber(app).state == "confirmed"


def test_get_on_the_unsubscribe_link_only_asks(cast: Cast) -> None:
    app = cast.app
    confirmed_reader(app)
    [confirm] = messages(app, "confirm")
    path = link_in(confirm, "/unsubscribe/")
    client = app.test_client()

    page = client.get(path)
    assert page.status_code == 200
    form = page.html.select_one(f'form[action="{path}"]')
    assert form["method"] == "post"
    assert form.select_one('input[name="csrf_token"]') is None
    assert client.head(path).status_code == 200
    assert subscriber(app).state == "confirmed"

    assert client.post(path, data=page.form_values(f'form[action="{path}"]')).status_code == 200
    row = subscriber(app)
    assert (row.state, row.unsubscribed_at is not None) == ("unsubscribed", True)
    again = client.post(path)
    assert again.status_code == 200 and "already" in again.text
    assert "You are unsubscribed" in client.get(path).text


def test_one_click_unsubscribe_needs_only_the_signed_link(cast: Cast) -> None:
    """A mail client posts from nowhere: no cookie, no token, a foreign or no Origin."""
    app = cast.app
    confirmed_reader(app)
    [confirm] = messages(app, "confirm")
    path = link_in(confirm, "/unsubscribe/")
    forged = path[:-1] + ("A" if path[-1] != "A" else "B")
    client = app.test_client()

    for bad in (forged, "/unsubscribe/1.x", "/unsubscribe/0." + "A" * 43):
        answer = client.post(bad, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 404, bad
    assert subscriber(app).state == "confirmed"
    answer = client.post(
        path,
        data={"List-Unsubscribe": "One-Click"},
        headers={"Origin": "https://mail.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status_code == 200
    assert subscriber(app).state == "unsubscribed"


# --- the post, made fit for email ------------------------------------------------------------


def test_email_html_makes_links_absolute_and_drops_what_email_must_not_hold() -> None:
    base = f"{BASE_URL}/posts/a-post"
    html = (
        '<h2 id="x">Title<a class="headerlink" href="#x">¶</a></h2>'
        '<p>A <a href="/tags/t">tag</a>, <a href="#fn1">note</a>, '
        '<a href="javascript:alert(1)">bad</a> &amp; <a href="https://example.org/">out</a>.</p>'
        '<p><img src="/media/a.png" alt="A &quot;cat&quot;">'
        '<img src="data:image/png;base64,AA"></p>'
        "<script>alert(2)</script><iframe src='https://evil.example'>frame</iframe>"
        "<form><input name=a></form><unknown>kept text</unknown>"
        '<pre><code class="language-py">x &lt; 1</code></pre>'
    )

    out = subscriptions.email_html(html, base)
    page = BeautifulSoup(out, "html.parser")

    hrefs = [a.get("href") for a in page.select("a")]
    assert hrefs == [f"{BASE_URL}/tags/t", f"{base}#fn1", None, "https://example.org/"]
    assert [img["src"] for img in page.select("img")] == [f"{BASE_URL}/media/a.png"]
    assert page.select_one("img")["alt"] == 'A "cat"'
    assert "¶" not in out and "alert" not in out and "frame" not in out
    assert not page.select("script, iframe, form, input, unknown, [class], [id]")
    assert "kept text" in out
    assert page.select_one("pre").get_text() == "x < 1"
    for tag in ("h2", "p", "a", "img", "pre", "code"):
        assert page.select_one(tag).get("style"), tag


def test_email_html_survives_broken_markup() -> None:
    out = subscriptions.email_html("<p><em>open <script>never", BASE_URL + "/")
    assert out == '<p style="margin:0 0 16px 0;"><em>open </em></p>'


def test_a_title_with_line_breaks_makes_a_one_line_subject() -> None:
    assert subscriptions.one_line("A\r\nBcc: x@example.com\u2028end") == (
        "A Bcc: x@example.com end"
    )


# --- /admin/subscribers and its CSV ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain@example.com", "plain@example.com"),
        (None, ""),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(value: Any, cell: str) -> None:
    assert subscriptions.csv_cell(value) == cell


def test_the_admin_sees_counts_a_list_and_a_guarded_csv(cast: Cast) -> None:
    app = cast.app
    confirmed_reader(app, "=cmd@example.com")
    confirmed_reader(app, "left@example.com").post(
        link_in(messages(app, "confirm", "left@example.com")[0], "/unsubscribe/")
    )
    assert subscribe(app.test_client(), "-pending@example.com").status_code == 303

    page = cast.admin.get("/admin/subscribers")
    assert page.status_code == 200
    counts = {
        state: page.html.select_one(f"#count-{state}").text
        for state in ("confirmed", "pending", "unsubscribed")
    }
    assert counts == {"confirmed": "1", "pending": "1", "unsubscribed": "1"}
    listed = [row.select("td")[0].text for row in page.html.select(".subscriber-table tbody tr")]
    assert listed == ["-pending@example.com", "left@example.com", "=cmd@example.com"]

    export = cast.admin.get("/admin/subscribers.csv")
    assert export.status_code == 200
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["email", "state", "created_at", "confirmed_at", "unsubscribed_at"]
    by_email = {row[0]: row for row in rows[1:]}
    assert set(by_email) == {"'=cmd@example.com", "left@example.com", "'-pending@example.com"}
    assert by_email["left@example.com"][1] == "unsubscribed"
    assert all(by_email["left@example.com"][2:])  # every date filled in
    assert cast.author.get("/admin/subscribers.csv").status_code == 403


def test_the_admin_list_is_paged(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions, "PER_PAGE", 2)
    client = cast.app.test_client()
    for n in range(3):
        assert subscribe(client, f"p{n}@example.com").status_code == 303
    first = cast.admin.get("/admin/subscribers")
    assert len(first.html.select(".subscriber-table tbody tr")) == 2
    second = cast.admin.get(first.html.select_one('a[rel="next"]')["href"])
    assert [r.select("td")[0].text for r in second.html.select(".subscriber-table tbody tr")] == [
        "p0@example.com"
    ]
    assert cast.admin.get("/admin/subscribers?page=3").status_code == 404
    assert cast.admin.get("/admin/subscribers?page=x").status_code == 404


# --- hooks for later features -----------------------------------------------------------------


def test_notify_author_and_notify_person_queue_one_message_each(cast: Cast) -> None:
    app = cast.app
    slug = slug_of(write_post(cast.author, title="Talked about"))
    with get_database(app).write() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        for _ in range(2):
            row = subscriptions.notify_author(
                db,
                post_id,
                "comment",
                subject="A new comment on\r\nTalked about",
                object_id="c1",
                app=app,
                message="Someone wrote a comment.",
            )
            assert row is not None
        subscriptions.notify_person(
            db,
            "Replied.To@Example.com",
            "reply",
            "c2",
            subject="Someone replied",
            name="Rita",
            app=app,
            message="Your comment has an answer.",
            link=f"{BASE_URL}/posts/{slug}",
        )
        with pytest.raises(subscriptions.mail.HeaderInjection):
            subscriptions.notify_person(
                db, "x@example.com\r\nBcc: y@example.com", "reply", "c3", subject="S", app=app
            )

    [to_author] = messages(app, "comment")
    assert to_author["To"].addresses[0].addr_spec == "alice@example.com"
    assert to_author["Subject"] == "A new comment on Talked about"
    text, _ = parts(to_author)
    assert "Someone wrote a comment." in text and f"{BASE_URL}/posts/{slug}" in text
    [to_person] = messages(app, "reply")
    assert to_person["To"].addresses[0].addr_spec == "replied.to@example.com"
    text, _ = parts(to_person)
    assert text.startswith("Hello Rita,") and f"{BASE_URL}/posts/{slug}" in text
    assert count(app, SentMessage) == 2
