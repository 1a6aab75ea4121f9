"""Password reset (pyproject/blog/recovery.py): the mail arrives, its link works once, for an hour.

End to end through the real job worker, to a real aiosmtpd server on loopback and to the
outbox folder; the links in the messages are followed with the test client. Time is
moved with models.set_clock (the `clock` fixture), never slept through.
"""

from __future__ import annotations

import email
import re
import threading
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select, update

from blog import test_mail as mailing
from blog.conftest import (
    ADMIN,
    AUTHOR,
    Clock,
    create_author,
    csrf_token,
    field_error,
    login,
    signup_admin,
)
from blog.test_mail import Mailbox, eventually, parts
from pyproject.blog import jobs, recovery
from pyproject.blog.auth import verify_password
from pyproject.blog.db import get_database
from pyproject.blog.models import JobRecord, SentMessage, SessionRecord, User, utcnow
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app

# The real SMTP server on loopback and the real job worker, as the mail tests start them.
start_server, server, run_worker = mailing.start_server, mailing.server, mailing.run_worker

NEW_PASSWORD = "a brand new passphrase 7"
LINK = re.compile(r"http://localhost(/reset/[A-Za-z0-9._-]+)")


# --- the site and its people ----------------------------------------------------------------------


def blog(tmp_path: Path, **overrides) -> App:
    """A blog with an admin and alice (an author)."""
    app = build_app(tmp_path, JOB_RETRY_SECONDS=0.05, **overrides)
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    assert create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password).status_code == 303
    return app


@pytest.fixture
def site(tmp_path: Path, run_worker) -> Iterator[App]:
    """The blog without SMTP_URL (messages go to the outbox), with its job worker running."""
    app = blog(tmp_path)
    run_worker(app)
    yield app
    get_database(app).dispose()


def settle(app: App) -> None:
    """Wait until the worker has done every job (the reset job queues the message)."""

    def ledger() -> list[JobRecord]:
        with get_database(app).read() as db:
            return list(db.scalars(select(JobRecord)))

    assert eventually(lambda: all(job.state == "failed" for job in ledger())), ledger()
    assert [job.error for job in ledger()] == []


def ask_reset(client: TestClient, typed: str) -> TestResponse:
    """Fill in /reset and send it."""
    values = client.get("/reset").form_values('form[action="/reset"]')
    values["email"] = typed
    return client.post("/reset", data=values)


def queued(app: App, kind: str = "reset") -> list[SentMessage]:
    """Give the messages of a kind queued (or sent) once the jobs asked for have run."""
    settle(app)
    with get_database(app).read() as db:
        return list(
            db.scalars(select(SentMessage).where(SentMessage.kind == kind).order_by(SentMessage.id))
        )


def link_in(message: EmailMessage) -> str:
    """Give the reset link's path, checking the text and HTML parts carry the same one."""
    text, html = parts(message)
    [in_text] = set(LINK.findall(text))
    hrefs = {a["href"] for a in BeautifulSoup(html, "html.parser").select("a[href]")}
    assert f"http://localhost{in_text}" in hrefs
    return in_text


def queued_link(app: App, index: int = -1) -> str:
    """Give the link of a queued reset message (as it will be sent)."""
    row = queued(app)[index]
    return link_in(email.message_from_bytes(row.message, policy=policy.default))


def choose_password(
    client: TestClient, link: str, password: str = NEW_PASSWORD, confirm: str | None = None
) -> TestResponse:
    values = {"csrf_token": csrf_token(client, "/login"), "password": password}
    values["confirm"] = password if confirm is None else confirm
    return client.post(link, data=values)


def password_hash(app: App, username: str = AUTHOR.username) -> str:
    with get_database(app).read() as db:
        return db.scalar(select(User.password_hash).where(User.username == username))


def signed_in_as(client: TestClient) -> str | None:
    """Give the username /account shows, or None when it sends the client to sign in."""
    page = client.get("/account")
    if page.status_code != 200:
        return None
    return page.html.select_one("p.muted strong").get_text()


