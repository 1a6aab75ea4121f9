"""Invitations (pyproject/blog/invitations.py): an admin invites by email, the link works once.

End to end through the real job worker, to a real aiosmtpd server on loopback and to the
outbox folder; the links in the messages are followed with the test client. Time is
moved with models.set_clock (the `clock` fixture).
"""

from __future__ import annotations

import email
import re
import threading
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

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
from pyproject.blog import invitations
from pyproject.blog.db import get_database
from pyproject.blog.models import Invitation, SentMessage, User
from pyproject.lib import App
from pyproject.lib.testing import TestClient, TestResponse
from tests.conftest import build_app

# The real SMTP server on loopback and the real job worker, as the mail tests start them.
start_server, server, run_worker = mailing.start_server, mailing.server, mailing.run_worker

INVITEE = "newcomer@example.com"
PASSWORD = "newcomer passphrase 1"
LINK = re.compile(r"http://localhost(/join/[A-Za-z0-9_-]+)")


# --- the site -------------------------------------------------------------------------------------


def blog(tmp_path: Path, **overrides) -> tuple[App, TestClient]:
    """A blog with its admin signed in, and alice (an author)."""
    app = build_app(tmp_path, JOB_RETRY_SECONDS=0.05, **overrides)
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    assert create_author(admin, AUTHOR.username, AUTHOR.email, AUTHOR.password).status_code == 303
    return app, admin


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[App, TestClient]]:
    """The blog without SMTP_URL (messages are queued; tests read the queued bytes)."""
    app, admin = blog(tmp_path)
    yield app, admin
    get_database(app).dispose()


def invite(admin: TestClient, address: str = INVITEE, role: str = "author") -> TestResponse:
    """Fill in "Invite an author" on /admin/users and send it."""
    values = admin.get("/admin/users").form_values('form[action="/admin/invitations"]')
    values.update(invite_email=address, invite_role=role)
    return admin.post("/admin/invitations", data=values)


def join(client: TestClient, link: str, **fields: str) -> TestResponse:
    """Fill in the form the invitation link shows and send it."""
    values = client.get(link).form_values(f'form[action="{link}"]')
    values.update(username="newcomer", display_name="New Comer", password=PASSWORD)
    values["confirm"] = values["password"]
    values.update(fields)
    return client.post(link, data=values)


def rows(app: App) -> list[Invitation]:
    with get_database(app).read() as db:
        return list(db.scalars(select(Invitation).order_by(Invitation.id)))


def invitation_mail(app: App) -> list[SentMessage]:
    with get_database(app).read() as db:
        query = select(SentMessage).where(SentMessage.kind == "invitation")
        return list(db.scalars(query.order_by(SentMessage.id)))


def link_in(message: EmailMessage) -> str:
    """Give the join link's path, checking the text and HTML parts carry the same one."""
    text, html = parts(message)
    [in_text] = set(LINK.findall(text))
    hrefs = {a["href"] for a in BeautifulSoup(html, "html.parser").select("a[href]")}
    assert f"http://localhost{in_text}" in hrefs
    return in_text


def queued_link(app: App, index: int = -1) -> str:
    row = invitation_mail(app)[index]
    return link_in(email.message_from_bytes(row.message, policy=policy.default))


def user_count(app: App) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(func.count()).select_from(User))


def pending_on_page(admin: TestClient) -> list[str]:
    page = admin.get("/admin/users")
    return [
        row.select_one("td").get_text() for row in page.html.select(".invitation-table tbody tr")
    ]


# --- end to end -----------------------------------------------------------------------------------