# --- end to end -----------------------------------------------------------------------------------


def test_the_mail_arrives_by_smtp_and_its_link_sets_a_new_password(
    tmp_path: Path, server: tuple[Mailbox, int], run_worker
) -> None:
    mailbox, port = server
    app = blog(tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", SMTP_TIMEOUT=5)
    laptop, phone = app.test_client(), app.test_client()
    assert login(laptop, AUTHOR.username, AUTHOR.password).status_code == 303
    assert login(phone, AUTHOR.email, AUTHOR.password).status_code == 303
    stranger = app.test_client()

    answer = ask_reset(stranger, AUTHOR.email)
    assert answer.status_code == 200
    with get_database(app).read() as db:  # the request only asked for the job
        assert db.scalar(select(func.count()).select_from(SentMessage)) == 0
        [job] = db.scalars(select(JobRecord)).all()
        assert job.name == recovery.send_reset_link.name
    assert mailbox.messages == []  # sent by the worker, never in the request
    run_worker(app)

    assert eventually(lambda: mailbox.messages)
    [message] = mailbox.parsed()
    assert message["To"].addresses[0].addr_spec == AUTHOR.email
    assert message["Subject"] == "Choose a new password for PyProject"
    assert message["Message-ID"] and message["Date"]
    text, _ = parts(message)
    assert "alice" in text and "60 minutes" in text
    link = link_in(message)

    form = stranger.get(link)
    assert form.status_code == 200
    assert "no-store" in form.headers["Cache-Control"]
    assert "alice" in form.html.select_one("main").get_text()
    done = choose_password(stranger, link)

    assert done.status_code == 303
    assert signed_in_as(stranger) == "alice"
    assert signed_in_as(laptop) is None and signed_in_as(phone) is None  # every session ended
    assert login(app.test_client(), "alice", AUTHOR.password).status_code == 422
    assert login(app.test_client(), "alice", NEW_PASSWORD).status_code == 303
    get_database(app).dispose()


def test_the_mail_lands_in_the_outbox_and_its_link_works(tmp_path: Path, run_worker) -> None:
    app = blog(tmp_path)
    reader = app.test_client()
    assert ask_reset(reader, AUTHOR.username).status_code == 200  # a username works too
    run_worker(app)

    outbox = tmp_path / "outbox"
    assert eventually(lambda: list(outbox.glob("*-reset-*.eml")))
    [written] = outbox.glob("*-reset-*.eml")
    message = email.message_from_bytes(written.read_bytes(), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == AUTHOR.email
    link = link_in(message)

    assert choose_password(reader, link).status_code == 303
    assert verify_password(password_hash(app), NEW_PASSWORD)
    get_database(app).dispose()


# --- no enumeration -------------------------------------------------------------------------------


def test_known_unknown_and_deactivated_addresses_get_the_same_answer(
    site: App, clock: Clock
) -> None:
    admin = site.test_client()
    login(admin, ADMIN.username, ADMIN.password)
    assert create_author(admin, "carol").status_code == 303
    with get_database(site).write() as db:
        db.execute(update(User).where(User.username == "carol").values(is_active=False))
    client = site.test_client()

    answers = [
        ask_reset(client, typed)
        for typed in (AUTHOR.email, "nobody@example.com", "carol@example.com", "ALICE@example.com")
    ]

    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1
    assert {answer.headers["Cache-Control"] for answer in answers} == {"no-store"}
    assert "If an account has that address" in answers[0].text
    # Asked twice in one second (the clock stands still: a loaded run once took a second
    # between the two), the link is the same, and is mailed once.
    assert [row.recipient for row in queued(site)] == [AUTHOR.email]


def test_known_and_unknown_addresses_take_about_the_same_time(site: App) -> None:
    def timed(typed: str, n: int) -> float:
        client = site.test_client(environ_overrides={"REMOTE_ADDR": f"10.0.0.{n}"})
        client.get("/reset")
        started = time.perf_counter()
        assert ask_reset(client, typed).status_code == 200
        return time.perf_counter() - started

    ask_reset(site.test_client(), "warm@example.com")  # templates compiled, connections open
    known, unknown = [], []
    for n in range(3):  # three a typed address may ask for in an hour
        known.append(timed(AUTHOR.email, 2 * n))
        unknown.append(timed(f"nobody{n}@example.com", 2 * n + 1))

    # The least of each: what the work costs, without the pauses of a loaded machine (the
    # median of three took one 50 ms pause of a busy full run for a gap).
    fast, slow = sorted((min(known), min(unknown)))
    # The unknown address builds (and drops) the same message: no large, steady gap.
    assert slow - fast < max(0.010, fast), (known, unknown)


# --- the link: expiry, once, other changes --------------------------------------------------------


def test_a_link_expires_after_an_hour_and_changes_nothing(site: App, clock: Clock) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    link = queued_link(site)
    before = password_hash(site)
    clock.advance(minutes=59)
    assert client.get(link).status_code == 200
    clock.advance(minutes=1, seconds=1)

    page = client.get(link)
    assert page.status_code == 410
    assert "expired or was used" in page.text
    assert choose_password(client, link).status_code == 410
    assert password_hash(site) == before
    assert signed_in_as(client) is None


def test_a_link_works_once_and_ends_every_other_link(site: App, clock: Clock) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    settle(site)  # the link is made when the job runs
    clock.advance(minutes=5)
    ask_reset(client, AUTHOR.email)
    first, second = queued_link(site, 0), queued_link(site, 1)
    assert first != second

    assert choose_password(client, second).status_code == 303
    changed = password_hash(site)
    again = site.test_client()
    assert again.get(second).status_code == 410
    assert choose_password(again, second, "yet another passphrase").status_code == 410
    assert choose_password(again, first, "yet another passphrase").status_code == 410
    assert password_hash(site) == changed


def test_changing_the_password_on_the_account_page_ends_a_link(site: App) -> None:
    reader = site.test_client()
    ask_reset(reader, AUTHOR.email)
    link = queued_link(site)
    alice = site.test_client()
    login(alice, AUTHOR.username, AUTHOR.password)
    values = {"csrf_token": csrf_token(alice), "current_password": AUTHOR.password}
    values.update(password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert alice.post("/account/password", data=values).status_code == 303

    assert reader.get(link).status_code == 410


def test_a_second_reset_an_hour_later_is_mailed_too(site: App, clock: Clock) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    settle(site)  # the link is made when the job runs
    clock.advance(minutes=61)
    ask_reset(client, AUTHOR.email)

    rows = queued(site)
    assert len(rows) == 2 and rows[0].key != rows[1].key
    assert client.get(queued_link(site)).status_code == 200
    assert client.get(queued_link(site, 0)).status_code == 410


def test_a_deactivated_account_gets_no_mail_and_its_link_stops_working(site: App) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    link = queued_link(site)
    with get_database(site).write() as db:
        db.execute(update(User).where(User.username == "alice").values(is_active=False))

    assert client.get(link).status_code == 410
    assert choose_password(client, link).status_code == 410
    assert ask_reset(client, AUTHOR.email).status_code == 200
    assert len(queued(site)) == 1


def test_the_sessions_of_the_account_are_deleted_and_others_kept(site: App) -> None:
    alice, admin = site.test_client(), site.test_client()
    login(alice, AUTHOR.username, AUTHOR.password)
    login(admin, ADMIN.username, ADMIN.password)
    reader = site.test_client()
    ask_reset(reader, AUTHOR.email)

    assert choose_password(reader, queued_link(site)).status_code == 303

    with get_database(site).read() as db:
        alice_id = db.scalar(select(User.id).where(User.username == "alice"))
        sessions = db.scalar(
            select(func.count()).select_from(SessionRecord).where(SessionRecord.user_id == alice_id)
        )
    assert sessions == 1  # the one just signed in
    assert signed_in_as(alice) is None
    assert signed_in_as(admin) == "admin"


# --- throttling -----------------------------------------------------------------------------------


def test_an_address_is_throttled_the_same_whether_or_not_it_has_an_account(
    site: App, clock: Clock
) -> None:
    answers = {}
    for typed in (AUTHOR.email, "nobody@example.com"):
        client = site.test_client()
        for _ in range(recovery.PER_ACCOUNT.count):
            assert ask_reset(client, typed).status_code == 200
            clock.advance(minutes=1)
        answers[typed] = ask_reset(client, typed.upper())  # the same address, spelled otherwise

    known, unknown = answers.values()
    assert known.status_code == unknown.status_code == 429
    assert known.headers["Retry-After"] == unknown.headers["Retry-After"] == str(3600 - 180 + 1)
    assert field_error(known, "email") == field_error(unknown, "email")
    assert "Try again in 58 minutes" in field_error(known, "email")
    assert len(queued(site)) == 3
    clock.advance(hours=1, seconds=1)
    assert ask_reset(site.test_client(), AUTHOR.email).status_code == 200
    assert len(queued(site)) == 4


def test_a_client_is_throttled_across_addresses(site: App) -> None:
    client = site.test_client()
    for n in range(recovery.PER_CLIENT.count):
        assert ask_reset(client, f"someone{n}@example.com").status_code == 200

    answer = ask_reset(client, AUTHOR.email)

    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 3000
    assert queued(site) == []
    elsewhere = site.test_client(environ_overrides={"REMOTE_ADDR": "192.0.2.7"})
    assert ask_reset(elsewhere, AUTHOR.email).status_code == 200


# --- bad input and forged requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("alice@example.com\r\nBcc: eve@example.com", id="crlf"),
        pytest.param("alice@example.com\nBcc: eve@example.com", id="lf"),
        pytest.param("alice@example.com\x00", id="nul"),
        pytest.param("a" * 290 + "@example.com", id="300-characters"),
    ],
)
def test_bad_input_is_answered_with_the_form_and_sends_nothing(site: App, typed: str) -> None:
    answer = ask_reset(site.test_client(), typed)

    assert answer.status_code == 422
    assert field_error(answer, "email")
    # Kept as typed (an HTML parser reads CR LF as LF and NUL as U+FFFD).
    kept = typed.replace("\r\n", "\n").replace("\x00", "\ufffd")
    assert answer.html.select_one("#f-email")["value"] == kept
    assert queued(site) == []


def test_a_missing_field_is_a_4xx(site: App) -> None:
    client = site.test_client()
    answer = client.post("/reset", data={"csrf_token": csrf_token(client, "/login")})
    assert answer.status_code == 422


@pytest.mark.parametrize(
    ("password", "confirm", "field"),
    [
        ("short", "short", "password"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "confirm"),
        ("", "", "password"),
        ("x" * 1025, "x" * 1025, "password"),
    ],
)
def test_a_bad_new_password_is_refused_and_the_link_still_works(
    site: App, password: str, confirm: str, field: str
) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    link = queued_link(site)
    before = password_hash(site)

    answer = choose_password(client, link, password, confirm)

    assert answer.status_code == 422
    assert field_error(answer, field)
    assert password_hash(site) == before
    assert choose_password(client, link).status_code == 303


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "1.2.3",
        "2." + "9" * 12 + "." + "A" * 43,  # far in the future, unsigned
        "1.99999999999." + "A" * 43,
        "x" * 5000,
        "%E2%80%A8",
        "1.1.%00",
    ],
)
def test_forged_or_malformed_links_are_refused(site: App, token: str) -> None:
    client = site.test_client()
    page = client.get(f"/reset/{token}")
    assert page.status_code in (404, 410)
    posted = choose_password(client, f"/reset/{token}")
    assert posted.status_code in (404, 410)
    assert signed_in_as(client) is None