def test_the_invitation_arrives_by_smtp_and_its_link_makes_an_author(
    tmp_path: Path, server: tuple[Mailbox, int], run_worker
) -> None:
    mailbox, port = server
    app, admin = blog(tmp_path, SMTP_URL=f"smtp://127.0.0.1:{port}", SMTP_TIMEOUT=5)

    answer = invite(admin)
    assert answer.status_code == 303 and answer.location == "/admin/users"
    assert pending_on_page(admin) == [INVITEE]
    assert mailbox.messages == []  # sent by the worker, never in the request
    run_worker(app)

    assert eventually(lambda: mailbox.messages)
    [message] = mailbox.parsed()
    assert message["To"].addresses[0].addr_spec == INVITEE
    assert message["Subject"] == f"{ADMIN.display_name} invites you to write on PyProject"
    text, _ = parts(message)
    assert "as an author" in text and "works once" in text
    link = link_in(message)

    invitee = app.test_client()
    form = invitee.get(link)
    assert form.status_code == 200
    assert form.html.select_one("#f-email")["value"] == INVITEE
    assert "no-store" in form.headers["Cache-Control"]
    joined = join(invitee, link)

    assert joined.status_code == 303 and joined.location == "/posts/new"
    assert invitee.get("/posts/new").status_code == 200  # signed in, and may write
    with get_database(app).read() as db:
        user = db.scalar(select(User).where(User.username == "newcomer"))
        assert (user.email, user.role, user.display_name) == (INVITEE, "author", "New Comer")
        [row] = db.scalars(select(Invitation)).all()
        assert row.used_by == user.id and row.used_at is not None
    assert pending_on_page(admin) == []
    assert login(app.test_client(), INVITEE, PASSWORD).status_code == 303
    get_database(app).dispose()


def test_the_invitation_lands_in_the_outbox_and_its_link_works(tmp_path: Path, run_worker) -> None:
    app, admin = blog(tmp_path)
    assert invite(admin).status_code == 303
    run_worker(app)

    outbox = tmp_path / "outbox"
    assert eventually(lambda: list(outbox.glob("*-invitation-*.eml")))
    [written] = outbox.glob("*-invitation-*.eml")
    message = email.message_from_bytes(written.read_bytes(), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == INVITEE

    assert join(app.test_client(), link_in(message)).status_code == 303
    assert user_count(app) == 3
    get_database(app).dispose()


def test_an_admin_invitation_makes_an_admin(site) -> None:
    app, admin = site
    invite(admin, role="admin")
    invitee = app.test_client()
    assert join(invitee, queued_link(app)).status_code == 303
    assert invitee.get("/admin/users").status_code == 200


def test_only_a_digest_of_the_token_is_kept(site) -> None:
    app, admin = site
    invite(admin)
    token = queued_link(app).removeprefix("/join/")
    [row] = rows(app)

    assert row.token_digest == invitations.token_digest(token) != token
    assert len(token) >= 43
    with get_database(app).engine.connect() as connection:
        dumped = repr(connection.exec_driver_sql("SELECT * FROM invitations").all())
    assert token not in dumped


# --- once, for 7 days -----------------------------------------------------------------------------


def test_a_link_works_once(site) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    assert join(app.test_client(), link).status_code == 303

    again = app.test_client()
    page = again.get(link)
    assert page.status_code == 410
    assert "expired or was used" in page.text
    data = {"csrf_token": csrf_token(again, "/login"), "username": "second"}
    data.update(password=PASSWORD, confirm=PASSWORD)
    assert again.post(link, data=data).status_code == 410
    assert user_count(app) == 3


def test_a_link_expires_after_7_days_and_changes_nothing(site, clock: Clock) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    invitee = app.test_client()
    clock.advance(days=6, hours=23, minutes=59)
    assert invitee.get(link).status_code == 200
    clock.advance(minutes=1)

    assert invitee.get(link).status_code == 410
    data = {"csrf_token": csrf_token(invitee, "/login"), "username": "late"}
    data.update(password=PASSWORD, confirm=PASSWORD)
    assert invitee.post(link, data=data).status_code == 410
    assert user_count(app) == 2
    assert pending_on_page(admin) == []


def test_a_revoked_invitation_stops_working(site) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    [row] = rows(app)
    page = admin.get("/admin/users")
    values = page.form_values(f'form[action="/admin/invitations/{row.id}/revoke"]')

    answer = admin.post(f"/admin/invitations/{row.id}/revoke", data=values)

    assert answer.status_code == 303
    assert pending_on_page(admin) == []
    assert app.test_client().get(link).status_code == 410
    assert rows(app)[0].revoked_at is not None


def test_revoking_what_does_not_exist_is_a_404(site) -> None:
    _, admin = site
    answer = admin.post("/admin/invitations/999/revoke", data={"csrf_token": csrf_token(admin)})
    assert answer.status_code == 404


def test_a_new_invitation_to_the_same_address_replaces_the_pending_one(site) -> None:
    app, admin = site
    invite(admin)
    invite(admin, INVITEE.upper())

    first, second = queued_link(app, 0), queued_link(app, 1)
    assert first != second
    assert pending_on_page(admin) == [INVITEE]
    assert app.test_client().get(first).status_code == 410
    assert join(app.test_client(), second).status_code == 303


def test_two_joins_at_once_make_one_account(any_db_app: App) -> None:
    app = any_db_app
    admin = app.test_client()
    assert signup_admin(admin).status_code == 303
    invite(admin)
    link = queued_link(app)
    clients = [app.test_client() for _ in range(4)]
    forms = []
    for n, client in enumerate(clients):
        values = client.get(link).form_values(f'form[action="{link}"]')
        values.update(username=f"racer{n}", password=PASSWORD, confirm=PASSWORD)
        forms.append(values)
    answers: list[int] = []
    start = threading.Barrier(len(clients))

    def send(client: TestClient, values: dict[str, str]) -> None:
        start.wait()
        answers.append(client.post(link, data=values).status_code)

    threads = [
        threading.Thread(target=send, args=pair) for pair in zip(clients, forms, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answers) == [303, 410, 410, 410]
    with get_database(app).read() as db:
        assert db.scalar(select(func.count()).select_from(User).where(User.email == INVITEE)) == 1


# --- bad input ------------------------------------------------------------------------------------


def test_an_address_with_an_account_is_a_form_error(site) -> None:
    app, admin = site
    answer = invite(admin, AUTHOR.email.upper())

    assert answer.status_code == 422
    assert field_error(answer, "invite_email") == "That address already has an account."
    assert answer.html.select_one("#f-invite_email")["value"] == AUTHOR.email.upper()
    assert rows(app) == [] and invitation_mail(app) == []


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("", id="empty"),
        pytest.param("not-an-address", id="no-at"),
        pytest.param("two@@example.com", id="two-ats"),
        pytest.param("eve@example.com\r\nBcc: mallory@example.com", id="crlf"),
        pytest.param("eve@example.com\nBcc: mallory@example.com", id="lf"),
        pytest.param("eve@example.com\x00", id="nul"),
        pytest.param("a" * 288 + "@example.com", id="300-characters"),
        pytest.param("ève@example.com", id="non-ascii"),
    ],
)
def test_a_bad_address_shows_the_form_again_with_what_was_typed(site, address: str) -> None:
    app, admin = site
    answer = invite(admin, address)

    assert answer.status_code == 422
    assert field_error(answer, "invite_email")
    kept = address.replace("\r\n", "\n").replace("\x00", "\ufffd")  # as HTML parsers read it
    assert answer.html.select_one("#f-invite_email")["value"] == kept
    assert rows(app) == [] and invitation_mail(app) == []


def test_an_unknown_role_is_a_form_error(site) -> None:
    app, admin = site
    answer = invite(admin, role="owner")
    assert answer.status_code == 422
    assert field_error(answer, "invite_role")
    assert rows(app) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "Not Valid!"}, "username"),
        ({"username": "alice"}, "username"),  # taken
        ({"username": "x" * 300}, "username"),
        ({"username": "bad\x00name"}, "username"),
        ({"password": "short"}, "password"),
        ({"confirm": "not the same"}, "confirm"),
        ({"display_name": "d" * 200}, "display_name"),
    ],
)
def test_a_bad_join_form_is_shown_again_and_the_link_still_works(
    site, fields: dict[str, str], field: str
) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    invitee = app.test_client()

    answer = join(invitee, link, **fields)

    assert answer.status_code == 422
    assert field_error(answer, field)
    if "username" in fields and "\x00" not in fields["username"]:
        assert answer.html.select_one("#f-username")["value"] == fields["username"]
    assert user_count(app) == 2
    assert join(invitee, link).status_code == 303