def test_a_tampered_token_is_refused(site: App) -> None:
    client = site.test_client()
    ask_reset(client, AUTHOR.email)
    link = queued_link(site)
    user_id, expires, signature = link.removeprefix("/reset/").split(".")
    for forged in (
        f"{int(user_id) - 1}.{expires}.{signature}",  # the admin's account
        f"{user_id}.{int(expires) + 3600}.{signature}",  # a longer life
        f"{user_id}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
    ):
        assert client.get(f"/reset/{forged}").status_code == 410
        assert choose_password(client, f"/reset/{forged}").status_code == 410


def test_forged_posts_are_refused_and_change_nothing(site: App) -> None:
    client = site.test_client()
    assert client.post("/reset", data={"email": AUTHOR.email}).status_code == 403
    assert queued(site) == []
    ask_reset(client, AUTHOR.email)
    link = queued_link(site)
    before = password_hash(site)
    data = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert client.post(link, data=data).status_code == 403
    other = csrf_token(site.test_client(), "/login")
    assert client.post(link, data={**data, "csrf_token": other}).status_code == 403
    assert password_hash(site) == before


def test_the_sign_in_page_links_to_the_reset_form(site: App) -> None:
    page = site.test_client().get("/login")
    link = page.html.find("a", string="Forgot your password?")
    assert link is not None and link["href"] == "/reset"


# --- tokens ---------------------------------------------------------------------------------------


def test_a_token_is_bound_to_the_user_expiry_hash_and_key() -> None:
    user = User(id=7, password_hash="$argon2id$hash-one")
    now = utcnow()
    token = recovery.make_reset_token(user, secret="k1", now=now)
    parsed = recovery.parse_reset_token(token)

    assert parsed is not None and parsed.user_id == 7
    assert parsed.expires == int((now + recovery.RESET_LIFETIME).timestamp())
    assert recovery.make_reset_token(user, secret="k2", now=now) != token
    user.password_hash = "$argon2id$hash-two"
    assert recovery.make_reset_token(user, secret="k1", now=now) != token
    assert urlsplit(f"http://x/reset/{token}").path == f"/reset/{token}"  # nothing to escape


def test_two_uses_of_one_link_at_once_set_one_password(any_db_app: App, run_worker) -> None:
    app = any_db_app
    run_worker(app)
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    client = app.test_client()
    ask_reset(client, ADMIN.email)
    link = queued_link(app)
    clients = [app.test_client() for _ in range(3)]
    tokens = [csrf_token(c, "/login") for c in clients]
    answers: list[int] = []
    start = threading.Barrier(len(clients))

    def send(n: int) -> None:
        data = {"csrf_token": tokens[n], "password": f"racing passphrase {n}"}
        data["confirm"] = data["password"]
        start.wait()
        answers.append(clients[n].post(link, data=data).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answers) == [303, 410, 410]
    [winner] = [n for n, c in enumerate(clients) if signed_in_as(c) == "admin"]
    assert verify_password(password_hash(app, "admin"), f"racing passphrase {winner}")


def test_a_display_name_with_a_line_break_never_reaches_a_header(site: App) -> None:
    alice = site.test_client()
    login(alice, AUTHOR.username, AUTHOR.password)
    values = alice.get("/account").form_values('form[action="/account"]')
    values["display_name"] = "Alice\nBcc: eve@example.com"
    assert alice.post("/account", data=values).status_code == 303

    assert ask_reset(site.test_client(), AUTHOR.email).status_code == 200
    [row] = queued(site)
    message = email.message_from_bytes(row.message, policy=policy.default)
    assert message["To"] == f"{AUTHOR.username} <{AUTHOR.email}>"
    assert message["Bcc"] is None


def test_the_reset_job_queues_one_message_however_often_it_runs(site: App) -> None:
    ask_reset(site.test_client(), AUTHOR.email)
    [row] = queued(site)
    asked_at = int(row.key.rsplit("-", 1)[1])
    with get_database(site).write() as db:
        jobs.enqueue(db, recovery.send_reset_link, AUTHOR.email, asked_at)

    assert [again.key for again in queued(site)] == [row.key]