def test_missing_fields_are_a_4xx(site) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    client = app.test_client()
    answer = client.post(link, data={"csrf_token": csrf_token(client, "/login")})
    assert answer.status_code == 422
    assert user_count(app) == 2


@pytest.mark.parametrize("token", ["nothing", "x" * 5000, "%E2%80%A8", "a.b.c"])
def test_unknown_or_malformed_links_are_refused(site, token: str) -> None:
    app, _ = site
    client = app.test_client()
    assert client.get(f"/join/{token}").status_code in (404, 410)
    data = {"csrf_token": csrf_token(client, "/login"), "username": "sneaky"}
    data.update(password=PASSWORD, confirm=PASSWORD)
    assert client.post(f"/join/{token}", data=data).status_code in (404, 410)
    assert user_count(app) == 2


# --- who may --------------------------------------------------------------------------------------


def test_only_admins_invite_and_revoke(site) -> None:
    app, admin = site
    invite(admin)
    [row] = rows(app)
    alice = app.test_client()
    login(alice, AUTHOR.username, AUTHOR.password)
    anonymous = app.test_client()

    token = csrf_token(alice)
    data = {"csrf_token": token, "invite_email": "friend@example.com"}
    assert alice.post("/admin/invitations", data=data).status_code == 403
    assert alice.post(f"/admin/invitations/{row.id}/revoke", data=data).status_code == 403
    data["csrf_token"] = csrf_token(anonymous, "/login")
    assert anonymous.post("/admin/invitations", data=data).status_code == 303
    assert anonymous.post(f"/admin/invitations/{row.id}/revoke", data=data).status_code == 303
    assert len(rows(app)) == 1 and rows(app)[0].revoked_at is None


def test_forged_posts_are_refused_and_change_nothing(site) -> None:
    app, admin = site
    assert admin.post("/admin/invitations", data={"invite_email": INVITEE}).status_code == 403
    assert rows(app) == []
    invite(admin)
    link = queued_link(app)
    [row] = rows(app)
    assert admin.post(f"/admin/invitations/{row.id}/revoke", data={}).status_code == 403
    invitee = app.test_client()
    data = {"username": "newcomer", "password": PASSWORD, "confirm": PASSWORD}
    assert invitee.post(link, data=data).status_code == 403
    other = csrf_token(app.test_client(), "/login")
    assert invitee.post(link, data={**data, "csrf_token": other}).status_code == 403
    assert user_count(app) == 2
    assert rows(app)[0].revoked_at is None and rows(app)[0].used_at is None


def test_a_display_name_with_a_line_break_never_reaches_a_header(site) -> None:
    app, admin = site
    values = admin.get("/account").form_values('form[action="/account"]')
    values["display_name"] = "Ada\r\nBcc: eve@example.com"
    assert admin.post("/account", data=values).status_code == 303

    assert invite(admin).status_code == 303
    [row] = invitation_mail(app)
    message = email.message_from_bytes(row.message, policy=policy.default)
    assert message["Subject"] == f"{ADMIN.username} invites you to write on PyProject"
    assert message["Bcc"] is None


def test_an_address_that_got_an_account_since_cannot_join_again(site) -> None:
    app, admin = site
    invite(admin)
    link = queued_link(app)
    assert create_author(admin, "direct", INVITEE).status_code == 303

    answer = join(app.test_client(), link)

    assert answer.status_code == 422
    assert field_error(answer, "email") == "That email address is already used."
    assert user_count(app) == 3
